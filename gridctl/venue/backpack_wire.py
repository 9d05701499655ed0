"""Backpack on the wire: reading signed requests, answering errors, WebSocket subscriptions.

The aiohttp glue between the venue server and the pure codec/auth modules, with no
knowledge of accounts or matching (that is gridctl.venue.backpack).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional

from aiohttp import web

from gridctl.venue import backpack_auth as auth
from gridctl.venue import backpack_codec as codec
from gridctl.venue.backpack_auth import AuthFailure, Credentials

PRIVATE_PREFIX = "account."
WS_INVALID = 4006  # Backpack's error code for a refused subscription ("Invalid stream")


class BackpackError(Exception):
    """An error reply in Backpack's shape; raised by handlers, turned into a response."""

    def __init__(self, code: str, message: str, status: Optional[int] = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status if status is not None else codec.ERROR_STATUS.get(code, 400)

    @classmethod
    def from_auth(cls, e: AuthFailure) -> "BackpackError":
        """The same refusal an AuthFailure describes."""
        return cls(e.code, e.message, e.status)

    def response(self) -> web.Response:
        """The HTTP reply the venue sends."""
        return web.json_response(codec.error_body(self.code, self.message), status=self.status)


def ok(body: Any, status: int = 200) -> web.Response:
    """A JSON reply."""
    return web.json_response(body, status=status, dumps=lambda o: json.dumps(o, separators=(",", ":")))


async def request_params(request: web.Request) -> dict[str, Any]:
    """The request's params as the client signed them: query (GET) or JSON body (others)."""
    if request.method == "GET":
        return dict(request.query)
    raw = await request.read()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise BackpackError("INVALID_CLIENT_REQUEST", "Invalid JSON body") from None
    if request.path == "/api/v1/orders" and request.method == "POST":  # a batch of orders
        if not isinstance(body, list) or not body or not all(isinstance(o, dict) for o in body):
            raise BackpackError("INVALID_CLIENT_REQUEST", "Expected a non-empty array of orders")
        return body  # type: ignore[return-value]
    if not isinstance(body, dict):
        raise BackpackError("INVALID_CLIENT_REQUEST", "Expected a JSON object")
    return body


def header_credentials(request: web.Request) -> Credentials:
    """The signature headers of a private request."""
    h = request.headers
    return Credentials(h.get("X-API-Key"), h.get("X-Signature"), h.get("X-Timestamp"),
                       h.get("X-Window"))


async def authenticate(request: web.Request, now_ms: int) -> tuple[str, dict[str, Any]]:
    """(API key, params) of a signed request; BackpackError as the venue refuses it."""
    instruction = auth.INSTRUCTIONS.get((request.method, request.path))
    if instruction is None:
        raise BackpackError("RESOURCE_NOT_FOUND", "Not Found")
    params = await request_params(request)
    try:
        key = auth.verify(instruction, params, header_credentials(request), now_ms)
    except AuthFailure as e:
        raise BackpackError.from_auth(e) from None
    return key, params


def client_id_param(params: dict[str, Any]) -> Optional[int]:
    """The request's clientId as a u32, or None; BackpackError 400 for anything else."""
    try:
        return auth.client_id(params.get("clientId"))
    except AuthFailure as e:
        raise BackpackError.from_auth(e) from None


def one_order_ref(params: dict[str, Any]) -> tuple[Optional[str], Optional[int]]:
    """(orderId, clientId) of a cancel or query: exactly one of the two (the API refuses both)."""
    order_id = params.get("orderId")
    cid = client_id_param(params)
    if (order_id is None) == (cid is None):
        raise BackpackError("INVALID_CLIENT_REQUEST", "Must specify exactly one of orderId or clientId")
    return (None if order_id is None else str(order_id)), cid


def decimal_param(params: dict[str, Any], name: str, required: bool = True):
    """A decimal-string param; BackpackError naming the field when absent or malformed."""
    from decimal import Decimal, InvalidOperation
    value = params.get(name)
    if value is None:
        if required:
            raise BackpackError("INVALID_CLIENT_REQUEST", f"Missing field `{name}`")
        return None
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise BackpackError("INVALID_CLIENT_REQUEST", f"Invalid decimal `{name}`") from None
    if not d.is_finite() or d <= 0:
        raise BackpackError("INVALID_CLIENT_REQUEST", f"Invalid decimal `{name}`")
    return d


def int_param(params: dict[str, Any], name: str, default: Optional[int], maximum: Optional[int] = None
              ) -> Optional[int]:
    """A non-negative integer param (limit, offset, from, to), capped at `maximum`."""
    value = params.get(name)
    if value is None:
        return default
    try:
        n = int(str(value))
    except ValueError:
        raise BackpackError("INVALID_CLIENT_REQUEST", f"Invalid integer `{name}`") from None
    if n < 0:
        raise BackpackError("INVALID_CLIENT_REQUEST", f"Invalid integer `{name}`")
    return min(n, maximum) if maximum is not None else n


def bool_param(params: dict[str, Any], name: str) -> bool:
    """A boolean param (JSON true/false, or "true"/"false" text)."""
    value = params.get(name, False)
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "false"):
        return str(value).lower() == "true"
    raise BackpackError("INVALID_CLIENT_REQUEST", f"Invalid boolean `{name}`")


def page(rows: list, params: dict[str, Any], default_limit: int = 100, max_limit: int = 1000) -> list:
    """Apply limit/offset/sortDirection to rows given oldest first (Backpack defaults to Desc)."""
    limit = int_param(params, "limit", default_limit, max_limit)
    offset = int_param(params, "offset", 0)
    direction = str(params.get("sortDirection", "Desc"))
    if direction not in ("Asc", "Desc"):
        raise BackpackError("INVALID_CLIENT_REQUEST", "Invalid sortDirection")
    ordered = rows if direction == "Asc" else list(reversed(rows))
    return ordered[offset:offset + (limit or 0)]


@dataclass(frozen=True)
class Subscribe:
    """A parsed SUBSCRIBE/UNSUBSCRIBE message."""

    method: str
    streams: list[str]
    credentials: Optional[Credentials]
    request_id: Any

    @property
    def private(self) -> bool:
        """True when any stream needs the signature (account.*)."""
        return any(s.startswith(PRIVATE_PREFIX) for s in self.streams)


def parse_subscribe(text: str) -> Subscribe:
    """A client's WS message; ValueError with the venue's message when it is not one."""
    try:
        msg = json.loads(text)
    except ValueError:
        raise ValueError("Invalid payload") from None
    if not isinstance(msg, dict) or msg.get("method") not in ("SUBSCRIBE", "UNSUBSCRIBE"):
        raise ValueError("Invalid method")
    streams = msg.get("params")
    if not isinstance(streams, list) or not all(isinstance(s, str) for s in streams) or not streams:
        raise ValueError("Invalid stream")
    sig = msg.get("signature")
    creds = None
    if sig is not None:
        if not isinstance(sig, list) or len(sig) not in (3, 4):
            raise ValueError("Invalid signature")
        parts = [None if p is None else str(p) for p in sig]
        creds = Credentials(parts[0], parts[1], parts[2], parts[3] if len(parts) == 4 else None)
    return Subscribe(msg["method"], streams, creds, msg.get("id"))


def check_subscribe(sub: Subscribe, now_ms: int) -> Optional[str]:
    """The API key a private subscription is signed by (None for public ones); ValueError if refused."""
    if not sub.private:
        return None
    if sub.credentials is None:
        raise ValueError("Signature required for private streams")
    try:
        return auth.verify("subscribe", {}, sub.credentials, now_ms)
    except AuthFailure as e:
        raise ValueError(e.message) from None


def stream_symbol(stream: str) -> Optional[str]:
    """The market of a stream name (`ticker.SOL_USDC_PERP` -> SOL_USDC_PERP); None for all."""
    parts = stream.split(".")
    kinds = {"ticker": 2, "markPrice": 2, "bookTicker": 2, "depth": 2, "trade": 2}
    if parts[0] == "account":
        return parts[2] if len(parts) == 3 else None
    if parts[0] in kinds and len(parts) == kinds[parts[0]]:
        return parts[1]
    return None


def known_stream(stream: str) -> bool:
    """Streams this venue publishes."""
    parts = stream.split(".")
    if parts[0] == "account":
        return len(parts) in (2, 3) and parts[1] in ("orderUpdate", "positionUpdate",
                                                      "balanceUpdate", "rfqUpdate")
    return len(parts) == 2 and parts[0] in ("ticker", "markPrice", "bookTicker", "depth", "trade")
