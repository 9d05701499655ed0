"""What the local venue remembers and tells: orders, fills, funding income, events, rejects.

Protocol-neutral: prices and quantities are Decimal in the market's units (the
protocols format them), sides are "buy"/"sell", statuses are lower-case words.
Every record round-trips through JSON (`to_dict` / `from_dict`) for the state file.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, fields, replace
from decimal import Decimal
from typing import Optional, Union

ClientId = Union[str, int]

# order statuses
NEW, PARTIALLY_FILLED, FILLED, CANCELLED, EXPIRED = "new", "partially_filled", "filled", "cancelled", "expired"
OPEN_STATUSES = (NEW, PARTIALLY_FILLED)

# order event executions (what happened to the order in this event)
EXEC_NEW, EXEC_TRADE, EXEC_CANCELLED, EXEC_EXPIRED = "new", "trade", "cancelled", "expired"


def fingerprint(api_key: str) -> str:
    """A stable, non-reversible name for an API key (state file, admin API, logs)."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


class VenueReject(Exception):
    """The venue refused a request; `reason` is a stable protocol-neutral code.

    Reasons: bad_symbol, unknown_order, duplicate_client_id, post_only_would_cross,
    reduce_only_rejected, position_side_mismatch, insufficient_margin,
    notional_below_min, qty_below_min, qty_precision, price_tick, invalid_price,
    invalid_qty, bad_leverage, mode_no_change, mode_open_orders, mode_open_positions,
    margin_type_no_change, margin_type_open_position, no_price, would_trigger (a trigger order
    already crossed), injected (a fault).
    """

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(f"{reason}: {message}" if message else reason)
        self.reason = reason
        self.message = message


def _dec(d: dict, *names: str) -> dict:
    for n in names:
        if d.get(n) is not None:
            d[n] = Decimal(d[n])
    return d


def _str_dec(d: dict) -> dict:
    return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in d.items()}


@dataclass
class VenueOrder:
    """An order of one account, any status. `price` None = market order.

    time_in_force: GTC, IOC, FOK or PO (post only). position_side: None (one-way),
    "long" or "short" (hedge). expiry_reason: why the venue expired it
    (post_only_would_cross, reduce_only_nothing_to_reduce, ioc_unfilled, liquidation).
    """

    order_id: int
    client_id: ClientId
    symbol: str
    side: str
    type: str  # "limit" | "market"
    qty: Decimal
    price: Optional[Decimal]
    time_in_force: str = "GTC"
    reduce_only: bool = False
    position_side: Optional[str] = None
    status: str = NEW
    filled: Decimal = Decimal(0)
    cum_quote: Decimal = Decimal(0)
    created_ms: int = 0
    updated_ms: int = 0
    expiry_reason: Optional[str] = None

    @property
    def avg_price(self) -> Decimal:
        """Average fill price (0 when nothing filled)."""
        return self.cum_quote / self.filled if self.filled else Decimal(0)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.filled

    def copy(self) -> "VenueOrder":
        return replace(self)

    def to_dict(self) -> dict:
        return _str_dec(asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> "VenueOrder":
        return cls(**_dec(dict(d), "qty", "price", "filled", "cum_quote"))


@dataclass(frozen=True)
class VenueFill:
    """One trade (execution) of one order. fee > 0 = paid; realized = PnL before the fee."""

    trade_id: int
    order_id: int
    client_id: ClientId
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    fee: Decimal
    fee_asset: str
    realized: Decimal
    maker: bool
    position_side: Optional[str]
    reduce_only: bool
    ts: int

    @property
    def quote_qty(self) -> Decimal:
        return self.price * self.qty

    def to_dict(self) -> dict:
        return _str_dec(asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> "VenueFill":
        return cls(**_dec(dict(d), "price", "qty", "fee", "realized"))


@dataclass(frozen=True)
class FundingIncome:
    """A funding settlement booked to an account: amount > 0 received, < 0 paid."""

    tran_id: int
    symbol: str
    amount: Decimal
    asset: str
    rate: Decimal
    mark: Decimal
    position: Decimal  # signed net position at settlement
    ts: int

    def to_dict(self) -> dict:
        return _str_dec(asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> "FundingIncome":
        return cls(**_dec(dict(d), "amount", "rate", "mark", "position"))


# -- events published to subscribers ---------------------------------------------------------

@dataclass(frozen=True)
class OrderEvent:
    """Something happened to an order: execution new/trade/cancelled/expired.

    `order` is a snapshot taken at the event; `fill` is set for trades.
    """

    account: str  # account fingerprint
    ts: int
    execution: str
    order: VenueOrder
    fill: Optional[VenueFill] = None


@dataclass(frozen=True)
class AccountEvent:
    """Balance and positions changed. reason: "order" (a trade) or "funding".

    `symbols`: the markets whose positions changed; `funding` the income booked
    (reason "funding"). Read the account's current state through Venue.
    """

    account: str
    ts: int
    reason: str
    symbols: tuple[str, ...]
    funding: Optional[FundingIncome] = None


@dataclass(frozen=True)
class MarketEvent:
    """A market's last/mark price moved (or funding rate changed)."""

    symbol: str
    ts: int


VenueEvent = Union[OrderEvent, AccountEvent, MarketEvent]


def record_fields(cls) -> list[str]:
    return [f.name for f in fields(cls)]


@dataclass
class Counters:
    """Venue-wide deterministic id sequences (persisted)."""

    order: int = 100_000_000
    trade: int = 500_000_000
    tran: int = 900_000_000
    extra: dict = field(default_factory=dict)

    def next_order(self) -> int:
        self.order += 1
        return self.order

    def next_trade(self) -> int:
        self.trade += 1
        return self.trade

    def next_tran(self) -> int:
        self.tran += 1
        return self.tran
