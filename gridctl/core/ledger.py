"""Fill-driven accounting: position, cost basis, realized split, fees, funding, trades.

Each level is its own lot (its held steps and their cost), so an exit realizes
exactly against its own entries: that is grid profit. Fills that belong to no
level (close, liquidation, foreign) realize against the lots: other realized.
realized = grid_profit + other_realized and
total = realized - fees + funding + unrealized hold by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Optional

from gridctl.core.grid import Side
from gridctl.core.market import MarketRules

ZERO = Decimal(0)
UNASSIGNED = -1  # the lot of fills that no level explains


@dataclass
class Lot:
    """Steps one level holds (signed by its entry side) and what they cost (quote)."""

    sign: int = 0
    qty: int = 0
    cost: Decimal = ZERO
    entry_ts: int = 0
    entry_fees: Decimal = ZERO
    exit_fees: Decimal = ZERO
    exit_value: Decimal = ZERO
    exit_qty: int = 0
    cycle_qty: int = 0
    cycle_cost: Decimal = ZERO


@dataclass(frozen=True)
class Trade:
    """A completed level cycle: entry fills paired with the exit fills that closed them."""

    level: int
    side: Side  # entry side
    entry_ts: int
    exit_ts: int
    entry_price: Decimal  # average
    exit_price: Decimal  # average
    qty: Decimal
    profit: Decimal  # gross
    fees: Decimal

    @property
    def net_profit(self) -> Decimal:
        return self.profit - self.fees

    @property
    def hold_ms(self) -> int:
        return self.exit_ts - self.entry_ts


@dataclass
class Ledger:
    """Accounting of one strategy's virtual position."""

    rules: MarketRules
    lots: dict[int, Lot] = field(default_factory=dict)
    grid_profit: Decimal = ZERO
    other_realized: Decimal = ZERO
    fees: Decimal = ZERO
    funding: Decimal = ZERO
    fills: int = 0

    # -- reading -------------------------------------------------------------
    @property
    def realized(self) -> Decimal:
        return self.grid_profit + self.other_realized

    @property
    def position(self) -> int:
        """Signed steps of the strategy's net position."""
        return sum(lot.sign * lot.qty for lot in self.lots.values())

    def entry_price(self) -> Optional[Decimal]:
        """Average entry price of the net position (None when flat)."""
        pos = self.position
        if pos == 0:
            return None
        basis = sum((lot.sign * lot.cost for lot in self.lots.values()), ZERO)
        return basis / (self.rules.qty(pos) * self.rules.contract_size)

    def unrealized(self, mark: int) -> Decimal:
        """PnL of the open lots at the mark price (ticks)."""
        px = self.rules.price(mark) * self.rules.contract_size * self.rules.step
        return sum((lot.sign * (px * lot.qty - lot.cost) for lot in self.lots.values() if lot.qty), ZERO)

    def total_pnl(self, mark: int) -> Decimal:
        return self.realized - self.fees + self.funding + self.unrealized(mark)

    # -- writing -------------------------------------------------------------
    def _value(self, price: int, qty: int) -> Decimal:
        return self.rules.price(price) * self.rules.qty(qty) * self.rules.contract_size

    def entry(self, level: int, side: Side, ts: int, price: int, qty: int, fee: Decimal) -> None:
        """An entry fill adds to the level's lot."""
        lot = self.lots.setdefault(level, Lot())
        if lot.qty == 0:
            lot.sign, lot.entry_ts = side.sign, ts
            lot.entry_fees = lot.exit_fees = lot.exit_value = lot.cycle_cost = ZERO
            lot.exit_qty = lot.cycle_qty = 0
        value = self._value(price, qty)
        lot.qty += qty
        lot.cost += value
        lot.cycle_qty += qty
        lot.cycle_cost += value
        lot.entry_fees += fee
        self.fees += fee
        self.fills += 1

    def _take(self, lot: Lot, price: int, qty: int) -> Decimal:
        """Remove qty from a lot at price; the realized PnL."""
        basis = lot.cost if qty == lot.qty else lot.cost * qty / lot.qty
        lot.cost -= basis
        lot.qty -= qty
        return lot.sign * (self._value(price, qty) - basis)

    def exit(self, level: int, ts: int, price: int, qty: int, fee: Decimal) -> Optional[Trade]:
        """An exit fill closes (part of) its level's lot; returns the Trade when the cycle completes."""
        lot = self.lots.get(level)
        self.fees += fee
        self.fills += 1
        if lot is None or lot.qty == 0:
            return None
        take = min(qty, lot.qty)
        self.grid_profit += self._take(lot, price, take)
        lot.exit_fees += fee
        lot.exit_value += self._value(price, take)
        lot.exit_qty += take
        if take < qty:  # more than the level held: the rest is unexplained exposure
            self._unassigned(-lot.sign, price, qty - take)
        if lot.qty:
            return None
        q = self.rules.qty(lot.cycle_qty) * self.rules.contract_size
        trade = Trade(level, Side.BUY if lot.sign > 0 else Side.SELL, lot.entry_ts, ts,
                      lot.cycle_cost / q, lot.exit_value / q, self.rules.qty(lot.cycle_qty),
                      lot.sign * (lot.exit_value - lot.cycle_cost), lot.entry_fees + lot.exit_fees)
        return trade

    def _unassigned(self, sign: int, price: int, qty: int) -> None:
        lot = self.lots.setdefault(UNASSIGNED, Lot())
        if lot.qty == 0:
            lot.sign = sign
        if lot.sign == sign:
            lot.qty += qty
            lot.cost += self._value(price, qty)
        else:
            take = min(qty, lot.qty)
            self.other_realized += self._take(lot, price, take)
            if qty > take:
                lot.sign, lot.qty, lot.cost = sign, qty - take, self._value(price, qty - take)

    def assign(self, sign: int, price: int, qty: int) -> None:
        """A quantity `gridctl reconcile --assign` gave this strategy (no fill, no fee): into
        the lot no level explains, at `price` (gridctl.core.virtual)."""
        self._unassigned(sign, price, qty)

    def close(self, side: Side, price: int, qty: int, fee: Decimal) -> None:
        """A fill that belongs to no level (close, liquidation): realize lots at its price.

        Lots opposing the fill shrink first (level order); once the net position is
        flat, long and short lots left over offset each other and are realized at
        the same price, which is cash-exact since their price terms cancel.
        """
        self.fees += fee
        self.fills += 1
        left = qty
        for key in sorted(self.lots):
            lot = self.lots[key]
            if left and lot.qty and lot.sign == -side.sign:
                take = min(left, lot.qty)
                self.other_realized += self._take(lot, price, take)
                left -= take
        if left:
            self._unassigned(side.sign, price, left)
        if self.position == 0:
            for lot in self.lots.values():
                if lot.qty:
                    self.other_realized += self._take(lot, price, lot.qty)

    def adopt_lot(self, level: int, sign: int, ts: int, price: int, qty: int) -> None:
        """A position taken over from the exchange, booked as the level's lot at `price`
        (its entry line); no fill and no fee."""
        lot = self.lots.setdefault(level, Lot())
        value = self._value(price, qty)
        lot.sign, lot.entry_ts, lot.qty, lot.cost = sign, ts, qty, value
        lot.entry_fees = lot.exit_fees = lot.exit_value = ZERO
        lot.exit_qty, lot.cycle_qty, lot.cycle_cost = 0, qty, value

    def adopt_unpaired(self, sign: int, qty: int, entry: Decimal) -> None:
        """The part of a taken-over position that fits no level: one lot at the
        exchange's average entry price, realized only by a close."""
        lot = self.lots.setdefault(UNASSIGNED, Lot())
        value = entry * self.rules.qty(qty) * self.rules.contract_size
        if lot.qty == 0:
            lot.sign, lot.qty, lot.cost = sign, qty, value
        elif lot.sign == sign:
            lot.qty += qty
            lot.cost += value

    def add_funding(self, amount: Decimal) -> None:
        """A funding payment: > 0 received, < 0 paid."""
        self.funding += amount

    def held(self, level: int) -> int:
        lot = self.lots.get(level)
        return lot.qty if lot else 0
