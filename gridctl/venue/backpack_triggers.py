"""Backpack trigger orders on the local venue (mixed into BackpackProtocol).

What ccxt's backpack sends for `create_order(s, 'market', side, q, None, {'triggerPrice': p,
'reduceOnly': True, 'clientOrderId': n})`: POST /api/v1/order with orderType Market,
`triggerPrice`, `triggerQuantity` (instead of `quantity`; the API wants both trigger fields
or neither), reduceOnly and clientId. The order rests with status TriggerPending, is listed
by GET /api/v1/orders, found and cancelled by orderId or clientId like any order, and when
the price reaches the trigger it enters the book as a market order with the same clientId
(events orderAccepted (TriggerPending), triggerPlaced, then the market order's own
orderAccepted / orderFill; triggerFailed when the venue refuses it). The direction is the
side of the current price the trigger lies on (Backpack takes no stop/take-profit flag): a
sell below the price is a stop, above it a take-profit.
"""

from __future__ import annotations

from typing import Optional

from gridctl.venue import backpack_codec as codec
from gridctl.venue import backpack_wire as wire
from gridctl.venue.backpack_views import wire_client_id
from gridctl.venue.backpack_wire import BackpackError
from gridctl.venue.records import VenueReject
from gridctl.venue.triggers import TriggerOrder

STATUS = {"new": "TriggerPending", "triggered": "TriggerPending", "finished": "Filled", "cancelled": "Cancelled",
          "rejected": "TriggerFailed", "expired": "Expired"}
EVENT = {"new": "orderAccepted", "triggered": "triggerPlaced", "cancelled": "orderCancelled",
         "rejected": "triggerFailed", "expired": "orderExpired"}


def trigger_json(t: TriggerOrder, rules) -> dict:
    """A trigger order as POST/GET/DELETE /api/v1/order and /api/v1/orders answer it."""
    view = codec.OrderView(str(t.trigger_id), wire_client_id(t.client_id), rules.venue_id,
                           codec.side_of(t.side == "buy"), "Market", t.qty or rules.qty(0), None,
                           t.filled, t.filled * t.avg_price, STATUS[t.status], t.created_ms,
                           reduce_only=t.reduce_only)
    d = codec.order_json(view)
    d.update({"quantity": None, "triggerPrice": codec.dec(t.trigger_price),
              "triggerQuantity": None if t.qty is None else codec.dec(t.qty),
              "triggerBy": "MarkPrice" if t.working_type == "mark" else "LastPrice",
              "triggeredAt": t.trigger_ms or None})
    return d


def trigger_event(t: TriggerOrder, rules, now_us: int) -> Optional[dict]:
    """account.orderUpdate data of a trigger order's change (None: the market order it became speaks)."""
    name = EVENT.get(t.status)
    if name is None:
        return None
    d = {"e": name, "E": int(now_us), "s": rules.venue_id, "i": str(t.trigger_id),
         "S": codec.side_of(t.side == "buy"), "o": "MARKET", "f": "GTC",
         "q": codec.dec(t.qty) if t.qty is not None else "0", "X": STATUS[t.status], "z": "0", "Z": "0",
         "V": "RejectTaker", "O": "USER", "T": int(now_us), "r": t.reduce_only, "y": False, "t": None,
         "P": codec.dec(t.trigger_price)}
    if t.client_id is not None:
        d["c"] = wire_client_id(t.client_id)
    if t.reason and t.status in ("rejected", "expired"):
        d["R"] = t.reason
    return d


class BackpackTriggers:
    """Trigger-order handling beside the plain order endpoints."""

    venue = None  # set by Protocol.__init__

    def trigger_execute(self, acc, params: dict, sym: str) -> dict:
        """POST /api/v1/order with triggerPrice: rest a trigger order."""
        if "triggerQuantity" not in params:
            raise BackpackError("INVALID_CLIENT_REQUEST", "Must specify both `triggerPrice` and `triggerQuantity` "
                                                          "or neither")
        if "quantity" in params or params.get("orderType") != "Market":
            raise BackpackError("INVALID_CLIENT_REQUEST", "Trigger orders take `triggerQuantity` and orderType Market")
        side = params.get("side")
        if side not in (codec.BID, codec.ASK):
            raise BackpackError("INVALID_CLIENT_REQUEST", "Invalid side: expected Bid or Ask")
        qty = wire.decimal_param(params, "triggerQuantity")
        price = wire.decimal_param(params, "triggerPrice")
        m = self.venue.markets[sym]
        buy = side == codec.BID
        above = price > m.price()
        kind = "stop" if above == buy else "take_profit"
        by = str(params.get("triggerBy") or "LastPrice")
        try:
            t = self.venue.place_trigger(acc, sym, "buy" if buy else "sell", qty, price, wire.client_id_param(params),
                                         kind, wire.bool_param(params, "reduceOnly"),
                                         working_type="mark" if by == "MarkPrice" else "last")
        except VenueReject as e:
            if e.reason == "would_trigger":
                raise BackpackError("INVALID_ORDER", "Trigger price would trigger immediately") from None
            raise
        return trigger_json(t, m.rules)

    def trigger_of(self, acc, sym: str, order_id: Optional[str], cid: Optional[int],
                   open_only: bool = True) -> Optional[TriggerOrder]:
        """The trigger order an orderId / clientId names (None: not a trigger order)."""
        if order_id is not None and not order_id.isdigit():
            return None
        try:
            t = self.venue.get_trigger(acc, sym, None if order_id is None else int(order_id), cid)
        except VenueReject:
            return None
        return t if t.is_open or not open_only else None

    def trigger_cancel(self, acc, sym: str, t: TriggerOrder) -> dict:
        got = self.venue.cancel_trigger(acc, sym, t.trigger_id)
        return trigger_json(got, self.venue.markets[sym].rules)

    def open_trigger_rows(self, acc, sym: Optional[str]) -> list[dict]:
        return [trigger_json(t, self.venue.markets[t.symbol].rules) for t in self.venue.open_triggers(acc, sym)]

    def cancel_all_trigger_rows(self, acc, sym: str) -> list[dict]:
        return [trigger_json(t, self.venue.markets[sym].rules) for t in self.venue.cancel_all_triggers(acc, sym)]
