"""The Backpack protocol of the local venue: its REST API on the real paths.

ccxt's `backpack` class (REST) and `ccxt.pro.backpack` (streams, gridctl.venue.backpack_streams)
talk to it exactly as to api.backpack.exchange: every private request's ED25519 signature and
window are verified (the API key is the verify key), errors come in Backpack's codes and
bodies, shapes follow the real samples. Accounts, matching and prices are the core's, reached
through a `Port` (gridctl.venue.backpack_port). Backpack has no hedge mode and one
account-wide leverage limit.

    protocol = BackpackProtocol(port, faults)
    protocol.add_routes(app)        # REST + WebSocket "/" on the same aiohttp app
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Awaitable, Callable, Optional

from aiohttp import web

from gridctl.venue import backpack_codec as codec
from gridctl.venue import backpack_wire as wire
from gridctl.venue.backpack_port import Port, Refused
from gridctl.venue.backpack_streams import Streams
from gridctl.venue.backpack_wire import BackpackError, ok

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MUTATIONS = ("orderExecute", "orderCancel", "orderCancelAll")
HANG_S = 30.0  # a "timeout" fault holds the reply this long (past any client timeout)


class RestFaults:
    """Which fault, if any, hits this request (switched by the core's fault settings)."""

    def __call__(self, instruction: Optional[str]) -> Optional[str]:
        """None, or one of rate_limit, server_error, timeout, empty, reject."""
        return None


class BackpackProtocol:
    """REST routes and the WebSocket endpoint of a Backpack-speaking venue."""

    def __init__(self, port: Port, faults: Optional[RestFaults] = None) -> None:
        self.port = port
        self.faults = faults or RestFaults()
        self.streams = Streams(port)

    # -- wiring ----------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        """Register every Backpack path (and the WebSocket at "/") on `app`."""
        public = [
            ("GET", "/api/v1/assets", self.assets), ("GET", "/api/v1/markets", self.markets),
            ("GET", "/api/v1/market", self.market), ("GET", "/api/v1/ticker", self.ticker),
            ("GET", "/api/v1/tickers", self.tickers), ("GET", "/api/v1/markPrices", self.mark_prices),
            ("GET", "/api/v1/fundingRates", self.funding_rates), ("GET", "/api/v1/time", self.time),
            ("GET", "/api/v1/status", self.status), ("GET", "/api/v1/ping", self.ping),
        ]
        private = [
            ("GET", "/api/v1/capital", self.capital),
            ("GET", "/api/v1/capital/collateral", self.collateral),
            ("GET", "/api/v1/position", self.position), ("GET", "/api/v1/account", self.account),
            ("PATCH", "/api/v1/account", self.account_update),
            ("POST", "/api/v1/order", self.order_execute), ("DELETE", "/api/v1/order", self.order_cancel),
            ("GET", "/api/v1/order", self.order_query), ("GET", "/api/v1/orders", self.orders_open),
            ("DELETE", "/api/v1/orders", self.orders_cancel_all),
            ("GET", "/wapi/v1/history/orders", self.history_orders),
            ("GET", "/wapi/v1/history/fills", self.history_fills),
            ("GET", "/wapi/v1/history/funding", self.history_funding),
        ]
        for method, path, handler in public:
            app.router.add_route(method, path, self._public(handler))
        for method, path, handler in private:
            app.router.add_route(method, path, self._private(handler))
        app.router.add_get("/", self.streams.handle)

    def _public(self, handler: Handler) -> Handler:
        async def run(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except BackpackError as e:
                return e.response()
        return run

    def _private(self, handler: Callable[[web.Request, str, dict], Awaitable[object]]) -> Handler:
        async def run(request: web.Request) -> web.StreamResponse:
            try:
                key, params = await wire.authenticate(request, self.port.now_ms())
                try:
                    self.port.open_account(key)
                except Refused:
                    raise BackpackError("UNAUTHORIZED", "Unauthorized") from None
                instruction = wire.auth.INSTRUCTIONS[(request.method, request.path)]
                fault = self.faults(instruction)
                early = self._fault_before(fault)
                if early is not None:
                    return early
                body = await handler(request, key, params)
                return await self._fault_after(fault, instruction, body)
            except BackpackError as e:
                return e.response()
            except Refused as e:
                status, err = codec.reject_error(e.reason, e.detail)
                return web.json_response(err, status=status)
        return run

    @staticmethod
    def _fault_before(fault: Optional[str]) -> Optional[web.Response]:
        """Faults that answer before the request is acted on."""
        if fault == "rate_limit":
            return BackpackError("TOO_MANY_REQUESTS", "Too many requests").response()
        if fault == "server_error":
            return BackpackError("SERVER_ERROR", "Internal server error").response()
        return None

    @staticmethod
    async def _fault_after(fault: Optional[str], instruction: str, body: object) -> web.StreamResponse:
        """Faults that strike after the request was acted on (the outcome is unknown to the client)."""
        if fault == "timeout" and instruction in MUTATIONS:
            await asyncio.sleep(HANG_S)
        if fault == "empty" and instruction in MUTATIONS:
            return web.Response(status=202)  # "accepted but not yet executed", no body
        if isinstance(body, web.StreamResponse):
            return body
        return ok(body)

    def _rules(self, symbol: Optional[str], field: str = "symbol"):
        if not symbol:
            raise BackpackError("INVALID_CLIENT_REQUEST", f"Missing field `{field}`")
        try:
            return self.port.rules(symbol)
        except KeyError:
            raise BackpackError("INVALID_CLIENT_REQUEST", "Invalid market symbol") from None

    # -- public --------------------------------------------------------------------------------
    async def assets(self, request: web.Request) -> web.Response:
        return ok([])  # no deposits or withdrawals here; ccxt's fetch_currencies takes []

    def _market_view(self, symbol: str) -> codec.MarketView:
        rules = self.port.rules(symbol)
        extra = self.port.market_extra(symbol)
        return codec.MarketView(symbol, rules.base, rules.quote, rules.tick, rules.step, rules.min_qty,
                                extra.get("imf_function", {}), extra.get("mmf_function", {}),
                                int(extra.get("funding_interval_ms", 3_600_000)))

    async def markets(self, request: web.Request) -> web.Response:
        wanted = request.query.getall("marketType", []) + request.query.getall("marketType[]", [])
        if wanted and "PERP" not in wanted:
            return ok([])  # only perpetuals are served
        return ok([codec.market_json(self._market_view(s)) for s in self.port.symbols()])

    async def market(self, request: web.Request) -> web.Response:
        symbol = request.query.get("symbol")
        self._rules(symbol)
        return ok(codec.market_json(self._market_view(symbol)))

    def _ticker(self, symbol: str) -> dict:
        q = self.port.quote(symbol)
        return codec.ticker_json(symbol, q.first, q.last, q.high, q.low, q.volume, q.quote_volume, q.trades)

    async def ticker(self, request: web.Request) -> web.Response:
        symbol = request.query.get("symbol")
        self._rules(symbol)
        return ok(self._ticker(symbol))

    async def tickers(self, request: web.Request) -> web.Response:
        return ok([self._ticker(s) for s in self.port.symbols()])

    async def mark_prices(self, request: web.Request) -> web.Response:
        symbol = request.query.get("symbol")
        symbols = self.port.symbols()
        if symbol is not None:
            if symbol not in symbols:
                raise BackpackError("INVALID_CLIENT_REQUEST", "Symbol not found")
            symbols = [symbol]
        rows = []
        for s in symbols:
            q = self.port.quote(s)
            rows.append(codec.mark_price_json(s, q.mark, q.index, q.funding_rate, q.next_funding_ms))
        return ok(rows)

    async def funding_rates(self, request: web.Request) -> web.Response:
        symbol = request.query.get("symbol")
        self._rules(symbol)
        q = self.port.quote(symbol)  # the running estimate of the interval in progress
        return ok([codec.funding_rate_json(symbol, q.funding_rate, q.next_funding_ms)])

    async def time(self, request: web.Request) -> web.Response:
        return web.Response(text=str(self.port.now_ms()))  # a bare integer, not JSON-wrapped

    async def status(self, request: web.Request) -> web.Response:
        return ok({"status": "Ok", "message": None})

    async def ping(self, request: web.Request) -> web.Response:
        return web.Response(text="pong")

    # -- account ------------------------------------------------------------------------------
    async def capital(self, request: web.Request, key: str, params: dict) -> dict:
        m = self.port.margin(key)
        return codec.capital_json({m.asset: (max(m.available, Decimal(0)), m.balance - max(
            min(m.available, m.balance), Decimal(0)))})

    async def collateral(self, request: web.Request, key: str, params: dict) -> dict:
        m = self.port.margin(key)
        imf = m.initial / m.exposure if m.exposure else Decimal(0)
        mmf = m.maintenance / m.exposure if m.exposure else Decimal(0)
        return codec.collateral_json(m.asset, m.balance, m.equity, m.available, imf, mmf,
                                     m.unrealized, m.exposure)

    async def position(self, request: web.Request, key: str, params: dict) -> list:
        symbol = params.get("symbol")
        rows = [p for p in self.port.positions(key) if symbol in (None, p.symbol)]
        uid = user_id(key)
        return [codec.position_json(p, uid) for p in rows]

    async def account(self, request: web.Request, key: str, params: dict) -> dict:
        fees = [self.port.rules(s) for s in self.port.symbols()][:1]
        maker = fees[0].maker_fee if fees else Decimal("0.0002")
        taker = fees[0].taker_fee if fees else Decimal("0.0005")
        return codec.account_json(self.port.leverage(key), maker, taker,
                                  len(self.port.open_orders(key, None)))

    async def account_update(self, request: web.Request, key: str, params: dict) -> web.Response:
        if "leverageLimit" in params:
            value = wire.decimal_param(params, "leverageLimit")
            if value != value.to_integral_value():
                raise BackpackError("INVALID_CLIENT_REQUEST", "Invalid leverage limit")
            self.port.set_leverage(key, int(value))
        return web.Response(status=200)  # the real venue answers 200 with no body

    # -- orders --------------------------------------------------------------------------------
    async def order_execute(self, request: web.Request, key: str, params: dict) -> dict:
        symbol = params.get("symbol")
        self._rules(symbol)
        side = params.get("side")
        if side not in (codec.BID, codec.ASK):
            raise BackpackError("INVALID_CLIENT_REQUEST", "Invalid side: expected Bid or Ask")
        order_type = params.get("orderType")
        if order_type not in ("Limit", "Market"):
            raise BackpackError("INVALID_CLIENT_REQUEST", "Invalid orderType: expected Limit or Market")
        for unsupported in ("triggerPrice", "quoteQuantity", "stopLossTriggerPrice",
                            "takeProfitTriggerPrice", "positionSide", "hedged"):
            if unsupported in params:
                raise BackpackError("INVALID_CLIENT_REQUEST", f"Unsupported field `{unsupported}`")
        qty = wire.decimal_param(params, "quantity")
        price = wire.decimal_param(params, "price", required=order_type == "Limit")
        if order_type == "Market" and price is not None:
            raise BackpackError("INVALID_CLIENT_REQUEST", "Market orders take no price")
        tif = str(params.get("timeInForce", "GTC"))
        if tif not in ("GTC", "IOC", "FOK"):
            raise BackpackError("INVALID_CLIENT_REQUEST", "Invalid timeInForce")
        post_only = wire.bool_param(params, "postOnly")
        if post_only and order_type == "Market":
            raise BackpackError("INVALID_ORDER", "Post only is only valid for limit orders")
        order = self.port.place(key, symbol, side == codec.BID, qty, price, post_only,
                                wire.bool_param(params, "reduceOnly"), wire.client_id_param(params),
                                tif)
        return codec.order_json(order)

    async def order_cancel(self, request: web.Request, key: str, params: dict) -> dict:
        symbol = params.get("symbol")
        self._rules(symbol)
        order_id, cid = wire.one_order_ref(params)
        return codec.order_json(self.port.cancel(key, symbol, order_id, cid))

    async def order_query(self, request: web.Request, key: str, params: dict) -> dict:
        """One resting order (the real endpoint answers 404 for filled/cancelled ones)."""
        symbol = params.get("symbol")
        self._rules(symbol)
        order_id, cid = wire.one_order_ref(params)
        for o in self.port.open_orders(key, symbol):
            if (order_id is not None and o.order_id == order_id) or (
                    cid is not None and o.client_id == cid):
                return codec.order_json(o)
        raise BackpackError("RESOURCE_NOT_FOUND", "Order not found")

    async def orders_open(self, request: web.Request, key: str, params: dict) -> list:
        symbol = params.get("symbol")
        if symbol is not None:
            self._rules(symbol)
        return [codec.order_json(o) for o in self.port.open_orders(key, symbol)]

    async def orders_cancel_all(self, request: web.Request, key: str, params: dict) -> list:
        symbol = params.get("symbol")
        self._rules(symbol)
        return [codec.order_json(o) for o in self.port.cancel_all(key, symbol)]

    # -- history -------------------------------------------------------------------------------
    async def history_orders(self, request: web.Request, key: str, params: dict) -> list:
        symbol = params.get("symbol")
        if symbol is not None:
            self._rules(symbol)
        rows = self.port.order_history(key, symbol)
        if params.get("orderId") is not None:
            rows = [o for o in rows if o.order_id == str(params["orderId"])]
        return [codec.order_json(o, history=True) for o in wire.page(rows, params)]

    async def history_fills(self, request: web.Request, key: str, params: dict) -> list:
        symbol = params.get("symbol")
        if symbol is not None:
            self._rules(symbol)
        start = wire.int_param(params, "from", None)
        end = wire.int_param(params, "to", None)
        fill_type = params.get("fillType")
        rows = self.port.fills(key, symbol)
        if fill_type not in (None, "User", "Trade"):
            rows = []  # no liquidations, ADL or settlements recorded under other fill types
        rows = [f for f in rows if (start is None or f.ts_ms >= start) and (end is None or f.ts_ms < end)
                and (params.get("orderId") is None or f.order_id == str(params["orderId"]))]
        return [codec.fill_json(f) for f in wire.page(rows, params)]

    async def history_funding(self, request: web.Request, key: str, params: dict) -> list:
        symbol = params.get("symbol")
        if symbol is not None:
            self._rules(symbol)
        uid = user_id(key)
        rows = wire.page(self.port.funding(key, symbol), params)
        return [codec.funding_json(r.symbol, r.rate, r.amount, r.ts_ms, uid) for r in rows]


def user_id(api_key: str) -> str:
    """A stable numeric user id for an account (never the key itself)."""
    import hashlib
    return str(int.from_bytes(hashlib.sha256(api_key.encode()).digest()[:4], "big"))
