"""What the Backpack protocol needs from the venue core, in Backpack's own terms.

`Port` is the seam between the protocol (REST routes and streams in gridctl.venue.backpack*)
and the protocol-neutral core (accounts, matching, prices, faults). An adapter over the core
implements it; the protocol never touches the core's objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Callable, Optional, Protocol

from gridctl.core.market import MarketRules
from gridctl.venue.backpack_codec import FillView, OrderView, PositionView


class Refused(Exception):
    """The core refused an action; `reason` is a SimExchange Reject reason (see backpack_codec.REJECTS)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Quote:
    """A market's prices now, and its rolling 24 h statistics."""

    last: Decimal
    mark: Decimal
    index: Decimal
    funding_rate: Decimal
    next_funding_ms: int
    first: Decimal
    high: Decimal
    low: Decimal
    volume: Decimal = Decimal(0)
    quote_volume: Decimal = Decimal(0)
    trades: int = 0


@dataclass(frozen=True)
class Margin:
    """An account's collateral summary in the settlement asset."""

    asset: str
    balance: Decimal  # wallet: deposits + realized - fees + funding
    equity: Decimal  # balance + unrealized
    available: Decimal  # equity - initial margin of positions and open orders
    initial: Decimal
    maintenance: Decimal
    unrealized: Decimal
    exposure: Decimal  # sum of |position notional| at the mark


@dataclass(frozen=True)
class FundingRow:
    """One funding settlement of one account in one market (amount > 0 received)."""

    symbol: str
    rate: Decimal
    amount: Decimal
    ts_ms: int


@dataclass(frozen=True)
class OrderEvent:
    """An order's life on the stream: orderAccepted, orderFill, orderCancelled, orderExpired."""

    api_key: str
    kind: str
    order: OrderView
    fill: Optional[FillView] = None


@dataclass(frozen=True)
class PositionEvent:
    """A change of an account's net position in one market."""

    api_key: str
    position: PositionView
    before: Decimal


@dataclass(frozen=True)
class PriceEvent:
    """A market's price moved (ticker and mark)."""

    symbol: str
    quote: Quote


Event = object  # OrderEvent | PositionEvent | PriceEvent


class Port(Protocol):
    """The core, as the Backpack protocol sees it."""

    def now_ms(self) -> int:
        """Wall-clock epoch ms (signature windows, timestamps)."""

    def symbols(self) -> list[str]:
        """Venue ids of the served markets (BTC_USDC_PERP, ...)."""

    def rules(self, symbol: str) -> MarketRules:
        """The market's rules; KeyError for an unknown symbol."""

    def market_extra(self, symbol: str) -> dict:
        """Backpack fields of the market beyond MarketRules (imf/mmf functions, funding interval)."""

    def quote(self, symbol: str) -> Quote:
        """Prices and 24 h statistics; KeyError for an unknown symbol."""

    def open_account(self, api_key: str) -> None:
        """Make sure the account exists; Refused("unauthorized") for a key the venue does not take."""

    def margin(self, api_key: str) -> Margin:
        """The account's collateral summary."""

    def positions(self, api_key: str) -> list[PositionView]:
        """Open positions (non-zero net quantity)."""

    def leverage(self, api_key: str) -> int:
        """The account-wide leverage limit."""

    def set_leverage(self, api_key: str, leverage: int) -> None:
        """Change the leverage limit; Refused when outside what the markets allow."""

    def place(self, api_key: str, symbol: str, buy: bool, qty: Decimal, price: Optional[Decimal],
              post_only: bool, reduce_only: bool, client_id: Optional[int], time_in_force: str
              ) -> OrderView:
        """Execute an order; returns it after any immediate fills; Refused when the venue rejects it."""

    def cancel(self, api_key: str, symbol: str, order_id: Optional[str], client_id: Optional[int]
               ) -> OrderView:
        """Cancel one resting order; Refused("unknown_order") when none rests with that id."""

    def cancel_all(self, api_key: str, symbol: str) -> list[OrderView]:
        """Cancel every resting order of the account in the market."""

    def open_orders(self, api_key: str, symbol: Optional[str]) -> list[OrderView]:
        """Resting orders, oldest first."""

    def order_history(self, api_key: str, symbol: Optional[str]) -> list[OrderView]:
        """Every order the account placed (any status), oldest first."""

    def fills(self, api_key: str, symbol: Optional[str]) -> list[FillView]:
        """The account's executions, oldest first."""

    def funding(self, api_key: str, symbol: Optional[str]) -> list[FundingRow]:
        """The account's funding settlements, oldest first."""

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call `callback` with every event; returns the unsubscribe function."""
