"""Binance USDⓈ-M stream payloads for venue events: ORDER_TRADE_UPDATE, ACCOUNT_UPDATE and
the market streams (markPriceUpdate, bookTicker, 24hrMiniTicker, 24hrTicker), in the field
names ccxt.pro.binanceusdm parses (research §2.3)."""

from __future__ import annotations

from decimal import Decimal
from typing import Optional

from gridctl.venue import binance_wire as W
from gridctl.venue.records import AccountEvent, OrderEvent
from gridctl.venue.triggers import TriggerEvent

EXEC = {"new": "NEW", "trade": "TRADE", "cancelled": "CANCELED", "expired": "EXPIRED"}


def order_update(venue, ev: OrderEvent) -> dict:
    o, f = ev.order, ev.fill
    rules = venue.market(o.symbol).rules
    return {"e": "ORDER_TRADE_UPDATE", "E": ev.ts, "T": ev.ts, "o": {
        "s": rules.venue_id, "c": str(o.client_id), "S": o.side.upper(), "o": o.type.upper(),
        "f": W.TIF_OUT.get(o.time_in_force, o.time_in_force), "q": W.s(o.qty),
        "p": W.s(o.price) if o.price is not None else "0",
        "ap": W.s(o.avg_price.quantize(rules.tick)) if o.filled else "0", "sp": "0",
        "x": EXEC[ev.execution], "X": W.STATUS[o.status], "i": o.order_id,
        "l": W.s(f.qty) if f else "0", "z": W.s(o.filled), "L": W.s(f.price) if f else "0",
        "N": f.fee_asset if f else venue.asset, "n": W.money(f.fee) if f else "0",
        "T": ev.ts, "t": f.trade_id if f else 0, "b": "0", "a": "0", "m": bool(f.maker) if f else False,
        "R": o.reduce_only, "wt": "CONTRACT_PRICE", "ot": o.type.upper(), "ps": W.POSITION_SIDE[o.position_side],
        "cp": False, "rp": W.money(f.realized) if f else "0", "pP": False, "si": 0, "ss": 0, "V": "EXPIRE_MAKER",
        "pm": "NONE", "gtd": 0}}


def account_update(venue, ev: AccountEvent) -> dict:
    acc = venue.accounts[ev.account]
    b = venue.balance(acc)
    reason = "FUNDING_FEE" if ev.reason == "funding" else "ORDER"
    change = ev.funding.amount if ev.funding is not None else Decimal(0)
    positions = []
    for sym in ev.symbols:
        rules = venue.market(sym).rules
        for p in venue.positions(acc, sym):
            positions.append({"s": rules.venue_id, "pa": W.s(p.qty), "ep": W.s(p.entry), "bep": W.s(p.entry),
                              "cr": "0", "up": W.money(p.unrealized), "mt": "cross", "iw": "0",
                              "ps": W.POSITION_SIDE[p.position_side], "ma": acc.asset})
    return {"e": "ACCOUNT_UPDATE", "E": ev.ts, "T": ev.ts, "a": {
        "m": reason, "B": [{"a": b.asset, "wb": W.money(b.wallet), "cw": W.money(b.wallet), "bc": W.money(change)}],
        "P": positions}}


def user_message(venue, ev) -> Optional[dict]:
    if isinstance(ev, OrderEvent):
        return order_update(venue, ev)
    if isinstance(ev, AccountEvent):
        return account_update(venue, ev)
    if isinstance(ev, TriggerEvent):
        from gridctl.venue.binance_algo import algo_update
        return algo_update(venue, ev)
    return None


def market_message(venue, protocol, stream: str, m) -> Optional[dict]:
    """The payload of `stream` (e.g. btcusdt@markPrice@1s) for market m, or None if it is not m's."""
    name, _, kind = stream.partition("@")
    if name.lower() != m.rules.venue_id.lower():
        return None
    now = venue.now_ms()
    sym = m.rules.venue_id
    last = W.s(m.price())
    if kind.startswith("markPrice"):
        return {"e": "markPriceUpdate", "E": now, "s": sym, "p": last, "i": last, "P": last,
                "r": W.s(m.funding_rate), "T": m.next_funding_ms or m.next_funding_after(now)}
    if kind == "bookTicker":
        bid, ask = protocol.book_top(m)
        return {"e": "bookTicker", "u": now, "s": sym, "b": W.s(bid), "B": "1000", "a": W.s(ask), "A": "1000",
                "T": now, "E": now}
    if kind in ("miniTicker", "ticker"):
        o, h, lo = m.day_stats()
        msg = {"e": "24hrMiniTicker" if kind == "miniTicker" else "24hrTicker", "E": now, "s": sym, "c": last,
               "o": W.s(o), "h": W.s(h), "l": W.s(lo), "v": "0", "q": "0"}
        if kind == "ticker":
            msg.update({"p": W.s(m.price() - o), "P": "0", "w": last, "Q": "0", "O": now - 86_400_000, "C": now,
                        "F": 0, "L": 0, "n": 0})
        return msg
    return None
