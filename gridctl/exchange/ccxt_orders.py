"""Order requests in ccxt's terms, and ccxt's answers back in ticks and steps.

Pure translation, per venue (quirks from gridctl.exchange.venues): what `create_order`
is called with for a grid order, a close or a slippage-bounded opening order; which
params cancel or fetch by client id; an order, a trade or a raw stream event as the
core's ExchangeOrder / Fill / OrderUpdate. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Optional

from gridctl.core.fills import CANCELLED, EXPIRED, REJECTED, Fill, OrderUpdate
from gridctl.core.grid import Side
from gridctl.core.market import MarketRules
from gridctl.core.orders import Intent, OrderRequest
from gridctl.exchange.base import ExchangeOrder
from gridctl.exchange.venues import quirk

DEFAULT_MAX_SLIPPAGE_PCT = Decimal("0.5")
# ccxt's unified status -> the protocol's ExchangeOrder.status
_STATUS = {"open": "open", "closed": "filled", "canceled": "cancelled", "cancelled": "cancelled",
           "expired": "expired", "rejected": "rejected"}


@dataclass(frozen=True)
class OrderCall:
    """The arguments of one ccxt create_order call."""

    symbol: str
    type: str  # limit | market
    side: str  # buy | sell
    amount: float
    price: Optional[float]
    params: dict = field(default_factory=dict)
    bounded: bool = False  # an opening market order sent as an IOC limit at the slippage bound


def dec(value: Any) -> Optional[Decimal]:
    """A venue number (str, int or float as ccxt parsed it) as Decimal; None when absent."""
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def to_steps(rules: MarketRules, qty: Any) -> int:
    """A venue quantity in steps, to the nearest step (ccxt's floats carry representation noise)."""
    d = dec(qty)
    return 0 if d is None else int((d / rules.step).to_integral_value(rounding=ROUND_HALF_EVEN))


def to_ticks(rules: MarketRules, price: Any) -> Optional[int]:
    d = dec(price)
    return None if d is None or d == 0 else int((d / rules.tick).to_integral_value(rounding=ROUND_HALF_EVEN))


def slippage_bound(rules: MarketRules, side: Side, market: int, pct: Decimal) -> int:
    """The worst price (ticks) an opening market order accepts: pct% above the market for a
    buy, below for a sell, rounded inwards so the bound is never exceeded."""
    f = Decimal(pct) / 100
    raw = Decimal(market) * (1 + f if side is Side.BUY else 1 - f)
    return int(raw.to_integral_value(rounding=ROUND_FLOOR if side is Side.BUY else ROUND_CEILING))


def cid_wire(venue: str, cid: object) -> object:
    """The client id as the venue's API takes it (Backpack: a uint32)."""
    return int(cid) if quirk(venue, "client_id") == "backpack" else str(cid)  # type: ignore[call-overload]


def order_call(venue: str, rules: MarketRules, r: OrderRequest, *, hedge: bool, market: Optional[int] = None,
               max_slippage_pct: Decimal = DEFAULT_MAX_SLIPPAGE_PCT) -> OrderCall:
    """The create_order call for a request.

    A limit is post-only when asked. A market order that opens a position (an entry without
    a price: initial_position) goes as an immediate-or-cancel limit at the slippage bound
    around `market`; closes go at market. In hedge mode the leg is named as the venue
    wants, and reduceOnly is dropped where the venue refuses it beside the leg (Binance -1106).
    """
    params: dict[str, Any] = {"clientOrderId": cid_wire(venue, r.client_id)}
    bounded = r.price is None and r.intent is Intent.ENTRY and market is not None
    if bounded:
        assert market is not None
        kind, price = "limit", slippage_bound(rules, r.side, market, max_slippage_pct)
        params.update(quirk(venue, "ioc"))
    elif r.price is None:
        kind, price = "market", None
    else:
        kind, price = "limit", r.price
        if r.post_only:
            params.update(quirk(venue, "post_only"))
    leg = quirk(venue, "hedge")
    if hedge and r.position_side is not None and leg is not None:
        name, long_value, short_value = leg
        params[name] = long_value if r.position_side == "long" else short_value
        if r.reduce_only and quirk(venue, "reduce_only_in_hedge"):
            params["reduceOnly"] = True
    elif r.reduce_only:
        params["reduceOnly"] = True
    return OrderCall(rules.symbol, kind, r.side.value, float(rules.qty(r.qty)),
                     None if price is None else float(rules.price(price)), params, bounded)


def lookup_params(venue: str, cid: object) -> dict:
    """Params that make ccxt cancel_order / fetch_order address an order by client id."""
    name = quirk(venue, "cid_lookup_param")
    if name is None:
        raise ValueError(f"{venue}: orders are looked up by client id through the venue's own endpoint")
    return {name: cid_wire(venue, cid)}


def position_mode_call(venue: str, hedge: bool, symbol: str) -> tuple[bool, Optional[str]]:
    """The (hedged, symbol) arguments of set_position_mode (None symbol: account-wide)."""
    return hedge, (symbol if quirk(venue, "position_mode") == "symbol" else None)


# -- answers --------------------------------------------------------------------------------
def client_id_of(venue: str, raw: Any) -> object:
    """A client id as the core keeps it (int for uint32 venues, else str); None when absent."""
    if raw is None or raw == "":
        return None
    if quirk(venue, "client_id") == "backpack":
        try:
            return int(raw)
        except (TypeError, ValueError):
            return str(raw)
    return str(raw)


def exchange_order(venue: str, rules: MarketRules, o: dict) -> ExchangeOrder:
    """A ccxt unified order as the protocol's ExchangeOrder."""
    info = o.get("info") or {}
    cid = o.get("clientOrderId")
    if cid is None:
        cid = info.get("clientId", info.get("clientOrderId"))
    status = _STATUS.get(str(o.get("status") or "open"), "open")
    if str(info.get("status", "")).lower() == "expired":  # Backpack's Expired is parsed as canceled
        status = "expired"
    side = Side(o["side"]) if o.get("side") in ("buy", "sell") else Side.BUY
    leg = info.get("positionSide") or info.get("posSide")
    leg = str(leg).lower() if leg and str(leg).upper() not in ("BOTH", "NET") else None
    # a market order has no price of its own (ccxt reports its average fill price in `price`)
    price = None if str(o.get("type") or "").lower() == "market" else to_ticks(rules, o.get("price"))
    return ExchangeOrder(client_id_of(venue, cid), str(o.get("id") or ""), side, price,
                         to_steps(rules, o.get("amount")), to_steps(rules, o.get("filled") or 0),
                         bool(o.get("reduceOnly") or info.get("reduceOnly") in (True, "true")), status, leg)


def rejection_reason(o: dict) -> Optional[str]:
    """Why the venue refused an order it answered without an error (Backpack: status Expired
    with an expiry reason such as PostOnlyTaker); None for an accepted order."""
    info = o.get("info") or {}
    if str(info.get("status", "")) == "Expired" and info.get("expiryReason"):
        return str(info["expiryReason"])
    return None


def quote_fee(rules: MarketRules, fee: Any, asset: Optional[str], price: Decimal) -> Decimal:
    """A fee in the quote currency (paid > 0): base-asset fees at the fill price; other assets
    (BNB) are kept as reported, which the fill's fee_asset says."""
    amount = dec(fee) or Decimal(0)
    if asset and asset == rules.base:
        return amount * price
    return amount


def trade_fill(venue: str, rules: MarketRules, t: dict, cid: object, kind: str = "own") -> Fill:
    """A ccxt unified trade (REST history) as a Fill."""
    fee = t.get("fee") or {}
    price = dec(t.get("price")) or Decimal(0)
    info = t.get("info") or {}
    maker = t.get("takerOrMaker") == "maker" if t.get("takerOrMaker") else bool(info.get("maker", info.get("isMaker")))
    return Fill(int(t.get("timestamp") or 0), cid, str(t.get("order") or ""), Side(t["side"]),
                to_ticks(rules, price) or 0, to_steps(rules, t.get("amount")),
                quote_fee(rules, fee.get("cost"), fee.get("currency"), price), maker, False,
                str(t.get("id") or ""), str(fee.get("currency") or ""), kind)


def fill_kind(cid: object) -> str:
    """The venue's own liquidation and auto-deleveraging orders, told by their client id."""
    s = str(cid or "")
    if s.startswith("autoclose-") or s.startswith("liquidation"):
        return "liquidation"
    if s.startswith("adl_autoclose"):
        return "deleveraging"
    return "own"


# -- raw stream events ------------------------------------------------------------------------
_BINANCE_GONE = {"CANCELED": CANCELLED, "EXPIRED": EXPIRED, "REJECTED": REJECTED, "EXPIRED_IN_MATCH": EXPIRED}


def binance_order_event(rules: MarketRules, msg: dict) -> tuple[Optional[Fill], Optional[OrderUpdate], dict]:
    """An ORDER_TRADE_UPDATE: (the fill when it is a TRADE, the update when the order left
    the book other than by filling, the order's state for confirmations)."""
    o = msg.get("o") or {}
    cid = client_id_of("binanceusdm", o.get("c"))
    side = Side.BUY if o.get("S") == "BUY" else Side.SELL
    oid = str(o.get("i", ""))
    ts = int(o.get("T") or msg.get("T") or msg.get("E") or 0)
    fill = update = None
    if o.get("x") == "TRADE":
        price = dec(o.get("L")) or Decimal(0)
        asset = o.get("N")
        fill = Fill(ts, cid, oid, side, to_ticks(rules, price) or 0, to_steps(rules, o.get("l")),
                    quote_fee(rules, o.get("n"), asset, price), bool(o.get("m")), bool(o.get("R")),
                    str(o.get("t", "")), str(asset or ""), fill_kind(cid))
    status = _BINANCE_GONE.get(str(o.get("X")))
    if status is not None:
        update = OrderUpdate(ts, cid, oid, status, to_steps(rules, o.get("z")), "venue")
    state = {"cid": cid, "order_id": oid, "side": side, "price": to_ticks(rules, o.get("p")),
             "qty": to_steps(rules, o.get("q")), "filled": to_steps(rules, o.get("z")), "reduce_only": bool(o.get("R")),
             "status": {"NEW": "open", "PARTIALLY_FILLED": "open", "FILLED": "filled"}.get(str(o.get("X")),
                                                                                           status or "open")}
    return fill, update, state


_BACKPACK_GONE = {"orderCancelled": CANCELLED, "orderExpired": EXPIRED, "triggerFailed": REJECTED}


def backpack_order_event(rules: MarketRules, data: dict) -> tuple[Optional[Fill], Optional[OrderUpdate], dict]:
    """A Backpack account.orderUpdate event (µs timestamps), as binance_order_event."""
    e = data.get("e")
    cid = client_id_of("backpack", data.get("c"))
    side = Side.BUY if data.get("S") == "Bid" else Side.SELL
    oid = str(data.get("i", ""))
    ts = int(data.get("T") or data.get("E") or 0) // 1000
    fill = update = None
    if e == "orderFill":
        price = dec(data.get("L")) or Decimal(0)
        asset = data.get("N")
        # the venue's own liquidation orders say so in their origin (O), not in a client id
        kind = "liquidation" if "liquidat" in str(data.get("O") or "").lower() else fill_kind(cid)
        fill = Fill(ts, cid, oid, side, to_ticks(rules, price) or 0, to_steps(rules, data.get("l")),
                    quote_fee(rules, data.get("n"), asset, price), bool(data.get("m")), bool(data.get("r", False)),
                    str(data.get("t", "")), str(asset or ""), kind)
    status = _BACKPACK_GONE.get(str(e))
    if status is not None:
        update = OrderUpdate(ts, cid, oid, status, to_steps(rules, data.get("z")), str(data.get("R") or "venue"))
    x = str(data.get("X") or "")
    state = {"cid": cid, "order_id": oid, "side": side, "price": to_ticks(rules, data.get("p")),
             "qty": to_steps(rules, data.get("q")), "filled": to_steps(rules, data.get("z")),
             "reduce_only": bool(data.get("r", False)),
             "status": "filled" if x == "Filled" else (status or "open")}
    return fill, update, state
