"""The one Exchange protocol every venue adapter (paper, in-memory, ccxt) implements.

Prices are ticks and quantities steps here too: adapters convert at their edge.
Venue errors are translated once, at this boundary, into the small set below.
Events (price, fill, order update, funding, stream state) are the core's report
types; open orders are served from a local mirror the events keep, confirmed by
`reconcile_orders()` on a timer and after every reconnect; an adapter cancels only
the strategy's own orders.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Callable, Optional, Protocol, Union

from gridctl.core.fills import (
    ACCEPTED, CANCELLED, EXPIRED, FILLED, GONE, PARTIALLY_FILLED, REJECTED, Fill, FundingPayment, OrderUpdate,
    PriceUpdate, StreamState,
)
from gridctl.core.grid import Side
from gridctl.core.market import MarketRules
from gridctl.core.orders import OrderRequest

__all__ = [
    "ACCEPTED", "CANCELLED", "EXPIRED", "FILLED", "PARTIALLY_FILLED", "REJECTED", "AuthError", "Exchange",
    "ExchangeError", "ExchangeEvent", "ExchangeOrder", "Fill", "FundingPayment", "InsufficientMargin",
    "OrderMirror", "OrderRequest", "OrderUpdate", "PositionReport", "PriceUpdate", "RateLimited", "Rejected",
    "StreamState", "Temporary", "UnknownOutcome",
]


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
    status: str = "open"  # open | filled | cancelled | expired | rejected
    position_side: Optional[str] = None

    @property
    def remaining(self) -> int:
        return self.qty - self.filled


@dataclass(frozen=True)
class PositionReport:
    """The venue's position in the symbol: one per leg in hedge mode (`leg` "long"/"short"),
    one with `leg` None in one-way mode. `qty` is signed steps; `entry_price` the venue's
    average entry (0 when flat)."""

    leg: Optional[str]
    qty: int
    entry_price: Decimal


ExchangeEvent = Union[PriceUpdate, Fill, OrderUpdate, FundingPayment, StreamState]


class OrderMirror:
    """The strategy's own open orders as placements and events left them.

    Serving open orders from here costs no request per sync; `version` changes
    whenever the mirror does, so a reconcile that cannot change anything is skipped.
    """

    def __init__(self, owns: Callable[[object], bool] = lambda cid: True):
        self.owns = owns
        self._orders: dict[object, ExchangeOrder] = {}
        self._booked: dict[object, int] = {}  # steps of each own order's fills seen so far
        self.version = 0

    def orders(self) -> list[ExchangeOrder]:
        """The open orders, oldest first."""
        return list(self._orders.values())

    def get(self, client_id: object) -> Optional[ExchangeOrder]:
        return self._orders.get(client_id)

    def put(self, order: ExchangeOrder) -> None:
        """A placement's reply (or a confirmed order): resting unless it is done.

        An order the venue calls filled stays here, with what is not yet booked as its
        remaining quantity, until its fills arrive: the answer to a taking order (or the
        stream's order report) often comes before its trades, and a level whose order has
        vanished while its fill is still on the way would be sent a second order."""
        cid = order.client_id
        if not self.owns(cid):
            return
        booked = self._booked.get(cid, 0)
        if order.status == FILLED and booked < order.qty:  # kept, as filled, until its fills arrive
            self._orders[cid] = replace(order, filled=booked)
            self.version += 1
            return
        if order.status in GONE or order.remaining <= 0:
            self.remove(cid)
        else:
            self._orders[cid] = replace(order, filled=max(order.filled, booked)) if booked else order
            self.version += 1

    def remove(self, client_id: object) -> None:
        if self._orders.pop(client_id, None) is not None:
            self.version += 1

    def apply(self, ev: object) -> None:
        """Keep the mirror in step with a fill or an order update."""
        if isinstance(ev, Fill):
            if self.owns(ev.client_id) and ev.client_id is not None:
                if len(self._booked) > 10_000:  # bounded: only recent orders can still be answered late
                    self._booked.pop(next(iter(self._booked)))
                self._booked[ev.client_id] = self._booked.get(ev.client_id, 0) + ev.qty
            o = self._orders.get(ev.client_id)
            if o is not None:
                self.put(replace(o, filled=o.filled + ev.qty))
        elif isinstance(ev, OrderUpdate):
            o = self._orders.get(ev.client_id)
            if o is not None and ev.status == FILLED and o.remaining > 0:
                self._orders[ev.client_id] = replace(o, status=FILLED)  # its fills are still on the way
                self.version += 1
            elif o is not None and ev.status in GONE:
                self.remove(ev.client_id)

    def confirm(self, venue_orders: list[ExchangeOrder], ts: int) -> list[OrderUpdate]:
        """Replace the mirror with what the venue says is open; an order the mirror had
        that the venue no longer has comes back as an update (status unknown until asked:
        reported as cancelled), so the driver sees it leave the book."""
        own = {o.client_id: o for o in venue_orders if self.owns(o.client_id)}
        gone = [OrderUpdate(ts, cid, o.order_id, CANCELLED, o.filled, "not open on the venue")
                for cid, o in self._orders.items() if cid not in own]
        if gone or set(own) != set(self._orders) or any(own[c] != self._orders[c] for c in own):
            self._orders = own
            self.version += 1
        return gone


class Exchange(Protocol):
    """What a worker needs from a venue for one symbol."""

    rules: MarketRules
    mirror: OrderMirror

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def market_rules(self) -> MarketRules:
        """The symbol's trading rules as the venue publishes them (tick, step, minimums, fees)."""
        ...

    async def events(self) -> list[ExchangeEvent]:
        """Wait for and return the next batch of events, in the order they happened."""
        ...

    def pending(self) -> bool:
        """True when events caused by the last requests wait to be read (fills taken at placement)."""
        ...

    async def reconcile_orders(self) -> list[ExchangeEvent]:
        """Ask the venue for the open orders and confirm the mirror; updates for what changed."""
        ...

    async def fetch_order(self, client_id: object) -> Optional[ExchangeOrder]: ...

    async def place(self, request: OrderRequest) -> ExchangeOrder: ...

    async def cancel(self, client_id: object) -> None:
        """Cancel one of the strategy's own orders."""
        ...

    async def positions(self) -> list[PositionReport]: ...

    async def fills_since(self, ts: int) -> list[Fill]:
        """Every fill of the account in the symbol at or after ts (epoch ms), oldest first."""
        ...

    def price(self) -> int: ...

    def mark(self) -> int: ...
