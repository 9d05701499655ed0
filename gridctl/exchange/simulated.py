"""The Exchange protocol over the simulated exchange: what the paper exchange and the
in-memory test exchange share (orders, the mirror, positions, error translation).

Subclasses say how the price moves (`events()`) and where fills are kept.
"""

from __future__ import annotations

from typing import Callable, Optional

from gridctl.core.fills import EXPIRED, Fill, OrderUpdate
from gridctl.core.market import MarketRules
from gridctl.core.orders import OrderRequest
from gridctl.exchange.base import (
    ExchangeEvent, ExchangeOrder, InsufficientMargin, OrderMirror, PositionReport, Rejected,
)
from gridctl.sim import Reject, SimExchange
from gridctl.sim.book import SimOrder


def exchange_order(o: SimOrder) -> ExchangeOrder:
    """A simulated order as a venue would report it."""
    status = o.status if o.status != "open" or o.remaining > 0 else "filled"
    return ExchangeOrder(o.client_id, o.order_id, o.side, o.price, o.qty, o.filled, o.reduce_only, status,
                         o.position_side)


class SimulatedVenue:
    """Orders, positions and the open-order mirror of one SimExchange."""

    sim: SimExchange

    def __init__(self, rules: MarketRules, owns: Callable[[object], bool] = lambda cid: True):
        self.rules = rules
        self.mirror = OrderMirror(owns)
        self._pending: list[ExchangeEvent] = []

    def now_ms(self) -> int:
        raise NotImplementedError

    async def market_rules(self) -> MarketRules:
        """The simulated venue trades by the rules it was given (a real venue's snapshot)."""
        return self.rules

    def keep_fills(self, fills: list[Fill]) -> None:
        """Remember fills for fills_since() (the venue's trade history)."""

    # -- what happened -----------------------------------------------------------
    def _happened(self, fills: list[Fill]) -> list[ExchangeEvent]:
        """Fills plus the orders the venue removed on its own, as events; the mirror follows."""
        out: list[ExchangeEvent] = list(fills)
        self.keep_fills(fills)
        ts = fills[0].ts if fills else self.now_ms()
        for o in self.sim.take_expired():
            out.append(OrderUpdate(ts, o.client_id, o.order_id, EXPIRED if o.status == "expired" else o.status,
                                   o.filled, "venue"))
        for ev in out:
            self.mirror.apply(ev)
        return out

    def pending(self) -> bool:
        return bool(self._pending)

    def take_pending(self) -> list[ExchangeEvent]:
        out, self._pending = self._pending, []
        return out

    # -- requests ------------------------------------------------------------------
    async def place(self, request: OrderRequest) -> ExchangeOrder:
        """Place an order; fills it takes at once (crossing or market) come with the next events()."""
        r = request
        try:
            order, fills = self.sim.place(self.now_ms(), r.client_id, r.side, r.qty, r.price,
                                          reduce_only=r.reduce_only, post_only=r.post_only,
                                          position_side=r.position_side)
        except Reject as exc:
            if exc.reason == "insufficient_margin":
                raise InsufficientMargin(str(exc)) from None
            raise Rejected(str(exc), exc.reason) from None
        reply = exchange_order(order)
        self.mirror.put(reply)
        self._pending += self._happened(fills)
        return reply

    async def cancel(self, client_id: object) -> None:
        if not self.mirror.owns(client_id):
            raise Rejected(f"{client_id!r} is not this strategy's order", "not_own_order")
        try:
            self.sim.cancel(client_id)
        except Reject as exc:
            raise Rejected(str(exc), exc.reason) from None
        finally:
            self.mirror.remove(client_id)

    async def fetch_order(self, client_id: object) -> Optional[ExchangeOrder]:
        o = self.sim.order(client_id)
        return exchange_order(o) if o is not None else None

    async def reconcile_orders(self) -> list[ExchangeEvent]:
        return list(self.mirror.confirm([exchange_order(o) for o in self.sim.open_orders()], self.now_ms()))

    async def positions(self) -> list[PositionReport]:
        sim = self.sim
        if sim.hedge:
            return [PositionReport("long", sim.long_qty, sim.leg_entry("long")),
                    PositionReport("short", -sim.short_qty, sim.leg_entry("short"))]
        return [PositionReport(None, sim.position, sim.entry_price)]

    def price(self) -> int:
        return self.sim.price

    def mark(self) -> int:
        return self.sim.mark

    def margin_ratio(self):
        return self.sim.margin_ratio()
