"""Backpack on the local venue: its REST API at the real paths, ED25519 checked.

ccxt's `backpack` (REST) and `ccxt.pro.backpack` (streams, gridctl.venue.backpack_streams)
talk to it as to api.backpack.exchange: every private request's ED25519 signature and
window are verified (the API key is the base64 verify key, so any key pair works without
--api-key), errors are Backpack's codes and bodies, shapes follow the real samples
(gridctl.venue.backpack_codec). Accounts, matching and prices are the core's
(gridctl.venue.core). Backpack is net mode only: no position-mode endpoint, and a
`positionSide` is refused; leverage is one account-wide `leverageLimit`.

Faults (gridctl.venue.faults) in Backpack's shapes: rate_limit -> 429 TOO_MANY_REQUESTS
(no Retry-After, as the venue sends none), server_error -> 500 SERVER_ERROR, timeout ->
executed then answered after `delay` s, empty -> executed then 202 with no body,
reject -> the code of `reason`; partial fills and the stream faults come from the core.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Awaitable, Callable, Optional

from aiohttp import web

from gridctl.venue import backpack_codec as codec
from gridctl.venue import backpack_views as views
from gridctl.venue import backpack_wire as wire
from gridctl.venue.account import VenueAccount
from gridctl.venue.backpack_auth import INSTRUCTIONS, check_key_pair
from gridctl.venue.backpack_triggers import BackpackTriggers, trigger_json
from gridctl.venue.backpack_wire import BackpackError, ok
from gridctl.venue.records import VenueReject
from gridctl.venue.server import Protocol

KIND = {"orderExecute": "place", "orderCancel": "cancel", "orderCancelAll": "cancel",
        "accountUpdate": "other"}  # fault kinds of the private instructions; the rest are reads
MAX_BATCH = 50  # orders per POST /api/v1/orders (Backpack's limit)
HOURLY_RATE = Decimal("0.0000125")  # 0.01 % per 8 h, per hour: BTC_USDC_PERP's usual rate
PrivateHandler = Callable[[VenueAccount, dict], Awaitable[object]]


class BackpackProtocol(BackpackTriggers, Protocol):
    """The Backpack REST endpoints ccxt uses (research §1.3 and §5.3)."""

    name = "backpack"
    like = "backpack"
    default_symbols = ("BTC/USDC:USDC", "SOL/USDC:USDC")

    def __init__(self, venue, server) -> None:
        super().__init__(venue, server)
        from gridctl.venue.backpack_streams import BackpackStreams
        self.streams = BackpackStreams(self)
        if venue.api_key is not None:
            try:
                check_key_pair(venue.api_key, venue.secret)
            except ValueError as e:
                raise VenueReject("bad_api_key", str(e)) from None
        for m in venue.markets.values():  # Backpack settles hourly (a saved state keeps its rate)
            m.funding_interval_ms = views.market_view(m.rules).funding_interval_ms
            m.funding_rate = HOURLY_RATE

    def routes(self) -> list[web.RouteDef]:
        pub, priv = self._public, self._private
        return [
            web.get("/api/v1/assets", pub(self.assets)), web.get("/api/v1/markets", pub(self.markets)),
            web.get("/api/v1/market", pub(self.market)), web.get("/api/v1/ticker", pub(self.ticker)),
            web.get("/api/v1/tickers", pub(self.tickers)),
            web.get("/api/v1/markPrices", pub(self.mark_prices)),
            web.get("/api/v1/fundingRates", pub(self.funding_rates)),
            web.get("/api/v1/time", pub(self.time)), web.get("/api/v1/status", pub(self.status)),
            web.get("/api/v1/ping", pub(self.ping)),
            web.get("/api/v1/capital", priv(self.capital)),
            web.get("/api/v1/capital/collateral", priv(self.collateral)),
            web.get("/api/v1/position", priv(self.position)),
            web.get("/api/v1/account", priv(self.account)),
            web.patch("/api/v1/account", priv(self.account_update)),
            web.post("/api/v1/order", priv(self.order_execute)),
            web.post("/api/v1/orders", priv(self.orders_execute)),
            web.delete("/api/v1/order", priv(self.order_cancel)),
            web.get("/api/v1/order", priv(self.order_query)),
            web.get("/api/v1/orders", priv(self.orders_open)),
            web.delete("/api/v1/orders", priv(self.orders_cancel_all)),
            web.get("/wapi/v1/history/orders", priv(self.history_orders)),
            web.get("/wapi/v1/history/fills", priv(self.history_fills)),
            web.get("/wapi/v1/history/funding", priv(self.history_funding)),
            *self.streams.routes(),
        ]

    async def start(self) -> None:
        await self.streams.start()

    async def stop(self) -> None:
        await self.streams.stop()

    # -- request plumbing -------------------------------------------------------------------
    def _before(self, kind: str) -> Optional[web.Response]:
        """Faults that answer instead of the venue (nothing executed)."""
        if self.venue.faults.take("rate_limit", kind):
            return BackpackError("TOO_MANY_REQUESTS", "Too many requests").response()
        f = self.venue.faults.take("server_error", kind)
        if f:
            status = int(f.get("status", 500))
            if f.get("html"):
                return web.Response(status=status, content_type="text/html",
                                    text=f"<html><body><h1>{status} Service Unavailable</h1></body></html>")
            return BackpackError("SERVER_ERROR", "Internal server error", status).response()
        return None

    def empty_reply(self, fault: dict) -> web.StreamResponse:
        return web.Response(status=int(fault.get("status", 202)))  # Backpack's "accepted, not yet executed"

    def _public(self, handler: Callable[[web.Request], Awaitable[object]]):
        async def run(request: web.Request) -> web.StreamResponse:
            early = self._before("read")
            if early is not None:
                return early
            try:
                body = await handler(request)
            except BackpackError as e:
                return e.response()
            except VenueReject as e:
                return _reject(e)
            return body if isinstance(body, web.StreamResponse) else ok(body)
        return run

    def _private(self, handler: PrivateHandler):
        async def run(request: web.Request) -> web.StreamResponse:
            instruction = INSTRUCTIONS.get((request.method, request.path), "")
            kind = KIND.get(instruction, "read")
            early = self._before(kind)
            if early is not None:
                return early
            order_type = None
            try:
                key, params = await wire.authenticate(request, self.venue.now_ms())
                account = self.venue.account_for(key)
                if account is None:  # --api-key names another key
                    raise BackpackError("UNAUTHORIZED", "Unauthorized")
                if kind == "place":
                    f = self.venue.faults.take("reject", kind)
                    if f:
                        raise VenueReject(str(f.get("reason", "insufficient_margin")), "injected")
                order_type = _order_type(params) if kind == "place" else None
                await self.before_faults(kind, order_type)
                body = await handler(account, params)
            except BackpackError as e:
                body = e.response()
            except VenueReject as e:
                body = _reject(e)
            self.venue.flush()  # what the answer confirms is on disk before it goes out
            response = body if isinstance(body, web.StreamResponse) else ok(body)
            return await self.after_faults(kind, response, order_type)
        return run

    def _symbol(self, params: dict, required: bool = True) -> Optional[str]:
        """The params' market as the core names it (unified symbol); None when absent and optional."""
        symbol = params.get("symbol")
        if symbol is None:
            if required:
                raise BackpackError("INVALID_CLIENT_REQUEST", "Missing field `symbol`")
            return None
        try:
            return self.venue.market(str(symbol)).symbol
        except VenueReject:
            raise BackpackError("INVALID_CLIENT_REQUEST", "Invalid market symbol") from None

    def _order(self, o) -> dict:
        return codec.order_json(views.order_view(o, self.venue.market(o.symbol).rules))

    # -- public -------------------------------------------------------------------------------
    async def assets(self, request: web.Request) -> list:
        return []  # no deposits or withdrawals here; ccxt's fetch_currencies takes []

    async def markets(self, request: web.Request) -> list:
        wanted = request.query.getall("marketType", []) + request.query.getall("marketType[]", [])
        if wanted and "PERP" not in wanted:
            return []  # only perpetuals are served
        return [codec.market_json(views.market_view(m.rules)) for m in self.venue.markets.values()]

    async def market(self, request: web.Request) -> dict:
        sym = self._symbol(dict(request.query))
        return codec.market_json(views.market_view(self.venue.markets[sym].rules))

    def _ticker(self, sym: str) -> dict:
        m = self.venue.markets[sym]
        first, high, low = m.day_stats()
        return codec.ticker_json(m.rules.venue_id, first, m.price(), high, low, Decimal(0), Decimal(0), 0)

    async def ticker(self, request: web.Request) -> dict:
        return self._ticker(self._symbol(dict(request.query)))

    async def tickers(self, request: web.Request) -> list:
        return [self._ticker(s) for s in self.venue.markets]

    def mark_row(self, sym: str) -> dict:
        """One markPrices row of a market (the venue's mark is its last price; index likewise)."""
        m = self.venue.markets[sym]
        next_ms = m.next_funding_ms or m.next_funding_after(self.venue.now_ms())
        return codec.mark_price_json(m.rules.venue_id, m.price(), m.price(), m.funding_rate, next_ms)

    async def mark_prices(self, request: web.Request) -> list:
        if request.query.get("symbol") is None:
            return [self.mark_row(s) for s in self.venue.markets]
        try:
            return [self.mark_row(self.venue.market(request.query["symbol"]).symbol)]
        except VenueReject:
            raise BackpackError("INVALID_CLIENT_REQUEST", "Symbol not found") from None

    async def funding_rates(self, request: web.Request) -> list:
        m = self.venue.markets[self._symbol(dict(request.query))]
        next_ms = m.next_funding_ms or m.next_funding_after(self.venue.now_ms())
        return [codec.funding_rate_json(m.rules.venue_id, m.funding_rate, next_ms)]

    async def time(self, request: web.Request) -> web.Response:
        return web.Response(text=str(self.venue.now_ms()))  # a bare integer, not JSON

    async def status(self, request: web.Request) -> dict:
        return {"status": "Ok", "message": None}

    async def ping(self, request: web.Request) -> web.Response:
        return web.Response(text="pong")

    # -- account --------------------------------------------------------------------------------
    async def capital(self, acc: VenueAccount, params: dict) -> dict:
        b = self.venue.balance(acc)
        available = min(b.available, b.wallet)
        return codec.capital_json({b.asset: (available, b.wallet - available)})

    async def collateral(self, acc: VenueAccount, params: dict) -> dict:
        b = self.venue.balance(acc)
        exposure = sum((abs(p.notional) for p in self.venue.positions(acc)), Decimal(0))
        imf = b.initial_margin / exposure if exposure else Decimal(0)
        mmf = b.maint_margin / exposure if exposure else Decimal(0)
        return codec.collateral_json(b.asset, b.wallet, b.margin_balance, b.available, imf, mmf,
                                     b.unrealized, exposure)

    def position_views(self, acc: VenueAccount, symbol: Optional[str] = None) -> list:
        """The account's open net positions in Backpack's terms."""
        out = []
        for p in self.venue.positions(acc, symbol):
            if p.qty == 0:
                continue
            rules = self.venue.markets[p.symbol].rules
            funding = sum((i.amount for i in acc.income if i.symbol == p.symbol), Decimal(0))
            out.append(views.position_view(acc.fingerprint, rules, p.qty, p.entry, p.mark, p.liquidation,
                                           p.unrealized, acc.pnl.get(p.symbol, Decimal(0)), funding,
                                           p.leverage))
        return out

    async def position(self, acc: VenueAccount, params: dict) -> list:
        uid = views.user_id(acc.fingerprint)
        return [codec.position_json(p, uid) for p in self.position_views(acc, self._symbol(params, False))]

    def leverage_limit(self, acc: VenueAccount) -> int:
        """The account-wide leverage limit (kept in the state file beside the core's per-market one)."""
        limits = self.venue.extra_state.setdefault("backpack_leverage", {})
        if acc.fingerprint not in limits:
            return max(acc.leverage.values(), default=1)
        return int(limits[acc.fingerprint])

    async def account(self, acc: VenueAccount, params: dict) -> dict:
        rules = next(iter(self.venue.markets.values())).rules
        return codec.account_json(self.leverage_limit(acc), rules.maker_fee, rules.taker_fee,
                                  len(self.venue.open_orders(acc)))

    async def account_update(self, acc: VenueAccount, params: dict) -> web.Response:
        if "leverageLimit" in params:
            value = wire.decimal_param(params, "leverageLimit")
            top = max(m.rules.max_leverage for m in self.venue.markets.values())
            if value != value.to_integral_value() or not 1 <= value <= top:
                raise BackpackError("INVALID_CLIENT_REQUEST", f"Leverage limit must be between 1 and {top}")
            n = int(value)
            for sym, m in self.venue.markets.items():  # each market at most its own maximum
                self.venue.set_leverage(acc, sym, min(n, m.rules.max_leverage))
            self.venue.extra_state.setdefault("backpack_leverage", {})[acc.fingerprint] = n
            self.venue.dirty()
        return web.Response(status=200)  # the real venue answers 200 with no body

    # -- orders ---------------------------------------------------------------------------------
    async def order_execute(self, acc: VenueAccount, params: dict) -> dict:
        if "triggerPrice" in params:  # a stop / take-profit market order (gridctl.venue.backpack_triggers)
            return self.trigger_execute(acc, params, self._symbol(params))
        return self._order(self.venue.place_order(acc, **self._order_args(params)))

    async def orders_execute(self, acc: VenueAccount, orders: list) -> list:
        """A batch (at most 50): validated all or nothing, then each executed on its own; a
        refused order's slot holds its error body."""
        if len(orders) > MAX_BATCH:
            raise BackpackError("INVALID_CLIENT_REQUEST", f"At most {MAX_BATCH} orders per batch")
        checked = [self._order_args(o) for o in orders]
        out = []
        for args in checked:
            try:
                out.append(self._order(self.venue.place_order(acc, **args)))
            except VenueReject as e:
                out.append(codec.reject_error(e.reason, e.message)[1])
        return out

    def _order_args(self, params: dict) -> dict:
        """The core's place_order arguments of one OrderExecutePayload; BackpackError if invalid."""
        sym = self._symbol(params)
        side = params.get("side")
        if side not in (codec.BID, codec.ASK):
            raise BackpackError("INVALID_CLIENT_REQUEST", "Invalid side: expected Bid or Ask")
        order_type = params.get("orderType")
        if order_type not in ("Limit", "Market"):
            raise BackpackError("INVALID_CLIENT_REQUEST", "Invalid orderType: expected Limit or Market")
        for field in ("positionSide", "hedged", "triggerPrice", "quoteQuantity", "triggerQuantity",
                      "stopLossTriggerPrice", "takeProfitTriggerPrice"):
            if field in params:  # no hedge mode on Backpack; trigger/quote orders are not simulated
                raise BackpackError("INVALID_CLIENT_REQUEST", f"Unsupported field `{field}`")
        qty = wire.decimal_param(params, "quantity")
        price = wire.decimal_param(params, "price", required=order_type == "Limit")
        if order_type == "Market" and price is not None:
            raise BackpackError("INVALID_CLIENT_REQUEST", "Market orders take no price")
        tif = str(params.get("timeInForce", "GTC"))
        if tif not in ("GTC", "IOC", "FOK"):
            raise BackpackError("INVALID_CLIENT_REQUEST", "Invalid timeInForce: expected GTC, IOC or FOK")
        post_only = wire.bool_param(params, "postOnly")
        if post_only and order_type == "Market":
            raise BackpackError("INVALID_ORDER", "Post only is only valid for limit orders")
        return dict(symbol=sym, side="buy" if side == codec.BID else "sell", type=order_type.lower(), qty=qty,
                    price=price, client_id=wire.client_id_param(params),
                    time_in_force="PO" if post_only else tif, reduce_only=wire.bool_param(params, "reduceOnly"),
                    post_only_crossing="expire")

    async def order_cancel(self, acc: VenueAccount, params: dict) -> dict:
        sym = self._symbol(params)
        order_id, cid = wire.one_order_ref(params)
        trigger = self.trigger_of(acc, sym, order_id, cid)
        if trigger is not None:
            return self.trigger_cancel(acc, sym, trigger)
        if order_id is not None and not order_id.isdigit():
            raise BackpackError("RESOURCE_NOT_FOUND", "Order not found")
        return self._order(self.venue.cancel_order(acc, sym, None if order_id is None else int(order_id), cid))

    async def order_query(self, acc: VenueAccount, params: dict) -> dict:
        """One resting order: the real endpoint answers 404 once it is filled or cancelled."""
        sym = self._symbol(params)
        order_id, cid = wire.one_order_ref(params)
        for o in self.venue.open_orders(acc, sym):
            if (order_id is not None and str(o.order_id) == order_id) or (cid is not None and o.client_id == cid):
                return self._order(o)
        trigger = self.trigger_of(acc, sym, order_id, cid)
        if trigger is not None:
            return trigger_json(trigger, self.venue.markets[sym].rules)
        raise BackpackError("RESOURCE_NOT_FOUND", "Order not found")

    async def orders_open(self, acc: VenueAccount, params: dict) -> list:
        sym = self._symbol(params, False)
        return [self._order(o) for o in self.venue.open_orders(acc, sym)] + self.open_trigger_rows(acc, sym)

    async def orders_cancel_all(self, acc: VenueAccount, params: dict) -> list:
        sym = self._symbol(params)
        return [self._order(o) for o in self.venue.cancel_all(acc, sym)] + self.cancel_all_trigger_rows(acc, sym)

    # -- history --------------------------------------------------------------------------------
    async def history_orders(self, acc: VenueAccount, params: dict) -> list:
        rows = self.venue.all_orders(acc, self._symbol(params, False))
        if params.get("orderId") is not None:
            rows = [o for o in rows if str(o.order_id) == str(params["orderId"])]
        rows.sort(key=lambda o: o.order_id)
        return [codec.order_json(views.order_view(o, self.venue.markets[o.symbol].rules), history=True)
                for o in wire.page(rows, params)]

    async def history_fills(self, acc: VenueAccount, params: dict) -> list:
        start = wire.int_param(params, "from", None)
        end = wire.int_param(params, "to", None)
        rows = self.venue.fills(acc, self._symbol(params, False))
        fill_type = params.get("fillType")
        if fill_type == "User":  # the account's own orders only
            rows = [f for f in rows if not views.is_liquidation(f.client_id)]
        elif fill_type in ("Liquidation", "AllLiquidation", "BookLiquidation"):
            rows = [f for f in rows if views.is_liquidation(f.client_id)]
        elif fill_type is not None:
            rows = []  # no ADL, backstop or collateral conversion fills are simulated
        rows = [f for f in rows if (start is None or f.ts >= start) and (end is None or f.ts < end)
                and (params.get("orderId") is None or str(f.order_id) == str(params["orderId"]))]
        return [codec.fill_json(views.fill_view(f, self.venue.markets[f.symbol].rules))
                for f in wire.page(rows, params)]

    async def history_funding(self, acc: VenueAccount, params: dict) -> list:
        uid = views.user_id(acc.fingerprint)
        rows = wire.page(self.venue.income(acc, self._symbol(params, False)), params)
        return [codec.funding_json(self.venue.markets[i.symbol].rules.venue_id, i.rate, i.amount, i.ts, uid)
                for i in rows]


def _reject(e: VenueReject) -> web.Response:
    status, body = codec.reject_error(e.reason, e.message)
    return web.json_response(body, status=status)


def _order_type(params) -> Optional[str]:
    """"market" / "limit" of a placement (a batch: of its first order), for the kill fault."""
    first = params[0] if isinstance(params, list) and params else params
    value = first.get("orderType") if isinstance(first, dict) else None
    return str(value).lower() if value else None
