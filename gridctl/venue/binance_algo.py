"""Binance USDⓈ-M conditional (algo) orders on the local venue: STOP_MARKET and
TAKE_PROFIT_MARKET through the Algo Service endpoints, as ccxt 4.5 sends them
(`create_order(..., 'market', side, qty, params={'stopPrice'|'triggerPrice': p, ...})`
-> POST /fapi/v1/algoOrder with algoType=CONDITIONAL, type=STOP_MARKET, triggerPrice,
clientAlgoId, reduceOnly/closePosition, workingType). Since December 2025 Binance refuses
conditional types on POST /fapi/v1/order (-4120); the venue does too.

Endpoints (mixed into BinanceProtocol): POST/DELETE/GET /fapi/v1/algoOrder,
GET /fapi/v1/openAlgoOrders, GET /fapi/v1/allAlgoOrders, DELETE /fapi/v1/algoOpenOrders.
Stream: ALGO_UPDATE (NEW, CANCELED, TRIGGERED, FINISHED, REJECTED, EXPIRED). The
triggered order enters the book as a MARKET order whose clientOrderId is the
clientAlgoId (origType STOP_MARKET), so its ORDER_TRADE_UPDATE fills carry the id the
client gave the stop.
"""

from __future__ import annotations

import json
from decimal import Decimal

from aiohttp import web

from gridctl.venue import binance_wire as W
from gridctl.venue.binance_rest import CLIENT_ID, _Missing
from gridctl.venue.records import VenueReject
from gridctl.venue.triggers import TriggerEvent, TriggerOrder

TYPES = {"STOP_MARKET": "stop", "TAKE_PROFIT_MARKET": "take_profit"}
TYPE_OUT = {v: k for k, v in TYPES.items()}
ALGO_STATUS = {"new": "NEW", "triggered": "TRIGGERED", "finished": "FINISHED", "cancelled": "CANCELED",
               "rejected": "REJECTED", "expired": "EXPIRED"}
WORKING = {"MARK_PRICE": "mark", "CONTRACT_PRICE": "last"}
WORKING_OUT = {v: k for k, v in WORKING.items()}
MAX_ALGO_ORDERS = 10  # exchangeInfo MAX_NUM_ALGO_ORDERS per symbol


def _err(code: int, msg: str, status: int = 400) -> web.Response:
    return web.Response(status=status, content_type="application/json", text=json.dumps({"code": code, "msg": msg}))


def algo_json(t: TriggerOrder, rules) -> dict:
    """An algo order as POST/GET/DELETE /fapi/v1/algoOrder and openAlgoOrders answer it."""
    return {
        "algoId": t.trigger_id, "clientAlgoId": str(t.client_id), "algoType": "CONDITIONAL",
        "orderType": TYPE_OUT[t.kind], "symbol": rules.venue_id, "side": t.side.upper(),
        "positionSide": W.POSITION_SIDE[t.position_side], "timeInForce": "GTC",
        "quantity": W.s(t.qty) if t.qty is not None else "0", "algoStatus": ALGO_STATUS[t.status],
        "triggerPrice": W.s(t.trigger_price), "price": "0", "icebergQuantity": None,
        "selfTradePreventionMode": "EXPIRE_MAKER", "workingType": WORKING_OUT.get(t.working_type, "CONTRACT_PRICE"),
        "priceMatch": "NONE", "closePosition": t.close_position, "priceProtect": False,
        "reduceOnly": t.reduce_only, "activatePrice": "", "callbackRate": "", "createTime": t.created_ms,
        "updateTime": t.updated_ms, "triggerTime": t.trigger_ms, "goodTillDate": 0,
        "actualOrderId": "" if t.order_id is None else str(t.order_id),
        "actualPrice": W.s(t.avg_price) if t.filled else "0", "executedQty": W.s(t.filled),
    }


def algo_update(venue, ev: TriggerEvent) -> dict:
    """The ALGO_UPDATE user-stream event of a trigger order's change."""
    t = ev.trigger
    rules = venue.market(t.symbol).rules
    o = {"caid": str(t.client_id), "aid": t.trigger_id, "at": "CONDITIONAL", "o": TYPE_OUT[t.kind],
         "s": rules.venue_id, "S": t.side.upper(), "ps": W.POSITION_SIDE[t.position_side], "f": "GTC",
         "q": W.s(t.qty) if t.qty is not None else "0", "X": ALGO_STATUS[t.status],
         "ai": "" if t.order_id is None else str(t.order_id), "ap": W.s(t.avg_price) if t.filled else "0.00000",
         "aq": W.s(t.filled), "act": "MARKET" if t.order_id is not None else "0", "tp": W.s(t.trigger_price),
         "p": "0", "V": "EXPIRE_MAKER", "wt": WORKING_OUT.get(t.working_type, "CONTRACT_PRICE"), "pm": "NONE",
         "cp": t.close_position, "pP": False, "R": t.reduce_only, "tt": t.trigger_ms, "gtd": 0}
    if t.reason and t.status in ("rejected", "expired"):
        o["rm"] = t.reason
    return {"e": "ALGO_UPDATE", "T": ev.ts, "E": ev.ts, "o": o}


class BinanceAlgo:
    """The algo-order handlers (each takes a Call, answers a web.Response)."""

    venue = None  # set by Protocol.__init__

    def algo_routes(self, priv) -> list[web.RouteDef]:
        return [
            web.post("/fapi/v1/algoOrder", priv(self.create_algo_order, "place")),
            web.delete("/fapi/v1/algoOrder", priv(self.cancel_algo_order, "cancel")),
            web.get("/fapi/v1/algoOrder", priv(self.query_algo_order, "read")),
            web.get("/fapi/v1/openAlgoOrders", priv(self.open_algo_orders, "read")),
            web.get("/fapi/v1/allAlgoOrders", priv(self.all_algo_orders, "read")),
            web.delete("/fapi/v1/algoOpenOrders", priv(self.cancel_all_algo_orders, "cancel")),
        ]

    async def create_algo_order(self, call) -> web.Response:
        acc = call.account
        m = self.venue.market(call.need("symbol"))
        if call.need("algoType").upper() != "CONDITIONAL":
            return _err(-1116, "Invalid algoType.")
        typ = call.need("type").upper()
        if typ not in TYPES:
            raise VenueReject("invalid_order")  # STOP / TAKE_PROFIT limits and trailing stops: not simulated
        side = call.need("side").lower()
        close_position = call.flag("closePosition")
        if close_position and ("reduceOnly" in call.params or "quantity" in call.params):
            name = "reduceonly" if "reduceOnly" in call.params else "quantity"
            return _err(-1106, f"Parameter '{name}' sent when not required.")
        qty = None if close_position else Decimal(call.need("quantity"))
        trigger = Decimal(call.need("triggerPrice"))
        working = WORKING.get(call.get("workingType", "CONTRACT_PRICE").upper())
        if working is None:
            return _err(-1116, "Invalid workingType.")
        ps = {"BOTH": None, "LONG": "long", "SHORT": "short"}.get(call.get("positionSide", "BOTH").upper(), "bad")
        if ps == "bad":
            raise VenueReject("position_side_mismatch")
        if acc.hedge and "reduceOnly" in call.params:
            raise VenueReject("reduce_only_not_required")
        if len(self.venue.open_triggers(acc, m.symbol)) >= MAX_ALGO_ORDERS:
            return _err(-4045, "Reach max stop order limit.")
        cid = call.get("clientAlgoId") or None
        if cid is not None and not CLIENT_ID.fullmatch(cid):
            return _err(-1100, "Illegal characters found in parameter 'clientAlgoId'; legal range is "
                               "'^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.")
        # a stop already crossed: VenueReject("would_trigger") -> -2021, as Binance answers it
        t = self.venue.place_trigger(acc, m.symbol, side, qty, trigger, cid, TYPES[typ], call.flag("reduceOnly"),
                                     close_position, ps, working)
        return web.json_response(algo_json(t, m.rules))

    def _algo_ref(self, call):
        m = self.venue.market(call.need("symbol"))
        aid, cid = call.get("algoId"), call.get("clientAlgoId")
        if aid is None and cid is None:
            raise _Missing("algoId")
        return m, (int(aid) if aid is not None else None), cid

    async def cancel_algo_order(self, call) -> web.Response:
        m, aid, cid = self._algo_ref(call)
        t = self.venue.cancel_trigger(call.account, m.symbol, aid, cid)
        return web.json_response({"algoId": t.trigger_id, "clientAlgoId": str(t.client_id), "code": "200",
                                  "msg": "success"})

    async def query_algo_order(self, call) -> web.Response:
        m, aid, cid = self._algo_ref(call)
        try:
            t = self.venue.get_trigger(call.account, m.symbol, aid, cid)
        except VenueReject:
            return W.error("order_does_not_exist")
        return web.json_response(algo_json(t, m.rules))

    async def open_algo_orders(self, call) -> web.Response:
        rows = self.venue.open_triggers(call.account, call.get("symbol"))
        return web.json_response([algo_json(t, self.venue.market(t.symbol).rules) for t in rows])

    async def all_algo_orders(self, call) -> web.Response:
        m = self.venue.market(call.need("symbol"))
        rows = self.venue.all_triggers(call.account, m.symbol)
        limit = min(int(call.get("limit", 500)), 1000)
        return web.json_response([algo_json(t, m.rules) for t in rows[-limit:]])

    async def cancel_all_algo_orders(self, call) -> web.Response:
        m = self.venue.market(call.need("symbol"))
        self.venue.cancel_all_triggers(call.account, m.symbol)
        return web.json_response({"code": 200, "msg": "The operation of cancel all open order is done."})
