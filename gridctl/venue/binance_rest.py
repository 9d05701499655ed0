"""The Binance USDⓈ-M REST handlers of the local venue (mixed into BinanceProtocol): public
market data, account, positions, settings, orders, trades and income, in the real
response shapes (gridctl.venue.binance_wire)."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Optional

from aiohttp import web

from gridctl.venue import binance_wire as W
from gridctl.venue.account import VenueAccount
from gridctl.venue.records import VenueReject


CLIENT_ID = re.compile(r"[.A-Z:/a-z0-9_-]{1,36}")  # Binance's newClientOrderId rule
MAX_OPEN_ORDERS = 200  # exchangeInfo MAX_NUM_ORDERS
BATCH_MAX = 10  # orders per batchOrders request


def _json_list(call: "Call", name: str) -> list:
    """A list parameter as Binance takes it: a JSON array, the name matched in any case
    (ccxt sends it lower-cased)."""
    raw = next((v for k, v in call.params.items() if k.lower() == name.lower()), None)
    if raw in (None, ""):
        return []
    try:
        value = json.loads(raw)
    except ValueError:
        raise ValueError(name) from None
    if not isinstance(value, list):
        raise ValueError(name)
    return value


class Call:
    """One authenticated (or public) REST request: its params and account."""

    def __init__(self, request: web.Request, params: dict, account: Optional[VenueAccount]) -> None:
        self.request = request
        self.params = params
        self.account = account

    def get(self, name: str, default=None):
        return self.params.get(name, default)

    def need(self, name: str) -> str:
        v = self.params.get(name)
        if v in (None, ""):
            raise _Missing(name)
        return v

    def flag(self, name: str) -> bool:
        return str(self.params.get(name, "false")).lower() == "true"


class _Missing(Exception):
    pass


class BinanceRest:
    """Handlers: each takes a Call and answers a web.Response (VenueReject -> Binance error)."""

    venue = None  # set by Protocol.__init__

    # -- public -------------------------------------------------------------------------
    async def ping(self, call: Call) -> web.Response:
        return web.json_response({})

    async def time(self, call: Call) -> web.Response:
        return web.json_response({"serverTime": self.venue.now_ms()})

    async def exchange_info(self, call: Call) -> web.Response:
        return web.json_response({
            "timezone": "UTC", "serverTime": self.venue.now_ms(), "futuresType": "U_MARGINED",
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
                {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300}],
            "exchangeFilters": [],
            "assets": [{"asset": self.venue.asset, "marginAvailable": True, "autoAssetExchange": "-10000"}],
            "symbols": [W.market_json(m.rules) for m in self.venue.markets.values()],
        })

    def _markets(self, call: Call):
        sym = call.get("symbol")
        return [self.venue.market(sym)] if sym else list(self.venue.markets.values())

    def _one_or_all(self, call: Call, rows: list) -> web.Response:
        return web.json_response(rows[0] if call.get("symbol") else rows)

    async def ticker_24hr(self, call: Call) -> web.Response:
        now = self.venue.now_ms()
        rows = []
        for m in self._markets(call):
            o, h, lo = m.day_stats()
            last = m.price()
            change = last - o
            rows.append({"symbol": m.rules.venue_id, "priceChange": W.s(change),
                         "priceChangePercent": W.s((change / o * 100).quantize(Decimal("0.001")) if o else Decimal(0)),
                         "weightedAvgPrice": W.s(last), "lastPrice": W.s(last), "lastQty": "0",
                         "openPrice": W.s(o), "highPrice": W.s(h), "lowPrice": W.s(lo), "volume": "0",
                         "quoteVolume": "0", "openTime": now - 86_400_000, "closeTime": now,
                         "firstId": 0, "lastId": 0, "count": 0})
        return self._one_or_all(call, rows)

    async def ticker_price(self, call: Call) -> web.Response:
        now = self.venue.now_ms()
        return self._one_or_all(call, [{"symbol": m.rules.venue_id, "price": W.s(m.price()), "time": now}
                                       for m in self._markets(call)])

    async def book_ticker(self, call: Call) -> web.Response:
        now = self.venue.now_ms()
        rows = []
        for m in self._markets(call):
            bid, ask = self.book_top(m)
            rows.append({"symbol": m.rules.venue_id, "bidPrice": W.s(bid), "bidQty": "1000",
                         "askPrice": W.s(ask), "askQty": "1000", "time": now, "lastUpdateId": now})
        return self._one_or_all(call, rows)

    @staticmethod
    def book_top(m) -> tuple[Decimal, Decimal]:
        """A one-tick spread around the last price (the simulator fills at the last price)."""
        last = m.last or 1
        return m.rules.price(max(1, last - 1)), m.rules.price(last + 1)

    async def premium_index(self, call: Call) -> web.Response:
        now = self.venue.now_ms()
        return self._one_or_all(call, [{
            "symbol": m.rules.venue_id, "markPrice": W.s(m.price()), "indexPrice": W.s(m.price()),
            "estimatedSettlePrice": W.s(m.price()), "lastFundingRate": W.s(m.funding_rate),
            "interestRate": "0.00010000", "nextFundingTime": m.next_funding_ms or m.next_funding_after(now),
            "time": now} for m in self._markets(call)])

    async def funding_rate(self, call: Call) -> web.Response:
        m = self.venue.market(call.need("symbol"))
        seen: dict[int, dict] = {}
        for acc in self.venue.accounts.values():
            for i in acc.income:
                if i.symbol == m.symbol:
                    seen.setdefault(i.ts, {"symbol": m.rules.venue_id, "fundingTime": i.ts,
                                           "fundingRate": W.s(i.rate), "markPrice": W.s(i.mark)})
        rows = [seen[k] for k in sorted(seen)]
        return web.json_response(rows[-int(call.get("limit", 100)):])

    # -- private: account -------------------------------------------------------------------
    async def leverage_bracket(self, call: Call) -> web.Response:
        return self._one_or_all(call, [W.brackets_json(m.rules) for m in self._markets(call)])

    async def commission_rate(self, call: Call) -> web.Response:
        m = self.venue.market(call.need("symbol"))
        return web.json_response({"symbol": m.rules.venue_id, "makerCommissionRate": W.s(m.rules.maker_fee),
                                  "takerCommissionRate": W.s(m.rules.taker_fee)})

    def _asset_row(self, acc: VenueAccount) -> dict:
        b = self.venue.balance(acc)
        return {"asset": b.asset, "walletBalance": W.money(b.wallet), "unrealizedProfit": W.money(b.unrealized),
                "marginBalance": W.money(b.margin_balance), "maintMargin": W.money(b.maint_margin),
                "initialMargin": W.money(b.initial_margin), "positionInitialMargin": W.money(b.position_margin),
                "openOrderInitialMargin": W.money(b.order_margin), "crossWalletBalance": W.money(b.wallet),
                "crossUnPnl": W.money(b.unrealized), "availableBalance": W.money(b.available),
                "maxWithdrawAmount": W.money(b.available), "marginAvailable": True,
                "updateTime": b.updated_ms or self.venue.now_ms()}

    async def account_v3(self, call: Call) -> web.Response:
        acc = call.account
        b = self.venue.balance(acc)
        positions = [{"symbol": self.venue.market(p.symbol).rules.venue_id, "positionSide": W.POSITION_SIDE[p.position_side],
                      "positionAmt": W.s(p.qty), "unrealizedProfit": W.money(p.unrealized), "isolatedMargin": "0",
                      "notional": W.money(p.notional), "isolatedWallet": "0", "initialMargin": W.money(p.initial_margin),
                      "maintMargin": W.money(p.maint_margin), "updateTime": p.updated_ms}
                     for p in self.venue.positions(acc) if p.qty]
        return web.json_response({
            "totalInitialMargin": W.money(b.initial_margin), "totalMaintMargin": W.money(b.maint_margin),
            "totalWalletBalance": W.money(b.wallet), "totalUnrealizedProfit": W.money(b.unrealized),
            "totalMarginBalance": W.money(b.margin_balance), "totalPositionInitialMargin": W.money(b.position_margin),
            "totalOpenOrderInitialMargin": W.money(b.order_margin), "totalCrossWalletBalance": W.money(b.wallet),
            "totalCrossUnPnl": W.money(b.unrealized), "availableBalance": W.money(b.available),
            "maxWithdrawAmount": W.money(b.available), "canTrade": True, "canDeposit": True, "canWithdraw": True,
            "feeTier": 0, "multiAssetsMargin": False, "tradeGroupId": -1, "updateTime": 0,
            "assets": [self._asset_row(acc)], "positions": positions})

    async def balance_v2(self, call: Call) -> web.Response:
        row = self._asset_row(call.account)
        return web.json_response([{"accountAlias": "venue", "asset": row["asset"], "balance": row["walletBalance"],
                                   "crossWalletBalance": row["walletBalance"], "crossUnPnl": row["crossUnPnl"],
                                   "availableBalance": row["availableBalance"], "maxWithdrawAmount": row["maxWithdrawAmount"],
                                   "marginAvailable": True, "updateTime": row["updateTime"]}])

    def _position_rows(self, call: Call) -> list:
        acc = call.account
        sym = call.get("symbol")
        views = self.venue.positions(acc, sym)
        held = {p.symbol for p in views if p.qty} | {o.symbol for o in acc.open_orders()}
        return [p for p in views if p.symbol in held or sym]

    async def position_risk(self, call: Call) -> web.Response:
        rows = []
        for p in self._position_rows(call):
            rules = self.venue.market(p.symbol).rules
            bid = sum((o.remaining * o.price for o in call.account.open_orders(p.symbol)
                       if o.side == "buy" and o.price), Decimal(0))
            ask = sum((o.remaining * o.price for o in call.account.open_orders(p.symbol)
                       if o.side == "sell" and o.price), Decimal(0))
            rows.append({
                "symbol": rules.venue_id, "positionSide": W.POSITION_SIDE[p.position_side],
                "positionAmt": W.s(p.qty), "entryPrice": W.s(p.entry), "breakEvenPrice": W.s(p.entry),
                "markPrice": W.s(p.mark), "unRealizedProfit": W.money(p.unrealized),
                "liquidationPrice": W.s(p.liquidation), "isolatedMargin": "0", "notional": W.money(p.notional),
                "marginAsset": call.account.asset, "isolatedWallet": "0", "initialMargin": W.money(p.initial_margin),
                "maintMargin": W.money(p.maint_margin), "positionInitialMargin": W.money(p.initial_margin),
                "openOrderInitialMargin": "0", "adl": 0, "bidNotional": W.money(bid), "askNotional": W.money(ask),
                "updateTime": p.updated_ms})
        return web.json_response(rows)

    async def position_risk_v2(self, call: Call) -> web.Response:
        rows = []
        for p in self.venue.positions(call.account, call.get("symbol")):
            rules = self.venue.market(p.symbol).rules
            rows.append({
                "symbol": rules.venue_id, "positionAmt": W.s(p.qty), "entryPrice": W.s(p.entry),
                "breakEvenPrice": W.s(p.entry), "markPrice": W.s(p.mark), "unRealizedProfit": W.money(p.unrealized),
                "liquidationPrice": W.s(p.liquidation), "leverage": str(p.leverage), "maxNotionalValue": "1000000000",
                "marginType": p.margin_type, "isolatedMargin": "0", "isAutoAddMargin": "false",
                "positionSide": W.POSITION_SIDE[p.position_side], "notional": W.money(p.notional),
                "isolatedWallet": "0", "updateTime": p.updated_ms})
        return web.json_response(rows)

    async def get_position_mode(self, call: Call) -> web.Response:
        return web.json_response({"dualSidePosition": call.account.hedge})

    async def set_position_mode(self, call: Call) -> web.Response:
        self.venue.set_position_mode(call.account, str(call.need("dualSidePosition")).lower() == "true")
        return web.json_response({"code": 200, "msg": "success"})

    async def set_leverage(self, call: Call) -> web.Response:
        m = self.venue.market(call.need("symbol"))
        n = self.venue.set_leverage(call.account, m.symbol, call.need("leverage"))
        return web.json_response({"leverage": n, "maxNotionalValue": "1000000000", "symbol": m.rules.venue_id})

    async def set_margin_type(self, call: Call) -> web.Response:
        kind = {"CROSSED": "cross", "CROSS": "cross", "ISOLATED": "isolated"}.get(call.need("marginType").upper())
        if kind is None:
            raise VenueReject("bad_margin_type")
        self.venue.set_margin_type(call.account, call.need("symbol"), kind)
        return web.json_response({"code": 200, "msg": "success"})

    async def symbol_config(self, call: Call) -> web.Response:
        acc = call.account
        return web.json_response([{"symbol": m.rules.venue_id,
                                   "marginType": "CROSSED" if acc.margin_type.get(m.symbol) == "cross" else "ISOLATED",
                                   "isAutoAddMargin": False, "leverage": acc.leverage.get(m.symbol),
                                   "maxNotionalValue": "1000000000"} for m in self._markets(call)])

    # -- private: orders ------------------------------------------------------------------------
    async def create_order(self, call: Call) -> web.Response:
        acc = call.account
        m = self.venue.market(call.need("symbol"))
        side = call.need("side").lower()
        typ = call.need("type").upper()
        if typ in W.CONDITIONAL:  # since 2025-12 only through POST /fapi/v1/algoOrder
            return W.error("algo_endpoint")
        if typ not in ("LIMIT", "MARKET"):
            raise VenueReject("invalid_order")
        qty = Decimal(call.need("quantity"))
        price = Decimal(call.need("price")) if typ == "LIMIT" else None
        tif = call.get("timeInForce", "GTC" if typ == "LIMIT" else "GTC").upper()
        if typ == "LIMIT" and "timeInForce" not in call.params:
            return W.missing("timeInForce")
        tif = {"GTX": "PO"}.get(tif, tif)
        reduce_only = call.flag("reduceOnly")
        ps_raw = call.get("positionSide", "BOTH").upper()
        ps = {"BOTH": None, "LONG": "long", "SHORT": "short"}.get(ps_raw, "bad")
        if ps == "bad":
            raise VenueReject("position_side_mismatch")
        if acc.hedge and "reduceOnly" in call.params:
            raise VenueReject("reduce_only_not_required")
        cid = call.get("newClientOrderId") or None
        if cid is not None and not CLIENT_ID.fullmatch(cid):
            return web.Response(status=400, content_type="application/json", text=json.dumps(
                {"code": -1100, "msg": "Illegal characters found in parameter 'newClientOrderId'; legal range is "
                                       "'^[\\.A-Z\\:/a-z0-9_-]{1,36}$'."}))
        if len(acc.open_orders(m.symbol)) >= MAX_OPEN_ORDERS:
            return web.Response(status=400, content_type="application/json",
                                text=json.dumps({"code": -2025, "msg": "Reach max open order limit."}))
        order = self.venue.place_order(acc, m.symbol, side, typ.lower(), qty, price, cid, tif, reduce_only, ps)
        return web.json_response(W.order_json(order, m.rules))

    def _find(self, call: Call, open_only: bool = False):
        m = self.venue.market(call.need("symbol"))
        oid, cid = call.get("orderId"), call.get("origClientOrderId")
        if oid is None and cid is None:
            raise _Missing("orderId")
        return m, (int(oid) if oid is not None else None), cid

    async def cancel_order(self, call: Call) -> web.Response:
        m, oid, cid = self._find(call)
        order = self.venue.cancel_order(call.account, m.symbol, oid, cid)
        return web.json_response(W.order_json(order, m.rules))

    async def query_order(self, call: Call) -> web.Response:
        m, oid, cid = self._find(call)
        try:
            order = self.venue.get_order(call.account, m.symbol, oid, cid)
        except VenueReject:
            return W.error("order_does_not_exist")
        return web.json_response(W.order_json(order, m.rules))

    async def query_open_order(self, call: Call) -> web.Response:
        m, oid, cid = self._find(call)
        try:
            order = self.venue.get_order(call.account, m.symbol, oid, cid)
        except VenueReject:
            order = None
        if order is None or not order.is_open:
            return web.Response(status=400, content_type="application/json",
                                text=json.dumps({"code": -2013, "msg": "Order does not exist."}))
        return web.json_response(W.order_json(order, m.rules))

    async def cancel_batch(self, call: Call) -> web.Response:
        """DELETE /fapi/v1/batchOrders: up to 10 orders by orderIdList or origClientOrderIdList
        (JSON arrays); one answer per order in the order asked: the order, or {"code", "msg"}."""
        m = self.venue.market(call.need("symbol"))
        oids, cids = _json_list(call, "orderIdList"), _json_list(call, "origClientOrderIdList")
        keys = [(int(o), None) for o in oids] if oids else [(None, str(c)) for c in cids]
        if not keys:
            raise _Missing("orderIdList")
        if len(keys) > BATCH_MAX:
            return W.error("batch_too_long", name="orderIdList" if oids else "origClientOrderIdList")
        out: list[dict] = []
        for oid, cid in keys:
            try:
                out.append(W.order_json(self.venue.cancel_order(call.account, m.symbol, oid, cid), m.rules))
            except VenueReject as exc:
                _, code, msg = W.ERRORS.get(exc.reason, (400, -1000, exc.reason))
                out.append({"code": code, "msg": msg})
        return web.json_response(out)

    async def cancel_all(self, call: Call) -> web.Response:
        m = self.venue.market(call.need("symbol"))
        self.venue.cancel_all(call.account, m.symbol)
        return web.json_response({"code": 200, "msg": "The operation of cancel all open order is done."})

    async def open_orders(self, call: Call) -> web.Response:
        rows = self.venue.open_orders(call.account, call.get("symbol"))
        return web.json_response([W.order_json(o, self.venue.market(o.symbol).rules) for o in rows])

    async def all_orders(self, call: Call) -> web.Response:
        m = self.venue.market(call.need("symbol"))
        rows = self.venue.all_orders(call.account, m.symbol)
        if call.get("orderId"):
            rows = [o for o in rows if o.order_id >= int(call.get("orderId"))]
        start, end = call.get("startTime"), call.get("endTime")
        rows = [o for o in rows if (start is None or o.created_ms >= int(start)) and (end is None or o.created_ms <= int(end))]
        limit = min(int(call.get("limit", 500)), 1000)
        rows = rows[:limit] if (call.get("orderId") or start) else rows[-limit:]
        return web.json_response([W.order_json(o, m.rules) for o in rows])

    async def user_trades(self, call: Call) -> web.Response:
        m = self.venue.market(call.need("symbol"))
        limit = min(int(call.get("limit", 500)), 1000)
        from_id, start, end = call.get("fromId"), call.get("startTime"), call.get("endTime")
        rows = self.venue.fills(call.account, m.symbol, int(from_id) if from_id else None,
                                int(start) if start else None, int(end) if end else None)
        if call.get("orderId"):
            rows = [f for f in rows if f.order_id == int(call.get("orderId"))]
        rows = rows[:limit] if (from_id or start) else rows[-limit:]
        return web.json_response([W.trade_json(f, m.rules) for f in rows])

    async def income(self, call: Call) -> web.Response:
        kind = call.get("incomeType")
        if kind not in (None, "", "FUNDING_FEE"):
            return web.json_response([])
        sym = call.get("symbol")
        start, end = call.get("startTime"), call.get("endTime")
        rows = self.venue.income(call.account, sym, int(start) if start else None, int(end) if end else None)
        limit = min(int(call.get("limit", 100)), 1000)
        rows = rows[:limit] if start else rows[-limit:]
        return web.json_response([{
            "symbol": self.venue.market(i.symbol).rules.venue_id, "incomeType": "FUNDING_FEE",
            "income": W.money(i.amount), "asset": i.asset, "info": "FUNDING_FEE", "time": i.ts,
            "tranId": i.tran_id, "tradeId": ""} for i in rows])
