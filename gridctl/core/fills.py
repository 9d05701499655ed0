"""Execution reports the core consumes: fills and funding payments."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Optional

from gridctl.core.grid import Side

# What a fill is, as far as the venue says: the strategy's own order, another order on
# the account (a sibling strategy, a manual trade, a foreign bot), or the venue's own
# liquidation / auto-deleveraging of the position.
OWN, FOREIGN, LIQUIDATION, DELEVERAGING = "own", "foreign", "liquidation", "deleveraging"
FILL_KINDS = (OWN, FOREIGN, LIQUIDATION, DELEVERAGING)


@dataclass(frozen=True)
class Fill:
    """One execution of one order. Price in ticks, qty in steps, fee in quote (paid > 0).

    `client_id` is the order's client order id (str, or int for uint32 venues);
    the level and intent are decoded from it by whoever books the Fill.
    `trade_id` is the venue's id of this execution: the identity a fill is
    deduplicated by (a stream and REST report the same trade id).
    """

    ts: int  # epoch ms
    client_id: object
    order_id: str
    side: Side
    price: int
    qty: int
    fee: Decimal
    maker: bool = True
    reduce_only: bool = False
    trade_id: str = ""
    fee_asset: str = ""
    kind: str = OWN

    @property
    def key(self) -> str:
        """The identity of this execution: the venue's trade id, or (for reports that
        carry none) the order, time, price and size."""
        if self.trade_id:
            return self.trade_id
        return f"{self.order_id}|{self.client_id}|{self.ts}|{self.price}|{self.qty}"


@dataclass(frozen=True)
class FundingPayment:
    """A funding settlement: amount > 0 received, < 0 paid (longs pay positive rates).

    The amount is always known; the rate and mark only where the venue reports them.
    """

    ts: int
    rate: Optional[Decimal]
    mark: Optional[int]  # ticks
    position: int  # signed steps at settlement
    amount: Decimal


@dataclass(frozen=True)
class PriceUpdate:
    """The venue's last price and mark (ticks), and the account's margin ratio where reported."""

    ts: int
    last: int
    mark: int
    margin_ratio: Optional[Decimal] = None  # maintenance margin / equity


# order update statuses, as the venue reports an order's life
ACCEPTED, PARTIALLY_FILLED, FILLED, CANCELLED, EXPIRED, REJECTED = (
    "accepted", "partially_filled", "filled", "cancelled", "expired", "rejected")
GONE = (FILLED, CANCELLED, EXPIRED, REJECTED)  # the order is no longer on the book


@dataclass(frozen=True)
class OrderUpdate:
    """A change in one order's life: accepted, partially filled, filled, cancelled,
    expired (by the venue: a reduce-only order with nothing left to reduce, a
    liquidation) or rejected (with the venue's reason)."""

    ts: int
    client_id: object
    order_id: str
    status: str
    filled: int = 0  # steps filled so far
    reason: str = ""


@dataclass(frozen=True)
class StreamState:
    """The venue's event stream: connected, lost or restored (after which the open
    orders are confirmed by a reconcile)."""

    ts: int
    state: str  # connected | lost | restored
    detail: str = ""
