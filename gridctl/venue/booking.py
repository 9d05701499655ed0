"""How the local venue books what its simulators did: trades (split by the partial-fill
fault), venue orders for liquidations, expiries and cancels, and the events for each
(Venue mixin)."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Optional

from gridctl.core.fills import Fill
from gridctl.core.grid import Side
from gridctl.sim import LIQUIDATION, Account, SimExchange
from gridctl.sim.account import Leg
from gridctl.venue.account import VenueAccount
from gridctl.venue.records import (CANCELLED, EXEC_CANCELLED, EXEC_EXPIRED, EXEC_NEW, EXEC_TRADE, EXPIRED, FILLED, NEW,
                                   PARTIALLY_FILLED, AccountEvent, OrderEvent, VenueFill, VenueOrder)

log = logging.getLogger(__name__)
ZERO = Decimal(0)
LIQUIDATION_PREFIX = "autoclose-"  # client ids of the venue's liquidation orders (as Binance names them)


def _leaving(fault: Optional[dict]) -> bool:
    """True for a partial fault that leaves part of the order resting (`leave`)."""
    return bool(fault and fault.get("leave"))


def legs_of(sim: SimExchange) -> dict:
    """A copy of the simulator's position legs (to tell each fill's realized PnL afterwards)."""
    return {k: Leg(v.qty, v.entry) for k, v in sim.account.legs.items()}


class VenueBooking:
    """Venue._book / _trades / _expired / _end (mixed into gridctl.venue.core.Venue)."""

    _partial_fills: dict  # client id -> the partial fault that filled part of it (set by Venue)

    def _book(self, acc: VenueAccount, symbol: str, sim: SimExchange, legs: dict, fills: list[Fill],
              now: int) -> None:
        """Record the simulator's fills as venue trades (split when the partial fault fires)."""
        rules = sim.rules
        scratch = Account(rules, ZERO, sim.hedge)
        scratch.legs = {k: Leg(v.qty, v.entry) for k, v in legs.items()}
        for f in fills:
            if f.client_id == LIQUIDATION:
                key = ("long" if f.side is Side.SELL else "short") if sim.hedge else "both"
                oid = self.ids.next_order()
                order = VenueOrder(oid, f"{LIQUIDATION_PREFIX}{oid}", symbol, f.side.value, "market",
                                   rules.qty(f.qty), None, "IOC", True, key if sim.hedge else None, NEW,
                                   created_ms=now, updated_ms=now)
                acc.add_order(order)
                self._publish(OrderEvent(acc.fingerprint, now, EXEC_NEW, order.copy()))
            else:
                order = acc.open_order(symbol, f.client_id)
                if order is None:  # placed in this very call: not open-indexed yet is impossible
                    log.error("fill for an unknown order %r", f.client_id)
                    continue
                key = order.position_side if sim.hedge else "both"
            realized = scratch.apply_fill(key, f.side, f.price, f.qty, f.fee)
            pieces = 1
            if f.maker and f.qty > 1:
                fault = self._partial_fills.pop(f.client_id, None)  # decided by _maker_take (leave)
                if fault is None and not _leaving(self.faults.active.get("partial")):
                    fault = self.faults.take("partial", "any")
                if fault:
                    pieces = max(1, min(int(fault.get("pieces", 1 if _leaving(fault) else 3)), f.qty))
            self._trades(acc, order, f, realized, pieces, now)
        acc.updated_ms = now
        self.audit.positions(acc.fingerprint, symbol, sim)
        self._publish(AccountEvent(acc.fingerprint, now, "order", (symbol,)))

    def _maker_take(self, order) -> int:
        """The steps a resting order fills when the price first reaches it (SimExchange.maker_take):
        all of them, unless the partial fault with `leave` fires (that fraction keeps resting)."""
        if order.remaining < 2 or not _leaving(self.faults.active.get("partial")):
            return order.remaining
        fault = self.faults.take("partial", "any")
        if fault is None:
            return order.remaining
        self._partial_fills[order.client_id] = fault  # _book splits the part in the fault's pieces
        left = max(1, min(order.remaining - 1, round(order.remaining * float(fault["leave"]))))
        return order.remaining - left

    def _trades(self, acc: VenueAccount, order: VenueOrder, f: Fill, realized: Decimal, pieces: int,
                now: int) -> None:
        rules = acc.sims[order.symbol].rules
        price = rules.price(f.price)
        base, extra = divmod(f.qty, pieces)
        sizes = [base + (1 if i < extra else 0) for i in range(pieces)]
        fee_left, pnl_left = f.fee, realized
        for i, steps in enumerate(sizes):
            last = i == pieces - 1
            fee = fee_left if last else (f.fee * steps / f.qty)
            pnl = pnl_left if last else (realized * steps / f.qty)
            fee_left -= fee
            pnl_left -= pnl
            qty = rules.qty(steps)
            fill = VenueFill(self.ids.next_trade(), order.order_id, order.client_id, order.symbol, order.side,
                             price, qty, fee, f.fee_asset or acc.asset, pnl, f.maker, order.position_side,
                             order.reduce_only, now)
            acc.fills.append(fill)
            self.journal("fill", acc.fingerprint, fill.to_dict())
            order.filled += qty
            order.cum_quote += price * qty
            order.updated_ms = now
            order.status = FILLED if order.filled >= order.qty else PARTIALLY_FILLED
            if order.status == FILLED:
                acc.closed(order)
                self.journal("order", acc.fingerprint, order.to_dict())
            self._publish(OrderEvent(acc.fingerprint, now, EXEC_TRADE, order.copy(), fill))

    def _expired(self, acc: VenueAccount, symbol: str, now: int) -> None:
        """Orders the simulator removed on its own: expired reduce-only, cancelled by a liquidation."""
        for so in acc.sims[symbol].take_expired():
            order = acc.open_order(symbol, so.client_id)
            if order is None:
                continue
            if so.status == "cancelled":
                self._end(acc, order, CANCELLED, now, "liquidation")
            else:
                self._end(acc, order, EXPIRED, now, "reduce_only_nothing_to_reduce")

    def _end(self, acc: VenueAccount, order: VenueOrder, status: str, now: int,
             reason: Optional[str] = None) -> None:
        order.status = status
        order.updated_ms = now
        order.expiry_reason = reason
        acc.closed(order)
        self.journal("order", acc.fingerprint, order.to_dict())
        execution = EXEC_CANCELLED if status == CANCELLED else EXEC_EXPIRED
        self._publish(OrderEvent(acc.fingerprint, now, execution, order.copy()))

