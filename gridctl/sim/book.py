"""Resting orders of the simulated exchange: identity, price levels, FIFO.

Pure data structure, no accounting: the exchange decides what fills and how
much; the book only answers "which orders rest where" quickly.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Iterator, Optional

from gridctl.core.grid import Side


class Reject(Exception):
    """The simulated venue refused an order or a cancel; `reason` is a stable code.

    Codes: post_only_would_cross, post_only_market, reduce_only_would_increase,
    insufficient_margin, unknown_order, duplicate_client_id, qty_below_min,
    notional_below_min, invalid_price, no_price, position_side_required,
    position_side_not_allowed.
    """

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(f"{reason}: {message}" if message else reason)
        self.reason = reason


@dataclass
class SimOrder:
    """An order as the simulated venue knows it. Price in ticks (None = market), qty in steps.

    `status`: open, filled, cancelled (by the caller or by a liquidation) or
    expired (a reduce-only order with nothing left to reduce).
    """

    client_id: object
    order_id: str
    side: Side
    price: Optional[int]
    qty: int
    filled: int = 0
    reduce_only: bool = False
    post_only: bool = False
    position_side: Optional[str] = None
    ts: int = 0
    status: str = "open"

    @property
    def remaining(self) -> int:
        """Steps not filled yet."""
        return self.qty - self.filled

    def to_dict(self) -> dict:
        """JSON-serialisable form (client ids must be str or int to survive JSON)."""
        return {
            "client_id": self.client_id, "order_id": self.order_id, "side": self.side.value,
            "price": self.price, "qty": self.qty, "filled": self.filled,
            "reduce_only": self.reduce_only, "post_only": self.post_only,
            "position_side": self.position_side, "ts": self.ts, "status": self.status,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "SimOrder":
        """Inverse of to_dict()."""
        return cls(
            client_id=d["client_id"], order_id=d["order_id"], side=Side(d["side"]),
            price=d["price"], qty=int(d["qty"]), filled=int(d["filled"]),
            reduce_only=bool(d["reduce_only"]), post_only=bool(d["post_only"]),
            position_side=d.get("position_side"), ts=int(d["ts"]), status=d.get("status", "open"),
        )


class Book:
    """Resting limit orders keyed by client id, grouped by side and price (FIFO per price)."""

    def __init__(self) -> None:
        self._by_id: dict[object, SimOrder] = {}
        self._levels: dict[Side, dict[int, list[SimOrder]]] = {Side.BUY: {}, Side.SELL: {}}
        # distinct resting prices per side, ascending: best buy is the last, best sell the first
        self._prices: dict[Side, list[int]] = {Side.BUY: [], Side.SELL: []}

    def __contains__(self, client_id: object) -> bool:
        return client_id in self._by_id

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[SimOrder]:
        """Orders in placement order."""
        return iter(list(self._by_id.values()))

    def get(self, client_id: object) -> Optional[SimOrder]:
        """The open order with this client id, or None."""
        return self._by_id.get(client_id)

    def add(self, order: SimOrder) -> None:
        """Rest a limit order (the caller checked it does not cross)."""
        assert order.price is not None and order.client_id not in self._by_id
        self._by_id[order.client_id] = order
        level = self._levels[order.side].get(order.price)
        if level is None:
            self._levels[order.side][order.price] = [order]
            bisect.insort(self._prices[order.side], order.price)
        else:
            level.append(order)

    def remove(self, order: SimOrder) -> None:
        """Take an order off the book."""
        del self._by_id[order.client_id]
        level = self._levels[order.side][order.price]
        level.remove(order)
        if not level:
            self._drop_level(order.side, order.price)

    def take_level(self, side: Side, price: int) -> list[SimOrder]:
        """Remove and return every order resting at (side, price), oldest first."""
        level = self._levels[side].get(price)
        if not level:
            return []
        for o in level:
            del self._by_id[o.client_id]
        self._drop_level(side, price)
        return level

    def best(self, side: Side) -> Optional[int]:
        """Highest resting buy price, or lowest resting sell price; None when that side is empty."""
        prices = self._prices[side]
        if not prices:
            return None
        return prices[-1] if side is Side.BUY else prices[0]

    def _drop_level(self, side: Side, price: int) -> None:
        del self._levels[side][price]
        prices = self._prices[side]
        del prices[bisect.bisect_left(prices, price)]
