"""Pre-trade checks of a grid plan: what it costs to open, where it stops, what can go wrong first.

Pure like the rest of `core/`: market rules, levels and prices in ticks in, Decimal
figures and plain-language findings out. `gridctl plan` prints the findings as
warnings; `gridctl validate` decides which of them refuse the file (see
`gridctl.config.pretrade`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Optional

from gridctl.core.grid import LevelSpec, Mode, Side
from gridctl.core.market import MarketRules
from gridctl.core.risk import RiskLimits

ERROR, WARNING = "error", "warning"
CENTS = Decimal("0.0001")  # fees and costs: the precision the plan's cycle profits use
HEADROOM = Decimal("0.8")  # above this share of the balance, the margin leaves little room


@dataclass(frozen=True)
class Finding:
    """One thing the plan should tell the trader before money moves.

    `severity` is ERROR when nothing sensible can be traded as configured (validate
    exits 2) and WARNING when it runs but probably not as intended. `field` names the
    strategy key the finding is about, so validate can point at its YAML line.
    """

    severity: str
    field: str
    message: str


@dataclass(frozen=True)
class OpeningOrder:
    """One market entry `initial_position` sends when the grid first runs."""

    level: int
    side: Side
    qty: Decimal
    level_price: Decimal  # the level's own entry price; the order itself is at market
    notional: Decimal  # at the market price it is sent at
    fee: Decimal  # taker fee on that notional


@dataclass(frozen=True)
class Opening:
    """What `initial_position` buys or sells at market, and what that costs."""

    price: Decimal  # where it is sent: the start price, or the trigger price when there is one
    orders: list[OpeningOrder]
    left_out: int  # levels it would hold but max_position leaves out

    @property
    def qty(self) -> Decimal:
        return sum((o.qty for o in self.orders), Decimal(0))

    @property
    def notional(self) -> Decimal:
        return sum((o.notional for o in self.orders), Decimal(0))

    @property
    def fee(self) -> Decimal:
        return sum((o.fee for o in self.orders), Decimal(0))


def opening(rules: MarketRules, mode: Mode, levels: list[LevelSpec], market: int,
            max_position: Optional[int]) -> Opening:
    """The market entries of `initial_position` at `market` (ticks), exactly as the engine
    chooses them (`Engine.opening_requests`): the levels the mode would hold at that price,
    nearest first, stopping at the first that no longer fits under max_position (steps).
    A neutral grid holds nothing at start, so it opens nothing."""
    if mode is Mode.NEUTRAL:
        return Opening(rules.price(market), [], 0)
    wanted = [lv for lv in levels if (lv.entry >= market if lv.side is Side.BUY else lv.entry <= market)]
    wanted.sort(key=lambda lv: abs(lv.entry - market))
    orders, exposure = [], 0
    for lv in wanted:
        if max_position is not None and exposure + lv.size > max_position:
            break
        exposure += lv.size
        notional = rules.notional(market, lv.size)
        orders.append(OpeningOrder(lv.index, lv.side, rules.qty(lv.size), rules.price(lv.entry),
                                   notional.quantize(CENTS), (notional * rules.taker_fee).quantize(CENTS)))
    return Opening(rules.price(market), orders, len(wanted) - len(orders))


def profit_per_grid_pct(rules: MarketRules, levels: list[LevelSpec]) -> tuple[Decimal, Decimal]:
    """(lowest, highest) net profit of one cycle as % of its entry notional, after maker fees
    on both legs: the "profit per grid" exchange grid bots show (unlevered, so it does not
    depend on leverage, unlike the plan's return on margin)."""
    pcts = []
    for lv in levels:
        entry_n, exit_n = rules.notional(lv.entry, lv.size), rules.notional(lv.exit, lv.size)
        profit = abs(exit_n - entry_n) - (entry_n + exit_n) * rules.maker_fee
        pcts.append(profit / entry_n * 100)
    q = Decimal("0.01")
    return min(pcts).quantize(q), max(pcts).quantize(q)


def liquidation_vs_stops(rules: MarketRules, limits: RiskLimits, liq_down: Optional[Decimal],
                         liq_up: Optional[Decimal]) -> list[Finding]:
    """A stop beyond the liquidation estimate never acts: the venue liquidates first."""
    out = []
    if liq_down is not None and limits.stop_below is not None and liq_down >= rules.price(limits.stop_below):
        out.append(Finding(WARNING, "leverage", f"estimated liquidation {liq_down} if every buy fills comes "
                           f"before the stop-loss {rules.price(limits.stop_below)}: a falling price liquidates "
                           f"the grid before the stop can close it; lower the leverage"))
    if liq_up is not None and limits.stop_above is not None and liq_up <= rules.price(limits.stop_above):
        out.append(Finding(WARNING, "leverage", f"estimated liquidation {liq_up} if every sell fills comes "
                           f"before the stop-loss {rules.price(limits.stop_above)}: a rising price liquidates "
                           f"the grid before the stop can close it; lower the leverage"))
    return out


def _past(rules: MarketRules, limits: RiskLimits, price: int) -> list[tuple[str, str, Decimal]]:
    """(what, 'at or below'/'at or above', its price) for every price stop `price` already triggers,
    with the same comparisons as `risk.price_stop`."""
    out = []
    for what, below, above in (("stop-loss", limits.stop_below, limits.stop_above),
                               ("take-profit", limits.take_below, limits.take_above)):
        if below is not None and price <= below:
            out.append((what, "at or below", rules.price(below)))
        if above is not None and price >= above:
            out.append((what, "at or above", rules.price(above)))
    return out


def start_vs_stops(rules: MarketRules, limits: RiskLimits, start: int, trigger: Optional[int]) -> list[Finding]:
    """The start price (or, with a trigger, the trigger price: a waiting grid checks no stops)
    against the price stops, and a trigger the market has already reached."""
    out = []
    if trigger is None:
        for what, where, price in _past(rules, limits, start):
            out.append(Finding(ERROR, "risk", f"the start price {rules.price(start)} is already {where} the "
                               f"{what} {price}: the grid would stop at once"))
        return out
    if trigger == start:
        out.append(Finding(WARNING, "trigger_price", f"trigger_price {rules.price(trigger)} is the start price: "
                           f"it is already reached and the grid starts at once, as without a trigger"))
    for what, where, price in _past(rules, limits, trigger):
        out.append(Finding(ERROR, "trigger_price", f"trigger_price {rules.price(trigger)} is {where} the "
                           f"{what} {price}: the grid would stop as soon as the trigger starts it"))
    return out


def margin_vs_balance(margin: Decimal, fees: Decimal, balance: Decimal, account: str, quote: str,
                      size_field: str) -> list[Finding]:
    """The margin the grid needs (plus the taker fees of its opening orders) against the balance.

    More than the balance is an ERROR: the venue rejects every order past it for insufficient
    margin, so the grid cannot even be placed as planned. More than HEADROOM of it is a
    WARNING: the grid is placed, but fees, funding and unrealized losses eat the rest and
    new orders start to be rejected.
    """
    need = margin + fees
    paid = f"{margin} {quote} of margin" + (f" and {fees} {quote} of opening fees" if fees else "")
    if need > balance:
        return [Finding(ERROR, size_field, f"the grid needs {paid}, more than account '{account}''s balance "
                        f"of {balance} {quote}: orders past the balance would be rejected for insufficient "
                        f"margin; lower {size_field} or raise accounts.{account}.balance")]
    if need > balance * HEADROOM:
        share = (need / balance * 100).quantize(Decimal(1))
        return [Finding(WARNING, size_field, f"the grid needs {paid}, {share} % of account '{account}''s "
                        f"balance of {balance} {quote}: little is left for fees, funding and losses before "
                        f"orders are rejected for insufficient margin")]
    return []
