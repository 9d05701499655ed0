"""The worker's side of several strategies on one account and symbol (gridctl.core.virtual).

Each worker publishes its virtual position per leg (through the buffered writer, when it
changes) and, on the reconcile timer, checks every leg it trades: the venue's position
against the sum of all strategies' virtual positions on it (its own from its ledger, its
siblings' from the store) plus the leg's UNASSIGNED bucket. The result goes to
`position_checks` (what `gridctl status` shows); a difference is reported as an event once it
has been seen on two checks in a row (a sibling's fill may be on the venue a moment before
its worker has stored it). Assignments `gridctl reconcile --assign` stored for this
strategy are picked up on the same timer, from the store, and booked once.

Rule for a kept position at start: a new grid adopts the venue's position only when no
other strategy of the configuration trades its account, symbol and leg; otherwise the
position shows as a difference, for `gridctl reconcile --assign`.
"""

from __future__ import annotations

import logging
from typing import Iterable, Optional

from gridctl.core import virtual
from gridctl.core.virtual import LegCheck

log = logging.getLogger(__name__)
CONFIRM_S = 5.0  # a difference is checked again this soon before it is reported


class AccountCheck:
    """One strategy's view of its account's legs (see the module doc)."""

    def __init__(self, name: str, account: str, symbol: str, mode: str, hedge: bool, siblings: Iterable[str],
                 engine, recorder):
        self.name, self.account, self.symbol, self.hedge = name, account, symbol, hedge
        self.legs = virtual.legs_of(mode, hedge)
        self.siblings = sorted(siblings)  # configured strategies sharing one of these legs
        self.e, self.rec = engine, recorder
        self.rules = engine.rules
        self._published: Optional[dict] = None
        self._suspect: Optional[tuple] = None  # the differences seen once, to be confirmed
        self.confirm_soon = False
        self.reported: dict[str, int] = {}  # leg -> difference reported (steps)
        self.last_assignment = 0  # id of the last assignment booked
        self.reset_ts: Optional[int] = None
        self.since_ts = 0  # the grid's start: older assignments belonged to an earlier grid

    @property
    def shared(self) -> bool:
        return bool(self.siblings)

    # -- own virtual position ----------------------------------------------------------------
    def own(self) -> dict[str, int]:
        return virtual.leg_positions(self.e.ledger, self.hedge)

    def publish(self, ts: int) -> None:
        """Store the virtual position per leg when it changed (cheap: called after fills)."""
        own = self.own()
        if own == self._published:
            return
        self._published = own
        q = self.rules.qty
        long_, short = (own.get("long", 0), own.get("short", 0)) if self.hedge else (own["net"], 0)
        self.rec.w.upsert("virtual_positions", {
            "strategy": self.name, "account": self.account, "symbol": self.symbol, "long_qty": q(long_),
            "short_qty": q(short), "hedge": self.hedge, "reset_ts": self.reset_ts, "ts": ts})

    # -- the check -----------------------------------------------------------------------------
    def check(self, ts: int, reports, report: bool = True) -> Optional[list[LegCheck]]:
        """Compare the legs (see the module doc); None when the store cannot be read. A new
        difference sets `confirm_soon` (the caller checks again within CONFIRM_S) and is
        reported (`report`: as events) when seen again."""
        self.publish(ts)
        self.confirm_soon = False
        try:
            others = self._siblings_positions()
            unassigned = self._unassigned()
        except Exception as exc:  # the database is down: trading goes on, the check waits
            log.info("account check skipped: %s", exc)
            return None
        venue = virtual.venue_legs(reports, self.hedge)
        checks = virtual.check_legs(venue, [self.own(), *others], unassigned, self.legs)
        seen = tuple((c.leg, c.difference) for c in checks if c.difference)
        if seen and seen != self._suspect:
            self._suspect, self.confirm_soon = seen, True  # seen once: checked again before it is shown
            return checks
        self._suspect = seen or None
        for c in checks:
            self._store(ts, c)
        if report:
            for c in checks:
                self._report(ts, c)
        return checks

    def _report(self, ts: int, c: LegCheck) -> None:
        q = self.rules.qty
        before = self.reported.get(c.leg, 0)
        if c.difference == before:
            return
        self.reported[c.leg] = c.difference
        where = f"{self.symbol} on account '{self.account}'" + (f", {c.leg} leg" if self.hedge else "")
        data = {"account": self.account, "symbol": self.symbol, "leg": c.leg, "venue": str(q(c.venue)),
                "virtual": str(q(c.virtual)), "unassigned": str(q(c.unassigned)), "difference": str(q(c.difference))}
        if c.difference == 0:
            self.rec.event(ts, "info", f"position matches again: {where}: venue {q(c.venue)} = strategies "
                           f"{q(c.virtual)} + UNASSIGNED {q(c.unassigned)}", data=data)
            return
        self.rec.event(ts, "warn", f"position mismatch: {where}: venue {q(c.venue)}, strategies {q(c.virtual)}, "
                       f"UNASSIGNED {q(c.unassigned)}, difference {q(c.difference)} (see gridctl reconcile "
                       f"{self.account} {self.symbol})", data=data)

    def _store(self, ts: int, c: LegCheck) -> None:
        q = self.rules.qty
        self.rec.w.upsert("position_checks", {
            "account": self.account, "symbol": self.symbol, "leg": c.leg, "venue_qty": q(c.venue),
            "virtual_qty": q(c.virtual), "unassigned_qty": q(c.unassigned), "difference": q(c.difference),
            "ts": ts, "by": self.name})

    def _siblings_positions(self) -> list[dict[str, int]]:
        from gridctl.store.models import VirtualPosition as VP

        rows = VP.select().where((VP.account == self.account) & (VP.symbol == self.symbol) & (VP.strategy != self.name))
        return [stored_legs(r, self.rules) for r in rows]

    def _unassigned(self) -> dict[str, int]:
        from gridctl.store.models import UnassignedPosition as U

        rows = U.select().where((U.account == self.account) & (U.symbol == self.symbol))
        return {r.leg: self.rules.qty_to_steps(r.qty) for r in rows}

    # -- assignments -------------------------------------------------------------------------
    def pick_up(self, ts: int) -> int:
        """Book the assignments stored for this strategy since the last (and since the grid
        started: `since_ts`); returns how many. Each is an event and a reset mark (status
        shows it); with `ts` 0 (a restart rebuilding the ledger) they are booked silently."""
        from gridctl.store.models import PositionAssignment as A

        since_ts = self.since_ts
        try:
            rows = list(A.select().where((A.strategy == self.name) & (A.id > self.last_assignment)
                                         & (A.ts >= since_ts)).order_by(A.id))
        except Exception as exc:
            log.info("assignments not read: %s", exc)
            return 0
        for r in rows:
            steps, price = self.rules.qty_to_steps(r.qty), self.rules.price_to_ticks(r.price)
            virtual.book_assignment(self.e.ledger, steps, price)
            self.last_assignment, self.reset_ts = r.id, r.ts
            if ts:  # a live pick-up (a restart books them again silently)
                self.rec.event(ts, "risk", f"position assigned by gridctl reconcile: {r.qty} on the {r.leg} leg "
                               f"at {r.price}; PnL continues from there (reset)",
                               data={"reset": True, "qty": str(r.qty), "price": str(r.price), "leg": r.leg,
                                     "assignment": r.id})
        if rows:
            self.e.version += 1
            self.publish(ts or rows[-1].ts)
        return len(rows)


def stored_legs(row, rules) -> dict[str, int]:
    """A virtual_positions row as signed steps per leg."""
    if row.hedge:
        return {"long": rules.qty_to_steps(row.long_qty), "short": -abs(rules.qty_to_steps(row.short_qty))}
    return {"net": rules.qty_to_steps(row.long_qty)}


def siblings_of(name: str, config) -> list[str]:
    """The other strategies of the configuration on `name`'s account, symbol and a shared leg."""
    s = config.strategies[name]
    hedge = config.accounts[s.account].position_mode == "hedge"
    mine = set(virtual.legs_of(s.mode.value, hedge))
    return [o.name for o in config.strategies.values()
            if o.name != name and o.account == s.account and o.symbol == s.symbol
            and mine & set(virtual.legs_of(o.mode.value, hedge))]
