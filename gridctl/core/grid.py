"""Grid geometry: price lines on the tick grid, level roles per mode, sizes.

A grid of N cells has N+1 lines. A level is one line with a fixed role: the side
of its entry, its entry price and its exit price one line away.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext
from enum import Enum
from typing import Sequence

from gridctl.core.market import MarketRules


class Mode(str, Enum):
    LONG = "long"
    SHORT = "short"
    NEUTRAL = "neutral"


class Spacing(str, Enum):
    ARITHMETIC = "arithmetic"
    GEOMETRIC = "geometric"


class Side(str, Enum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        """+1 for buy, -1 for sell: the sign a fill adds to the position."""
        return _SIGN[self]

    @property
    def opposite(self) -> "Side":
        return _OPPOSITE[self]


# plain dicts: these are on the backtest's hot path, enum attribute access is slow
_SIGN = {Side.BUY: 1, Side.SELL: -1}
_OPPOSITE = {Side.BUY: Side.SELL, Side.SELL: Side.BUY}


class GridError(ValueError):
    """The grid cannot be built as asked (e.g. lines closer than one tick)."""


@dataclass(frozen=True)
class LevelSpec:
    """One level's fixed role. Prices in ticks, size in steps."""

    index: int
    side: Side
    entry: int
    exit: int
    size: int

    @property
    def exit_side(self) -> Side:
        return self.side.opposite


def grid_lines(lower: int, upper: int, grids: int, spacing: Spacing) -> list[int]:
    """The N+1 line prices in ticks, first == lower, last == upper, strictly increasing.

    Raises GridError when two lines would fall on the same tick.
    """
    if grids < 1:
        raise GridError("grids must be at least 1")
    if not 0 < lower < upper:
        raise GridError("lower must be positive and below upper")
    if spacing is Spacing.ARITHMETIC:
        width = upper - lower
        # nearest tick, with integer arithmetic only
        lines = [lower + (2 * i * width + grids) // (2 * grids) for i in range(grids + 1)]
    else:
        with localcontext() as ctx:
            ctx.prec = 40
            ratio = Decimal(upper) / Decimal(lower)
            lines = [
                int((Decimal(lower) * ratio ** (Decimal(i) / grids)).to_integral_value())
                for i in range(grids + 1)
            ]
        lines[0], lines[-1] = lower, upper
    if any(b <= a for a, b in zip(lines, lines[1:])):
        raise GridError(f"{grids} grids between these bounds put lines closer than one tick")
    return lines


def nearest_line(lines: Sequence[int], price: int) -> int:
    """Index of the line nearest to price (the lower one on a tie)."""
    return min(range(len(lines)), key=lambda i: (abs(lines[i] - price), lines[i]))


def level_roles(lines: Sequence[int], mode: Mode, start: int) -> list[tuple[int, Side, int, int]]:
    """(index, entry side, entry tick, exit tick) for each level of the mode.

    long: BUY at every line but the top, exit one line up.
    short: SELL at every line but the bottom, exit one line down.
    neutral: the line nearest the start price stays empty; BUY below it (exit
    one up), SELL above it (exit one down) — N levels for N cells.
    """
    n = len(lines) - 1
    if mode is Mode.LONG:
        return [(i, Side.BUY, lines[i], lines[i + 1]) for i in range(n)]
    if mode is Mode.SHORT:
        return [(i, Side.SELL, lines[i], lines[i - 1]) for i in range(1, n + 1)]
    pivot = nearest_line(lines, start)
    roles = [(i, Side.BUY, lines[i], lines[i + 1]) for i in range(pivot)]
    roles += [(i, Side.SELL, lines[i], lines[i - 1]) for i in range(pivot + 1, n + 1)]
    return roles


def size_from_investment(
    rules: MarketRules, entries: Sequence[int], investment: Decimal, leverage: int
) -> int:
    """Equal size per level (steps) so that all entries filled use `investment` margin."""
    total_price = sum((rules.price(t) for t in entries), Decimal(0)) * rules.contract_size
    if total_price <= 0:
        return 0
    qty = investment * leverage / total_price
    return rules.qty_to_steps(qty)


def required_steps(rules: MarketRules, roles: Sequence[tuple[int, Side, int, int]]) -> int:
    """The smallest per-level size that meets min qty and min notional at every entry and exit."""
    return max(
        (max(rules.min_steps_at(entry), rules.min_steps_at(exit)) for _, _, entry, exit in roles),
        default=rules.min_steps,
    )


def min_investment(
    rules: MarketRules, roles: Sequence[tuple[int, Side, int, int]], leverage: int
) -> Decimal:
    """The smallest investment whose equal per-level size passes the venue minimums."""
    steps = required_steps(rules, roles)
    total_price = sum((rules.price(e) for _, _, e, _ in roles), Decimal(0)) * rules.contract_size
    exact = rules.qty(steps) * total_price / leverage
    return exact.quantize(Decimal("0.01"), rounding=ROUND_CEILING)


def build_levels(
    roles: Sequence[tuple[int, Side, int, int]], size: int
) -> list[LevelSpec]:
    """LevelSpecs with one size for every level."""
    return [LevelSpec(i, side, entry, exit, size) for i, side, entry, exit in roles]


def round_bounds(rules: MarketRules, lower: Decimal, upper: Decimal) -> tuple[int, int]:
    """Bounds in ticks, rounded inward so every line stays inside the range."""
    lo = int((lower / rules.tick).to_integral_value(rounding=ROUND_CEILING))
    hi = int((upper / rules.tick).to_integral_value(rounding=ROUND_FLOOR))
    return lo, hi
