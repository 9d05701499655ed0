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
import logging
import time
from collections import deque
from dataclasses import replace
from decimal import Decimal
from typing import Any, Callable, Optional

from gridctl.config.model import AccountConfig
from gridctl.core.fills import CANCELLED, Fill, OrderUpdate, StreamState
from gridctl.core.market import MarketRules
from gridctl.core.orders import Intent, OrderRequest
from gridctl.exchange import ccxt_rest, ccxt_stops, ccxt_orders as co
from gridctl.exchange.base import (
    ExchangeError, ExchangeEvent, ExchangeOrder, InsufficientMargin, OrderMirror, PositionReport, RateLimited,
    Rejected, Temporary, UnknownOutcome,
)
from gridctl.exchange.ccxt_client import PreflightError, Timing, make_client, point  # noqa: F401 (the adapter's API)
from gridctl.exchange.ccxt_errors import classify
from gridctl.exchange.ccxt_events import StreamEvents
from gridctl.exchange.ccxt_streams import StreamKeeper, cancel_tasks, close_ws, isolated
from gridctl.exchange.venues import quirk

log = logging.getLogger(__name__)


class CcxtExchange(StreamEvents):
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
        self._connected_ms = 0  # trades before the connect are recovery's (fills_since), never "missed"
        self._funding_since = 0
        self._funding_seen: set[str] = set()
        self._funding_lock = asyncio.Lock()  # one read at a time: a payment is marked seen after an await
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
        self._trade_mark = self._funding_since = self._connected_ms = now
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

    def resume_funding_after(self, ts: int) -> None:
        """A restarted worker: read the funding paid since `ts` (while no process read it), not
        only what is paid from this connect on."""
        self._funding_since = min(self._funding_since, ts)

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
        await cancel_tasks(self._tasks)
        await close_ws(self.client)
        try:
            await self.client.close()
        except Exception:
            pass

    async def market_rules(self) -> MarketRules:
        return self.rules

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
        self._cancelled_now(client_id)

    def _cancelled_now(self, client_id: object) -> None:
        self.mirror.remove(client_id)
        if len(self._cancelled) > 10_000:
            self._cancelled.clear()
        self._cancelled.add(client_id)

    async def cancel_many(self, client_ids: list) -> dict[object, Optional[str]]:
        """Cancel own orders, in the venue's batches where it has them (Binance: 10 a request):
        {cid: None (cancelled), "order_not_found" (already gone) or another reason (still
        open: try again)}. A batch whose outcome is unknown is settled one cancel at a time."""
        batch = quirk(self.venue, "batch_cancel")
        size = batch[2] if batch else 1
        out: dict[object, Optional[str]] = {}
        for i in range(0, len(client_ids), size):
            chunk = client_ids[i:i + size]
            if len(chunk) == 1 or any(not self.mirror.owns(c) for c in chunk):
                for cid in chunk:
                    out[cid] = await self._cancel_reason(cid)
                continue
            try:
                answers = await ccxt_rest.cancel_batch_call(self, chunk)
            except UnknownOutcome:
                answers = {cid: await self._settle_cancel(cid) for cid in chunk}
            for cid, reason in answers.items():
                if reason is None:
                    self._cancelled_now(cid)
                elif reason == "order_not_found":
                    self.mirror.remove(cid)
            out.update(answers)
        return out

    async def _settle_cancel(self, cid: object) -> Optional[str]:
        """After a batch cancel with no answer: cancelled by it (None), or cancelled now."""
        order = await self.fetch_order(cid)
        if order is not None and order.status == "cancelled":
            self._cancelled_now(cid)
            return None
        return await self._cancel_reason(cid)

    async def _cancel_reason(self, cid: object) -> Optional[str]:
        try:
            await self.cancel(cid)
        except Rejected as exc:
            return exc.reason or str(exc)
        return None

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

    # -- the exchange-side safety stop (gridctl.exchange.ccxt_stops) --------------------------
    async def place_stop(self, cid: object, side, qty: int, trigger: int, position_side: Optional[str] = None):
        return await ccxt_stops.place_stop(self, cid, side, qty, trigger, position_side)

    async def cancel_stop(self, cid: object) -> None:
        await ccxt_stops.cancel_stop(self, cid)

    async def open_stops(self) -> list:
        return await ccxt_stops.open_stops(self)

    async def positions(self) -> list[PositionReport]:
        reports = await ccxt_rest.positions(self)
        self._net = sum(r.qty for r in reports)
        return reports

    async def orders_since(self, ts: int) -> list[ExchangeOrder]:
        """Own orders of the symbol on the venue's record from `ts` on, any status (recovery)."""
        return await ccxt_rest.orders_since(self, ts)

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
