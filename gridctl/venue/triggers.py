"""Trigger (stop-market / take-profit-market) orders of the local venue (Venue mixin).

A trigger order rests outside the book until the market's price crosses its trigger
price, then becomes a market order (same client id) that fills at once, reduce-only
when asked; with `close_position` its size is the leg's whole position at that
instant. Binance calls these algo orders (POST /fapi/v1/algoOrder, ALGO_UPDATE),
Backpack orders with a `triggerPrice` (status TriggerPending); the protocols render
the same record.

    venue.place_trigger(acc, symbol, side, qty, trigger_price, client_id=None, kind="stop",
                        reduce_only=False, close_position=False, position_side=None,
                        working_type="last") -> TriggerOrder       # VenueReject("would_trigger") ...
    venue.cancel_trigger(acc, symbol, trigger_id=None, client_id=None) -> TriggerOrder
    venue.get_trigger(acc, symbol, trigger_id=None, client_id=None) -> TriggerOrder (any status)
    venue.open_triggers(acc, symbol=None) / venue.all_triggers(acc, symbol=None) -> list[TriggerOrder]
    venue.cancel_all_triggers(acc, symbol) -> list[TriggerOrder]

Direction: a "stop" sells when the price falls to the trigger (<=) and buys when it
rises to it (>=); a "take_profit" the other way round. The simulated venue's mark is
its last price, so working_type "mark" and "last" fire alike (both are recorded and
rendered). A trigger already crossed at placement is refused ("would_trigger", as
Binance's -2021): the caller decides what to do instead. Triggers fire in
`fire_triggers(symbol)`, which the price walk (Venue.move_price) calls at every new price,
so they fire whether or not any client is connected.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from decimal import Decimal
from typing import Optional

from gridctl.venue.records import ClientId, VenueReject, _dec, _str_dec

# trigger statuses (Binance's algo statuses, lower case)
T_NEW, T_TRIGGERED, T_FINISHED, T_CANCELLED, T_REJECTED, T_EXPIRED = (
    "new", "triggered", "finished", "cancelled", "rejected", "expired")
KEEP_CLOSED = 1000  # ended triggers kept per account (lookups by client id after the fact)


@dataclass
class TriggerOrder:
    """A resting trigger order (see module doc). qty None: close the whole position."""

    trigger_id: int
    client_id: ClientId
    symbol: str
    side: str
    qty: Optional[Decimal]
    trigger_price: Decimal
    kind: str = "stop"  # stop | take_profit
    reduce_only: bool = False
    close_position: bool = False
    position_side: Optional[str] = None
    working_type: str = "last"  # last | mark
    status: str = T_NEW
    order_id: Optional[int] = None  # the market order it became
    filled: Decimal = Decimal(0)
    avg_price: Decimal = Decimal(0)
    created_ms: int = 0
    updated_ms: int = 0
    trigger_ms: int = 0
    reason: Optional[str] = None

    @property
    def is_open(self) -> bool:
        return self.status == T_NEW

    def fires_at(self, ticks: int, trigger_ticks: int) -> bool:
        falling = (self.side == "sell") == (self.kind == "stop")
        return ticks <= trigger_ticks if falling else ticks >= trigger_ticks

    def copy(self) -> "TriggerOrder":
        return replace(self)

    def to_dict(self) -> dict:
        return _str_dec(asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> "TriggerOrder":
        return cls(**_dec(dict(d), "qty", "trigger_price", "filled", "avg_price"))


@dataclass(frozen=True)
class TriggerEvent:
    """A trigger order was placed, cancelled, fired (triggered), finished or rejected."""

    account: str
    ts: int
    trigger: TriggerOrder


class VenueTriggers:
    """Trigger orders (mixed into gridctl.venue.core.Venue; state in `self.triggers`)."""

    triggers: dict  # account fingerprint -> {trigger id: TriggerOrder}

    def _book_of(self, acc) -> dict:
        return self.triggers.setdefault(acc.fingerprint, {})

    def place_trigger(self, acc, symbol: str, side: str, qty: Optional[Decimal], trigger_price: Decimal,
                      client_id: Optional[ClientId] = None, kind: str = "stop", reduce_only: bool = False,
                      close_position: bool = False, position_side: Optional[str] = None,
                      working_type: str = "last") -> TriggerOrder:
        """Rest a trigger order; returns a copy. Raises VenueReject."""
        m = self.market(symbol)  # type: ignore[attr-defined]
        rules = m.rules
        if m.last is None:
            raise VenueReject("no_price", "the market has no price yet")
        if side not in ("buy", "sell") or kind not in ("stop", "take_profit"):
            raise VenueReject("invalid_order", f"{kind} {side}")
        if close_position:
            qty = None
        else:
            qty = Decimal(qty) if qty is not None else Decimal(0)
            if qty <= 0:
                raise VenueReject("invalid_qty", "quantity less than or equal to zero")
            if qty % rules.step:
                raise VenueReject("qty_precision", f"{qty} is not a multiple of {rules.step}")
        price = Decimal(trigger_price)
        if price <= 0:
            raise VenueReject("invalid_price", f"trigger price {trigger_price}")
        if price % rules.tick:
            raise VenueReject("price_tick", f"{price} is not a multiple of {rules.tick}")
        if acc.hedge and position_side not in ("long", "short"):
            raise VenueReject("position_side_mismatch", "hedge mode needs a position side")
        if not acc.hedge and position_side not in (None, "both"):
            raise VenueReject("position_side_mismatch", "one-way mode takes no position side")
        book = self._book_of(acc)
        now = self.now_ms()  # type: ignore[attr-defined]
        if client_id is None:
            client_id = f"venue-algo-{self.ids.order + 1}"  # type: ignore[attr-defined]
        if any(t.is_open and t.symbol == m.symbol and t.client_id == client_id for t in book.values()):
            raise VenueReject("duplicate_client_id", repr(client_id))
        t = TriggerOrder(self.ids.next_order(), client_id, m.symbol, side, qty, price, kind,  # type: ignore[attr-defined]
                         bool(reduce_only), bool(close_position), position_side if acc.hedge else None,
                         working_type, created_ms=now, updated_ms=now)
        if t.fires_at(m.last, rules.price_to_ticks(price)):
            raise VenueReject("would_trigger", f"trigger {price} vs last {rules.price(m.last)}")
        book[t.trigger_id] = t
        self._prune(book)
        self._publish(TriggerEvent(acc.fingerprint, now, t.copy()))  # type: ignore[attr-defined]
        self.dirty()  # type: ignore[attr-defined]
        return t.copy()

    def _find_trigger(self, acc, symbol: str, trigger_id: Optional[int], client_id: Optional[ClientId],
                      open_only: bool) -> Optional[TriggerOrder]:
        sym = self.market(symbol).symbol  # type: ignore[attr-defined]
        found = None
        for t in self._book_of(acc).values():
            if t.symbol != sym or (open_only and not t.is_open):
                continue
            if (trigger_id is not None and t.trigger_id == int(trigger_id)) or (
                    trigger_id is None and client_id is not None and str(t.client_id) == str(client_id)):
                if found is None or t.trigger_id > found.trigger_id:
                    found = t
        return found

    def cancel_trigger(self, acc, symbol: str, trigger_id: Optional[int] = None,
                       client_id: Optional[ClientId] = None) -> TriggerOrder:
        """Cancel a resting trigger order; VenueReject("unknown_order") when none rests."""
        t = self._find_trigger(acc, symbol, trigger_id, client_id, open_only=True)
        if t is None:
            raise VenueReject("unknown_order", "unknown order sent")
        self._end_trigger(acc, t, T_CANCELLED)
        return t.copy()

    def cancel_all_triggers(self, acc, symbol: str) -> list[TriggerOrder]:
        return [self.cancel_trigger(acc, symbol, t.trigger_id) for t in self.open_triggers(acc, symbol)]

    def get_trigger(self, acc, symbol: str, trigger_id: Optional[int] = None,
                    client_id: Optional[ClientId] = None) -> TriggerOrder:
        """A trigger order of any status (the newest with that client id)."""
        t = self._find_trigger(acc, symbol, trigger_id, client_id, open_only=False)
        if t is None:
            raise VenueReject("unknown_order", "order does not exist")
        return t.copy()

    def open_triggers(self, acc, symbol: Optional[str] = None) -> list[TriggerOrder]:
        return [t.copy() for t in self.all_triggers(acc, symbol) if t.is_open]

    def all_triggers(self, acc, symbol: Optional[str] = None) -> list[TriggerOrder]:
        sym = None if symbol is None else self.market(symbol).symbol  # type: ignore[attr-defined]
        return sorted((t.copy() for t in self._book_of(acc).values() if sym is None or t.symbol == sym),
                      key=lambda t: t.trigger_id)

    def _end_trigger(self, acc, t: TriggerOrder, status: str, reason: Optional[str] = None) -> None:
        t.status, t.reason, t.updated_ms = status, reason, self.now_ms()  # type: ignore[attr-defined]
        self._publish(TriggerEvent(acc.fingerprint, t.updated_ms, t.copy()))  # type: ignore[attr-defined]
        self.dirty()  # type: ignore[attr-defined]

    def _prune(self, book: dict) -> None:
        ended = [k for k, t in book.items() if not t.is_open]
        for k in ended[:max(0, len(ended) - KEEP_CLOSED)]:
            del book[k]

    def fire_triggers(self, symbol: str) -> None:
        """Fire every account's triggers the market's current price has crossed (price walk)."""
        m = self.market(symbol)  # type: ignore[attr-defined]
        if m.last is None:
            return
        for fp, book in list(self.triggers.items()):
            acc = self.accounts.get(fp)  # type: ignore[attr-defined]
            if acc is None:
                continue
            due = [t for t in book.values() if t.is_open and t.symbol == m.symbol
                   and t.fires_at(m.last, m.rules.price_to_ticks(t.trigger_price))]
            for t in sorted(due, key=lambda t: t.trigger_id):
                self._fire(acc, m, t)

    def _fire(self, acc, m, t: TriggerOrder) -> None:
        now = self.now_ms()  # type: ignore[attr-defined]
        t.status, t.trigger_ms, t.updated_ms = T_TRIGGERED, now, now
        self._publish(TriggerEvent(acc.fingerprint, now, t.copy()))  # type: ignore[attr-defined]
        qty = t.qty
        if t.close_position:
            sim = acc.sims[m.symbol]
            leg = t.position_side or ("long" if t.side == "sell" else "short")
            held = sim.long_qty if leg == "long" else sim.short_qty
            qty = m.rules.qty(held)
        if not qty:
            self._end_trigger(acc, t, T_EXPIRED, "nothing_to_close")
            return
        try:
            order = self.place_order(acc, m.symbol, t.side, "market", qty, client_id=t.client_id,  # type: ignore[attr-defined]
                                     reduce_only=t.reduce_only or t.close_position, position_side=t.position_side)
        except VenueReject as exc:
            self._end_trigger(acc, t, T_REJECTED, exc.reason)
            return
        t.order_id, t.filled, t.avg_price = order.order_id, order.filled, order.avg_price
        self._end_trigger(acc, t, T_FINISHED, order.expiry_reason)

    # -- state ----------------------------------------------------------------------
    def trigger_state(self) -> dict:
        return {fp: [t.to_dict() for t in book.values()] for fp, book in self.triggers.items() if book}

    def restore_triggers(self, d: Optional[dict]) -> None:
        self.triggers = {fp: {t.trigger_id: t for t in map(TriggerOrder.from_dict, rows)}
                         for fp, rows in (d or {}).items()}
