"""The one Exchange protocol every venue adapter (paper, ccxt) implements.

Prices are ticks and quantities steps here too: adapters convert at their edge.
Venue errors are translated once, at this boundary, into the small set below.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Optional, Protocol, Union

from gridctl.core.fills import Fill, FundingPayment
from gridctl.core.grid import Side
from gridctl.core.market import MarketRules


class ExchangeError(Exception):
    """Base of every error an adapter raises."""

    reason = "unknown"

    def __init__(self, message: str = "", reason: Optional[str] = None):
        super().__init__(message or self.reason)
        if reason is not None:
            self.reason = reason


class Temporary(ExchangeError):
    reason = "temporary"


class RateLimited(Temporary):
    reason = "rate_limited"


class Rejected(ExchangeError):
    reason = "rejected"


class InsufficientMargin(Rejected):
    reason = "insufficient_margin"


class AuthError(ExchangeError):
    reason = "auth"


class UnknownOutcome(ExchangeError):
    """The request may or may not have reached the book: confirm by client id before re-sending."""

    reason = "unknown_outcome"


@dataclass(frozen=True)
class ExchangeOrder:
    """An order as the venue reports it, in ticks and steps."""

    client_id: object
    order_id: str
    side: Side
    price: Optional[int]
    qty: int
    filled: int
    reduce_only: bool = False
    status: str = "open"  # open | filled | cancelled | rejected

    @property
    def remaining(self) -> int:
        return self.qty - self.filled


@dataclass(frozen=True)
class PriceUpdate:
    ts: int
    last: int
    mark: int
    margin_ratio: Optional[Decimal] = None  # maintenance margin / equity, where the venue reports it


ExchangeEvent = Union[PriceUpdate, Fill, FundingPayment]


class Exchange(Protocol):
    """What a worker needs from a venue for one symbol."""

    rules: MarketRules

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def events(self) -> list[ExchangeEvent]:
        """Wait for and return the next batch of price updates, fills and funding payments."""
        ...

    async def open_orders(self) -> list[ExchangeOrder]: ...

    async def fetch_order(self, client_id: object) -> Optional[ExchangeOrder]: ...

    async def place(self, client_id: object, side: Side, qty: int, price: Optional[int] = None,
                    reduce_only: bool = False, post_only: bool = False,
                    position_side: Optional[str] = None) -> ExchangeOrder:
        """position_side: the hedge-mode leg ("long"/"short"), None in one-way mode."""
        ...

    async def cancel(self, client_id: object) -> None: ...

    async def cancel_all(self) -> None: ...

    async def position(self) -> int:
        """Signed steps of the account's position in the symbol."""
        ...

    async def fills_since(self, ts: int) -> list[Fill]: ...

    def price(self) -> int: ...

    def mark(self) -> int: ...
