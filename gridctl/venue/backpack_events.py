"""Backpack's stream messages: `{"stream": NAME, "data": {...}}` with microsecond times.

Pure builders from the codec's views (gridctl.venue.backpack_codec), as the AsyncAPI and
the real messages quoted in ccxt.pro.backpack describe them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Optional

from gridctl.venue.backpack_codec import FillView, OrderView, PositionView, dec, fixed


def envelope(stream: str, data: dict) -> dict:
    """A stream message as Backpack frames it."""
    return {"stream": stream, "data": data}


def error_frame(code: int, message: str, request_id: Any = None) -> dict:
    """A WebSocket error reply (e.g. 4006 on a refused subscribe)."""
    return {"id": request_id, "error": {"code": int(code), "message": message}}


def order_event(event: str, o: OrderView, now_us: int, fill: Optional[FillView] = None,
                tick: Optional[Decimal] = None, step: Optional[Decimal] = None) -> dict:
    """account.orderUpdate data: orderAccepted, orderFill, orderCancelled or orderExpired.

    `c` only when the order has a clientId; `R` only on orderExpired; `t l L m n N` only on
    fills (`l` is this fill's quantity, `z` the cumulative one); `O` the origin: USER, or
    LIQUIDATION_AUTOCLOSE for the venue's liquidation orders.
    """
    q = (lambda v: fixed(v, step)) if step is not None else dec
    px = (lambda v: fixed(v, tick)) if tick is not None else dec
    d: dict[str, Any] = {
        "e": event, "E": int(now_us), "s": o.symbol, "i": o.order_id, "S": o.side,
        "o": o.order_type.upper(), "f": o.time_in_force, "q": q(o.quantity), "X": o.status,
        "z": q(o.executed_qty), "Z": dec(o.executed_quote), "V": "RejectTaker",
        "O": "LIQUIDATION_AUTOCLOSE" if o.system_order_type else "USER",
        "T": int(now_us), "r": o.reduce_only, "y": o.post_only, "t": None,
    }
    if o.price is not None:
        d["p"] = px(o.price)
    if o.client_id is not None:
        d["c"] = o.client_id
    if event == "orderExpired" and o.expiry_reason:
        d["R"] = o.expiry_reason
    if fill is not None:
        d.update({"t": fill.trade_id, "l": q(fill.quantity), "L": px(fill.price),
                  "m": fill.maker, "n": dec(fill.fee), "N": fill.fee_symbol})
    return d


def position_event(event: str, p: PositionView, now_us: int) -> dict:
    """account.positionUpdate data: positionOpened, positionAdjusted or positionClosed."""
    qty = Decimal(p.net_qty)
    return {
        "e": event, "E": int(now_us), "T": int(now_us), "s": p.symbol, "i": p.position_id,
        "q": dec(qty), "Q": dec(abs(qty)), "n": dec(abs(qty) * Decimal(p.mark_price)),
        "b": dec(p.entry_price), "B": dec(p.entry_price), "M": dec(p.mark_price),
        "P": dec(p.pnl_unrealized), "p": dec(p.pnl_realized), "l": dec(p.liquidation_price),
        "f": dec(p.imf), "m": dec(p.mmf),
    }


def position_event_kind(before: Decimal, after: Decimal) -> str:
    """Which position event a change of the net quantity is."""
    if before == 0 and after != 0:
        return "positionOpened"
    if after == 0:
        return "positionClosed"
    return "positionAdjusted"


def ticker_event(symbol: str, first: Decimal, last: Decimal, high: Decimal, low: Decimal,
                 volume: Decimal, quote_volume: Decimal, trades: int, now_us: int) -> dict:
    """ticker.<symbol> data."""
    return {"e": "ticker", "E": int(now_us), "s": symbol, "o": dec(first), "c": dec(last),
            "h": dec(high), "l": dec(low), "v": dec(volume), "V": dec(quote_volume),
            "n": int(trades)}


def mark_price_event(symbol: str, mark: Decimal, index: Decimal, funding_rate: Decimal,
                     next_funding_ms: int, now_us: int) -> dict:
    """markPrice.<symbol> data (`n`, the next funding time, in microseconds like `E`)."""
    return {"e": "markPrice", "E": int(now_us), "s": symbol, "p": dec(mark), "i": dec(index),
            "f": dec(funding_rate), "n": int(next_funding_ms) * 1000}
