"""The grid plan: levels, sizes, per-cycle profit, margin and liquidation estimate.

Pure: takes market rules, grid parameters and a start price in ticks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Optional

from gridctl.core.grid import (
    GridError, LevelSpec, Mode, Side, Spacing, build_levels, grid_lines, level_roles,
    min_investment, required_steps, size_from_investment,
)
from gridctl.core.market import MarketRules
from gridctl.core.plan_checks import (
    Finding, Opening, WARNING, liquidation_vs_stops, opening, profit_per_grid_pct, start_vs_stops,
)
from gridctl.core.risk import RiskLimits


@dataclass(frozen=True)
class GridParams:
    """A strategy's grid, in the market's integer units."""

    mode: Mode
    spacing: Spacing
    lower: int  # ticks
    upper: int  # ticks
    grids: int
    leverage: int
    investment: Optional[Decimal] = None
    amount: Optional[int] = None  # steps per level


class SizeError(GridError):
    """Per-level size below the venue minimum; carries the minimum that works."""

    def __init__(self, message: str, minimum: Decimal, per_level: Decimal, required: Decimal):
        super().__init__(message)
        self.minimum = minimum
        self.per_level = per_level
        self.required = required


def bounds_from_pct(rules: MarketRules, start: int, pct: Decimal) -> tuple[int, int]:
    """lower/upper ticks `pct` % around the start price, rounded inward."""
    span = Decimal(start) * pct / 100
    lo = int((Decimal(start) - span).to_integral_value(rounding=ROUND_CEILING))
    hi = int((Decimal(start) + span).to_integral_value(rounding=ROUND_FLOOR))
    return lo, hi


def build_grid(rules: MarketRules, p: GridParams, start: int) -> list[LevelSpec]:
    """The levels with their sizes; raises GridError / SizeError when impossible."""
    lines = grid_lines(p.lower, p.upper, p.grids, p.spacing)
    roles = level_roles(lines, p.mode, start)
    need = required_steps(rules, roles)
    if p.amount is not None:
        size = p.amount
        if size < need:
            raise SizeError("amount below the market minimum", Decimal(0), rules.qty(size), rules.qty(need))
    else:
        assert p.investment is not None
        size = size_from_investment(rules, [r[2] for r in roles], p.investment, p.leverage)
        if size < need:
            minimum = min_investment(rules, roles, p.leverage)
            raise SizeError("investment too small", minimum, rules.qty(size), rules.qty(need))
    return build_levels(roles, size)


@dataclass(frozen=True)
class PlanLevel:
    index: int
    side: Side
    price: Decimal
    exit_price: Decimal
    qty: Decimal
    notional: Decimal
    cycle_profit: Decimal
    cycle_return_pct: Decimal
    rests_at_start: bool


@dataclass
class Plan:
    """What the grid will do, for `gridctl plan`."""

    start_price: Decimal
    levels: list[PlanLevel]
    orders_at_start: int
    margin: Decimal
    liquidation_down: Optional[Decimal]
    liquidation_up: Optional[Decimal]
    warnings: list[str] = field(default_factory=list)
    opening: Optional[Opening] = None  # initial_position's market orders (None: not configured)
    limits: RiskLimits = field(default_factory=RiskLimits)  # the price stops, in ticks
    maker_fee: Decimal = Decimal(0)
    taker_fee: Decimal = Decimal(0)
    profit_per_grid: tuple[Decimal, Decimal] = (Decimal(0), Decimal(0))  # % after fees, lowest..highest
    findings: list[Finding] = field(default_factory=list)  # the checks behind warnings, with severity

    @property
    def liquidation_price(self) -> Optional[Decimal]:
        """The liquidation estimate that applies (downside for a long book, upside for short)."""
        return self.liquidation_down if self.liquidation_down is not None else self.liquidation_up

    @property
    def has_buys(self) -> bool:
        """A buy side exists, so "no downside liquidation" means none, not "no buys"."""
        return any(lv.side is Side.BUY for lv in self.levels)

    @property
    def has_sells(self) -> bool:
        return any(lv.side is Side.SELL for lv in self.levels)

    def add(self, findings: list[Finding]) -> None:
        """Record findings; each one is also a warning line of the plan."""
        self.findings.extend(findings)
        self.warnings.extend(f.message for f in findings)


def _cycle(rules: MarketRules, lv: LevelSpec, leverage: int) -> tuple[Decimal, Decimal, Decimal]:
    entry_n = rules.notional(lv.entry, lv.size)
    exit_n = rules.notional(lv.exit, lv.size)
    fees = (entry_n + exit_n) * rules.maker_fee
    profit = abs(exit_n - entry_n) - fees
    margin = entry_n / leverage
    ret = (profit / margin * 100) if margin else Decimal(0)
    return profit, fees, ret


def liquidation_price(rules: MarketRules, side: Side, fills: list[LevelSpec], collateral: Decimal) -> Optional[Decimal]:
    """Isolated-style estimate: every entry of `side` filled, `collateral` as margin.

    long:  P = (avg·Q − M) / (Q·(1 − mmr));  short: P = (avg·Q + M) / (Q·(1 + mmr)).
    None when no entry of that side exists, or when P is not above 0: a long whose
    collateral covers its whole cost cannot be liquidated (shown as "none", never 0.00).
    """
    q = sum((rules.qty(lv.size) * rules.contract_size for lv in fills), Decimal(0))
    if q == 0:
        return None
    cost = sum((rules.notional(lv.entry, lv.size) for lv in fills), Decimal(0))
    mmr = rules.maintenance_margin_rate
    if side is Side.BUY:
        p = (cost - collateral) / (q * (1 - mmr))
    else:
        p = (cost + collateral) / (q * (1 + mmr))
    if p <= 0:
        return None
    liq = p.quantize(rules.tick)
    return liq if liq > 0 else None


def make_plan(rules: MarketRules, p: GridParams, start: int, post_only: bool = True,
              initial_position: bool = False, max_position: Optional[int] = None,
              limits: Optional[RiskLimits] = None, trigger: Optional[int] = None) -> Plan:
    """The plan of a grid started at `start` (ticks).

    `max_position` (steps) caps what initial_position opens, `limits` are the price stops
    (ticks) the liquidation estimate and the start price are checked against, and with a
    `trigger` (ticks) the opening orders go at the trigger price, as the engine sends them.
    """
    limits = limits or RiskLimits()
    levels = build_grid(rules, p, start)
    rows, warnings = [], []
    cents = Decimal("0.0001")
    for lv in levels:
        profit, fees, ret = _cycle(rules, lv, p.leverage)
        rests = lv.entry < start if lv.side is Side.BUY else lv.entry > start
        rows.append(PlanLevel(lv.index, lv.side, rules.price(lv.entry), rules.price(lv.exit),
                              rules.qty(lv.size), rules.notional(lv.entry, lv.size).quantize(cents),
                              profit.quantize(cents), ret.quantize(Decimal("0.001")), rests))
        if profit < fees:
            warnings.append(f"level {lv.index}: cycle profit {profit.quantize(cents)} is below its fees "
                            f"{fees.quantize(cents)}; widen the spacing or use fewer grids")
    gaps = [abs(lv.exit - lv.entry) for lv in levels]
    if gaps and min(gaps) < 2:
        warnings.append("spacing under 2 ticks: the grid is as fine as the market allows")
    buys = [lv for lv in levels if lv.side is Side.BUY]
    sells = [lv for lv in levels if lv.side is Side.SELL]
    buy_n = sum((rules.notional(lv.entry, lv.size) for lv in buys), Decimal(0))
    sell_n = sum((rules.notional(lv.entry, lv.size) for lv in sells), Decimal(0))
    margin = (max(buy_n, sell_n) / p.leverage).quantize(Decimal("0.01"), rounding=ROUND_CEILING)
    collateral = p.investment if p.investment is not None else margin
    resting = sum(1 for r in rows if r.rests_at_start)
    opened = opening(rules, p.mode, levels, start if trigger is None else trigger, max_position) \
        if initial_position else None
    held_at_start = len(opened.orders) if opened is not None else 0  # each bought level gets its exit
    if start < p.lower or start > p.upper:
        warnings.append("the start price is outside the range: part of the grid cannot work until price returns")
    liq_down = liquidation_price(rules, Side.BUY, buys, collateral)
    liq_up = liquidation_price(rules, Side.SELL, sells, collateral)
    if liq_down is not None and liq_down >= rules.price(min(lv.entry for lv in buys)):
        warnings.append(f"estimated liquidation {liq_down} is at or above the lowest buy "
                        f"{rules.price(min(lv.entry for lv in buys))}: the grid would be liquidated before "
                        f"every entry fills; lower the leverage or add margin")
    if liq_up is not None and liq_up <= rules.price(max(lv.entry for lv in sells)):
        warnings.append(f"estimated liquidation {liq_up} is at or below the highest sell "
                        f"{rules.price(max(lv.entry for lv in sells))}: the grid would be liquidated before "
                        f"every entry fills; lower the leverage or add margin")
    plan = Plan(
        start_price=rules.price(start),
        levels=rows,
        orders_at_start=resting + held_at_start,
        margin=margin,
        liquidation_down=liq_down,
        liquidation_up=liq_up,
        warnings=warnings,
        opening=opened,
        limits=limits,
        maker_fee=rules.maker_fee,
        taker_fee=rules.taker_fee,
        profit_per_grid=profit_per_grid_pct(rules, levels),
        findings=[Finding(WARNING, "", w) for w in warnings],
    )
    plan.add(liquidation_vs_stops(rules, limits, liq_down, liq_up))
    plan.add(start_vs_stops(rules, limits, start, trigger))
    return plan
