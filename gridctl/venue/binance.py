"""Binance USDⓈ-M futures (fapi) on the local venue: REST at the real paths, HMAC checked.

Private requests carry X-MBX-APIKEY and `timestamp`, `recvWindow`, `signature`: the
HMAC-SHA256 (hex, venue.secret) over the raw query string or form body before
`&signature=` (re-encoding would change the order). Errors are Binance's codes and
bodies (gridctl.venue.binance_wire.ERRORS). The user-data and market streams live in
gridctl.venue.binance_ws; faults (gridctl.venue.faults) are applied here per request.
"""

from __future__ import annotations

import hashlib
import hmac
from decimal import InvalidOperation
from typing import Awaitable, Callable, Optional
from urllib.parse import parse_qsl

from aiohttp import web

from gridctl.venue import binance_wire as W
from gridctl.venue.account import VenueAccount
from gridctl.venue.records import VenueReject
from gridctl.venue.binance_algo import BinanceAlgo
from gridctl.venue.binance_rest import BinanceRest, Call, _Missing
from gridctl.venue.server import Protocol

DEFAULT_RECV_WINDOW = 5000
Handler = Callable[["Call"], Awaitable[web.StreamResponse]]


class BinanceProtocol(BinanceAlgo, BinanceRest, Protocol):
    """The fapi REST endpoints ccxt's binanceusdm uses (research §1.2 and §5.3)."""

    name = "binanceusdm"
    like = "binanceusdm"
    default_symbols = ("BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT")

    def __init__(self, venue, server) -> None:
        super().__init__(venue, server)
        from gridctl.venue.binance_ws import BinanceStreams
        self.streams = BinanceStreams(self)

    def routes(self) -> list[web.RouteDef]:
        pub, priv = self._public, self._private
        return [
            web.get("/fapi/v1/ping", pub(self.ping, "read")),
            web.get("/fapi/v1/time", pub(self.time, "read")),
            web.get("/fapi/v1/exchangeInfo", pub(self.exchange_info, "read")),
            web.get("/fapi/v1/ticker/24hr", pub(self.ticker_24hr, "read")),
            web.get("/fapi/v1/ticker/price", pub(self.ticker_price, "read")),
            web.get("/fapi/v1/ticker/bookTicker", pub(self.book_ticker, "read")),
            web.get("/fapi/v1/premiumIndex", pub(self.premium_index, "read")),
            web.get("/fapi/v1/fundingRate", pub(self.funding_rate, "read")),
            web.get("/fapi/v1/leverageBracket", priv(self.leverage_bracket, "read")),
            web.get("/fapi/v1/commissionRate", priv(self.commission_rate, "read")),
            web.get("/fapi/v3/account", priv(self.account_v3, "read")),
            web.get("/fapi/v2/account", priv(self.account_v3, "read")),
            web.get("/fapi/v2/balance", priv(self.balance_v2, "read")),
            web.get("/fapi/v3/positionRisk", priv(self.position_risk, "read")),
            web.get("/fapi/v2/positionRisk", priv(self.position_risk_v2, "read")),
            web.get("/fapi/v1/positionSide/dual", priv(self.get_position_mode, "read")),
            web.post("/fapi/v1/positionSide/dual", priv(self.set_position_mode, "other")),
            web.post("/fapi/v1/leverage", priv(self.set_leverage, "other")),
            web.post("/fapi/v1/marginType", priv(self.set_margin_type, "other")),
            web.get("/fapi/v1/symbolConfig", priv(self.symbol_config, "read")),
            web.post("/fapi/v1/order", priv(self.create_order, "place")),
            web.delete("/fapi/v1/order", priv(self.cancel_order, "cancel")),
            web.get("/fapi/v1/order", priv(self.query_order, "read")),
            web.get("/fapi/v1/openOrder", priv(self.query_open_order, "read")),
            web.delete("/fapi/v1/allOpenOrders", priv(self.cancel_all, "cancel")),
            web.delete("/fapi/v1/batchOrders", priv(self.cancel_batch, "cancel")),
            web.get("/fapi/v1/openOrders", priv(self.open_orders, "read")),
            web.get("/fapi/v1/allOrders", priv(self.all_orders, "read")),
            web.get("/fapi/v1/userTrades", priv(self.user_trades, "read")),
            web.get("/fapi/v1/income", priv(self.income, "read")),
            web.post("/fapi/v1/listenKey", self._keyed(self.streams.create_key)),
            web.put("/fapi/v1/listenKey", self._keyed(self.streams.keep_alive)),
            web.delete("/fapi/v1/listenKey", self._keyed(self.streams.delete_key)),
            *self.algo_routes(priv),
            *self.streams.routes(),
        ]

    async def start(self) -> None:
        await self.streams.start()

    async def stop(self) -> None:
        await self.streams.stop()

    # -- request plumbing -------------------------------------------------------------
    async def _before(self, kind: str) -> Optional[web.Response]:
        """Faults that answer instead of the venue (nothing executed)."""
        f = self.venue.faults.take("rate_limit", kind)
        if f:
            return W.error("rate_limit", headers={"Retry-After": str(int(f.get("retry_after", 1)))})
        f = self.venue.faults.take("server_error", kind)
        if f:
            status = int(f.get("status", 503))
            if f.get("html"):
                return web.Response(status=status, text="<html><body><h1>503 Service Unavailable</h1></body></html>",
                                    content_type="text/html")
            return W.error("server_error", status=status)
        return None

    def _public(self, handler: Handler, kind: str):
        async def run(request: web.Request) -> web.StreamResponse:
            early = await self._before(kind)
            if early is not None:
                return early
            return await self._dispatch(handler, Call(request, dict(request.query), None))
        return run

    def _private(self, handler: Handler, kind: str):
        async def run(request: web.Request) -> web.StreamResponse:
            early = await self._before(kind)
            if early is not None:
                return early
            account, params, refusal = await self.authenticate(request)
            if refusal is not None:
                return refusal
            if kind == "place":
                f = self.venue.faults.take("reject", kind)
                if f:
                    return W.error(str(f.get("reason", "insufficient_margin")))
            order_type = (str(params.get("type", "")).lower() or None) if kind == "place" else None
            await self.before_faults(kind, order_type)
            response = await self._dispatch(handler, Call(request, params, account))
            if kind != "read":
                self.venue.flush()  # on disk before the answer: a killed venue keeps what it confirmed
            response = await self.after_faults(kind, response, order_type)
            if self.venue.timing is not None and kind in ("place", "cancel"):
                self._time_ack(kind, params, account, response)
            return response
        return run

    def _time_ack(self, kind: str, params: dict, account: VenueAccount, response: web.StreamResponse) -> None:
        """The timing log's record of an order request answered (gridctl.venue.timing)."""
        t = self.venue.timing
        t.record("ack", kind=kind, status=response.status,
                 c=params.get("newClientOrderId") or params.get("origClientOrderId"),
                 **t.account_state(self.venue, account.fingerprint, params.get("symbol")))

    def _keyed(self, handler: Handler):
        """listenKey calls: X-MBX-APIKEY only, unsigned."""
        async def run(request: web.Request) -> web.StreamResponse:
            early = await self._before("other")
            if early is not None:
                return early
            account = self.venue.account_for(request.headers.get("X-MBX-APIKEY", ""))
            if account is None:
                return W.error("bad_api_key")
            body = (await request.read()).decode()
            params = dict(parse_qsl(request.query_string)) | dict(parse_qsl(body))
            response = await self._dispatch(handler, Call(request, params, account))
            self.venue.flush()
            return response
        return run

    async def _dispatch(self, handler: Handler, call: Call) -> web.StreamResponse:
        try:
            return await handler(call)
        except _Missing as exc:
            return W.missing(str(exc))
        except VenueReject as exc:
            return W.error(exc.reason, leverage=call.get("leverage"), min_notional=self._min_notional(call))
        except (InvalidOperation, ValueError):
            return W.error("invalid_order")

    def _min_notional(self, call: Call) -> str:
        try:
            return W.s(self.venue.market(call.get("symbol", "")).rules.min_notional)
        except VenueReject:
            return "5"

    async def authenticate(self, request: web.Request) -> tuple[Optional[VenueAccount], dict, Optional[web.Response]]:
        """(account, params, None), or (None, {}, the refusal): key, timestamp window, HMAC."""
        key = request.headers.get("X-MBX-APIKEY", "")
        if not key:
            return None, {}, W.error("missing_api_key")
        query = request.rel_url.raw_query_string  # signed as sent (percent-encoded), as Binance checks it
        body = (await request.read()).decode() if request.can_read_body else ""
        raw = body if body else query
        payload, sep, signature = raw.rpartition("&signature=")
        if not sep:
            if raw.startswith("signature="):
                payload, signature = "", raw[len("signature="):]
            else:
                return None, {}, W.missing("signature")
        params = dict(parse_qsl(query)) if body else {}
        params.update(parse_qsl(payload))
        account = self.venue.account_for(key)
        if account is None:
            return None, {}, W.error("bad_api_key")
        secret = self.venue.secret
        if secret is not None:
            want = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(want, signature.split("&")[0].lower()):
                return None, {}, W.error("bad_signature")
        try:
            ts = int(params["timestamp"])
            window = int(params.get("recvWindow", DEFAULT_RECV_WINDOW))
        except KeyError:
            return None, {}, W.missing("timestamp")
        except ValueError:
            return None, {}, W.error("timestamp")
        now = self.venue.now_ms()
        if ts > now + 1000 or now - ts > window:
            return None, {}, W.error("timestamp")
        return account, params, None
