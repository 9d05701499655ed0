"""What the local venue reports about an account: position legs and the wallet (Venue mixin)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Optional

from gridctl.venue.account import VenueAccount

ZERO = Decimal(0)


@dataclass(frozen=True)
class PositionView:
    """One position leg as a venue reports it. qty signed (short < 0)."""

    symbol: str
    position_side: str  # "both" | "long" | "short"
    qty: Decimal
    entry: Decimal
    mark: Decimal
    unrealized: Decimal
    liquidation: Decimal  # 0 when none
    notional: Decimal  # signed
    maint_margin: Decimal
    initial_margin: Decimal
    leverage: int
    margin_type: str
    updated_ms: int


@dataclass(frozen=True)
class BalanceView:
    """The account's wallet as a venue reports it (one asset, cross margin)."""

    asset: str
    wallet: Decimal
    unrealized: Decimal
    margin_balance: Decimal  # wallet + unrealized
    initial_margin: Decimal  # positions and open orders
    position_margin: Decimal
    order_margin: Decimal
    maint_margin: Decimal
    available: Decimal  # margin balance - initial margin (>= 0)
    updated_ms: int

    @property
    def margin_ratio(self) -> Decimal:
        return self.maint_margin / self.margin_balance if self.margin_balance > 0 else Decimal(0)


class VenueViews:
    """Venue.positions() and Venue.balance() (mixed into gridctl.venue.core.Venue)."""

    def positions(self, acc: VenueAccount, symbol: Optional[str] = None) -> list[PositionView]:
        """Every leg of every market (flat ones too): one "both" row, or "long" and "short"."""
        out = []
        for sym, sim in acc.sims.items():
            if (symbol is not None and sym != self.market(symbol).symbol) or sim._price is None:
                continue
            rules = sim.rules
            mark = sim.mark
            with acc.cross(sym, maintenance=True):
                lo, hi = sim.liquidation_price()
            for key, leg in sim.account.legs.items():
                unit = rules.step * rules.contract_size
                qty = rules.qty(abs(leg.qty)) * (1 if leg.qty >= 0 else -1)
                upnl = (rules.price(mark) - leg.entry) * leg.qty * unit if leg.qty else ZERO
                liq = lo if leg.qty > 0 else hi if leg.qty < 0 else None
                notional = rules.notional(mark, leg.qty)
                out.append(PositionView(
                    sym, key, qty, leg.entry if leg.qty else ZERO, rules.price(mark), upnl,
                    rules.price(liq) if liq is not None and 0 < liq < 2**61 else ZERO, notional,
                    abs(notional) * rules.maintenance_margin_rate, abs(notional) / sim.leverage,
                    sim.leverage, acc.margin_type.get(sym, "cross"), acc.updated_ms))
        return out

    def balance(self, acc: VenueAccount) -> BalanceView:
        wallet = acc.wallet
        upnl = acc.unrealized()
        im = acc.initial_margin()
        pm = acc.position_margin()
        mb = wallet + upnl
        return BalanceView(acc.asset, wallet, upnl, mb, im, pm, max(im - pm, ZERO), acc.maintenance(),
                           max(mb - im, ZERO), acc.updated_ms)

