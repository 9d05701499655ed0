"""Partly filled entries: how long a level waits for the rest of its entry.

A level whose entry filled partly keeps that order (never a second one at the
level) and places the exit for what it holds. Once `partial_fill_timeout` has
passed since the entry's first fill, the level stops wanting the rest: the
reconcile cancels the remainder and the level continues with the filled
quantity (its exit is already sized to what it holds). Pure: time comes from
the fills' timestamps and the caller's `now_ms`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

from gridctl.core.market import MarketRules
from gridctl.core.orders import Level

DEFAULT_TIMEOUT_MS = 600_000  # 10 minutes
BOOKED_KEPT = 50_000


def waiting_for_rest(lv: Level) -> bool:
    """True while the level holds part of its lot and still wants the rest of its entry."""
    return not lv.exiting and 0 < lv.held < lv.spec.size


class PartialEntries:
    """When each level's entry first filled partly (this cycle), and which levels waited too long.

    The timeout is passed in (a reload may change it); None: a remainder rests until it
    fills or is cancelled for another reason.
    """

    def __init__(self) -> None:
        self.since: dict[int, int] = {}  # level -> ts of the fill that made it partial
        # steps booked of each own level order: what is left of it as the ledger sees it
        self.booked: dict[object, int] = {}

    def book(self, client_id: object, qty: int) -> None:
        """A fill of an own level order was booked."""
        if len(self.booked) > BOOKED_KEPT:  # bounded: only recent orders still rest
            self.booked.pop(next(iter(self.booked)))
        self.booked[client_id] = self.booked.get(client_id, 0) + qty

    def remaining(self, client_id: object, qty: int, venue_remaining: int) -> int:
        """What is left of an own order of `qty` steps as the ledger sees it: a fill the venue
        reports (a REST snapshot) before its trade reaches the ledger must not make the
        level's order look too small, or it is replaced by a second one while that fill
        is on its way. The venue's figure when the ledger has booked it all."""
        left = qty - self.booked.get(client_id, 0)
        return left if left > 0 else venue_remaining

    def update(self, lv: Level, ts: int) -> None:
        """After a fill (or a cancel) changed the level: start, keep or end its wait."""
        i = lv.spec.index
        if waiting_for_rest(lv):
            self.since.setdefault(i, ts)
        else:
            self.since.pop(i, None)

    def due(self, now_ms: int, timeout_ms: Optional[int]) -> list[int]:
        """Levels whose wait has lasted `timeout_ms` or longer, in level order."""
        if timeout_ms is None or not self.since:
            return []
        return sorted(i for i, ts in self.since.items() if now_ms - ts >= timeout_ms)

    def deadline(self, timeout_ms: Optional[int]) -> Optional[int]:
        """The earliest instant a wait ends (None when no level waits or there is no timeout)."""
        if timeout_ms is None or not self.since:
            return None
        return min(self.since.values()) + timeout_ms

    def end(self, level: int) -> None:
        self.since.pop(level, None)


def expire(levels: dict[int, Level], partials: PartialEntries, now_ms: int, timeout_ms: Optional[int],
           rules: MarketRules) -> list[tuple[int, str, dict]]:
    """Each level whose wait is over stops wanting its entry (`levels` is updated), so the
    reconcile cancels the rest and the level continues with what it holds.
    Returns (level, message, data) for each, for the engine's events."""
    out = []
    for i in partials.due(now_ms, timeout_ms):
        partials.end(i)
        lv = levels[i]
        if lv.exiting or not lv.held:
            continue
        levels[i] = replace(lv, exiting=True)
        timeout = describe_ms(timeout_ms or 0)
        held, size = str(rules.qty(lv.held)), str(rules.qty(lv.spec.size))
        out.append((i, f"level {i} entry filled {held} of {size} in {timeout}: the rest is cancelled, the level "
                       f"continues with {held}", {"partial_fill_timeout": timeout, "held": held, "size": size}))
    return out


def describe_ms(ms: int) -> str:
    """A duration as the config writes it: 10m, 90s, 1h, 250ms."""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"
