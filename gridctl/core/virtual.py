"""Virtual positions: several strategies on one account, symbol and leg (pure).

Each strategy's ledger holds its virtual position from the fills its client id tag
attributes to it. The venue holds one position per leg (hedge: long and short; one-way:
the net). What no strategy explains goes to the leg's UNASSIGNED bucket, set by
`gridctl reconcile --assign`. Per leg:

    difference = venue position - sum of the strategies' virtual positions - UNASSIGNED

Quantities are signed steps: a long leg is >= 0, a short leg <= 0, a net leg either.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable, Mapping, Optional

from gridctl.core.fills import FundingPayment
from gridctl.core.ledger import Ledger
from gridctl.core.market import MarketRules

LONG, SHORT, NET = "long", "short", "net"
UNASSIGNED_NAME = "UNASSIGNED"
ZERO = Decimal(0)


def legs_of(mode: str, hedge: bool) -> tuple[str, ...]:
    """The venue legs a strategy trades: its side's leg in hedge mode (both for neutral), else the net."""
    if not hedge:
        return (NET,)
    return (LONG, SHORT) if mode == "neutral" else ((LONG,) if mode == "long" else (SHORT,))


def leg_positions(ledger: Ledger, hedge: bool) -> dict[str, int]:
    """A strategy's virtual position per leg (signed steps): its long lots on the long leg and
    its short lots on the short leg in hedge mode, the net of all lots in one-way mode."""
    if not hedge:
        return {NET: ledger.position}
    long = sum(lot.qty for lot in ledger.lots.values() if lot.sign > 0)
    short = sum(lot.qty for lot in ledger.lots.values() if lot.sign < 0)
    return {LONG: long, SHORT: -short}


def venue_legs(reports: Iterable, hedge: bool) -> dict[str, int]:
    """The venue's position reports (leg, signed qty) as signed steps per leg. Venues report a
    hedge short leg positive or negative: it is made <= 0 here."""
    if not hedge:
        return {NET: sum(r.qty for r in reports)}
    out = {LONG: 0, SHORT: 0}
    for r in reports:
        if r.leg == SHORT or (r.leg is None and r.qty < 0):
            out[SHORT] -= abs(r.qty)
        else:
            out[LONG] += abs(r.qty)
    return out


@dataclass(frozen=True)
class LegCheck:
    """One leg of one account and symbol: the venue's position against the strategies'."""

    leg: str
    venue: int
    virtual: int  # the sum of the strategies' virtual positions
    unassigned: int

    @property
    def difference(self) -> int:
        return self.venue - self.virtual - self.unassigned

    @property
    def unexplained(self) -> int:
        """What no strategy holds: the difference and the UNASSIGNED bucket together (what
        `reconcile --assign` distributes)."""
        return self.venue - self.virtual

    @property
    def matched(self) -> bool:
        return self.difference == 0


def check_legs(venue: Mapping[str, int], virtual: Iterable[Mapping[str, int]],
               unassigned: Mapping[str, int], legs: Iterable[str]) -> list[LegCheck]:
    """Per leg: the venue's position, the sum of every strategy's on it, the UNASSIGNED bucket."""
    virtual = list(virtual)
    return [LegCheck(leg, venue.get(leg, 0), sum(v.get(leg, 0) for v in virtual), unassigned.get(leg, 0))
            for leg in legs]


def funding_share(p: FundingPayment, own: int, rules: MarketRules) -> Decimal:
    """This strategy's part of a funding payment on the account's position (`own`: its signed
    virtual position in steps).

    Decision: proportional first, amount x own / venue position at the payment (both signed
    net steps; funding is linear in the signed position, so this holds for hedge legs too):
    the shares then add up exactly to what the venue paid, which is what a reconcile of
    funding checks; the rate and mark a ccxt payment carries are the mark stream's latest,
    not necessarily the settlement's. When the venue's position is unknown (0) but the payment
    carries a rate and a mark: -rate x mark x own qty x contract size. Else nothing: a
    payment on a position this strategy did not hold.
    """
    if own == p.position:
        return p.amount  # the only holder (the backtest, one strategy per leg): untouched
    if own == 0:
        return ZERO
    if p.position:
        return p.amount * own / p.position
    if p.rate and p.mark:
        return -p.rate * rules.price(p.mark) * rules.qty(own) * rules.contract_size
    return ZERO


class AssignmentError(ValueError):
    """A `reconcile --assign` request that cannot be applied (the message says why)."""


@dataclass(frozen=True)
class AssignmentPlan:
    """What `--assign` books: signed steps per strategy, and what is left for UNASSIGNED."""

    leg: str
    assigned: dict[str, int]
    unassigned: int


def plan_assignment(check: LegCheck, requests: Mapping[str, int], eligible: Iterable[str],
                    fmt=str) -> AssignmentPlan:
    """Distribute the leg's unexplained position (venue - virtual) between strategies.

    `requests`: name -> steps, unsigned (they take the sign of the unexplained quantity) or
    signed (the sign must match). `eligible`: the strategies trading this leg. The rest goes
    to UNASSIGNED. `fmt` renders steps for messages.
    """
    eligible = set(eligible)
    total = check.unexplained
    sign = 1 if total > 0 else -1
    assigned: dict[str, int] = {}
    for name, qty in requests.items():
        if name not in eligible:
            raise AssignmentError(f"strategy '{name}' does not trade the {check.leg} leg here")
        if qty == 0:
            raise AssignmentError(f"{name}: the quantity to assign is 0")
        if total == 0:
            raise AssignmentError(f"the {check.leg} leg has no difference to assign (the venue's position "
                                  f"equals the strategies' sum)")
        if qty * sign < 0 and qty < 0:
            raise AssignmentError(f"{name}: {fmt(qty)} has the wrong sign: the difference on the {check.leg} leg "
                                  f"is {fmt(total)}")
        assigned[name] = abs(qty) * sign
    given = sum(abs(q) for q in assigned.values())
    if given > abs(total):
        raise AssignmentError(f"{fmt(given * sign)} assigned is more than the {check.leg} leg's difference "
                              f"{fmt(total)} (venue {fmt(check.venue)}, strategies {fmt(check.virtual)})")
    return AssignmentPlan(check.leg, assigned, total - sum(assigned.values()))


def pick_leg(checks: Iterable[LegCheck], leg: Optional[str]) -> LegCheck:
    """The leg `--assign` works on: the one named, else the only leg with something unexplained."""
    checks = list(checks)
    if leg is not None:
        for c in checks:
            if c.leg == leg:
                return c
        raise AssignmentError(f"--leg {leg}: this account's legs are {', '.join(c.leg for c in checks)}")
    open_ = [c for c in checks if c.unexplained]
    if len(open_) > 1:
        raise AssignmentError("both legs differ: name one with --leg long or --leg short")
    return open_[0] if open_ else checks[0]


def book_assignment(ledger: Ledger, qty: int, price: int) -> None:
    """Book an assigned quantity (signed steps) at `price` (ticks) into the ledger's lot of
    fills no level explains: the same sign adds to it, the other sign realizes against it
    (no fill, no fee). PnL of the assigned part counts from `price` on."""
    if qty:
        ledger.assign(1 if qty > 0 else -1, price, abs(qty))
