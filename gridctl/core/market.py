"""Market rules and the tick/step integer grid.

Inside the core a price is an int number of ticks and a quantity an int number
of lot steps; Decimal appears only at the edges (config, exchange, output).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal


@dataclass(frozen=True)
class MarketRules:
    """The trading rules of one market, as the venue publishes them."""

    symbol: str
    base: str
    quote: str
    tick: Decimal
    step: Decimal
    min_qty: Decimal
    min_notional: Decimal
    contract_size: Decimal = Decimal(1)
    max_leverage: int = 20
    maintenance_margin_rate: Decimal = Decimal("0.005")
    maker_fee: Decimal = Decimal("0.0002")
    taker_fee: Decimal = Decimal("0.0005")
    venue_id: str = ""

    # -- prices -------------------------------------------------------------
    def price_to_ticks(self, price: Decimal, rounding: str = "nearest") -> int:
        """Price → ticks. rounding: 'down', 'up' or 'nearest'."""
        mode = {"down": ROUND_FLOOR, "up": ROUND_CEILING, "nearest": ROUND_HALF_EVEN}[rounding]
        return int((Decimal(price) / self.tick).to_integral_value(rounding=mode))

    def is_on_tick(self, price: Decimal) -> bool:
        """True when the price is an exact multiple of the tick."""
        return Decimal(price) % self.tick == 0

    def price(self, ticks: int) -> Decimal:
        """Ticks → price, normalised to the tick's number of decimals."""
        return (self.tick * ticks).quantize(self.tick)

    # -- quantities ---------------------------------------------------------
    def qty_to_steps(self, qty: Decimal) -> int:
        """Quantity → lot steps, rounded down (never more than asked)."""
        return int((Decimal(qty) / self.step).to_integral_value(rounding=ROUND_FLOOR))

    def qty(self, steps: int) -> Decimal:
        """Steps → quantity in base units (contracts × contract size)."""
        return (self.step * steps).quantize(self.step)

    @property
    def min_steps(self) -> int:
        """The smallest order size in steps."""
        return max(1, int((self.min_qty / self.step).to_integral_value(rounding=ROUND_CEILING)))

    def notional(self, ticks: int, steps: int) -> Decimal:
        """Quote value of steps at ticks."""
        return self.price(ticks) * self.qty(steps) * self.contract_size

    def min_steps_at(self, ticks: int) -> int:
        """Smallest size in steps that meets both min qty and min notional at a price."""
        unit = self.price(ticks) * self.step * self.contract_size
        by_notional = int((self.min_notional / unit).to_integral_value(rounding=ROUND_CEILING)) if unit > 0 else 0
        return max(self.min_steps, by_notional)
