"""Venue quirks as data (in the spirit of freqtrade's per-exchange `_ft_has`).

Everything the ccxt adapter does differently per venue is read from here, so a
venue is configured rather than programmed. Keys (DEFAULTS holds every one):

- client_id: the client order id form (gridctl.core.clientid): binance | okx | backpack
- client_id_param: the venue's own name of the client id on the wire (ccxt takes
  `clientOrderId` on create and translates it)
- cid_lookup_param: the param ccxt needs to cancel or fetch by client id (None: the venue
  needs its implicit endpoint, see the adapter)
- post_only: extra create params for a post-only limit (ccxt turns postOnly into GTX,
  PostOnly, post_only or Backpack's postOnly)
- ioc: extra create params for an immediate-or-cancel limit
- hedge: how a hedge-mode leg is named: None (the venue has no hedge mode), or
  (param, long value, short value)
- reduce_only_in_hedge: whether reduceOnly may travel with the hedge leg (Binance -1106, OKX
  long_short_mode: it may not)
- position_mode: "account" (set_position_mode per account), "symbol" (per symbol) or None
  (net mode only)
- leverage: "symbol" (set_leverage per symbol), "account" (one limit for the account) or None
- batch_create: orders are created through the batch endpoint (OKX)
- cancel_all: the venue has a cancel-all (OKX has not: cancel one by one)
- batch_cancel: (raw ccxt endpoint, list param, orders per request) of the venue's cancel by a
  list of client ids, or None (one cancel per order); a stop's cancels go in these batches
- watch_my_trades: ccxt has a trade stream (Backpack has not: raw order events carry fills)
- listen_key: the private stream is opened with a listen key that must be kept alive
- ws_clients: WebSocket connections the adapter's subscriptions open (orders, ticker, mark)
- options: ccxt constructor options that avoid extra calls (see live_ccxt.md §1.1)
- load_markets_params: params for load_markets (Backpack: perps only)
- quote_fee_assets: fee assets booked as quote (others are converted or flagged)
- stop_order: how a reduce-only stop-market order rests on the venue (risk.exchange_stop),
  or None (not supported): trigger_param (the create param that makes ccxt send a trigger
  order), params (extra create params: the trigger's price source), lookup (params that
  address the trigger endpoints on list/cancel), resting (the raw statuses of a trigger that
  has not fired). See gridctl.exchange.ccxt_stops.
"""

from __future__ import annotations

from typing import Any

DEFAULTS: dict[str, Any] = {
    "client_id": "binance",
    "client_id_param": "clientOrderId",
    "cid_lookup_param": "clientOrderId",
    "post_only": {"postOnly": True},
    "ioc": {"timeInForce": "IOC"},
    "hedge": None,
    "reduce_only_in_hedge": True,
    "position_mode": "account",
    "leverage": "symbol",
    "batch_create": False,
    "cancel_all": True,
    "batch_cancel": None,
    "watch_my_trades": True,
    "listen_key": False,
    "ws_clients": 1,
    "options": {},
    "load_markets_params": {},
    "fetch_currencies": True,
    "stop_order": None,
}

VENUES: dict[str, dict[str, Any]] = {
    "binanceusdm": {
        "client_id": "binance", "client_id_param": "newClientOrderId", "cid_lookup_param": "clientOrderId",
        "hedge": ("positionSide", "LONG", "SHORT"), "reduce_only_in_hedge": False,
        "position_mode": "account", "leverage": "symbol", "listen_key": True, "ws_clients": 3,
        "batch_cancel": ("fapiPrivateDeleteBatchOrders", "origClientOrderIdList", 10),
        "options": {
            "fetchCurrencies": False,
            "watchPositions": {"fetchPositionsSnapshot": False},
            "setMarginMode": {"throwMarginModeAlreadySet": False},
            "fetchOpenOrders": {"warnWithoutSymbol": False},
            "recvWindow": 10_000,
        },
        "fetch_currencies": False,
        # ccxt sends stopPrice as an algo order (POST /fapi/v1/algoOrder, STOP_MARKET); the trigger
        # watches the last price, as the engine's own stop does
        "stop_order": {"trigger_param": "stopPrice", "params": {"workingType": "CONTRACT_PRICE"},
                       "lookup": {"trigger": True}, "resting": ("NEW",)},
    },
    "backpack": {
        "client_id": "backpack", "client_id_param": "clientId", "cid_lookup_param": None,
        "hedge": None, "position_mode": None, "leverage": "account", "watch_my_trades": False, "ws_clients": 1,
        "load_markets_params": {"marketType": "PERP"}, "fetch_currencies": False,
        # triggerPrice + triggerQuantity on the order endpoint; triggers are listed among open orders
        "stop_order": {"trigger_param": "triggerPrice", "params": {}, "lookup": {}, "resting": ("TriggerPending",)},
    },
    "bybit": {
        "client_id": "binance", "client_id_param": "orderLinkId", "cid_lookup_param": "orderLinkId",
        "hedge": ("positionIdx", 1, 2), "reduce_only_in_hedge": True, "position_mode": "symbol",
        "options": {"fetchMarkets": {"types": ["linear"]}}, "fetch_currencies": False, "ws_clients": 2,
    },
    "okx": {
        "client_id": "okx", "client_id_param": "clOrdId", "cid_lookup_param": "clOrdId",
        "hedge": ("posSide", "long", "short"), "reduce_only_in_hedge": False, "position_mode": "account",
        "batch_create": True, "cancel_all": False, "ws_clients": 2,
        "options": {"fetchMarkets": {"types": ["swap"]}, "createOrder": "privatePostTradeBatchOrders"},
        "fetch_currencies": False,
    },
}


def quirk(venue: str, key: str) -> Any:
    """One quirk of a venue, falling back to the defaults."""
    return VENUES.get(venue, {}).get(key, DEFAULTS[key])
