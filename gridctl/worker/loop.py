"""The worker's engine loop: exchange events → engine → reconcile → exchange requests.

Startup and crash recovery are one path (`recover`): the engine has been rebuilt
from the stored fills; the exchange's open orders are adopted by client id, fills
the store missed are applied, and the next sync cancels orphans and places what
is missing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import replace
from decimal import Decimal
from typing import Callable, Optional

from gridctl.core.engine import PAUSED, STOPPED, STOPPING, GridEngine
from gridctl.core.fills import Fill, FundingPayment
from gridctl.core.orders import Cancel, Intent, OpenOrder, Place
from gridctl.exchange.base import (
    AuthError, ExchangeError, PriceUpdate, RateLimited, Rejected, Temporary, UnknownOutcome,
)
from gridctl.sim import LIQUIDATION
from gridctl.process.exits import EX_AUTH
from gridctl.worker.recorder import Recorder

log = logging.getLogger(__name__)
EQUITY_EVERY_S = 60
REJECT_COOLDOWN_S = 30
CLOSE_WAIT_S = 30
RATE_LIMIT_COOLDOWN_S = 10


def fill_key(f: Fill) -> tuple:
    """Identity of a fill across the store and the exchange."""
    return (str(f.client_id), str(f.order_id), f.ts, f.price, f.qty)


class WorkerLoop:
    """One strategy's live loop; also the handler the worker's control socket calls."""

    def __init__(self, name: str, engine: GridEngine, exchange, recorder: Recorder, balance: Decimal,
                 clock: Callable[[], float] = time.time):
        self.name, self.e, self.ex, self.rec = name, engine, exchange, recorder
        self.balance = balance
        self.clock = clock
        self.seen: set[tuple] = set()
        self.placed_qty: dict[object, int] = {}  # orders placed by this process, by client id
        self.filled_qty: dict[object, int] = {}
        self.actual: list[OpenOrder] = []
        self.cooldown: dict[int, float] = {}
        self.global_cooldown = 0.0
        self.last_equity = 0.0
        self.keep_position: Optional[bool] = None
        self.close_sent = False
        self.close_deadline = 0.0
        self.done = asyncio.Event()
        self.started = clock()
        self.last_error: Optional[str] = None

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # -- recovery ----------------------------------------------------------------
    async def recover(self, last_fill_ts: int) -> None:
        """Adopt the exchange's state: own open orders, fills the store has not seen."""
        missed = [f for f in await self.ex.fills_since(last_fill_ts) if fill_key(f) not in self.seen]
        for f in missed:
            self.apply_fill(f)
        open_now = await self.ex.open_orders()
        for o in open_now:
            self.placed_qty[o.client_id] = o.qty
            self.filled_qty[o.client_id] = o.filled
        # an order of the previous process that filled while nobody recorded it: its fill
        # is applied above; its row must not stay "open" for status and reports
        still_open = {o.client_id for o in open_now}
        for f in missed:
            if f.client_id not in still_open:
                self.rec.order_status(f.ts, f.client_id, "filled")
        await self.refresh_orders()
        for o in self.actual:  # generations continue above anything already on the book
            lv = self.e.levels.get(o.level)
            if lv is not None and o.gen > lv.gen:
                self.e.levels[o.level] = replace(lv, gen=o.gen)
        self.rec.event(self.now_ms(), "status", f"recovered: {len(self.actual)} open orders adopted, "
                       f"{len(missed)} missed fills applied, position {self.e.rules.qty(self.e.ledger.position)}")

    async def refresh_orders(self) -> None:
        out = []
        for o in await self.ex.open_orders():
            if o.price is None:
                continue
            oo = self.e.open_order(o.client_id, o.order_id, o.side, o.price, o.remaining, o.reduce_only)
            if oo is not None:
                out.append(oo)
        self.actual = out

    # -- events ------------------------------------------------------------------
    def apply_fill(self, f: Fill) -> None:
        key = fill_key(f)
        if key in self.seen:
            return
        self.seen.add(key)
        self._track_fill(f)
        before = self.e.ledger.realized
        trades_before = len(self.e.trades)
        self.rec.engine_events(f.ts, self.e.on_fill(f))
        if f.client_id == LIQUIDATION:
            self.rec.engine_events(f.ts, self.e.on_liquidation())
        d = self.e.decode(f.client_id)
        intent = d.intent.value if d else "liquidation"
        level = d.level if d and d.intent is not Intent.CLOSE else None
        self.rec.fill(f, level, intent, self.e.ledger.realized - before)
        for t in self.e.trades[trades_before:]:
            self.rec.trade(t)

    def _track_fill(self, f: Fill) -> None:
        """Mark the order filled in the store once its whole quantity has executed."""
        cid = f.client_id
        if cid not in self.placed_qty:
            return
        self.filled_qty[cid] = self.filled_qty.get(cid, 0) + f.qty
        done = self.filled_qty[cid] >= self.placed_qty[cid]
        self.rec.order_status(f.ts, cid, "filled" if done else "open", filled=self.filled_qty[cid])
        if done:
            del self.placed_qty[cid], self.filled_qty[cid]

    def apply(self, ev) -> None:
        if isinstance(ev, Fill):
            self.apply_fill(ev)
        elif isinstance(ev, FundingPayment):
            self.rec.engine_events(ev.ts, self.e.on_funding(ev))
            self.rec.funding(ev)
        elif isinstance(ev, PriceUpdate):
            self.rec.engine_events(ev.ts, self.e.on_price(ev.last, ev.mark, ev.margin_ratio))

    # -- sync --------------------------------------------------------------------
    async def sync(self) -> None:
        """Reconcile the book with the engine; finish a stop once the position is flat."""
        ts = self.now_ms()
        await self.refresh_orders()
        if self.e.status == STOPPING:
            await self._stopping(ts)
            return
        if self.clock() < self.global_cooldown:
            return
        for action in self.e.sync(self.ex.price(), self.actual):
            try:
                if isinstance(action, Cancel):
                    await self.ex.cancel(action.order.client_id)
                    self.rec.order_cancelled(ts, action.order)
                    if action.order.intent is Intent.ENTRY:
                        self.e.on_entry_cancelled(action.order.level)
                elif isinstance(action, Place):
                    await self._place(ts, action.order)
            except RateLimited as exc:
                self._error(ts, f"rate limited: {exc}; pausing requests {RATE_LIMIT_COOLDOWN_S}s")
                self.global_cooldown = self.clock() + RATE_LIMIT_COOLDOWN_S
                return
            except Temporary as exc:
                self._error(ts, f"temporary exchange error: {exc}")
                return

    async def _place(self, ts: int, d) -> None:
        if self.clock() < self.cooldown.get(d.level, 0):
            return
        cid = self.e.place_id(d)
        try:
            order = await self.ex.place(cid, d.side, d.qty, d.price, d.reduce_only, d.post_only,
                                        self.e.position_side(d.level))
        except Rejected as exc:
            self.cooldown[d.level] = self.clock() + REJECT_COOLDOWN_S
            self.rec.order_status(ts, cid, "rejected", exc.reason)
            self.rec.event(ts, "warn", f"level {d.level} {d.intent.value} rejected: {exc.reason}; "
                           f"retry in {REJECT_COOLDOWN_S}s", d.level)
            return
        except UnknownOutcome as exc:
            # timeout/disconnect: the order may be on the book. Ask by client id before
            # anything is re-sent; the deterministic id makes the answer unambiguous.
            order = await self._confirm(cid, exc)
            if order is None:
                self.rec.event(ts, "warn", f"level {d.level} {d.intent.value}: placement not confirmed "
                               f"({exc}); it will be placed again", d.level)
                return
        self.placed_qty[cid] = d.qty
        self.rec.order_placed(ts, cid, d, order.order_id)

    async def _confirm(self, cid: object, exc: Exception):
        """The order with this client id if the venue has it, else None (it never arrived)."""
        try:
            return await self.ex.fetch_order(cid)
        except ExchangeError as again:
            raise Temporary(f"cannot confirm order {cid} after {exc}: {again}") from None

    async def _stopping(self, ts: int) -> None:
        if not self.close_sent:
            await self.ex.cancel_all()
            for o in self.actual:
                self.rec.order_cancelled(ts, o)
            self.actual = []
            self.close_sent = True
            closes = self.e.close_orders(self.keep_position)
            for mo in closes:
                try:
                    order = await self.ex.place(mo.client_id, mo.side, mo.qty, None, True, False, mo.position_side)
                    self.placed_qty[mo.client_id] = mo.qty
                    self.rec.market_order(ts, mo.client_id, mo.side.value, mo.qty, "close", order.order_id)
                except ExchangeError as exc:
                    self._error(ts, f"closing the position failed: {exc}")
            if closes:
                self.close_deadline = self.clock() + CLOSE_WAIT_S
                return  # the close fills arrive with the next events
        closing = self.keep_position is False or (self.keep_position is None and self.e.cfg.on_stop == "close")
        if closing and self.e.ledger.position:
            if self.clock() < self.close_deadline:
                return  # still waiting for the close to fill
            self._error(ts, f"the close did not fill within {CLOSE_WAIT_S}s; position "
                        f"{self.e.rules.qty(self.e.ledger.position)} left open")
        self.rec.engine_events(ts, self.e.finish_stop())
        self.rec.strategy(ts, status="stopped", stop_reason=self.e.stop_reason)
        self.rec.levels(ts)
        self.snapshot(force=True)
        self.done.set()

    def _error(self, ts: int, message: str) -> None:
        self.last_error = message
        self.rec.event(ts, "error", message)
        self.rec.strategy(ts, last_error=message)

    # -- snapshots ---------------------------------------------------------------
    def snapshot(self, force: bool = False) -> None:
        now = self.clock()
        if not force and now - self.last_equity < EQUITY_EVERY_S:
            return
        self.last_equity = now
        ts = self.now_ms()
        buys = sum(1 for o in self.actual if o.side.value == "buy")
        self.rec.equity(ts, self.ex.price(), self.ex.mark(), self.balance, buys, len(self.actual) - buys)
        self.rec.levels(ts)
        self.rec.event(ts, "pnl", f"total PnL {self.e.ledger.total_pnl(self.ex.mark()):.4f}")

    # -- the loop ------------------------------------------------------------------
    async def open_initial_position(self) -> None:
        """initial_position: buy/sell at market what the mode would hold at the start price."""
        ts = self.now_ms()
        for mo in self.e.opening_orders(self.ex.price()):
            try:
                order = await self.ex.place(mo.client_id, mo.side, mo.qty, None, False, False, mo.position_side)
            except ExchangeError as exc:
                self._error(ts, f"initial position: {exc}")
                return
            self.placed_qty[mo.client_id] = mo.qty
            self.rec.market_order(ts, mo.client_id, mo.side.value, mo.qty, "entry", order.order_id)
        for ev in await self.ex.events() if getattr(self.ex, "pending", None) else []:
            self.apply(ev)

    async def run(self, fresh: bool = False) -> int:
        """Trade until stopped; returns the process exit code (77 when the venue refuses the keys)."""
        try:
            return await self._run(fresh)
        except AuthError as exc:
            # restarting cannot help: the supervisor marks the strategy fatal with this reason
            self._error(self.now_ms(), f"the exchange refused the API keys: {exc}")
            return EX_AUTH

    async def _run(self, fresh: bool) -> int:
        self.rec.strategy(self.now_ms(), status="running", pid=os.getpid())
        if fresh:
            await self.open_initial_position()
        await self.sync()
        while not self.done.is_set():
            try:
                events = await self.ex.events()
            except Temporary as exc:
                self._error(self.now_ms(), f"exchange stream: {exc}")
                await asyncio.sleep(1)
                continue
            for ev in events:
                self.apply(ev)
            await self.sync()
            self.snapshot()
        return 0

    # -- control handler (gridctl.control.worker_server.WorkerHandler) ------------
    async def pause(self) -> dict:
        self.e.pause()
        self.rec.strategy(self.now_ms(), status="paused")
        self.rec.event(self.now_ms(), "status", "paused: orders and position kept, nothing new placed")
        return {"state": "paused"}

    async def resume(self) -> dict:
        self.e.resume()
        self.rec.strategy(self.now_ms(), status="running")
        self.rec.event(self.now_ms(), "status", "resumed")
        return {"state": "running"}

    async def stop(self, keep_position: bool) -> dict:
        self.keep_position = True if keep_position else None
        self.rec.engine_events(self.now_ms(), self.e.stop("user"))
        self.rec.strategy(self.now_ms(), status="stopping")
        return {"state": "stopping"}

    async def emergency_close(self) -> dict:
        self.keep_position = False
        self.rec.engine_events(self.now_ms(), self.e.stop("emergency"))
        await self.sync()
        return {"state": "stopping"}

    def status(self) -> dict:
        led, mark = self.e.ledger, self.ex.mark()
        q = Decimal("0.0001")
        buys = sum(1 for o in self.actual if o.side.value == "buy")
        return {
            "name": self.name, "state": self.e.status, "paused": self.e.status == PAUSED,
            "price": str(self.e.rules.price(self.ex.price())), "position": str(self.e.rules.qty(led.position)),
            "open_buys": buys, "open_sells": len(self.actual) - buys,
            "grid_profit": str(led.grid_profit.quantize(q)), "realized": str(led.realized.quantize(q)),
            "unrealized": str(led.unrealized(mark).quantize(q)), "fees": str(led.fees.quantize(q)),
            "funding": str(led.funding.quantize(q)), "total_pnl": str(led.total_pnl(mark).quantize(q)),
            "uptime_s": int(self.clock() - self.started), "last_error": self.last_error,
            "stop_reason": self.e.stop_reason,
        }

    def recent_events(self, n: int) -> list[dict]:
        return self.rec.w.recent_events()[-n:]

    def subscribe(self) -> asyncio.Queue:
        q: asyncio.Queue = asyncio.Queue()
        self.rec.subscribers.append(q)
        return q

    def unsubscribe(self, q: asyncio.Queue) -> None:
        if q in self.rec.subscribers:
            self.rec.subscribers.remove(q)

    @property
    def finished(self) -> bool:
        return self.e.status == STOPPED
