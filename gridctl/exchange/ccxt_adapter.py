"""The Exchange protocol for any ccxt venue with swap markets, over ONE ccxt.pro instance.

REST and WebSocket go through the same `ccxt.pro.<id>` object (its class extended by
`ccxt_streams.tee_class`, so every raw message is seen before ccxt's caches collapse
it). What happens on `connect()`: markets, the pre-flight (position mode, margin mode,
leverage: set, or a clear configuration error), the first prices, then the streams
(subscribed before any REST snapshot of orders, fills or position, which the worker
takes in `recover`). Events come from the raw tee; fills are deduplicated by trade id
and reconciled against REST history on every `reconcile_orders()` (the worker's timer,
and at once after a reconnect). Errors are classified once by the venue's code
(`ccxt_errors.classify`); a placement whose outcome is unknown is confirmed by client id
through the stream, a REST lookup and, where the venue needs it, the order history
(`ccxt_rest`) before anything is re-sent.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import os
import re
import time
from collections import deque
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal
from typing import Any, Callable, Optional

from gridctl.config.model import AccountConfig
from gridctl.core import clientid
from gridctl.core.fills import CANCELLED, Fill, OrderUpdate, PriceUpdate, StreamState
from gridctl.core.market import MarketRules
from gridctl.core.orders import Intent, OrderRequest
from gridctl.exchange import ccxt_rest, ccxt_orders as co
from gridctl.exchange.base import (
    ExchangeError, ExchangeEvent, ExchangeOrder, InsufficientMargin, OrderMirror, PositionReport, RateLimited, Rejected, Temporary,
    UnknownOutcome,
)
from gridctl.exchange.ccxt_errors import classify
from gridctl.exchange.ccxt_streams import StreamKeeper, StreamTiming, close_ws, isolated, tee_class
from gridctl.exchange.venues import quirk

log = logging.getLogger(__name__)
TIMING_ENV = "GRIDCTL_CCXT_TIMING"  # JSON overrides of Timing (tests make reconnects fast)


class PreflightError(ExchangeError):
    """The account is set up in a way the venue will not change for us: a configuration error."""

    reason = "configuration"


@dataclass(frozen=True)
class Timing:
    """Every interval of the adapter, in seconds (see StreamTiming for reconnects)."""

    streams: StreamTiming = field(default_factory=StreamTiming)
    heartbeat_s: float = 1.0  # events() returns empty after this, so the worker syncs in quiet markets
    margin_every_s: float = 30.0
    funding_every_s: float = 600.0  # and a few seconds after each funding time the stream announces
    listen_key_every_s: float = 1800.0  # Binance: PUT /fapi/v1/listenKey (ccxt's own fires once)
    confirm_stream_s: float = 2.0  # unknown outcome: wait this long for the stream to mention the order
    confirm_tries: int = 3
    confirm_retry_s: float = 1.0
    rest_timeout_ms: int = 10_000
    ws_keepalive_ms: Optional[int] = None  # ccxt's ping interval (None: its default)
    read_retries: int = 3  # temporary errors on reads: retried with back-off 0.5, 1, 2 s
    stale_s: float = 30.0  # no stream message for this long: a zombie socket, re-dialled

    @classmethod
    def from_env(cls, environ: Optional[dict] = None) -> "Timing":
        """Timing with the overrides of GRIDCTL_CCXT_TIMING, e.g. {"reconnect_delays": [0.2, 0.2, 0.2]}."""
        raw = (environ if environ is not None else os.environ).get(TIMING_ENV)
        if not raw:
            return cls()
        data = json.loads(raw)
        stream_keys = {f.name for f in fields(StreamTiming)}
        streams = StreamTiming(**{k: (tuple(v) if k == "reconnect_delays" else v)
                                  for k, v in data.items() if k in stream_keys})
        return cls(streams=streams, **{k: v for k, v in data.items() if k not in stream_keys})


def point(client: Any, endpoint: str) -> None:
    """Send every REST url of a ccxt instance to `endpoint` (scheme+host replaced, path kept)
    and every WebSocket url to the same host as ws:// (the local venue's URL rule)."""
    base = endpoint.rstrip("/")
    m = re.match(r"^(https?)://([^/]+)", base)
    if not m:
        raise ValueError(f"endpoint must be http(s)://HOST[:PORT], got {endpoint!r}")
    ws_base = ("wss" if m.group(1) == "https" else "ws") + "://" + m.group(2)
    http_base = f"{m.group(1)}://{m.group(2)}"

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, str):
            node = re.sub(r"^https?://[^/]+", http_base, node)
            return re.sub(r"^wss?://[^/]+", ws_base, node)
        return node

    client.urls["api"] = walk(client.urls["api"])


def make_client(account: AccountConfig, timing: Timing) -> Any:
    """One ccxt.pro instance for the account (keys, sandbox, endpoint, quiet options)."""
    venue = account.exchange
    cfg: dict[str, Any] = {"enableRateLimit": True, "timeout": timing.rest_timeout_ms,
                           "options": copy.deepcopy(quirk(venue, "options"))}
    for key, name in (("api_key", "apiKey"), ("secret", "secret"), ("password", "password")):
        value = getattr(account, key)
        if value:
            cfg[name] = value.reveal()
    if timing.ws_keepalive_ms:
        cfg["streaming"] = {"keepAlive": timing.ws_keepalive_ms, "maxPingPongMisses": 2}
    client = tee_class(venue)(cfg)
    if not quirk(venue, "fetch_currencies"):
        client.has["fetchCurrencies"] = False
    if getattr(account, "sandbox", False):
        client.set_sandbox_mode(True)
    if getattr(account, "endpoint", None):
        point(client, account.endpoint)
    return client


class CcxtExchange:
    """One strategy's view of a ccxt venue (see the module doc)."""

    def __init__(self, account: AccountConfig, symbol: str, rules: Optional[MarketRules] = None, *,
                 leverage: int = 1, owns: Callable[[object], bool] = lambda cid: True,
                 max_slippage_pct: Decimal = co.DEFAULT_MAX_SLIPPAGE_PCT, timing: Optional[Timing] = None,
                 client: Any = None, clock: Callable[[], float] = time.time):
        self.account, self.venue = account, account.exchange
        self.symbol = rules.symbol if rules is not None else symbol
        self.bundled = rules
        self.rules: MarketRules = rules  # type: ignore[assignment]  (the venue's own after connect)
        self.leverage, self.hedge = leverage, account.position_mode == "hedge"
        self.max_slippage_pct = Decimal(max_slippage_pct)
        self.timing = timing or Timing()
        self.clock = clock
        self.mirror = OrderMirror(owns)
        self.client = client if client is not None else make_client(account, self.timing)
        self.client.raw_sink = self._on_raw
        self.market: dict = {}
        self._queue: deque[ExchangeEvent] = deque()
        self._wake = asyncio.Event()
        self._fills_seen: set[str] = set()
        self._orders_seen: dict[object, dict] = {}  # client id -> its latest state on the stream
        self._waiters: dict[object, asyncio.Event] = {}
        self._oid_cid: dict[str, object] = {}
        self._bounded: set[object] = set()  # opening orders sent as IOC limits at the slippage bound
        self._cancelled: set[object] = set()  # cancelled on our request: the worker knows, the stream need not say
        self._last: Optional[int] = None
        self._mark: Optional[int] = None
        self._margin_ratio: Optional[Decimal] = None
        self._net = 0
        self._trade_mark = 0  # trades at or after this (ms) are compared with REST history
        self._funding_since = 0
        self._funding_seen: set[str] = set()
        self._next_funding: Optional[int] = None  # the venue's next funding time (ms)
        self._funding_now = False  # the stream said funding was settled
        self._funding_rate: Optional[Decimal] = None  # the last rate the mark stream published
        self._rate_limits: deque[float] = deque()
        self.safe_mode: Optional[str] = None
        self.keeper: Optional[StreamKeeper] = None
        self._tasks: list[asyncio.Task] = []
        self._lock = asyncio.Lock()
        self._last_raw = 0.0

    # -- life cycle ----------------------------------------------------------------------
    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def connect(self) -> None:
        """Markets, pre-flight, first prices, then the streams (see the module doc)."""
        c = self.client
        await self._read(c.load_markets, False, quirk(self.venue, "load_markets_params"))
        try:
            self.market = c.market(self.symbol)
        except Exception:
            raise PreflightError(f"{self.venue} does not list {self.symbol}") from None
        self.symbol = self.market["symbol"]
        self.rules = ccxt_rest.live_rules(c, self.market, self.bundled)
        await ccxt_rest.setup_account(self)
        now = self.now_ms()
        self._trade_mark = self._funding_since = now
        ticker = await self._read(c.fetch_ticker, self.symbol)
        self._last = co.to_ticks(self.rules, ticker.get("last") or ticker.get("close"))
        if self._last is None:
            raise Temporary(f"{self.venue}: no last price for {self.symbol}")
        self._mark = self._last
        self.keeper = StreamKeeper(c, self._watches(), quirk(self.venue, "ws_clients"), self.timing.streams,
                                   self._stream_state, self._after_reconnect, self._enter_safe_mode)
        try:
            await self.keeper.subscribe()
        except Exception as exc:
            raise _read_error(exc, self.venue, c) from None
        self._push(StreamState(now, "connected"))
        self._last_raw = self.clock()
        self._tasks = [asyncio.create_task(t) for t in (self.keeper.run(), self._margin_loop(), self._funding_loop(),
                                                        self._watchdog())]
        if quirk(self.venue, "listen_key"):
            self._tasks.append(asyncio.create_task(self._listen_key_loop()))

    async def preflight(self, required_margin: Decimal) -> None:
        """Before the first order of a new grid: the free balance covers the plan's margin."""
        free = await ccxt_rest.free_balance(self)
        if free is not None and free < required_margin:
            raise PreflightError(f"the {self.venue} account has {free} {self.rules.quote} available; the grid needs "
                                 f"{required_margin} {self.rules.quote} of margin (lower the investment or leverage, "
                                 f"or add funds)")

    async def close(self) -> None:
        if self.keeper is not None:
            await self.keeper.close()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except BaseException:
                pass
        await close_ws(self.client)
        try:
            await self.client.close()
        except Exception:
            pass

    async def market_rules(self) -> MarketRules:
        return self.rules

    # -- streams -------------------------------------------------------------------------
    def _watches(self) -> list:
        c, s = self.client, self.symbol
        out = [lambda: c.watch_orders(s), lambda: c.watch_ticker(s)]
        if self.venue == "binanceusdm":
            out.append(lambda: c.watch_mark_price(s))
        elif self.venue == "backpack":
            mid = self.market["id"]
            out.append(lambda: c.watch_public([f"markPrice.{mid}"], [f"markPrice:{mid}"]))
        return out

    def _on_raw(self, url: str, message: Any) -> None:
        """Every raw WebSocket message, before ccxt parses it."""
        self._last_raw = self.clock()
        if not isinstance(message, dict):
            return
        data = message.get("data") if isinstance(message.get("data"), dict) and "stream" in message else message
        e = data.get("e")
        mid = self.market.get("id")
        if self.venue == "binanceusdm":
            if e == "ORDER_TRADE_UPDATE" and (data.get("o") or {}).get("s") == mid:
                self._order_event(*co.binance_order_event(self.rules, data))
            elif e in ("24hrMiniTicker", "24hrTicker") and data.get("s") == mid:
                self._price(int(data.get("E") or self.now_ms()), last=data.get("c"))
            elif e == "markPriceUpdate" and data.get("s") == mid:
                self._next_funding = int(data["T"]) if data.get("T") else self._next_funding
                self._funding_rate = co.dec(data.get("r")) if data.get("r") is not None else self._funding_rate
                self._price(int(data.get("E") or self.now_ms()), mark=data.get("p"))
            elif e == "listenKeyExpired":
                self.renew_listen_key("the venue expired the listen key")
            elif e == "ACCOUNT_UPDATE" and (data.get("a") or {}).get("m") == "FUNDING_FEE":
                self._funding_now = True  # settled: fetch the income now
        elif self.venue == "backpack":
            if data.get("s") != mid:
                return
            if e in ("orderAccepted", "orderUpdate", "orderFill", "orderCancelled", "orderExpired", "triggerFailed"):
                self._order_event(*co.backpack_order_event(self.rules, data))
            elif e == "ticker":
                self._price(int(data.get("E") or 0) // 1000 or self.now_ms(), last=data.get("c"))
            elif e == "markPrice":
                nxt = data.get("n")
                self._next_funding = int(nxt) // (1000 if int(nxt) > 10**14 else 1) if nxt else self._next_funding
                self._funding_rate = co.dec(data.get("f")) if data.get("f") is not None else self._funding_rate
                self._price(int(data.get("E") or 0) // 1000 or self.now_ms(), mark=data.get("p"))

    def _order_event(self, fill: Optional[Fill], update: Optional[OrderUpdate], state: dict) -> None:
        cid = state.get("cid")
        if cid is not None:
            self._orders_seen[cid] = state
            if state.get("order_id"):
                self._oid_cid[state["order_id"]] = cid
            waiter = self._waiters.get(cid)
            if waiter is not None:
                waiter.set()
        if fill is not None:
            self._push(fill)
        if update is not None:
            self._push(update)

    def _price(self, ts: int, last: Any = None, mark: Any = None) -> None:
        if last is not None:
            self._last = co.to_ticks(self.rules, last) or self._last
        if mark is not None:
            self._mark = co.to_ticks(self.rules, mark) or self._mark
        if self._last is not None:
            self._push(PriceUpdate(ts, self._last, self._mark or self._last, self._margin_ratio))

    def _push(self, ev: ExchangeEvent) -> None:
        self._queue.append(ev)
        self._wake.set()

    def _stream_state(self, state: str, detail: str) -> None:
        if state == "restored" and self.safe_mode:
            log.warning("left safe mode: the stream is back")
            self.safe_mode = None
        self._push(StreamState(self.now_ms(), state, detail))

    async def _after_reconnect(self) -> None:
        """The worker reconciles at once on the "restored" state (missed fills, open orders)."""

    async def _enter_safe_mode(self, reason: str) -> None:
        """Cancel the strategy's entries, keep its exits; nothing new is opened until the stream is back."""
        self.safe_mode = reason
        log.warning("safe mode: %s; cancelling entries, keeping exits", reason)
        fmt = quirk(self.venue, "client_id")
        for o in self.mirror.orders():
            d = clientid.decode(fmt, o.client_id)
            if d is None or d.intent is not Intent.ENTRY:
                continue
            try:
                await ccxt_rest.cancel_call(self, o.client_id)
            except Exception as exc:
                log.warning("safe mode: cancel of %s failed: %s", o.client_id, exc)
                continue
            self._push(OrderUpdate(self.now_ms(), o.client_id, o.order_id, CANCELLED, o.filled, "safe mode"))

    def renew_listen_key(self, why: str) -> None:
        """Binance: forget the listen key and re-dial, so the next private watch POSTs a new one."""
        for key in ("linear", "future"):
            opts = self.client.options.get(key)
            if isinstance(opts, dict):
                opts["listenKey"], opts["lastAuthenticatedTime"] = None, 0
        if self.keeper is not None:
            self.keeper.reconnect_now(why)

    async def _listen_key_loop(self) -> None:
        while True:
            await asyncio.sleep(self.timing.listen_key_every_s)
            try:
                await isolated(self.client.fapiPrivatePutListenKey)
            except Exception as exc:  # a refused keep-alive is not an authentication failure
                log.warning("listen key keep-alive refused (%s): renewing the key", str(exc)[:200])
                self.renew_listen_key("listen key keep-alive refused")

    async def _watchdog(self) -> None:
        """A socket that stays open but carries nothing (it may still answer pings) is re-dialled:
        the market streams tick every second, so silence means a dead stream."""
        while True:
            await asyncio.sleep(min(1.0, self.timing.stale_s / 3))
            keeper = self.keeper
            if keeper is None or keeper.reconnecting:
                self._last_raw = self.clock()
                continue
            if self.clock() - self._last_raw > self.timing.stale_s:
                self._last_raw = self.clock()
                keeper.reconnect_now(f"no stream data for {self.timing.stale_s:g} s")

    async def _margin_loop(self) -> None:
        while True:
            try:
                self._margin_ratio = await ccxt_rest.margin_ratio(self)
            except Exception as exc:
                log.info("margin ratio not read: %s", str(exc)[:200])
            await asyncio.sleep(self.timing.margin_every_s * self.poll_factor)

    async def _funding_loop(self) -> None:
        last = 0.0
        while True:
            await asyncio.sleep(1.0)
            due = self._funding_now or (self._next_funding is not None and self.now_ms() >= self._next_funding + 3000)
            if not due and self.clock() - last < self.timing.funding_every_s * self.poll_factor:
                continue
            last = self.clock()
            if due:
                self._next_funding, self._funding_now = None, False
            try:
                for p in await ccxt_rest.funding_payments(self):
                    self._push(p)
            except Exception as exc:
                log.info("funding history not read: %s", str(exc)[:200])

    # -- events ----------------------------------------------------------------------------
    async def events(self) -> list[ExchangeEvent]:
        """The next batch (waiting up to the heartbeat; an empty batch lets the worker sync)."""
        if not self._queue:
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.timing.heartbeat_s)
            except asyncio.TimeoutError:
                pass
        out = []
        while self._queue:
            out.append(self._queue.popleft())
        return self._hand_out(out)

    def _hand_out(self, events: list) -> list[ExchangeEvent]:
        """Deduplicate fills by trade id, explain bounded openings, keep the mirror in step."""
        out: list[ExchangeEvent] = []
        for ev in events:
            if isinstance(ev, Fill):
                if ev.trade_id and ev.trade_id in self._fills_seen:
                    continue
                if ev.trade_id:
                    self._fills_seen.add(ev.trade_id)
                self._net += ev.qty if ev.side.value == "buy" else -ev.qty
            elif isinstance(ev, OrderUpdate) and ev.status == CANCELLED and ev.client_id in self._cancelled:
                self._cancelled.discard(ev.client_id)  # the worker booked this cancel when it asked for it
                continue
            elif isinstance(ev, OrderUpdate) and ev.client_id in self._bounded and ev.status != "filled":
                self._bounded.discard(ev.client_id)
                ev = replace(ev, reason=f"the rest was not filled within the {self.max_slippage_pct}% slippage "
                                        f"bound; not chased")
                log.warning("opening order %s: %s", ev.client_id, ev.reason)
            self.mirror.apply(ev)
            out.append(ev)
        return out

    def pending(self) -> bool:
        return any(isinstance(ev, (Fill, OrderUpdate)) for ev in self._queue)

    # -- requests --------------------------------------------------------------------------
    async def place(self, request: OrderRequest) -> ExchangeOrder:
        """Send one order; UnknownOutcome when the venue may have it (confirm by client id)."""
        r = request
        if self.safe_mode and r.intent is Intent.ENTRY:
            raise Rejected(f"safe mode ({self.safe_mode}): no new entries", "safe_mode")
        call = co.order_call(self.venue, self.rules, r, hedge=self.hedge, market=self._last,
                             max_slippage_pct=self.max_slippage_pct)
        if call.bounded:
            self._bounded.add(r.client_id)
        try:
            o = await isolated(self.client.create_order, call.symbol, call.type, call.side, call.amount,
                               call.price, call.params)
        except Exception as exc:
            raise await self._write_error(exc) from None
        if not o or not o.get("id"):
            raise UnknownOutcome(f"{self.venue}: the venue answered the order without an id (empty response)")
        why = co.rejection_reason(o)
        if why is not None:
            reason = _expiry_reason(why)
            cls = InsufficientMargin if reason == "insufficient_margin" else Rejected
            raise cls(f"{self.venue}: order expired at once ({why})", reason)
        got = co.exchange_order(self.venue, self.rules, o)
        order = ExchangeOrder(r.client_id, got.order_id, r.side, got.price if r.price is not None else None,
                              r.qty, 0, r.reduce_only, got.status, r.position_side)
        self._oid_cid[order.order_id] = r.client_id
        self.mirror.put(order)
        return order

    async def cancel(self, client_id: object) -> None:
        """Cancel one own order. Already gone: Rejected("order_not_found"). An unknown outcome
        is confirmed here (and the cancel sent once more while the order is still open)."""
        if not self.mirror.owns(client_id):
            raise Rejected(f"{client_id!r} is not this strategy's order", "not_own_order")
        try:
            await ccxt_rest.cancel_call(self, client_id)
        except UnknownOutcome as exc:
            order = await self.fetch_order(client_id)
            if order is not None and order.status == "open":
                try:
                    await ccxt_rest.cancel_call(self, client_id)
                except ExchangeError as again:
                    raise Temporary(f"cancel of {client_id} not confirmed after {exc}: {again}") from None
        except Rejected as exc:
            if exc.reason == "order_not_found":
                self.mirror.remove(client_id)
            raise
        self.mirror.remove(client_id)
        if len(self._cancelled) > 10_000:
            self._cancelled.clear()
        self._cancelled.add(client_id)

    async def fetch_order(self, client_id: object) -> Optional[ExchangeOrder]:
        """The order with this client id in any status, or None when stream, REST lookup and
        (where the venue needs it) the order history all say it never arrived."""
        return await ccxt_rest.confirm_order(self, client_id)

    async def reconcile_orders(self) -> list[ExchangeEvent]:
        """Queued events, then fills REST history has that the stream missed, then the mirror
        confirmed against the venue's open orders."""
        async with self._lock:
            queued = []
            while self._queue:
                queued.append(self._queue.popleft())
            out = self._hand_out(queued)
            out += self._hand_out(await ccxt_rest.missed_fills(self))
            orders = await self._read(self.client.fetch_open_orders, self.symbol)
            venue = [replace(eo, client_id=eo.client_id if eo.client_id is not None else "")
                     for eo in (co.exchange_order(self.venue, self.rules, o) for o in orders)]
            for eo in venue:
                self._oid_cid[eo.order_id] = eo.client_id
            out += self.mirror.confirm(venue, self.now_ms())
            return out

    async def positions(self) -> list[PositionReport]:
        reports = await ccxt_rest.positions(self)
        self._net = sum(r.qty for r in reports)
        return reports

    async def fills_since(self, ts: int) -> list[Fill]:
        fills = await ccxt_rest.trades_since(self, ts)
        self._fills_seen.update(f.trade_id for f in fills if f.trade_id)
        return fills

    def price(self) -> int:
        assert self._last is not None, "connect() first"
        return self._last

    def mark(self) -> int:
        return self._mark or self.price()

    # -- errors ------------------------------------------------------------------------------
    @property
    def poll_factor(self) -> int:
        """Background polling slows down (x4) after more than 3 rate limits within 10 minutes."""
        cutoff = self.clock() - 600
        while self._rate_limits and self._rate_limits[0] < cutoff:
            self._rate_limits.popleft()
        return 4 if len(self._rate_limits) > 3 else 1

    def _noted(self, err: BaseException) -> BaseException:
        if isinstance(err, RateLimited):
            self._rate_limits.append(self.clock())
        return err

    async def _write_error(self, exc: BaseException) -> BaseException:
        err = self._noted(classify(exc, venue=self.venue, client=self.client, writes=True))
        if getattr(err, "venue_code", None) in (-4116, 110072, 51016):  # duplicate client id: it exists
            return UnknownOutcome(f"{self.venue}: duplicate client order id: {err}")
        if isinstance(err, Temporary) and err.reason == "timestamp":
            await self._resync_clock()
        return err

    async def _resync_clock(self) -> None:
        try:
            await isolated(self.client.load_time_difference)
        except Exception as exc:
            log.info("clock difference not read: %s", exc)

    async def _read(self, fn: Callable, *args: Any) -> Any:
        """A read, retried with back-off on temporary errors; classified when it gives up."""
        delay = 0.5
        for attempt in range(self.timing.read_retries + 1):
            try:
                return await isolated(fn, *args)
            except Exception as exc:
                err = self._noted(_read_error(exc, self.venue, self.client))
                if type(err) is not Temporary or attempt == self.timing.read_retries:
                    raise err from None
                if err.reason == "timestamp":
                    await self._resync_clock()
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")


def _read_error(exc: BaseException, venue: str, client: Any) -> BaseException:
    err = classify(exc, venue=venue, client=client)
    return err if isinstance(err, ExchangeError) else Temporary(f"{venue}: {type(exc).__name__}: {exc}")


def _expiry_reason(why: str) -> str:
    return {"PostOnlyTaker": "post_only", "ReduceOnlyNotReduced": "reduce_only",
            "InsufficientMargin": "insufficient_margin"}.get(why, why)
