"""The simulated futures account: position legs, wallet balance, PnL, margin, liquidation.

Cross margin, linear (quote-settled) contracts. A one-way account has one leg
("both", signed); a hedge account has a "long" leg (qty >= 0) and a "short" leg
(qty <= 0). Quantities are int steps, prices int ticks, money Decimal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Optional

from gridctl.core.fills import Fill
from gridctl.core.grid import Side
from gridctl.core.market import MarketRules

ZERO = Decimal(0)


@dataclass
class Leg:
    """One position: signed steps and the weighted average entry price (quote per base unit)."""

    qty: int = 0
    entry: Decimal = ZERO


@dataclass
class LiquidationEvent:
    """A forced close: at `mark` (ticks), of the position held before it (signed net steps)."""

    ts: int
    mark: int
    position: int
    balance: Decimal
    fills: list[Fill] = field(default_factory=list)


class Account:
    """Wallet and positions; applies fills and funding, answers equity/margin/liquidation questions."""

    def __init__(self, rules: MarketRules, balance: Decimal, hedge: bool) -> None:
        self.rules = rules
        self.hedge = hedge
        self.legs: dict[str, Leg] = {"long": Leg(), "short": Leg()} if hedge else {"both": Leg()}
        self.balance = Decimal(balance)  # wallet: initial + realized - fees + funding
        self.realized = ZERO
        self.fees = ZERO
        self.funding = ZERO
        self._liq: Optional[tuple[Optional[int], Optional[int]]] = None  # cached mark-tick bounds

    # -- positions -----------------------------------------------------------
    @property
    def net(self) -> int:
        """Net signed position in steps (long - short in hedge mode)."""
        return sum(leg.qty for leg in self.legs.values())

    def leg_key(self, side: Side, position_side: Optional[str]) -> str:
        """The leg an order works on ("both" in one-way mode)."""
        return position_side if self.hedge else "both"  # type: ignore[return-value]

    def closable(self, key: str, side: Side) -> int:
        """Steps a `side` order can take off leg `key` (0 when it would not reduce it)."""
        q = self.legs[key].qty
        return abs(q) if q * side.sign < 0 else 0

    def opens(self, key: str, side: Side) -> bool:
        """True when a `side` order on a hedge leg adds to that leg (BUY long, SELL short)."""
        return (key == "long") == (side is Side.BUY)

    def apply_fill(self, key: str, side: Side, price: int, qty: int, fee: Decimal) -> Decimal:
        """Book a fill on leg `key`; returns the realized PnL it produced (before the fee)."""
        leg = self.legs[key]
        px = self.rules.price(price)
        unit = self.rules.step * self.rules.contract_size  # base units per step
        delta = side.sign * qty
        realized = ZERO
        if leg.qty == 0 or (leg.qty > 0) == (delta > 0):
            old = abs(leg.qty)
            leg.entry = (leg.entry * old + px * qty) / (old + qty)
            leg.qty += delta
        else:
            close = min(qty, abs(leg.qty))
            direction = 1 if leg.qty > 0 else -1
            realized = (px - leg.entry) * close * unit * direction
            leg.qty += side.sign * close
            rest = qty - close
            if rest:  # one-way flip: the rest opens at the fill price
                leg.qty = side.sign * rest
                leg.entry = px
            elif leg.qty == 0:
                leg.entry = ZERO
        self.realized += realized
        self.fees += fee
        self.balance += realized - fee
        self._liq = None
        return realized

    def apply_funding(self, amount: Decimal) -> None:
        """Credit (amount > 0) or debit a funding payment."""
        self.funding += amount
        self.balance += amount
        self._liq = None

    # -- valuation -------------------------------------------------------------
    def unrealized(self, mark: int) -> Decimal:
        """Unrealized PnL of all legs at the mark (ticks)."""
        px = self.rules.price(mark)
        unit = self.rules.step * self.rules.contract_size
        return sum(((px - leg.entry) * leg.qty * unit for leg in self.legs.values() if leg.qty), ZERO)

    def equity(self, mark: int) -> Decimal:
        """Wallet balance plus unrealized PnL at the mark."""
        return self.balance + self.unrealized(mark)

    def maintenance(self, mark: int) -> Decimal:
        """Maintenance margin: |position| x mark x contract size x maintenance rate, all legs."""
        gross = sum(abs(leg.qty) for leg in self.legs.values())
        return self.rules.notional(mark, gross) * self.rules.maintenance_margin_rate

    def initial_margin(self, mark: int, open_notional: dict, leverage: int) -> Decimal:
        """Initial margin of the position (at the mark) and of the resting orders that can add
        exposure (`open_notional[(leg, side)]`, at their prices), at `leverage`.

        One-way: the worse of "every buy fills" and "every sell fills", i.e.
        max(|P + B|, |P - S|) / leverage with P the signed position notional.
        Hedge: each leg plus the orders that add to it, summed.
        """
        n = self.rules.notional
        if self.hedge:
            total = (n(mark, self.legs["long"].qty) + open_notional.get(("long", Side.BUY), ZERO)
                     + n(mark, -self.legs["short"].qty) + open_notional.get(("short", Side.SELL), ZERO))
        else:
            pos = n(mark, self.net)
            total = max(abs(pos + open_notional.get(("both", Side.BUY), ZERO)),
                        abs(pos - open_notional.get(("both", Side.SELL), ZERO)))
        return total / leverage

    # -- liquidation -------------------------------------------------------------
    def _liq_line(self) -> tuple[Decimal, Decimal]:
        """(a, c) with equity(M) - maintenance(M) == c + a*M for a mark M in quote units.

        With L, S the long and short sizes in base units and El, Es their entries:
        equity - mm = bal + (M-El)L + (Es-M)S - mmr*M*(L+S).
        """
        unit = self.rules.step * self.rules.contract_size
        mmr = self.rules.maintenance_margin_rate
        a = ZERO
        c = self.balance
        for leg in self.legs.values():
            if leg.qty > 0:
                size = leg.qty * unit
                a += size * (1 - mmr)
                c -= leg.entry * size
            elif leg.qty < 0:
                size = -leg.qty * unit
                a -= size * (1 + mmr)
                c += leg.entry * size
        return a, c

    def liquidatable(self, mark: int) -> bool:
        """True when equity at the mark is at or below the maintenance margin (and not flat)."""
        lo, hi = self.liquidation_bounds()  # cached; computed from the exact condition
        return (lo is not None and mark <= lo) or (hi is not None and mark >= hi)

    def liquidation_bounds(self) -> tuple[Optional[int], Optional[int]]:
        """(lo, hi) in mark ticks: liquidated when mark <= lo or mark >= hi; None = never.

        Exact on the tick grid: the estimate from the closed form is corrected by
        evaluating the same linear condition liquidatable() uses.
        """
        if self._liq is not None:
            return self._liq
        lo = hi = None
        if any(leg.qty for leg in self.legs.values()):
            a, c = self._liq_line()
            tick = self.rules.tick

            def bad(t: int) -> bool:
                return c + a * tick * t <= 0

            if a > 0:  # equity falls as the mark falls: a lower bound
                t = int((-c / a / tick).to_integral_value(rounding=ROUND_FLOOR))
                while bad(t + 1):
                    t += 1
                while not bad(t):
                    t -= 1
                lo = t
            elif a < 0:  # equity falls as the mark rises: an upper bound
                t = int((-c / a / tick).to_integral_value(rounding=ROUND_CEILING))
                while bad(t - 1):
                    t -= 1
                while not bad(t):
                    t += 1
                hi = t
            elif c <= 0:  # price-independent and already under water
                lo, hi = 2**62, -(2**62)
        self._liq = (lo, hi)
        return self._liq

    # -- persistence ---------------------------------------------------------------
    def to_dict(self) -> dict:
        """JSON-serialisable snapshot (decimals as strings)."""
        return {
            "hedge": self.hedge,
            "legs": {k: {"qty": v.qty, "entry": str(v.entry)} for k, v in self.legs.items()},
            "balance": str(self.balance), "realized": str(self.realized),
            "fees": str(self.fees), "funding": str(self.funding),
        }

    @classmethod
    def from_dict(cls, rules: MarketRules, d: dict) -> "Account":
        """Inverse of to_dict()."""
        acc = cls(rules, Decimal(d["balance"]), bool(d["hedge"]))
        for k, v in d["legs"].items():
            acc.legs[k] = Leg(int(v["qty"]), Decimal(v["entry"]))
        acc.realized = Decimal(d["realized"])
        acc.fees = Decimal(d["fees"])
        acc.funding = Decimal(d["funding"])
        return acc
