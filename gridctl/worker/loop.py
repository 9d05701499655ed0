"""The worker's engine loop: exchange events → driver → typed requests → exchange.

Startup and crash recovery are one path (`recover`): the engine has been rebuilt
from the stored fills; fills the store missed are applied once (deduplicated by
the venue's trade id), the exchange's open orders confirm the mirror and are
adopted by client id, and the exchange's position is compared with the ledger: a
position a previous run kept is adopted by a new grid, a difference nobody can
explain is shown, never silently overwritten. The next sync cancels orphans and
places what is missing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from decimal import Decimal
from typing import Callable, Optional

from gridctl.core.driver import Driver
from gridctl.core.engine import PAUSED, RUNNING, STOPPED, STOPPING, WAITING, GridEngine
from gridctl.core.fills import FILLED, Fill, FundingPayment, OrderUpdate, PriceUpdate, StreamState
from gridctl.core.orders import Cancel, Intent, OpenOrder, OrderRequest
from gridctl.exchange.base import (
    AuthError, ExchangeError, InsufficientMargin, RateLimited, Rejected, Temporary, UnknownOutcome,
)
from gridctl.process.exits import EX_AUTH
from gridctl.worker.account_check import AccountCheck
from gridctl.worker.handler import ControlHandler
from gridctl.worker.order_rows import StoredOrders
from gridctl.worker.order_rows import settle as settle_order_rows
from gridctl.worker.position_watch import PositionWatch
from gridctl.worker.recorder import Recorder

log = logging.getLogger(__name__)
EQUITY_EVERY_S = float(os.environ.get("GRIDCTL_EQUITY_EVERY_S", "60"))  # the soak asks for fresher level rows
RECONCILE_EVERY_S = 60  # open orders and position confirmed against the venue
RECONCILE_RETRY_S = 5  # a reconcile the venue did not answer is tried again this soon, not a timer later
# the trade history read is trusted up to this long before it was asked for (clock skew, a venue's
# history lagging its stream): a restart reads again from there ("fills checked", see recover)
FILLS_CHECK_MARGIN_MS = 60_000
FINAL_FILLS_WAIT_S = 5.0  # a stop waits this long for the fills of orders answered as filled
RATE_LIMIT_COOLDOWN_S = 30  # every request waits this long after the venue said "too many"
MAX_ROUNDS = 8  # reconcile rounds at one price (mirrors the backtest)


class WorkerLoop(ControlHandler, PositionWatch):
    """One strategy's live loop; also the handler the worker's control socket calls
    (gridctl.worker.handler)."""

    def __init__(self, name: str, engine: GridEngine, exchange, recorder: Recorder, balance: Decimal,
                 clock: Callable[[], float] = time.time, reject_cooldown_ms: Optional[int] = None):
        self.name, self.e, self.ex, self.rec = name, engine, exchange, recorder
        self.d = Driver(engine) if reject_cooldown_ms is None else Driver(engine, reject_cooldown_ms)
        self.balance = balance
        self.clock = clock
        self.placed: dict[object, list[int]] = {}  # client id -> [qty, filled] of orders this process tracks
        # orders cancelled by this process whose fills may still arrive (a cancel racing a fill)
        self.cancelled: dict[object, list[int]] = {}
        self._stopped_at: Optional[float] = None  # when the engine stopped with fills still to come
        self.global_cooldown = 0.0
        self.last_equity = 0.0
        self.last_reconcile = 0.0
        # the venue's net position less the ledger's, once confirmed (steps); our own fills move
        # both, so it stands between the checks while the grid trades on
        self.position_difference = 0
        self.position_due = False  # the timer's position check, waiting for the fills read to be booked
        self.last_fill_ts = 0  # the newest fill booked (venue time)
        self.done = asyncio.Event()
        self._sync_lock = asyncio.Lock()
        self.started = clock()
        self.last_error: Optional[str] = None
        self.config_applied_ts: Optional[int] = None  # when the running settings were applied (start or reload)
        self.beat: Callable[[], None] = lambda: None  # touches the heartbeat file the supervisor watches
        self.accounts: Optional[AccountCheck] = None  # siblings on the account's legs (worker.account_check)
        self.reconcile_every_s: float = RECONCILE_EVERY_S
        self.safety = None  # gridctl.worker.safety_stop.SafetyStop with risk.exchange_stop
        # stores a stop that has begun (reason, keep) at once: a process killed mid-stop is
        # followed by one that finishes it (gridctl.worker.main)
        self.stop_started: Callable[[str, bool], None] = lambda reason, keep: None
        self._stop_marked: Optional[tuple] = None

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # -- recovery ----------------------------------------------------------------
    async def recover(self, last_fill_ts: int, fresh: bool, stored: Optional[StoredOrders] = None,
                      grid_started_ts: int = 0, checked_ts: Optional[int] = None) -> Optional[dict]:
        """Adopt the exchange's state (see module doc); `stored`, the grid's order rows, are
        then settled against the venue's orders (gridctl.worker.order_rows). Returns the
        adoption to store with the grid, when a new grid took over a kept position.

        The venue's trades are read from `checked_ts` (the stored "fills checked" time: every
        trade before it is booked), else from the newest stored fill, `last_fill_ts`. The newest
        stored fill alone is not enough: a fill the stream missed is booked at the next
        reconcile, after newer fills the stream did bring, so a process killed in between (or
        whose rows of it were lost in a database outage) leaves a gap before its newest fill."""
        ts = self.now_ms()
        self.last_fill_ts = last_fill_ts
        since = last_fill_ts if checked_ts is None else checked_ts
        missed = [f for f in await self.ex.fills_since(since) if not self.d.seen(f)]
        for f in missed:
            self.apply_fill(f)
            d = self.e.decode(f.client_id)
            if d is not None:  # its order's row may be lost: its id is never sent again
                self.e.continue_generations(d.level, d.gen)
        for ev in await self.ex.reconcile_orders():
            self.apply(ev)
        written = self._store_filled_orders(ts, missed)
        if stored is not None:
            stored.rows.update({str(c): {"status": "filled", "filled": None, "created_ts": None, "from_fills": True}
                                for c in written})
            summary = await settle_order_rows(ts, stored, self.ex, self.e, self.rec, grid_started_ts)
            if summary:
                self.rec.event(ts, "warn" if summary.startswith("order rows not checked") else "info", summary)
        adopted_orders = 0
        for o in self.ex.mirror.orders():
            d = self.e.decode(o.client_id)
            if d is None:
                continue
            self.e.continue_generations(d.level, d.gen)  # never reuse an id already on the book
            if o.client_id not in self.placed:
                self.placed[o.client_id] = [o.qty, o.filled]
                adopted_orders += 1
                if o.price is not None:
                    self.rec.order_adopted(ts, o, d.level, d.intent.value)
        if not fresh and self.e.status == WAITING and (missed or self.ex.mirror.orders() or self.e.ledger.fills):
            self.e.status = RUNNING  # the trigger was crossed before the restart
        adoption = await self._check_position(ts, fresh)
        self._fills_checked(ts)
        self.rec.event(ts, "status", f"recovered: {adopted_orders} open orders adopted, {len(missed)} missed "
                       f"fills applied, position {self.e.rules.qty(self.e.ledger.position)}")
        return adoption

    def _fills_checked(self, read_ts: int) -> None:
        """Every venue trade up to the read begun at `read_ts` is booked (the recovery's read,
        or a reconcile's, which covers the whole time since the connect or the last one): a
        restart need not read before it. Stored with the strategy after the fill rows, so the
        database never has the mark without the fills before it."""
        self.rec.strategy(self.now_ms(), fills_checked_ts=read_ts - FILLS_CHECK_MARGIN_MS)

    def _store_filled_orders(self, ts: int, missed: list[Fill]) -> set:
        """An order of the previous process that filled while nobody recorded it: its row
        (which may never have been written) is stored as filled, with what its fills say.
        Returns their client ids."""
        done: dict[object, list[Fill]] = {}
        for f in missed:
            if f.kind == "own" and self.ex.mirror.get(f.client_id) is None and self.e.is_ours(f.client_id):
                done.setdefault(f.client_id, []).append(f)
        for cid, fills in done.items():
            d = self.e.decode(cid)
            assert d is not None
            level = d.level if d.intent is not Intent.CLOSE else None
            self.rec.order_filled(ts, fills, level, d.intent.value)
            self.placed.pop(cid, None)
        return set(done)

    # -- events ------------------------------------------------------------------
    def apply_fill(self, f: Fill) -> None:
        booked = self.d.on_fill(f)
        if booked is None:
            return
        self.last_fill_ts = max(self.last_fill_ts, f.ts)
        if not booked.ours:  # reported for the account-level reconcile, never booked here
            self.rec.event(f.ts, "info", f"fill of another order on the account: {f.side.value} "
                           f"{self.e.rules.qty(f.qty)} @ {self.e.rules.price(f.price)} ({f.client_id})")
            return
        self._track_fill(f)
        if self.accounts is not None:
            self.accounts.publish(f.ts)  # siblings sum it against the venue's leg
        self.rec.engine_events(f.ts, booked.events)
        if self.safety is not None:  # the position changed; the venue's stop may have fired
            self.rec.engine_events(f.ts, self.safety.on_fill(f))
        self.rec.fill(f, booked.level, booked.intent, booked.realized)
        for t in booked.trades:
            self.rec.trade(t)

    def _track_fill(self, f: Fill) -> None:
        """Mark the order filled in the store once its whole quantity has executed."""
        entry = self.placed.get(f.client_id)
        if entry is None:
            late = self.cancelled.get(f.client_id)
            if late is not None:  # the venue filled it before our cancel reached it: the row says so
                late[1] += f.qty
                done = late[1] >= late[0]
                self.rec.order_status(f.ts, f.client_id, "filled" if done else "cancelled", filled=late[1])
                if done:
                    del self.cancelled[f.client_id]
            return
        entry[1] += f.qty
        done = entry[1] >= entry[0]
        self.rec.order_status(f.ts, f.client_id, "filled" if done else "open", filled=entry[1])
        if done:
            del self.placed[f.client_id]

    def apply(self, ev) -> None:
        if isinstance(ev, Fill):
            self.apply_fill(ev)
        elif isinstance(ev, PriceUpdate):
            self.rec.engine_events(ev.ts, self.d.on_price(ev))
        elif isinstance(ev, OrderUpdate):
            self.rec.engine_events(ev.ts, self.d.on_order_update(ev))
            if ev.status in ("cancelled", "expired", "rejected") and ev.client_id in self.placed:
                # remembered like an own cancel: a reconcile reports an order it no longer sees as
                # cancelled before its fills are known, and a fill that comes later marks it filled
                self._remember_cancelled(ev.client_id, self.placed.pop(ev.client_id))
                self.rec.order_status(ev.ts, ev.client_id, ev.status, ev.reason or None)
        elif isinstance(ev, FundingPayment):
            self.rec.engine_events(ev.ts, self.d.on_funding(ev))
            self.rec.funding(self.d.last_funding or ev)  # this strategy's share (gridctl.core.virtual)
        elif isinstance(ev, StreamState):
            self.rec.event(ev.ts, "warn" if ev.state == "lost" else "info", f"exchange stream {ev.state}"
                           + (f": {ev.detail}" if ev.detail else ""))
            if ev.state == "restored":
                self.last_reconcile = 0.0  # confirm the open orders (and missed fills) at once
                self.e.version += 1  # and let the driver look again at what it wants
                if self.last_error and self.last_error.startswith("safe mode"):
                    self._error(ev.ts, "")
            elif ev.state == "safe_mode":
                self._error(ev.ts, f"safe mode: {ev.detail}; entries cancelled, exits kept")

    # -- sync --------------------------------------------------------------------
    def _open_orders(self) -> list[OpenOrder]:
        return self.d.own_orders(self.ex.mirror.orders())

    async def sync(self) -> None:
        """Execute what the driver wants until it wants nothing more (or fills wait to be read).
        One at a time: a control command (reload, emergency close) syncs beside the loop, and two
        syncs at once would both act on orders whose cancel is still on the way."""
        async with self._sync_lock:
            await self._sync()

    async def _sync(self) -> None:
        if self.e.status == STOPPING and self._stop_marked != (self.e.stop_reason, self.e.keep_position):
            self._stop_marked = (self.e.stop_reason, self.e.keep_position)  # before its first cancel
            self.stop_started(self.e.stop_reason or "user", self.e.keep_position)
        for _ in range(MAX_ROUNDS):
            ts = self.now_ms()
            if self.clock() < self.global_cooldown and self.e.status != STOPPING:
                break
            actions, events = self.d.actions(ts, self.ex.price(), self.ex.mirror.version, self._open_orders)
            self.rec.engine_events(ts, events)
            if not actions:
                break
            try:
                margin_short = False
                ordered = _exits_first(actions)
                await self._cancel_orders(ts, [a.order for a in ordered if isinstance(a, Cancel)])
                for a in ordered:
                    self.beat()  # each order sent is progress: placing a large grid is not a hang
                    if isinstance(a, Cancel):
                        continue
                    elif a.request.intent is Intent.ENTRY and (margin_short or getattr(self.ex, "safe_mode", None)):
                        self._hold_entry(ts, a.request, "insufficient_margin" if margin_short else "safe_mode")
                    else:
                        margin_short = await self._submit(ts, a.request) or margin_short
            except RateLimited as exc:
                wait = max(RATE_LIMIT_COOLDOWN_S, getattr(exc, "retry_after", None) or 0)
                self._error(ts, f"rate limited: {exc}; pausing requests {wait:g}s (exits first when resumed)")
                self.global_cooldown = self.clock() + wait
                break
            except Temporary as exc:
                self._error(ts, f"temporary exchange error: {exc}")
                break
            if self.ex.pending():
                break  # fills taken at placement are read before anything else is decided
        if self.e.status == STOPPED and not self.done.is_set() and not self._awaiting_fills():
            self._finished(self.now_ms())

    def _awaiting_fills(self) -> bool:
        """Stopped, but an order of ours is gone from the book with fills the stream has not
        brought yet (the last initial-position buy, answered filled): book them before the
        final snapshot, else status after the stop misses them. At most FINAL_FILLS_WAIT_S."""
        if self.ex.pending():
            return True
        orders = self.ex.mirror.orders()
        awaited = any(o.status == FILLED for o in orders)  # the venue said filled; the fills are on the way
        if not awaited and all(self.ex.mirror.get(c) is not None for c in self.placed):
            return False
        if self._stopped_at is None:
            self._stopped_at = self.clock()
        return self.clock() - self._stopped_at < FINAL_FILLS_WAIT_S

    async def _cancel_orders(self, ts: int, orders: list[OpenOrder]) -> None:
        """Cancel own orders: in the venue's batches where the adapter has them (a stop's 40
        cancels in 4 requests), else one by one."""
        many = getattr(self.ex, "cancel_many", None)
        if many is None or len(orders) < 2:
            for o in orders:
                await self._cancel(ts, o)
            return
        reasons = await many([o.client_id for o in orders])
        gone = False
        for o in orders:
            reason = reasons.get(o.client_id)
            if reason not in (None, "order_not_found"):  # still on the book: the next sync asks again
                self.rec.event(ts, "warn", f"cancel of level {o.level} {o.intent.value} refused: {reason}", o.level)
                continue
            if reason:
                self.rec.event(ts, "info", f"cancel of level {o.level} {o.intent.value}: {reason}", o.level)
                gone = True
            self._off_the_book(ts, o)
        if gone and self.e.status == STOPPING:
            await self._book_fills_now()

    async def _cancel(self, ts: int, o: OpenOrder) -> None:
        gone = False
        try:
            await self.ex.cancel(o.client_id)
        except Rejected as exc:  # already gone (filled or cancelled): the next events say which
            self.rec.event(ts, "info", f"cancel of level {o.level} {o.intent.value}: {exc.reason}", o.level)
            gone = True
        self._off_the_book(ts, o)  # first: a fill read now finds the order among the cancelled, marks it filled
        if gone and self.e.status == STOPPING:
            await self._book_fills_now()

    def _off_the_book(self, ts: int, o: OpenOrder) -> None:
        """A cancelled (or already gone) order: stored as cancelled; a fill still on the way marks it filled."""
        entry = self.placed.pop(o.client_id, None)
        if entry is not None:
            self._remember_cancelled(o.client_id, entry)
        self.rec.order_cancelled(ts, o)
        self.d.on_cancelled(o)

    def _remember_cancelled(self, cid: object, entry: list[int]) -> None:
        if len(self.cancelled) > 1000:  # a bounded memory of recent cancels
            self.cancelled.pop(next(iter(self.cancelled)))
        self.cancelled[cid] = entry

    async def _book_fills_now(self) -> None:
        """A stop's cancel found the order gone: it may have filled a moment ago. Its fills are
        read from the venue's trade history now, so the close is sized to the whole position
        (the stream's copy of them is then a duplicate and is dropped by trade id)."""
        since = self.last_fill_ts or self.now_ms() - 60_000
        try:
            fills = await self.ex.fills_since(since)
        except Temporary:
            return  # the engine closes what is left after the close (CLOSE_ROUNDS)
        for f in fills:
            self.apply_fill(f)

    def _hold_entry(self, ts: int, r: OrderRequest, why: str) -> None:
        """An entry not sent (the margin ran short this round: the level waits its cooldown; or
        the stream is in safe mode: it waits for the stream, which bumps the engine's version)."""
        if why == "insufficient_margin" and r.level is not None and r.price is not None:
            self.d.rejected(r, ts, why)

    async def _submit(self, ts: int, r: OrderRequest) -> bool:
        """Send one request; True when the venue said the margin is insufficient for an entry."""
        try:
            order = await self.ex.place(r)
        except Rejected as exc:
            self.rec.order_rejected(ts, r, exc.reason)
            self.rec.engine_events(ts, self.d.rejected(r, ts, exc.reason))
            if isinstance(exc, InsufficientMargin) and r.intent is Intent.ENTRY:
                self.rec.event(ts, "warn", f"insufficient margin: no new entries this round, exits kept ({exc})")
                return True
            return False
        except UnknownOutcome as exc:
            # timeout/disconnect: the order may be on the book. Ask by client id before
            # anything is re-sent; the deterministic id makes the answer unambiguous.
            order = await self._confirm(r.client_id, exc)
            if order is None:
                self.rec.event(ts, "warn", f"level {r.level} {r.intent.value}: placement not confirmed "
                               f"({exc}); it will be placed again", r.level)
                return False
            self.ex.mirror.put(order)
        self.placed[r.client_id] = [r.qty, 0]
        self.rec.order_placed(ts, r, order.order_id)
        return False

    async def _confirm(self, cid: object, exc: Exception):
        """The order with this client id if the venue has it, else None (it never arrived)."""
        try:
            return await self.ex.fetch_order(cid)
        except ExchangeError as again:
            raise Temporary(f"cannot confirm order {cid} after {exc}: {again}") from None

    def _finished(self, ts: int) -> None:
        self.rec.strategy(ts, status="stopped", stop_reason=self.e.stop_reason)
        self.rec.levels(ts)
        self.snapshot(force=True)
        self.done.set()

    def _error(self, ts: int, message: str) -> None:
        """Record an error (shown in status); an empty message clears it."""
        if not message:
            self.last_error = None
            self.rec.strategy(ts, last_error=None)
            return
        self.last_error = message
        self.rec.event(ts, "error", message)
        self.rec.strategy(ts, last_error=message)

    # -- timers ------------------------------------------------------------------
    def snapshot(self, force: bool = False) -> None:
        now = self.clock()
        if not force and now - self.last_equity < EQUITY_EVERY_S:
            return
        self.last_equity = now
        ts = self.now_ms()
        orders = self._open_orders()
        buys = sum(1 for o in orders if o.side.value == "buy")
        self.rec.equity(ts, self.ex.price(), self.ex.mark(), self.balance, buys, len(orders) - buys,
                        self.exchange_position)
        self.rec.levels(ts)
        self.rec.event(ts, "pnl", f"total PnL {self.e.ledger.total_pnl(self.ex.mark()):.4f}")

    async def reconcile(self, force: bool = False) -> None:
        """Confirm the mirror of open orders and the position against the venue, on a timer."""
        every = self.reconcile_every_s * getattr(self.ex, "poll_factor", 1)  # slower after repeated rate limits
        if force or self.clock() - self.last_reconcile >= every:
            self.last_reconcile = self.clock()
            ts = self.now_ms()
            try:
                events = await self.ex.reconcile_orders()
            except ExchangeError as exc:
                # the fills the stream missed (after a reconnect) are still unread: try again
                # soon, not a whole timer later (a rate limit: once its cooldown has passed)
                wait = max(RECONCILE_RETRY_S, _cooldown_s(exc))
                self.last_reconcile = self.clock() - every + wait
                raise
            for ev in events:
                self.apply(ev)
            self._fills_checked(ts)
            self.position_due = True
        await self._position_when_due()

    # -- the loop ------------------------------------------------------------------
    async def run(self) -> int:
        """Trade until stopped; returns the process exit code (77 when the venue refuses the keys)."""
        try:
            return await self._run()
        except AuthError as exc:
            # restarting cannot help: the supervisor marks the strategy fatal with this reason
            self._error(self.now_ms(), f"the exchange refused the API keys: {exc}")
            return EX_AUTH

    async def _run(self) -> int:
        ts = self.now_ms()
        if self.e.status != STOPPING:
            self.rec.strategy(ts, status="paused" if self.e.status == PAUSED else "running", pid=os.getpid())
        # trigger and stops at the current price before anything is placed
        self.rec.engine_events(ts, self.d.on_price(PriceUpdate(ts, self.ex.price(), self.ex.mark())))
        await self.sync()
        while not self.done.is_set():
            self.beat()  # once a turn: a loop that stops turning is aborted by the supervisor
            try:
                events = await self.ex.events()
                for ev in events:
                    self.apply(ev)
                await self.sync()
                if self.safety is not None and self.clock() >= self.global_cooldown:  # rate limited: wait
                    await self.safety.tick()
                await self.reconcile()  # after the events are booked: else a fill just read looks like a difference
            except Temporary as exc:
                self._error(self.now_ms(), f"exchange: {exc}")
                if isinstance(exc, RateLimited):  # a read was refused: every request waits
                    self.global_cooldown = self.clock() + _cooldown_s(exc)
                await asyncio.sleep(1)
                continue
            self.snapshot()
        if self.safety is not None:
            await self.safety.tick()  # stopped: its stop orders are cancelled
        await self._last_funding()
        return 0

    async def _last_funding(self) -> None:
        """Funding paid up to now, read once more on the way out (a poll may be minutes away)."""
        read = getattr(self.ex, "read_funding", None)
        if read is None:
            return
        try:
            payments = await read()
        except Exception as exc:  # the next process reads it (resume_funding_after)
            log.info("funding history not read before exiting: %s", str(exc)[:200])
            return
        for p in payments:
            self.apply(p)
        if payments:
            self.snapshot(force=True)  # the last snapshot agrees with the funding rows


def _cooldown_s(exc: Exception) -> float:
    """How long requests wait after `exc`: a rate limit's cooldown (or the venue's Retry-After)."""
    if not isinstance(exc, RateLimited):
        return 0
    return max(RATE_LIMIT_COOLDOWN_S, getattr(exc, "retry_after", None) or 0)


def _exits_first(actions: list) -> list:
    """Cancels first (they free margin and reduce-only room), then closes and exits, then
    entries: after a pause (a rate limit) what protects the position goes out first."""
    rank = {Intent.CLOSE: 1, Intent.EXIT: 1, Intent.ENTRY: 2}
    return sorted(actions, key=lambda a: 0 if isinstance(a, Cancel) else rank[a.request.intent])
