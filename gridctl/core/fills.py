"""Execution reports the core consumes: fills and funding payments."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from gridctl.core.grid import Side


@dataclass(frozen=True)
class Fill:
    """One execution of one order. Price in ticks, qty in steps, fee in quote (paid > 0).

    `client_id` is the order's client order id (str, or int for uint32 venues);
    the level and intent are decoded from it by whoever builds the Fill.
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


@dataclass(frozen=True)
class FundingPayment:
    """A funding settlement: amount > 0 received, < 0 paid (longs pay positive rates)."""

    ts: int
    rate: Decimal
    mark: int  # ticks
    position: int  # signed steps at settlement
    amount: Decimal
