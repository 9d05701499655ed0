"""Binance USDⓈ-M wire shapes: error codes and bodies, and the JSON of orders, trades,
positions, balances and markets as the real fapi answers them (see
../shared/data/exchange_samples/binanceusdm_nautilus and ccxt's parsers)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Optional

from aiohttp import web

from gridctl.core.market import MarketRules
from gridctl.venue.records import VenueFill, VenueOrder

STATUS = {"new": "NEW", "partially_filled": "PARTIALLY_FILLED", "filled": "FILLED", "cancelled": "CANCELED",
          "expired": "EXPIRED"}
TIF_OUT = {"PO": "GTX"}
POSITION_SIDE = {None: "BOTH", "both": "BOTH", "long": "LONG", "short": "SHORT"}
# conditional types: since 2025-12 only through POST /fapi/v1/algoOrder (gridctl.venue.binance_algo)
CONDITIONAL = ("STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET")

# venue reason -> (HTTP status, code, message)
ERRORS = {
    "bad_symbol": (400, -1121, "Invalid symbol."),
    "unknown_order": (400, -2011, "Unknown order sent."),
    "order_does_not_exist": (400, -2013, "Order does not exist."),
    "duplicate_client_id": (400, -4116, "ClientOrderId is duplicated."),
    "post_only_would_cross": (400, -5022, "Due to the order could not be executed as maker, the Post Only order "
                                          "will be rejected. The order will not be recorded in the order history"),
    "reduce_only_rejected": (400, -2022, "ReduceOnly Order is rejected."),
    "position_side_mismatch": (400, -4061, "Order's position side does not match user's setting."),
    "insufficient_margin": (400, -2019, "Margin is insufficient."),
    "notional_below_min": (400, -4164, "Order's notional must be no smaller than {min_notional} "
                                       "(unless you choose reduce only)."),
    "qty_below_min": (400, -4003, "Quantity less than or equal to zero."),
    "invalid_qty": (400, -4003, "Quantity less than or equal to zero."),
    "qty_precision": (400, -1111, "Precision is over the maximum defined for this asset."),
    "price_tick": (400, -4014, "Price not increased by tick size."),
    "invalid_price": (400, -4013, "Price less than min price."),
    "bad_leverage": (400, -4028, "Leverage {leverage} is not valid"),
    "mode_no_change": (400, -4059, "No need to change position side."),
    "mode_open_orders": (400, -4067, "Position side cannot be changed if there exists open orders."),
    "mode_open_positions": (400, -4068, "Position side cannot be changed if there exists position."),
    "margin_type_no_change": (400, -4046, "No need to change margin type."),
    "margin_type_open_position": (400, -4048, "Margin type cannot be changed if there exists position."),
    "bad_margin_type": (400, -1116, "Invalid marginType."),
    "invalid_order": (400, -1116, "Invalid orderType."),
    "no_price": (503, -1001, "Internal error; unable to process your request. Please try again."),
    "reduce_only_not_required": (400, -1106, "Parameter 'reduceonly' sent when not required."),
    "bad_signature": (400, -1022, "Signature for this request is not valid."),
    "bad_api_key": (401, -2015, "Invalid API-key, IP, or permissions for action, request ip: 127.0.0.1"),
    "missing_api_key": (401, -2014, "API-key format invalid."),
    "timestamp": (400, -1021, "Timestamp for this request is outside of the recvWindow."),
    "rate_limit": (429, -1003, "Too many requests; current limit of IP(127.0.0.1) request weight per minute is "
                               "2400. Please use WebSocket Streams for live updates to avoid bans."),
    "server_error": (503, -1001, "Internal error; unable to process your request. Please try again."),
    "listen_key_missing": (400, -1125, "This listenKey does not exist."),
    "batch_too_long": (400, -1130, "Data sent for parameter '{name}' is not valid."),
    "algo_endpoint": (400, -4120, "Order type not supported for this endpoint. Please use the Algo Order API "
                                  "endpoints instead."),
    "would_trigger": (400, -2021, "Order would immediately trigger."),
}


def error(reason: str, headers: Optional[dict] = None, status: Optional[int] = None, **fmt) -> web.Response:
    """Binance's error answer for a venue reason: {"code": -NNNN, "msg": "..."}."""
    http, code, msg = ERRORS.get(reason, (400, -1000, "An unknown error occurred while processing the request."))
    try:
        msg = msg.format(**fmt)
    except (KeyError, IndexError):
        pass
    return web.Response(status=status or http, text=json.dumps({"code": code, "msg": msg}),
                        content_type="application/json", headers=headers)


def missing(name: str) -> web.Response:
    return web.Response(status=400, content_type="application/json", text=json.dumps(
        {"code": -1102, "msg": f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."}))


def s(d: Optional[Decimal]) -> str:
    """A decimal as Binance prints it (plain notation)."""
    if d is None:
        return "0"
    return format(d.normalize(), "f") if d == d.to_integral_value() else format(d, "f")


def money(d: Decimal) -> str:
    return format(d.quantize(Decimal("0.00000001")), "f")


def order_json(o: VenueOrder, rules: MarketRules) -> dict:
    """An order as POST/GET/DELETE /fapi/v1/order and openOrders answer it."""
    typ = o.type.upper()
    return {
        "orderId": o.order_id, "symbol": rules.venue_id, "status": STATUS[o.status],
        "clientOrderId": str(o.client_id), "price": s(o.price) if o.price is not None else "0",
        "avgPrice": s(o.avg_price.quantize(rules.tick)) if o.filled else "0.00",
        "origQty": s(o.qty), "executedQty": s(o.filled), "cumQty": s(o.filled),
        "cumQuote": money(o.cum_quote), "timeInForce": TIF_OUT.get(o.time_in_force, o.time_in_force),
        "type": typ, "reduceOnly": o.reduce_only, "closePosition": False, "side": o.side.upper(),
        "positionSide": POSITION_SIDE[o.position_side], "stopPrice": "0", "workingType": "CONTRACT_PRICE",
        "priceProtect": False, "origType": typ, "priceMatch": "NONE", "selfTradePreventionMode": "EXPIRE_MAKER",
        "goodTillDate": 0, "time": o.created_ms, "updateTime": o.updated_ms,
    }


def trade_json(f: VenueFill, rules: MarketRules) -> dict:
    """One row of GET /fapi/v1/userTrades."""
    return {
        "symbol": rules.venue_id, "id": f.trade_id, "orderId": f.order_id, "side": f.side.upper(),
        "price": s(f.price), "qty": s(f.qty), "realizedPnl": money(f.realized), "marginAsset": f.fee_asset,
        "quoteQty": money(f.quote_qty), "commission": money(f.fee), "commissionAsset": f.fee_asset,
        "time": f.ts, "positionSide": POSITION_SIDE[f.position_side], "buyer": f.side == "buy",
        "maker": f.maker,
    }


def market_json(rules: MarketRules) -> dict:
    """One `symbols[]` entry of GET /fapi/v1/exchangeInfo (real shape, bundled rules)."""
    tick_dp = max(0, -rules.tick.normalize().as_tuple().exponent)  # type: ignore[operator]
    step_dp = max(0, -rules.step.normalize().as_tuple().exponent)  # type: ignore[operator]
    max_price = s((rules.tick * 10_000_000).normalize())
    return {
        "symbol": rules.venue_id, "pair": rules.venue_id, "contractType": "PERPETUAL",
        "deliveryDate": 4133404800000, "onboardDate": 1569398400000, "status": "TRADING",
        "maintMarginPercent": "2.5000", "requiredMarginPercent": "5.0000", "baseAsset": rules.base,
        "quoteAsset": rules.quote, "marginAsset": rules.quote, "pricePrecision": tick_dp,
        "quantityPrecision": step_dp, "baseAssetPrecision": 8, "quotePrecision": 8, "underlyingType": "COIN",
        "underlyingSubType": [], "settlePlan": 0, "triggerProtect": "0.0500", "liquidationFee": "0.012500",
        "marketTakeBound": "0.05",
        "filters": [
            {"minPrice": s(rules.tick), "maxPrice": max_price, "filterType": "PRICE_FILTER", "tickSize": s(rules.tick)},
            {"stepSize": s(rules.step), "filterType": "LOT_SIZE", "maxQty": "1000000", "minQty": s(rules.min_qty)},
            {"stepSize": s(rules.step), "filterType": "MARKET_LOT_SIZE", "maxQty": "1000000",
             "minQty": s(rules.min_qty)},
            {"limit": 200, "filterType": "MAX_NUM_ORDERS"},
            {"limit": 10, "filterType": "MAX_NUM_ALGO_ORDERS"},
            {"notional": s(rules.min_notional), "filterType": "MIN_NOTIONAL"},
            {"multiplierDown": "0.9500", "multiplierUp": "1.0500", "multiplierDecimal": "4",
             "filterType": "PERCENT_PRICE"},
        ],
        "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET",
                       "TRAILING_STOP_MARKET"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
    }


def brackets_json(rules: MarketRules) -> dict:
    """GET /fapi/v1/leverageBracket for one symbol: a single bracket from the bundled rules."""
    return {"symbol": rules.venue_id, "notionalCoef": 1.0, "brackets": [{
        "bracket": 1, "initialLeverage": rules.max_leverage, "notionalCap": 1_000_000_000, "notionalFloor": 0,
        "maintMarginRatio": float(rules.maintenance_margin_rate), "cum": 0.0}]}
