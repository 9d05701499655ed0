"""Turns what a worker sees and decides into store rows (through the buffered writer)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any, Optional

from gridctl.core.engine import Event, GridEngine
from gridctl.core.fills import Fill, FundingPayment
from gridctl.core.ledger import Trade
from gridctl.core.orders import OpenOrder, OrderRequest
from gridctl.exchange.base import ExchangeOrder
from gridctl.store.writer import BufferedWriter


class Recorder:
    """One strategy's writes; also fans events out to live subscribers."""

    def __init__(self, writer: BufferedWriter, engine: GridEngine, name: str):
        self.w, self.e, self.name = writer, engine, name
        self.rules = engine.rules
        self.subscribers: list[asyncio.Queue] = []

    def event(self, ts: int, kind: str, message: str, level: Optional[int] = None,
              order_id: Optional[str] = None, data: Any = None) -> None:
        """Store an event and push it to `logs --follow` subscribers."""
        self.w.event(self.name, kind, message, ts=ts, level=level, order_id=order_id, data=data)
        row = {"strategy": self.name, "ts": ts, "type": kind, "message": message, "level": level,
               "order_id": order_id, "data": data}
        for q in list(self.subscribers):
            if q.qsize() < 1000:
                q.put_nowait(row)

    def engine_events(self, ts: int, events: list[Event]) -> None:
        for ev in events:
            self.event(ts, ev.kind, ev.message, ev.level, None, ev.data)

    def order_placed(self, ts: int, r: OrderRequest, order_id: str) -> None:
        """A request the venue accepted: a limit order resting, or a market order (price None)."""
        rules = self.rules
        self.w.upsert("orders", {
            "strategy": self.name, "client_id": str(r.client_id), "order_id": order_id, "level": r.level,
            "intent": r.intent.value, "side": r.side.value,
            "price": rules.price(r.price) if r.price is not None else None,
            "qty": rules.qty(r.qty), "filled": Decimal(0), "status": "open", "reduce_only": r.reduce_only,
            "post_only": r.post_only, "created_ts": ts, "updated_ts": ts})
        data = {"action": "placed", "client_id": str(r.client_id), "intent": r.intent.value, "side": r.side.value,
                "price": None if r.price is None else str(rules.price(r.price)), "qty": str(rules.qty(r.qty)),
                "reduce_only": r.reduce_only, "post_only": r.post_only}
        if r.price is None:
            self.event(ts, "order", f"market {r.intent.value} {r.side.value} {rules.qty(r.qty)}", r.level, order_id,
                       data)
        else:
            self.event(ts, "order", f"placed {r.intent.value} {r.side.value} {rules.qty(r.qty)} @ "
                       f"{rules.price(r.price)} (level {r.level})", r.level, order_id, data)

    def order_rejected(self, ts: int, r: OrderRequest, reason: str) -> None:
        """A request the venue refused: stored with its reason (no event: the driver says why)."""
        rules = self.rules
        self.w.upsert("orders", {
            "strategy": self.name, "client_id": str(r.client_id), "order_id": None, "level": r.level,
            "intent": r.intent.value, "side": r.side.value,
            "price": rules.price(r.price) if r.price is not None else None,
            "qty": rules.qty(r.qty), "filled": Decimal(0), "status": "rejected", "reason": reason,
            "reduce_only": r.reduce_only, "post_only": r.post_only, "created_ts": ts, "updated_ts": ts})

    def order_adopted(self, ts: int, o: ExchangeOrder, level: int, intent: str) -> None:
        """An own order found on the venue at start: written with everything the venue says of it."""
        rules = self.rules
        self.w.upsert("orders", {
            "strategy": self.name, "client_id": str(o.client_id), "order_id": o.order_id, "level": level,
            "intent": intent, "side": o.side.value, "price": rules.price(o.price) if o.price is not None else None,
            "qty": rules.qty(o.qty), "filled": rules.qty(o.filled), "status": "open", "reduce_only": o.reduce_only,
            "post_only": False, "created_ts": ts, "updated_ts": ts})

    def order_recovered(self, ts: int, o: ExchangeOrder, level: Optional[int], intent: str, status: str) -> None:
        """An own order the venue has on record and the store had lost (a worker killed with the row
        still in memory): written with everything the venue says of it."""
        rules = self.rules
        self.w.upsert("orders", {
            "strategy": self.name, "client_id": str(o.client_id), "order_id": o.order_id, "level": level,
            "intent": intent, "side": o.side.value, "price": rules.price(o.price) if o.price is not None else None,
            "qty": rules.qty(o.qty), "filled": rules.qty(o.filled), "status": status, "reduce_only": o.reduce_only,
            "post_only": False, "reason": "recovered from the venue", "created_ts": ts, "updated_ts": ts})

    def order_filled(self, ts: int, fills: list[Fill], level: Optional[int], intent: str) -> None:
        """An order known only from its fills (placed and filled by a process that died
        before storing it): written whole, as filled."""
        f, rules = fills[0], self.rules
        qty = sum(x.qty for x in fills)
        self.w.upsert("orders", {
            "strategy": self.name, "client_id": str(f.client_id), "order_id": f.order_id, "level": level,
            "intent": intent, "side": f.side.value, "price": rules.price(f.price) if f.maker else None,
            "qty": rules.qty(qty), "filled": rules.qty(qty), "status": "filled", "reduce_only": f.reduce_only,
            "post_only": False, "created_ts": f.ts, "updated_ts": ts})

    def order_status(self, ts: int, cid: object, status: str, reason: Optional[str] = None,
                     filled: Optional[int] = None) -> None:
        row: dict[str, Any] = {"strategy": self.name, "client_id": str(cid), "status": status, "updated_ts": ts}
        if reason:
            row["reason"] = reason
        if filled is not None:
            row["filled"] = self.rules.qty(filled)
        self.w.upsert("orders", row)

    def order_cancelled(self, ts: int, o: OpenOrder) -> None:
        self.order_status(ts, o.client_id, "cancelled")
        price = self.rules.price(o.price)
        self.event(ts, "order", f"cancelled {o.intent.value} {o.side.value} @ {price} (level {o.level})",
                   o.level, o.order_id, {"action": "cancelled", "client_id": str(o.client_id),
                                         "intent": o.intent.value, "side": o.side.value, "price": str(price),
                                         "qty": str(self.rules.qty(o.qty)), "reduce_only": o.reduce_only})

    def fill(self, f: Fill, level: Optional[int], intent: str, realized: Decimal) -> None:
        self.w.add("fills", {
            "strategy": self.name, "ts": f.ts, "client_id": str(f.client_id), "order_id": f.order_id,
            "level": level, "intent": intent, "side": f.side.value, "price": self.rules.price(f.price),
            "qty": self.rules.qty(f.qty), "fee": f.fee, "maker": f.maker, "reduce_only": f.reduce_only,
            "realized_pnl": realized, "trade_id": f.trade_id or None})

    def trade(self, t: Trade) -> None:
        self.w.add("trades", {
            "strategy": self.name, "level": t.level, "side": t.side.value, "entry_ts": t.entry_ts,
            "exit_ts": t.exit_ts, "entry_price": t.entry_price.quantize(self.rules.tick),
            "exit_price": t.exit_price.quantize(self.rules.tick), "qty": t.qty, "profit": t.profit,
            "fees": t.fees, "net_profit": t.net_profit, "hold_ms": t.hold_ms})

    def funding(self, p: FundingPayment) -> None:
        self.w.add("funding", {"strategy": self.name, "ts": p.ts, "rate": p.rate,
                               "mark_price": None if p.mark is None else self.rules.price(p.mark), "position": self.rules.qty(p.position),
                               "amount": p.amount})

    def levels(self, ts: int) -> None:
        for lv in self.e.levels.values():
            s = lv.spec
            self.w.upsert("levels", {
                "strategy": self.name, "idx": s.index, "side": s.side.value, "entry_price": self.rules.price(s.entry),
                "exit_price": self.rules.price(s.exit), "size": self.rules.qty(s.size),
                "held": self.rules.qty(lv.held), "exiting": lv.exiting, "gen": lv.gen, "updated_ts": ts})

    def equity(self, ts: int, price: int, mark: int, balance: Decimal, buys: int, sells: int,
               exchange_position: Optional[int] = None) -> None:
        """A snapshot; `exchange_position` (steps) is the venue's net position (default: the ledger's)."""
        led = self.e.ledger
        total = led.total_pnl(mark)
        self.w.add("equity", {
            "strategy": self.name, "ts": ts, "price": self.rules.price(price),
            "position": self.rules.qty(led.position), "realized": led.realized, "grid_profit": led.grid_profit,
            "unrealized": led.unrealized(mark), "fees": led.fees, "funding": led.funding, "total_pnl": total,
            "equity": balance + total, "open_buys": buys, "open_sells": sells,
            "exchange_position": self.rules.qty(led.position if exchange_position is None else exchange_position)})

    def strategy(self, ts: int, **fields: Any) -> None:
        self.w.upsert("strategies", {"name": self.name, "updated_ts": ts, **fields})
