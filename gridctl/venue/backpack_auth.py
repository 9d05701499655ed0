"""Backpack request authentication as the venue checks it: ED25519 over an instruction string.

What a client signs (Backpack API docs, "Signing requests"; ccxt's `backpack.sign` does the same):

    instruction=<INSTRUCTION>&<params sorted by key, k=v joined by &>&timestamp=<ms>&window=<ms>

with the params taken from the query (GET) or the JSON body (POST/DELETE/PATCH). The API key
*is* the base64 ED25519 verify key, so verifying needs nothing but the request. Headers:
X-API-Key, X-Signature (base64), X-Timestamp (ms), X-Window (ms, default 5000, at most 60000).
A private WebSocket subscribe signs ``instruction=subscribe&timestamp=..&window=..``.

Pure: no clock (the caller passes `now_ms`), no I/O.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, Mapping, Optional
from urllib.parse import quote

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

DEFAULT_WINDOW_MS = 5000
MAX_WINDOW_MS = 60000
UINT32_MAX = 2**32 - 1

# (method, path) -> instruction, as Backpack names them (and ccxt's options['instructions'])
INSTRUCTIONS: dict[tuple[str, str], str] = {
    ("GET", "/api/v1/account"): "accountQuery",
    ("PATCH", "/api/v1/account"): "accountUpdate",
    ("GET", "/api/v1/capital"): "balanceQuery",
    ("GET", "/api/v1/capital/collateral"): "collateralQuery",
    ("GET", "/api/v1/position"): "positionQuery",
    ("GET", "/api/v1/order"): "orderQuery",
    ("POST", "/api/v1/order"): "orderExecute",
    ("POST", "/api/v1/orders"): "orderExecute",  # a batch: one instruction per order
    ("DELETE", "/api/v1/order"): "orderCancel",
    ("GET", "/api/v1/orders"): "orderQueryAll",
    ("DELETE", "/api/v1/orders"): "orderCancelAll",
    ("GET", "/wapi/v1/history/orders"): "orderHistoryQueryAll",
    ("GET", "/wapi/v1/history/fills"): "fillHistoryQueryAll",
    ("GET", "/wapi/v1/history/funding"): "fundingHistoryQueryAll",
}


class AuthFailure(Exception):
    """A request the venue refuses before looking at it; `code`/`message`/`status` are Backpack's."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Credentials:
    """The signature parts of one request (from headers, or a WS subscribe's `signature` list)."""

    api_key: Optional[str]
    signature: Optional[str]
    timestamp: Optional[str]
    window: Optional[str]


def _value_text(value: Any, quoted: bool) -> str:
    """A param value as it appears in the signed string (booleans lower-case, as ccxt sends)."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = str(value)
    return quote(text, safe="") if quoted else text


def signing_string(instruction: str, params: Mapping[str, Any], timestamp: str, window: str,
                   quoted: bool = False) -> str:
    """The exact text a client signs for one request (params sorted by key)."""
    head = f"instruction={instruction}&"
    key_quote = (lambda k: quote(k, safe="")) if quoted else (lambda k: k)
    body = "&".join(f"{key_quote(k)}={_value_text(params[k], quoted)}" for k in sorted(params))
    if body:
        head += body + "&"
    return f"{head}timestamp={timestamp}&window={window}"


def batch_signing_string(instruction: str, orders: list[Mapping[str, Any]], timestamp: str, window: str,
                         quoted: bool = False) -> str:
    """The text a client signs for a batch (POST /api/v1/orders): each order's sorted params
    after its own ``instruction=..&``, the timestamp and window once at the end."""
    parts = [signing_string(instruction, o, "", "", quoted).rsplit("timestamp=", 1)[0] for o in orders]
    return "".join(parts) + f"timestamp={timestamp}&window={window}"


def verify_key(api_key: str) -> VerifyKey:
    """The ED25519 verify key an API key stands for; AuthFailure if it is not one."""
    try:
        raw = base64.b64decode(api_key, validate=True)
    except (binascii.Error, ValueError):
        raise AuthFailure(401, "UNAUTHORIZED", "Invalid API key") from None
    if len(raw) != 32:
        raise AuthFailure(401, "UNAUTHORIZED", "Invalid API key")
    return VerifyKey(raw)


def check_window(creds: Credentials, now_ms: int) -> tuple[int, int]:
    """(timestamp, window) after checking both; AuthFailure when missing, malformed or expired.

    A request is valid from its timestamp until timestamp + window (Backpack answers
    401 "Request has expired" after that, catsats/backpack_exchange#16).
    """
    if not creds.timestamp:
        raise AuthFailure(400, "INVALID_CLIENT_REQUEST", "Missing timestamp")
    try:
        ts = int(creds.timestamp)
        window = int(creds.window) if creds.window else DEFAULT_WINDOW_MS
    except ValueError:
        raise AuthFailure(400, "INVALID_CLIENT_REQUEST", "Invalid timestamp or window") from None
    if not 0 < window <= MAX_WINDOW_MS:
        raise AuthFailure(400, "INVALID_CLIENT_REQUEST",
                          f"Window must be between 1 and {MAX_WINDOW_MS}")
    if now_ms > ts + window or ts > now_ms + window:
        raise AuthFailure(401, "INVALID_CLIENT_REQUEST", "Request has expired")
    return ts, window


def verify(instruction: str, params: Any, creds: Credentials, now_ms: int) -> str:
    """Check one signed request; returns the API key (the account's identity).

    Accepts the signed string with raw values (Backpack's docs) or URL-quoted values (what
    ccxt's urlencode produces); for the values Backpack takes (symbols, decimals, enums,
    integers) the two are identical. Raises AuthFailure as the venue answers.
    """
    if not creds.api_key:
        raise AuthFailure(401, "UNAUTHORIZED", "Missing API key")
    if not creds.signature:
        raise AuthFailure(401, "INVALID_SIGNATURE", "Missing signature")
    key = verify_key(creds.api_key)
    _, window = check_window(creds, now_ms)
    try:
        signature = base64.b64decode(creds.signature, validate=True)
    except (binascii.Error, ValueError):
        raise AuthFailure(401, "INVALID_SIGNATURE", "Invalid signature") from None
    # the window as the client wrote it: "5000" and "05000" are different signed texts
    window_text = creds.window if creds.window else str(window)
    for quoted in (False, True):
        if isinstance(params, list):  # a batch of orders
            text = batch_signing_string(instruction, params, str(creds.timestamp), window_text, quoted)
        else:
            text = signing_string(instruction, params, str(creds.timestamp), window_text, quoted)
        try:
            key.verify(text.encode(), signature)
            return creds.api_key
        except (BadSignatureError, ValueError):
            continue
    raise AuthFailure(401, "INVALID_SIGNATURE", "Invalid signature, could not verify signature")


def client_id(value: Any, field: str = "clientId") -> Optional[int]:
    """A clientId as Backpack takes it: a JSON integer 0..2^32-1 (or absent); else AuthFailure 400.

    GET query strings carry it as decimal text, which is accepted.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise AuthFailure(400, "INVALID_CLIENT_REQUEST", f"Invalid {field}: expected u32")
    if isinstance(value, str):
        if not value.isdigit():
            raise AuthFailure(400, "INVALID_CLIENT_REQUEST", f"Invalid {field}: expected u32")
        value = int(value)
    if not isinstance(value, int) or not 0 <= value <= UINT32_MAX:
        raise AuthFailure(400, "INVALID_CLIENT_REQUEST", f"Invalid {field}: expected u32")
    return value


def check_key_pair(api_key: str, secret: Optional[str]) -> None:
    """A Backpack key pair given to the venue (--api-key/--secret): a base64 ED25519 public key
    and, if given, its seed (or seed + public key). ValueError naming the option, never the secret."""
    try:
        verify_key(api_key)
    except AuthFailure:
        raise ValueError("--api-key: a Backpack API key is a base64 ED25519 public key (32 bytes)") from None
    if secret is None:
        return
    try:
        raw = base64.b64decode(secret, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) not in (32, 64):
        raise ValueError("--secret: a Backpack secret is a base64 ED25519 seed (32 bytes)")
    if base64.b64encode(bytes(SigningKey(raw[:32]).verify_key)).decode() != api_key:
        raise ValueError("--secret does not belong to --api-key (its public key differs)")
