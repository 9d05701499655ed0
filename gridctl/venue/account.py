"""One account of the local venue: a wallet shared by all its markets (cross margin),
one simulated exchange per market, and the account's full order, fill and funding history.

The per-market gridctl.sim.SimExchange does the matching, fees, margin and liquidation
of its market. Its wallet is not its own: before every operation on market S the
venue sets that simulator's balance to

    wallet + unrealized PnL of the other markets - their initial margin   (placing orders)
    wallet + unrealized PnL of the other markets - their maintenance margin (price moves)

so its margin check and its liquidation see the whole account, and afterwards takes
back what the operation changed (realized PnL, fees, funding) into the shared wallet.
"""

from __future__ import annotations

from contextlib import contextmanager
from decimal import Decimal
from typing import Iterator, Optional

from gridctl.core.market import MarketRules
from gridctl.sim import SimExchange
from gridctl.venue.records import ClientId, FundingIncome, VenueFill, VenueOrder

ZERO = Decimal(0)
DEFAULT_LEVERAGE = 20


class VenueAccount:
    """Wallet, settings, simulators and history of one API key (by fingerprint)."""

    def __init__(self, fingerprint: str, asset: str, deposit: Decimal, hedge: bool = False) -> None:
        self.fingerprint = fingerprint
        self.asset = asset
        self.deposit = Decimal(deposit)
        self.hedge = hedge
        self.pnl: dict[str, Decimal] = {}  # per market: realized - fees + funding
        self.sims: dict[str, SimExchange] = {}
        self.leverage: dict[str, int] = {}
        self.margin_type: dict[str, str] = {}  # "cross" | "isolated" (recorded; margin is cross)
        self.orders: dict[int, VenueOrder] = {}  # every order, any status, by order id
        self.open_ids: dict[tuple[str, ClientId], int] = {}  # (symbol, client id) of open orders
        self.latest_ids: dict[tuple[str, ClientId], int] = {}  # (symbol, client id) -> newest order
        self.fills: list[VenueFill] = []
        self.income: list[FundingIncome] = []
        self.updated_ms = 0

    # -- markets -------------------------------------------------------------------
    def add_market(self, rules: MarketRules, price: Optional[int]) -> None:
        """Open the account's simulator for a market (at the market's price)."""
        sym = rules.symbol
        lev = min(self.leverage.setdefault(sym, min(DEFAULT_LEVERAGE, rules.max_leverage)), rules.max_leverage)
        self.margin_type.setdefault(sym, "cross")
        self.pnl.setdefault(sym, ZERO)
        self.sims[sym] = SimExchange(rules, ZERO, lev, hedge=self.hedge, price=price)

    def rebuild(self, hedge: bool) -> None:
        """Switch the position mode: fresh simulators (the caller checked nothing is open)."""
        self.hedge = hedge
        for sym, sim in list(self.sims.items()):
            self.sims[sym] = SimExchange(sim.rules, ZERO, sim.leverage, hedge=hedge, price=sim._price)

    # -- the shared wallet ----------------------------------------------------------
    @property
    def wallet(self) -> Decimal:
        """Wallet balance: deposit + realized PnL - fees + funding, over all markets."""
        return self.deposit + sum(self.pnl.values(), ZERO)

    def unrealized(self) -> Decimal:
        return sum((s.unrealized() for s in self.sims.values() if s._price is not None), ZERO)

    def maintenance(self) -> Decimal:
        return sum((s.maintenance_margin() for s in self.sims.values() if s._price is not None), ZERO)

    def initial_margin(self) -> Decimal:
        return sum((s.initial_margin() for s in self.sims.values() if s._price is not None), ZERO)

    def position_margin(self) -> Decimal:
        """Initial margin of the positions only (at the mark and each market's leverage)."""
        out = ZERO
        for s in self.sims.values():
            if s._price is not None:
                gross = s.long_qty + s.short_qty
                out += s.rules.notional(s.mark, gross) / s.leverage
        return out

    @contextmanager
    def cross(self, symbol: str, maintenance: bool) -> Iterator[SimExchange]:
        """The market's simulator with the whole account's equity as its balance (see module docs)."""
        sim = self.sims[symbol]
        offset = self.deposit
        for sym, other in self.sims.items():
            if sym == symbol:
                continue
            offset += self.pnl[sym]
            if other._price is not None:
                margin = other.maintenance_margin() if maintenance else other.initial_margin()
                offset += other.unrealized() - margin
        sim.account.balance = self.pnl[symbol] + offset
        sim.account._liq = None  # the cached liquidation bounds depend on the balance
        try:
            yield sim
        finally:
            self.pnl[symbol] = sim.account.balance - offset

    # -- orders ----------------------------------------------------------------------
    def add_order(self, order: VenueOrder) -> None:
        self.orders[order.order_id] = order
        key = (order.symbol, order.client_id)
        self.latest_ids[key] = order.order_id
        if order.is_open:
            self.open_ids[key] = order.order_id

    def closed(self, order: VenueOrder) -> None:
        """The order left the book (filled, cancelled, expired)."""
        key = (order.symbol, order.client_id)
        if self.open_ids.get(key) == order.order_id:
            del self.open_ids[key]

    def open_order(self, symbol: str, client_id: ClientId) -> Optional[VenueOrder]:
        oid = self.open_ids.get((symbol, client_id))
        return None if oid is None else self.orders[oid]

    def find(self, symbol: str, order_id: Optional[int] = None,
             client_id: Optional[ClientId] = None) -> Optional[VenueOrder]:
        """An order of this market by venue id or client id (the newest with that id), any status."""
        if order_id is not None:
            o = self.orders.get(int(order_id))
            return o if o is not None and o.symbol == symbol else None
        oid = self.latest_ids.get((symbol, client_id))  # type: ignore[arg-type]
        return None if oid is None else self.orders[oid]

    def open_orders(self, symbol: Optional[str] = None) -> list[VenueOrder]:
        return [self.orders[i] for (s, _), i in self.open_ids.items() if symbol is None or s == symbol]

    # -- persistence -------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The snapshot part: settings, wallet, simulators, open orders and history counts.

        Fills, funding and closed orders live in the venue's history journal (state.py).
        """
        return {
            "fingerprint": self.fingerprint, "asset": self.asset, "deposit": str(self.deposit),
            "hedge": self.hedge, "pnl": {k: str(v) for k, v in self.pnl.items()},
            "sims": {k: s.state() for k, s in self.sims.items()},
            "leverage": self.leverage, "margin_type": self.margin_type,
            "orders": [self.orders[i].to_dict() for i in self.open_ids.values()],  # the open ones
            "counts": {"fills": len(self.fills), "income": len(self.income)},
            "updated_ms": self.updated_ms,
        }

    @classmethod
    def from_dict(cls, d: dict, rules: dict[str, MarketRules]) -> "VenueAccount":
        acc = cls(d["fingerprint"], d["asset"], Decimal(d["deposit"]), bool(d["hedge"]))
        acc.pnl = {k: Decimal(v) for k, v in d["pnl"].items()}
        acc.leverage = {k: int(v) for k, v in d["leverage"].items()}
        acc.margin_type = dict(d["margin_type"])
        for sym, sd in d["sims"].items():
            if sym in rules:
                acc.sims[sym] = SimExchange.from_state(rules[sym], sd)
        for od in d["orders"]:
            acc.add_order(VenueOrder.from_dict(od))
        acc.updated_ms = int(d.get("updated_ms", 0))
        return acc

    def add_history(self, kind: str, record: dict) -> None:
        """One journal record back into memory (load): a fill, a funding payment, a closed order."""
        if kind == "fill":
            self.fills.append(VenueFill.from_dict(record))
        elif kind == "income":
            self.income.append(FundingIncome.from_dict(record))
        elif kind == "order":
            order = VenueOrder.from_dict(record)
            if order.order_id not in self.open_ids.values():
                self.orders[order.order_id] = order
                self.latest_ids[(order.symbol, order.client_id)] = max(
                    order.order_id, self.latest_ids.get((order.symbol, order.client_id), 0))
