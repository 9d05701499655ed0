"""Desired orders from level states, and the reconcile diff against open orders.

Reconcile is a pure function from (desired, actual) to actions; applying its
actions and running it again yields no action.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Iterable, Optional, Sequence, Union

from gridctl.core.grid import LevelSpec, Side


class Intent(str, Enum):
    ENTRY = "entry"
    EXIT = "exit"
    CLOSE = "close"


class LevelState(str, Enum):
    IDLE = "idle"
    ENTRY_WORKING = "entry_working"
    POSITION_OPEN = "position_open"
    EXIT_WORKING = "exit_working"


@dataclass(frozen=True, slots=True)
class Level:
    """A level's runtime state: its role, the steps it holds, and its phase.

    `exiting` is False while the level still wants (more of) its entry and True
    once the entry is done and the held steps wait for their exit.
    `gen` counts the orders placed for this level (it makes client ids unique).
    """

    spec: LevelSpec
    held: int = 0
    exiting: bool = False
    gen: int = 0

    def state(self, entry_open: bool, exit_open: bool) -> LevelState:
        """The named state, given whether its entry / exit order is on the book."""
        if not self.exiting and entry_open:
            return LevelState.ENTRY_WORKING
        if not self.held and not self.exiting:
            return LevelState.IDLE
        return LevelState.EXIT_WORKING if exit_open else LevelState.POSITION_OPEN

    @property
    def signed_held(self) -> int:
        return self.spec.side.sign * self.held


@dataclass(frozen=True, slots=True)
class DesiredOrder:
    """An order the strategy wants resting now. Price in ticks, qty in steps."""

    level: int
    intent: Intent
    side: Side
    price: int
    qty: int
    reduce_only: bool = False
    post_only: bool = False

    @property
    def key(self) -> tuple[Intent, Side, int, int]:
        return (self.intent, self.side, self.price, self.level)


@dataclass(frozen=True, slots=True)
class OpenOrder:
    """An own order resting on the exchange, decoded from its client id."""

    level: int
    intent: Intent
    side: Side
    price: int
    qty: int  # remaining steps
    reduce_only: bool = False
    client_id: str = ""
    order_id: str = ""
    gen: int = 0

    @property
    def key(self) -> tuple[Intent, Side, int, int]:
        return (self.intent, self.side, self.price, self.level)


@dataclass(frozen=True, slots=True)
class Place:
    order: DesiredOrder


@dataclass(frozen=True, slots=True)
class Cancel:
    order: OpenOrder


Action = Union[Place, Cancel]


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """One order to send, fully specified: what the shell hands to the exchange.

    Price in ticks (None = market), qty in steps. `position_side` is the hedge-mode
    leg ("long"/"short"), None in one-way mode. `level` is None for a close.
    """

    client_id: object
    side: Side
    qty: int
    price: Optional[int] = None
    reduce_only: bool = False
    post_only: bool = False
    position_side: Optional[str] = None
    level: Optional[int] = None
    intent: Intent = Intent.ENTRY

    @property
    def is_market(self) -> bool:
        return self.price is None


@dataclass(frozen=True, slots=True)
class Submit:
    """Send this request (a limit placement, an initial-position entry or a close)."""

    request: OrderRequest


@dataclass(frozen=True)
class OrderPolicy:
    """What shapes the desired orders besides the levels themselves."""

    max_position: Optional[int] = None  # steps; None = unlimited
    hedge: bool = False  # hedge position mode: exits always reduceOnly
    post_only: bool = True
    entries_enabled: bool = True  # False when paused, stopped or before trigger


def _rests(side: Side, price: int, market: int) -> bool:
    """True when a limit order at price rests on the book instead of crossing."""
    return price < market if side is Side.BUY else price > market


def _entries(levels: Sequence[Level], market: int, policy: OrderPolicy, working: set[int]) -> list[DesiredOrder]:
    wanted = []
    for lv in levels:
        if lv.exiting or lv.held >= lv.spec.size:
            continue
        s = lv.spec
        # a working entry keeps its place in the queue even if a tick crosses it
        if s.index in working or _rests(s.side, s.entry, market):
            wanted.append(DesiredOrder(s.index, Intent.ENTRY, s.side, s.entry, s.size - lv.held,
                                       post_only=policy.post_only))
    return wanted


def _cap_entries(entries: list[DesiredOrder], levels: Sequence[Level], market: int,
                 policy: OrderPolicy) -> list[DesiredOrder]:
    """Drop entries, farthest from the market first, that could push |position| past the cap."""
    if policy.max_position is None:
        return entries
    cap = policy.max_position
    if policy.hedge:
        long_now = sum(lv.held for lv in levels if lv.spec.side is Side.BUY)
        short_now = sum(lv.held for lv in levels if lv.spec.side is Side.SELL)
    else:
        net = sum(lv.signed_held for lv in levels)
        long_now, short_now = net, -net
    kept: list[DesiredOrder] = []
    for side, exposure in ((Side.BUY, long_now), (Side.SELL, short_now)):
        same = sorted((e for e in entries if e.side is side), key=lambda e: abs(e.price - market))
        for e in same:
            if exposure + e.qty <= cap:
                exposure += e.qty
                kept.append(e)
    return kept


def _exits(levels: Sequence[Level], market: int, policy: OrderPolicy) -> list[DesiredOrder]:
    held = [lv for lv in levels if lv.held > 0]
    if policy.hedge:
        room = {Side.SELL: None, Side.BUY: None}
    else:
        net = sum(lv.held if lv.spec.side is Side.BUY else -lv.held for lv in held)
        room = {Side.SELL: max(net, 0), Side.BUY: max(-net, 0)}
    out = []
    # nearest exits first: they fill first, so they get the reduceOnly room
    # (a long level's exit is a SELL: ascending price; a short level's a BUY: descending)
    for lv in sorted(held, key=lambda lv: lv.spec.exit if lv.spec.side is Side.BUY else -lv.spec.exit):
        s = lv.spec
        side = Side.SELL if s.side is Side.BUY else Side.BUY
        left = room[side]
        if left is None:  # hedge mode: an exit always reduces its own leg
            ro = True
        else:
            # one-way mode: reduceOnly only up to the net position on the exit's side; in a
            # neutral grid the legs net out and an exit may have to open exposure
            ro = lv.held <= left
            if ro:
                room[side] = left - lv.held
        # an exit already beyond the market takes its profit at once (no post-only)
        out.append(DesiredOrder(s.index, Intent.EXIT, side, s.exit, lv.held, reduce_only=ro,
                                post_only=policy.post_only and _rests(side, s.exit, market)))
    return out


def desired_orders(levels: Sequence[Level], market: int, policy: OrderPolicy,
                   working_entries: Iterable[int] = ()) -> list[DesiredOrder]:
    """Every order the strategy wants resting at market price `market` (ticks).

    Entries only where they rest on the book (or are already working), capped by
    max_position; exits always while a level holds a position.
    """
    entries: list[DesiredOrder] = []
    if policy.entries_enabled:
        entries = _entries(levels, market, policy, set(working_entries))
        entries = _cap_entries(entries, levels, market, policy)
    out = entries + _exits(levels, market, policy)
    return sorted(out, key=lambda o: (o.level, o.intent.value))


def reconcile(desired: Sequence[DesiredOrder], actual: Sequence[OpenOrder]) -> list[Action]:
    """Minimal cancels and placements that turn `actual` into `desired`.

    Keyed by (intent, side, price, level); an order with the right key but a
    different quantity or reduceOnly flag is replaced. Cancels come first so
    margin and reduceOnly room are freed before anything is placed.
    """
    by_key: dict[tuple, list[OpenOrder]] = {}
    for o in actual:
        by_key.setdefault((o.intent, o.side, o.price, o.level), []).append(o)
    cancels: list[Action] = []
    places: list[Action] = []
    for d in desired:
        found = by_key.pop((d.intent, d.side, d.price, d.level), None)
        keep = None
        for o in found or ():
            if keep is None and o.qty == d.qty and o.reduce_only == d.reduce_only:
                keep = o
            else:
                cancels.append(Cancel(o))
        if keep is None:
            places.append(Place(d))
    for rest in by_key.values():
        cancels.extend(Cancel(o) for o in rest)
    return cancels + places


def apply_actions(actual: Sequence[OpenOrder], actions: Sequence[Action]) -> list[OpenOrder]:
    """The open orders after the actions succeed (what a perfect exchange would hold)."""
    cancelled = {id(a.order) for a in actions if isinstance(a, Cancel)}
    out = [o for o in actual if id(o) not in cancelled]
    for a in actions:
        if isinstance(a, Place):
            d = a.order
            out.append(OpenOrder(d.level, d.intent, d.side, d.price, d.qty, d.reduce_only))
    return out
