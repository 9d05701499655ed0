"""Backpack's JSON shapes, as the real venue writes them and ccxt's `backpack` parses them.

Pure functions from protocol-neutral views (dataclasses below, Decimal for money) to the
dicts the venue's REST API sends (stream messages: gridctl.venue.backpack_events). Shapes follow the real responses in
../shared/data/exchange_samples/ccxt/response_backpack.json and the Backpack OpenAPI/AsyncAPI:

- REST timestamps: open-order objects carry `createdAt` in epoch ms; history (orders, fills,
  funding) writes naive UTC datetimes ("2025-08-13T17:26:01.197").
- Streams: `{"stream": NAME, "data": {...}}`, event and engine times (`E`, `T`) in microseconds.
- Sides Bid/Ask; statuses New, PartiallyFilled, Filled, Cancelled, Expired.
- Errors: `{"code": "<ApiErrorCode>", "message": "..."}` with the HTTP status of `ERROR_STATUS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Optional

BID, ASK = "Bid", "Ask"
NEW, PARTIALLY_FILLED, FILLED, CANCELLED, EXPIRED = (
    "New", "PartiallyFilled", "Filled", "Cancelled", "Expired")
POST_ONLY_TAKER = "PostOnlyTaker"
REDUCE_ONLY_NOT_REDUCED = "ReduceOnlyNotReduced"

# HTTP status of each Backpack error code the venue answers with
ERROR_STATUS: dict[str, int] = {
    "INVALID_CLIENT_REQUEST": 400,
    "INVALID_ORDER": 400,
    "INVALID_PRICE": 400,
    "INVALID_QUANTITY": 400,
    "INVALID_MARKET": 400,
    "INSUFFICIENT_MARGIN": 400,
    "INSUFFICIENT_FUNDS": 400,
    "UNAUTHORIZED": 401,
    "INVALID_SIGNATURE": 401,
    "RESOURCE_NOT_FOUND": 404,
    "TOO_MANY_REQUESTS": 429,
    "SERVER_ERROR": 500,
    "TIMEOUT": 504,
    "MAX_LEVERAGE_REACHED": 400,
    "ORDER_LIMIT": 400,
}

# the venue core's reject reasons (gridctl.venue.records.VenueReject) -> (Backpack code, message)
REJECTS: dict[str, tuple[str, str]] = {
    "bad_symbol": ("INVALID_CLIENT_REQUEST", "Invalid market symbol"),
    "unknown_order": ("RESOURCE_NOT_FOUND", "Order not found"),
    "duplicate_client_id": ("INVALID_CLIENT_REQUEST", "Duplicate client id"),
    "post_only_would_cross": ("INVALID_ORDER", "Order would immediately match and take"),
    "reduce_only_rejected": ("INVALID_ORDER", "Reduce only order not reduced"),
    "position_side_mismatch": ("INVALID_CLIENT_REQUEST", "Backpack has no hedge mode"),
    "insufficient_margin": ("INSUFFICIENT_MARGIN", "Insufficient margin"),
    "notional_below_min": ("INVALID_ORDER", "Order value is below the minimum"),
    "qty_below_min": ("INVALID_QUANTITY", "Quantity is below the minimum allowed value"),
    "qty_precision": ("INVALID_QUANTITY", "Quantity decimal too long"),
    "invalid_qty": ("INVALID_QUANTITY", "Quantity must be positive"),
    "price_tick": ("INVALID_PRICE", "Price decimal too long"),
    "invalid_price": ("INVALID_PRICE", "Invalid price"),
    "bad_leverage": ("INVALID_CLIENT_REQUEST", "Invalid leverage limit"),
    "invalid_order": ("INVALID_ORDER", "Invalid order"),
    "no_price": ("SERVER_ERROR", "Market has no price yet"),
    "max_leverage": ("MAX_LEVERAGE_REACHED", "Maximum leverage reached"),
    "order_limit": ("ORDER_LIMIT", "Order limit reached"),
}

# the core's expiry reasons -> Backpack's expiryReason
EXPIRY_REASONS: dict[str, str] = {
    "post_only_would_cross": POST_ONLY_TAKER,
    "reduce_only_nothing_to_reduce": REDUCE_ONLY_NOT_REDUCED,
    "ioc_unfilled": "ImmediateOrCancel",
    "fok_unfilled": "FillOrKill",
    "liquidation": "Liquidation",
}


def error_body(code: str, message: str) -> dict:
    """The body of a Backpack error reply."""
    return {"code": code, "message": message}


def reject_error(reason: str, detail: str = "") -> tuple[int, dict]:
    """(HTTP status, body) for a venue reject reason (unknown reasons: INVALID_ORDER)."""
    code, message = REJECTS.get(reason, ("INVALID_ORDER", detail or reason))
    return ERROR_STATUS[code], error_body(code, message)


def dec(value: Optional[Decimal]) -> Optional[str]:
    """A decimal as Backpack's REST writes it: plain notation, no trailing zeros."""
    if value is None:
        return None
    d = Decimal(value)
    if d == 0:
        return "0"
    text = format(d.normalize(), "f")
    return text


def fixed(value: Decimal, unit: Decimal) -> str:
    """A decimal at the market's precision (the streams write "117357.0", "0.0010")."""
    return str(Decimal(value).quantize(unit))


def iso_naive(ms: int) -> str:
    """Epoch ms -> Backpack's history timestamp: naive UTC ISO with milliseconds."""
    t = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}"


def iso_naive_seconds(ms: int) -> str:
    """Epoch ms -> naive UTC ISO without fraction (funding `intervalEndTimestamp`)."""
    return datetime.fromtimestamp(ms // 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def side_of(buy: bool) -> str:
    """Bid for a buy, Ask for a sell."""
    return BID if buy else ASK


# -- views -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MarketView:
    """A perpetual market's published rules (decimals as the venue writes them)."""

    symbol: str  # BTC_USDC_PERP
    base: str
    quote: str
    tick: Decimal
    step: Decimal
    min_qty: Decimal
    imf_function: dict = field(default_factory=dict)  # {"type": "sqrt", "base": .., "factor": ..}
    mmf_function: dict = field(default_factory=dict)
    funding_interval_ms: int = 3_600_000
    funding_bound_bps: str = "100"
    open_interest_limit: str = "0"
    created_at: str = "2025-01-21T06:34:54.691858"


@dataclass(frozen=True)
class OrderView:
    """One order as Backpack reports it."""

    order_id: str
    client_id: Optional[int]
    symbol: str
    side: str  # Bid | Ask
    order_type: str  # Limit | Market
    quantity: Decimal
    price: Optional[Decimal]
    executed_qty: Decimal
    executed_quote: Decimal
    status: str
    created_ms: int
    post_only: bool = False
    reduce_only: bool = False
    time_in_force: str = "GTC"
    expiry_reason: Optional[str] = None
    system_order_type: Optional[str] = None


@dataclass(frozen=True)
class FillView:
    """One execution of one order."""

    trade_id: int
    order_id: str
    client_id: Optional[int]
    symbol: str
    side: str
    price: Decimal
    quantity: Decimal
    fee: Decimal
    fee_symbol: str
    maker: bool
    ts_ms: int
    system_order_type: Optional[str] = None  # "LiquidatePositionOnBook" for the venue's liquidations


@dataclass(frozen=True)
class PositionView:
    """The account's net position in one market (Backpack is net mode only)."""

    symbol: str
    position_id: str
    net_qty: Decimal  # signed
    entry_price: Decimal
    mark_price: Decimal
    liquidation_price: Decimal
    pnl_realized: Decimal
    pnl_unrealized: Decimal
    cumulative_funding: Decimal
    imf: Decimal
    mmf: Decimal
    imf_function: dict = field(default_factory=dict)
    mmf_function: dict = field(default_factory=dict)


# -- public REST -------------------------------------------------------------------------------
def market_json(m: MarketView) -> dict:
    """One row of GET /api/v1/markets (and GET /api/v1/market)."""
    return {
        "symbol": m.symbol, "baseSymbol": m.base, "quoteSymbol": m.quote,
        "marketType": "PERP", "orderBookState": "Open", "visible": True,
        "createdAt": m.created_at,
        "filters": {
            "price": {"tickSize": dec(m.tick), "minPrice": dec(m.tick), "maxPrice": None,
                      "maxMultiplier": "1.25", "minMultiplier": "0.75",
                      "maxImpactMultiplier": "1.03", "minImpactMultiplier": "0.97",
                      "meanMarkPriceBand": {"maxMultiplier": "1.15", "minMultiplier": "0.9"},
                      "meanPremiumBand": None, "borrowEntryFeeMaxMultiplier": None,
                      "borrowEntryFeeMinMultiplier": None},
            "quantity": {"stepSize": dec(m.step), "minQuantity": dec(m.min_qty),
                         "maxQuantity": None},
        },
        "fundingInterval": m.funding_interval_ms,
        "fundingRateUpperBound": m.funding_bound_bps,
        "fundingRateLowerBound": f"-{m.funding_bound_bps}",
        "openInterestLimit": m.open_interest_limit,
        "imfFunction": m.imf_function or None, "mmfFunction": m.mmf_function or None,
        "positionLimitWeight": None,
    }


def ticker_json(symbol: str, first: Decimal, last: Decimal, high: Decimal, low: Decimal,
                volume: Decimal, quote_volume: Decimal, trades: int) -> dict:
    """GET /api/v1/ticker: 24 h statistics (no timestamp field, as on the real venue)."""
    change = Decimal(last) - Decimal(first)
    pct = (change / Decimal(first)).quantize(Decimal("0.000001")) if first else Decimal(0)
    return {"symbol": symbol, "firstPrice": dec(first), "lastPrice": dec(last),
            "high": dec(high), "low": dec(low), "priceChange": dec(change),
            "priceChangePercent": dec(pct), "volume": dec(volume),
            "quoteVolume": dec(quote_volume), "trades": str(trades)}


def mark_price_json(symbol: str, mark: Decimal, index: Decimal, funding_rate: Decimal,
                    next_funding_ms: int) -> dict:
    """One row of GET /api/v1/markPrices (an array even for one symbol)."""
    return {"symbol": symbol, "markPrice": dec(mark), "indexPrice": dec(index),
            "fundingRate": dec(funding_rate), "nextFundingTimestamp": int(next_funding_ms)}


def funding_rate_json(symbol: str, rate: Decimal, interval_end_ms: int) -> dict:
    """One row of GET /api/v1/fundingRates (public history)."""
    return {"symbol": symbol, "fundingRate": dec(rate),
            "intervalEndTimestamp": iso_naive_seconds(interval_end_ms)}


# -- private REST ------------------------------------------------------------------------------
def capital_json(balances: dict[str, tuple[Decimal, Decimal]]) -> dict:
    """GET /api/v1/capital: {ASSET: {available, locked, staked}} from {ASSET: (available, locked)}."""
    return {asset: {"available": dec(a), "locked": dec(lk), "staked": "0"}
            for asset, (a, lk) in balances.items()}


def collateral_json(asset: str, balance: Decimal, equity: Decimal, available: Decimal,
                    imf: Decimal, mmf: Decimal, unrealized: Decimal, exposure: Decimal,
                    mark: Decimal = Decimal(1)) -> dict:
    """GET /api/v1/capital/collateral: the margin account summary (cross collateral)."""
    locked = max(Decimal(0), Decimal(equity) - Decimal(available))
    margin_fraction = (Decimal(equity) / Decimal(exposure)) if exposure else None
    return {
        "assetsValue": dec(balance), "borrowLiability": "0", "liabilitiesValue": "0",
        "imf": dec(imf), "mmf": dec(mmf), "marginFraction": dec(margin_fraction),
        "netEquity": dec(equity), "netEquityAvailable": dec(available),
        "netEquityLocked": dec(locked), "netExposureFutures": dec(exposure),
        "pnlUnrealized": dec(unrealized), "unsettledEquity": dec(unrealized),
        "collateral": [{
            "symbol": asset, "assetMarkPrice": dec(mark), "totalQuantity": dec(balance),
            "balanceNotional": dec(balance), "collateralWeight": "1",
            "collateralValue": dec(balance), "openOrderQuantity": "0", "lendQuantity": "0",
            "availableQuantity": dec(balance),
        }],
    }


def account_json(leverage_limit: int, maker_fee: Decimal, taker_fee: Decimal,
                 open_limit_orders: int) -> dict:
    """GET /api/v1/account: settings; fees in basis points as decimal strings."""
    bps = Decimal(10000)
    return {
        "autoBorrowSettlements": True, "autoLend": False, "autoRealizePnl": True,
        "autoRepayBorrows": True, "borrowLimit": "0",
        "futuresMakerFee": dec(Decimal(maker_fee) * bps),
        "futuresTakerFee": dec(Decimal(taker_fee) * bps),
        "leverageLimit": str(int(leverage_limit)), "limitOrders": int(open_limit_orders),
        "liquidating": False, "positionLimit": "0",
        "spotMakerFee": dec(Decimal(maker_fee) * bps), "spotTakerFee": dec(Decimal(taker_fee) * bps),
        "triggerOrders": 0,
    }


def order_json(o: OrderView, history: bool = False) -> dict:
    """An order of POST/DELETE/GET /api/v1/order and /orders; `history` for /wapi/v1/history/orders."""
    d: dict[str, Any] = {
        "id": o.order_id, "clientId": o.client_id,
        "createdAt": iso_naive(o.created_ms) if history else o.created_ms,
        "executedQuantity": dec(o.executed_qty), "executedQuoteQuantity": dec(o.executed_quote),
        "orderType": o.order_type, "quantity": dec(o.quantity),
        "reduceOnly": o.reduce_only, "relatedOrderId": None,
        "selfTradePrevention": "RejectTaker", "side": o.side, "status": o.status,
        "stopLossLimitPrice": None, "stopLossTriggerBy": None, "stopLossTriggerPrice": None,
        "strategyId": None, "symbol": o.symbol, "takeProfitLimitPrice": None,
        "takeProfitTriggerBy": None, "takeProfitTriggerPrice": None,
        "timeInForce": o.time_in_force, "triggerBy": None, "triggerPrice": None,
        "triggerQuantity": None, "triggeredAt": None,
    }
    if o.order_type == "Limit":
        d["price"] = dec(o.price)
        d["postOnly"] = o.post_only
    else:
        d["quoteQuantity"] = dec(o.executed_quote)
    if history:
        d["expiryReason"] = o.expiry_reason
        d["systemOrderType"] = o.system_order_type
    elif o.expiry_reason is not None:
        d["expiryReason"] = o.expiry_reason
    return d


def fill_json(f: FillView) -> dict:
    """One row of GET /wapi/v1/history/fills (clientId is a string there)."""
    return {"clientId": None if f.client_id is None else str(f.client_id),
            "fee": dec(f.fee), "feeSymbol": f.fee_symbol, "isMaker": f.maker,
            "orderId": f.order_id, "price": dec(f.price), "quantity": dec(f.quantity),
            "side": f.side, "symbol": f.symbol, "systemOrderType": f.system_order_type,
            "timestamp": iso_naive(f.ts_ms), "tradeId": f.trade_id}


def funding_json(symbol: str, rate: Decimal, amount: Decimal, interval_end_ms: int,
                 user_id: str) -> dict:
    """One row of GET /wapi/v1/history/funding: quantity > 0 received, < 0 paid."""
    return {"fundingRate": dec(rate), "intervalEndTimestamp": iso_naive_seconds(interval_end_ms),
            "quantity": dec(amount), "subaccountId": "0", "symbol": symbol, "userId": user_id}


def position_json(p: PositionView, user_id: str) -> dict:
    """One row of GET /api/v1/position."""
    qty = Decimal(p.net_qty)
    notional = abs(qty) * Decimal(p.mark_price)
    return {
        "breakEvenPrice": dec(p.entry_price), "cumulativeFundingPayment": dec(p.cumulative_funding),
        "cumulativeInterest": "0", "entryPrice": dec(p.entry_price),
        "estLiquidationPrice": dec(p.liquidation_price), "imf": dec(p.imf),
        "imfFunction": p.imf_function or None, "markPrice": dec(p.mark_price), "mmf": dec(p.mmf),
        "mmfFunction": p.mmf_function or None, "netCost": dec(qty * Decimal(p.entry_price)),
        "netExposureNotional": dec(notional), "netExposureQuantity": dec(abs(qty)),
        "netQuantity": dec(qty), "pnlRealized": dec(p.pnl_realized),
        "pnlUnrealized": dec(p.pnl_unrealized), "positionId": p.position_id,
        "subaccountId": None, "symbol": p.symbol, "userId": user_id,
    }
