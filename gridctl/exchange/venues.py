"""Venue quirks as data (in the spirit of freqtrade's per-exchange `_ft_has`)."""

from __future__ import annotations

from typing import Any

DEFAULTS: dict[str, Any] = {
    "client_id": "binance",  # client order id form: binance | okx | backpack
    "client_id_param": "clientOrderId",
    "post_only_param": "postOnly",
    "hedge_param": "positionSide",
}

VENUES: dict[str, dict[str, Any]] = {
    "binanceusdm": {"client_id": "binance", "client_id_param": "newClientOrderId"},
    "bybit": {"client_id": "binance", "client_id_param": "orderLinkId"},
    "okx": {"client_id": "okx", "client_id_param": "clOrdId"},
    "backpack": {"client_id": "backpack", "client_id_param": "clientId"},
}


def quirk(venue: str, key: str) -> Any:
    """One quirk of a venue, falling back to the defaults."""
    return VENUES.get(venue, {}).get(key, DEFAULTS[key])
