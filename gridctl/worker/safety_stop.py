"""The exchange-side safety stop (`risk: {exchange_stop: true}`).

While the strategy holds a position, one reduce-only stop-market order per leg rests on
the venue at the strategy's stop-loss price for the leg's whole position, so the stop
holds while no gridctl process runs (a crash, a host down, every process killed). Its size
is the leg's position plus the grid's resting entries that would add to the leg before the
price reaches the stop (with nobody running they fill on the way there; reduce-only, the
stop never closes more than is held). The worker keeps it right:

- armed at once when a leg opens (nothing rests for it);
- re-armed when the leg's size changes: a new stop (next generation) is placed first and
  the old one cancelled after it, so the position is never without one; a burst of
  fills re-arms once, when no fill came for DEBOUNCE_S (at the latest MAX_DELAY_S after
  the size first differed);
- on every start, the stops already on the venue are adopted by client id when they are
  right (side, leg, size, trigger) and replaced when not;
- cancelled when the leg is flat and when the strategy stops (stop, keep, emergency close).

Which price: the trigger watches the venue's last (contract) price, as the engine's own
stop does (gridctl.core.risk.price_stop), so both fire at the same condition; a long leg's
stop sells at `stop_below`, a short leg's buys at `stop_above`. A leg whose stop-loss is
already crossed is not armed (the venue would refuse it, Binance -2021): the engine's own
stop is closing that position at market. A leg with no stop-loss on its side (a long grid
with only a stop above its range) gets none, said once in the log.

When the venue fires it, the fill arrives with the stop's client id (an own close: the
ledger books it as a close) and the engine stops with reason "exchange_stop", which cancels
the grid's orders and closes whatever the stop did not.

Client ids: intent close on level STOP_LEVEL (511, above any grid's levels, MAX_GRIDS is
500), so every existing path books its fills as a close, reconcile never treats it as a
grid order and recovery never cancels it as an orphan; `is_stop_id` tells it apart from
the engine's closes (level 0). Generations start from the clock's seconds so a restart
never reuses an id a fired stop used.
"""

from __future__ import annotations

import logging
from typing import Callable, Optional

from gridctl.core import clientid
from gridctl.core.engine import STOPPED, STOPPING, Event, GridEngine
from gridctl.core.fills import Fill
from gridctl.core.grid import Side
from gridctl.core.orders import Intent
from gridctl.exchange.base import ExchangeError, Rejected, UnknownOutcome

log = logging.getLogger(__name__)
STOP_LEVEL = clientid.MAX_LEVEL
DEBOUNCE_S = 1.0  # re-arm once fills have been quiet this long
MAX_DELAY_S = 5.0  # ...but never later than this after the size first differed
REFRESH_S = 60.0  # the venue's stop orders are read again this often (and after an unknown outcome)
RETRY_S = 30.0  # after the venue refused a stop
REASON = "exchange_stop"


def is_stop_id(engine: GridEngine, cid: object) -> bool:
    """Whether `cid` is one of this strategy's safety stops."""
    d = engine.decode(cid)
    return d is not None and d.intent is Intent.CLOSE and d.level == STOP_LEVEL


class SafetyStop:
    """Keeps the strategy's stop orders on the venue right (see the module doc)."""

    def __init__(self, engine: GridEngine, exchange, recorder, clock: Callable[[], float]):
        self.e, self.ex, self.rec, self.clock = engine, exchange, recorder, clock
        self.resting: dict[object, object] = {}  # client id -> ccxt_stops.StopOrder on the venue
        self.gen = int(clock())
        self.changed_at = 0.0  # last own fill (the position changed)
        self.differs_since: Optional[float] = None
        self.next_refresh = 0.0  # 0: read the venue's stops at the next tick
        self.retry_at = 0.0
        self.said: set[str] = set()  # one-time notes
        self.fired = False
        self.warned_at = -REFRESH_S

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # -- events ------------------------------------------------------------------------
    def on_fill(self, f: Fill) -> list[Event]:
        """An own fill: the position changed; a stop's fill stops the grid."""
        self.changed_at = self.clock()
        if not is_stop_id(self.e, f.client_id):
            return []
        self.resting.pop(f.client_id, None)
        self.next_refresh = 0.0
        self.fired = True
        r = self.e.rules
        events = [Event("risk", f"exchange stop filled: {f.side.value} {r.qty(f.qty)} @ {r.price(f.price)}", None,
                        {"client_id": str(f.client_id), "stop_reason": REASON})]
        return events + self.e.stop(REASON)

    # -- what should rest --------------------------------------------------------------
    def desired(self) -> tuple[dict, set]:
        """({(side, leg): (steps, trigger ticks)} of the stops that should rest now, the legs
        whose stop-loss the price is already through: what rests for them is left alone)."""
        if self.e.status in (STOPPING, STOPPED):
            return {}, set()
        limits, last = self.e.cfg.limits, self.ex.price()
        want, hold = {}, set()
        for side, leg, qty in self.e.legs():
            trigger = limits.stop_below if side is Side.SELL else limits.stop_above
            if trigger is None:
                self._once(f"none-{side.value}", "warn", f"exchange stop: no stop-loss "
                           f"{'below' if side is Side.SELL else 'above'} the range for the "
                           f"{'long' if side is Side.SELL else 'short'} position; none rests for it")
                continue
            if (last <= trigger) if side is Side.SELL else (last >= trigger):
                self._once(f"crossed-{side.value}-{trigger}", "warn", f"exchange stop: the price "
                           f"{self.e.rules.price(last)} is already through the stop-loss {self.e.rules.price(trigger)};"
                           f" not armed (the grid's own stop closes the position)")
                hold.add((side, leg))
                continue
            want[(side, leg)] = (qty + self._pending(side, leg, trigger), trigger)
        return want, hold

    def _pending(self, side: Side, leg: Optional[str], trigger: int) -> int:
        """Steps of the grid's resting entries that add to the leg before the price reaches its
        stop (a long leg's buys above the trigger): with nobody running they fill on the way
        down, so the stop is sized for them too (reduce-only: it never sells more than is held)."""
        adds = Side.BUY if side is Side.SELL else Side.SELL
        out = 0
        for o in self.ex.mirror.orders():
            d = self.e.decode(o.client_id)
            if d is None or d.intent is not Intent.ENTRY or o.side is not adds or o.price is None:
                continue
            if leg is not None and o.position_side not in (None, leg):
                continue
            if (o.price > trigger) if side is Side.SELL else (o.price < trigger):
                out += o.remaining
        return out

    # -- the venue ---------------------------------------------------------------------
    async def tick(self) -> None:
        """Bring the venue's stops in line with `desired()` (called after every sync)."""
        now = self.clock()
        try:
            if now >= self.next_refresh:
                self.resting = {s.client_id: s for s in await self.ex.open_stops() if is_stop_id(self.e, s.client_id)}
                self.next_refresh = now + REFRESH_S
            await self._align(now)
        except UnknownOutcome as exc:
            self.next_refresh = 0.0
            log.warning("exchange stop: outcome unknown (%s); reading the venue's stops again", exc)
        except ExchangeError as exc:  # temporary or refused: the next tick tries again
            self.next_refresh = 0.0
            if now - self.warned_at >= REFRESH_S:  # an outage must not write an event every turn
                self.warned_at = now
                self._note("warn", f"exchange stop not updated: {exc}; trying again")

    async def _align(self, now: float) -> None:
        want, hold = self.desired()
        by_leg: dict[tuple, list] = {}
        for s in self.resting.values():
            by_leg.setdefault((s.side, s.position_side), []).append(s)
        if all(len(by_leg.get(k, [])) == 1 and (by_leg[k][0].qty, by_leg[k][0].trigger) == v
               for k, v in want.items()) and all(k in want or k in hold for k in by_leg):
            self.differs_since = None
            return
        stopping = self.e.status in (STOPPING, STOPPED)
        unprotected = any(k not in by_leg for k in want)
        if not stopping and not unprotected:  # a size change (or a flat leg): wait for the burst to end
            self.differs_since = self.differs_since or now
            if now - self.changed_at < DEBOUNCE_S and now - self.differs_since < MAX_DELAY_S:
                return
        self.differs_since = None
        keep: set = set()
        for k, (qty, trigger) in want.items():
            old = by_leg.get(k, [])
            good = [s.client_id for s in old if (s.qty, s.trigger) == (qty, trigger)]
            if not good and now >= self.retry_at:
                cid = await self._arm(k[0], k[1], qty, trigger, replacing=bool(old))
                good = [cid] if cid is not None else []
            # the right one stays; without one (refused), the old ones stay: some cover beats none
            keep.update(good[:1] if good else [s.client_id for s in old])
        for k in hold:
            keep.update(s.client_id for s in by_leg.get(k, []))
        for s in list(self.resting.values()):
            if s.client_id not in keep:
                k = (s.side, s.position_side)
                await self._cancel(s, "stopping" if stopping else ("replaced" if k in want else "flat"))

    async def _arm(self, side: Side, leg: Optional[str], qty: int, trigger: int, replacing: bool) -> Optional[object]:
        """Place a stop; its client id, or None when the venue refused it."""
        self.gen += 1
        cid = clientid.encode(self.e.cfg.id_format, self.e.cfg.tag, STOP_LEVEL, Intent.CLOSE, self.gen)
        while cid in self.resting:  # the uint32 form wraps its generation
            self.gen += 1
            cid = clientid.encode(self.e.cfg.id_format, self.e.cfg.tag, STOP_LEVEL, Intent.CLOSE, self.gen)
        r = self.e.rules
        try:
            stop = await self.ex.place_stop(cid, side, qty, trigger, leg)
        except Rejected as exc:
            self.retry_at = self.clock() + RETRY_S
            self._note("warn", f"exchange stop refused by the venue ({exc.reason}): {exc}; tried again in "
                               f"{RETRY_S:g}s")
            return None
        self.resting[cid] = stop
        self._note("risk", f"exchange stop {'re-armed' if replacing else 'armed'}: {side.value} {r.qty(qty)}"
                           + (f" {leg}" if leg else "") + f" if the price reaches {r.price(trigger)}",
                   {"client_id": str(cid), "trigger": str(r.price(trigger)), "qty": str(r.qty(qty))})
        return cid

    async def _cancel(self, s, why: str) -> None:
        try:
            await self.ex.cancel_stop(s.client_id)
        except Rejected as exc:
            if exc.reason != "order_not_found":
                raise
            self.next_refresh = 0.0  # gone already: it may have fired; the stream brings its fill
        self.resting.pop(s.client_id, None)
        self._note("info", f"exchange stop cancelled ({why}): {s.side.value} {self.e.rules.qty(s.qty)}",
                   {"client_id": str(s.client_id)})

    # -- notes ---------------------------------------------------------------------------
    def _note(self, kind: str, message: str, data: Optional[dict] = None) -> None:
        log.info("%s", message)
        self.rec.event(self.now_ms(), kind, message, data=data)

    def _once(self, key: str, kind: str, message: str) -> None:
        if key not in self.said:
            self.said.add(key)
            self._note(kind, message)
