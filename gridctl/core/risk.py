"""Risk decisions: when a grid stops, and the price band inside which nothing triggers."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Optional

from gridctl.core.grid import Mode

NEVER_LO = -(2**62)
NEVER_HI = 2**62


@dataclass(frozen=True)
class RiskLimits:
    """Stop conditions in market units: prices in ticks, money in quote."""

    stop_below: Optional[int] = None  # stop when last price <= this
    stop_above: Optional[int] = None  # stop when last price >= this
    take_below: Optional[int] = None  # take profit when last <= this
    take_above: Optional[int] = None  # take profit when last >= this
    max_loss: Optional[Decimal] = None  # stop when total PnL <= -max_loss
    take_profit: Optional[Decimal] = None  # stop when total PnL >= take_profit
    max_level_loss: Optional[Decimal] = None  # stop when one level's open loss <= -this


def price_limits(mode: Mode, lower: int, upper: int, stop_loss_pct: Optional[Decimal],
                 stop_loss_price: Optional[int], take_profit_pct: Optional[Decimal],
                 take_profit_price: Optional[int]) -> dict[str, Optional[int]]:
    """The price triggers of RiskLimits from the config's %-beyond-range and price fields.

    A long grid loses below its range, a short one above; a neutral grid on both sides.
    """
    out: dict[str, Optional[int]] = {"stop_below": None, "stop_above": None,
                                     "take_below": None, "take_above": None}
    if stop_loss_pct is not None:
        below = int((lower * (1 - stop_loss_pct / 100)).to_integral_value(rounding=ROUND_FLOOR))
        above = int((upper * (1 + stop_loss_pct / 100)).to_integral_value(rounding=ROUND_CEILING))
        if mode is not Mode.SHORT:
            out["stop_below"] = below
        if mode is not Mode.LONG:
            out["stop_above"] = above
    if stop_loss_price is not None:
        if stop_loss_price <= lower:
            out["stop_below"] = max(out["stop_below"] or stop_loss_price, stop_loss_price)
        else:
            out["stop_above"] = min(out["stop_above"] or stop_loss_price, stop_loss_price)
    if take_profit_pct is not None:
        if mode is Mode.LONG:
            out["take_above"] = int((upper * (1 + take_profit_pct / 100)).to_integral_value(rounding=ROUND_CEILING))
        elif mode is Mode.SHORT:
            out["take_below"] = int((lower * (1 - take_profit_pct / 100)).to_integral_value(rounding=ROUND_FLOOR))
    if take_profit_price is not None:
        if take_profit_price >= upper:
            out["take_above"] = take_profit_price
        else:
            out["take_below"] = take_profit_price
    return out


def price_stop(limits: RiskLimits, last: int) -> Optional[str]:
    """The stop reason a last price triggers, if any."""
    if limits.stop_below is not None and last <= limits.stop_below:
        return "stop_loss"
    if limits.stop_above is not None and last >= limits.stop_above:
        return "stop_loss"
    if limits.take_below is not None and last <= limits.take_below:
        return "take_profit"
    if limits.take_above is not None and last >= limits.take_above:
        return "take_profit"
    return None


def money_stop(limits: RiskLimits, total_pnl: Decimal, worst_level_pnl: Decimal) -> Optional[str]:
    """The stop reason the PnL triggers, if any."""
    if limits.max_loss is not None and total_pnl <= -limits.max_loss:
        return "max_loss"
    if limits.take_profit is not None and total_pnl >= limits.take_profit:
        return "take_profit"
    if limits.max_level_loss is not None and worst_level_pnl <= -limits.max_level_loss:
        return "max_level_loss"
    return None


def price_band(limits: RiskLimits) -> tuple[int, int]:
    """(lo, hi) of the price triggers: strictly inside, no price trigger fires."""
    lo = max((x for x in (limits.stop_below, limits.take_below) if x is not None), default=NEVER_LO)
    hi = min((x for x in (limits.stop_above, limits.take_above) if x is not None), default=NEVER_HI)
    return lo, hi


def pnl_band(limit_loss: Optional[Decimal], limit_gain: Optional[Decimal], pnl_at_zero: Decimal,
             slope: Decimal, tick_value: Decimal) -> tuple[int, int]:
    """Prices (ticks) where a PnL linear in price, pnl(p) = pnl_at_zero + slope·p·tick_value,
    reaches -limit_loss or +limit_gain: the band of the money stops for a fixed position."""
    lo, hi = NEVER_LO, NEVER_HI
    if slope == 0:
        return lo, hi
    for target, is_loss in ((limit_loss, True), (limit_gain, False)):
        if target is None:
            continue
        goal = -target if is_loss else target
        p = (goal - pnl_at_zero) / (slope * tick_value)
        # pnl falls with price for a long (slope > 0) loss, rises for a gain
        if (slope > 0) == is_loss:
            lo = max(lo, int(p.to_integral_value(rounding=ROUND_FLOOR)))
        else:
            hi = min(hi, int(p.to_integral_value(rounding=ROUND_CEILING)))
    return lo, hi
