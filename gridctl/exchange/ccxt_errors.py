"""ccxt's exceptions, classified once into the project's small set (gridctl.exchange.base).

The venue's own error code, when the message carries one (ccxt puts the venue's
JSON body in the message: ``binanceusdm {"code":-2019,"msg":"Margin is insufficient."}``),
wins over ccxt's exception type: ccxt maps many codes to the generic
``ExchangeError``, and a few to types that mislead (a Binance -1007 "execution
status unknown" is a timeout that may have placed the order). The type is the
fallback for everything the tables below do not name.

Whether a request may have changed the book decides between `Temporary` and
`UnknownOutcome`: a timeout while *reading* is worth a retry; a timeout while
*placing or cancelling* must be confirmed by client id before anything is re-sent.

ccxt is imported at the top: this module is the ccxt boundary, and only the
adapters that talk to ccxt import it.
"""

from __future__ import annotations

import json
import re
from typing import Any, Optional, Union

import ccxt

from gridctl.exchange.base import (
    AuthError,
    ExchangeError,
    InsufficientMargin,
    RateLimited,
    Rejected,
    Temporary,
    UnknownOutcome,
)

MAX_RETRY_AFTER_S = 120.0

Code = Union[int, str]
# What a venue's own code means: (error class, reason) — reason None keeps the class's default.
# A code that means "temporary" on a read but may have executed on a write is "temporary"
# here and becomes UnknownOutcome through `writes=True` (see classify).
_Kind = tuple[type[ExchangeError], Optional[str]]

VENUE_CODES: dict[str, dict[Code, _Kind]] = {
    # https://developers.binance.com/docs/derivatives/usds-margined-futures/error-code
    "binanceusdm": {
        -1001: (Temporary, "disconnected"),
        -1003: (RateLimited, None),
        -1007: (UnknownOutcome, None),           # "execution status unknown"
        -1008: (Temporary, "overloaded"),        # refused before execution
        -1015: (RateLimited, "too_many_orders"),
        -1021: (Temporary, "timestamp"),         # clock drift: resync and retry
        -1022: (AuthError, "bad_signature"),
        -1125: (AuthError, "listen_key"),        # a refused keep-alive: the adapter renews the key (never fatal)
        -1111: (Rejected, "precision"),
        -1121: (Rejected, "bad_symbol"),
        -2011: (Rejected, "order_not_found"),    # cancel of an unknown order
        -2013: (Rejected, "order_not_found"),
        -2014: (AuthError, "bad_api_key"),
        -2015: (AuthError, "bad_api_key"),
        -2018: (InsufficientMargin, None),
        -2019: (InsufficientMargin, None),
        -2021: (Rejected, "would_trigger"),
        -2022: (Rejected, "reduce_only"),
        -4061: (Rejected, "position_side"),
        -4116: (UnknownOutcome, "duplicate_client_id"),  # the id exists: confirm by client id
        -4164: (Rejected, "min_notional"),
        -4131: (Rejected, "price_band"),
        -5022: (Rejected, "post_only"),          # GTX order would have taken liquidity
    },
    # https://docs.backpack.exchange (error codes are strings)
    "backpack": {
        "TOO_MANY_REQUESTS": (RateLimited, None),
        "UNAUTHORIZED": (AuthError, None),
        "FORBIDDEN": (AuthError, None),
        "INVALID_SIGNATURE": (AuthError, "bad_signature"),
        "INSUFFICIENT_MARGIN": (InsufficientMargin, None),
        "INSUFFICIENT_FUNDS": (InsufficientMargin, None),
        "INVALID_ORDER": (Rejected, "invalid_order"),
        "INVALID_PRICE": (Rejected, "price"),
        "INVALID_QUANTITY": (Rejected, "quantity"),
        "INVALID_CLIENT_REQUEST": (Rejected, "invalid_order"),
        "ORDER_LIMIT": (Rejected, "order_limit"),
        "POSITION_LIMIT": (Rejected, "position_limit"),
        "MAX_LEVERAGE_REACHED": (Rejected, "leverage"),
        "PRECONDITION_FAILED": (Rejected, "precondition"),
        "RESOURCE_NOT_FOUND": (Rejected, "order_not_found"),
        "INVALID_SYMBOL": (Rejected, "bad_symbol"),
        "INVALID_MARKET": (Rejected, "bad_symbol"),
        "SERVER_ERROR": (Temporary, None),
        "MAINTENANCE": (Temporary, "maintenance"),
        "TIMEOUT": (UnknownOutcome, None),
    },
    # secondary venues (live_ccxt.md §3.4): the codes that change what the worker does
    "bybit": {
        10006: (RateLimited, None), 10002: (Temporary, "timestamp"), 10003: (AuthError, None),
        110007: (InsufficientMargin, None), 110017: (Rejected, "reduce_only"), 110094: (Rejected, "min_notional"),
        170218: (Rejected, "post_only"), 110001: (Rejected, "order_not_found"), 170213: (Rejected, "order_not_found"),
        110072: (UnknownOutcome, "duplicate_client_id"), 10016: (Temporary, None),
    },
    "okx": {
        "50011": (RateLimited, None), "50102": (Temporary, "timestamp"), "50113": (AuthError, None),
        "51008": (InsufficientMargin, None), "51121": (Rejected, "invalid_order"), "51124": (Rejected, "post_only"),
        "51400": (Rejected, "order_not_found"), "51603": (Rejected, "order_not_found"),
        "51016": (UnknownOutcome, "duplicate_client_id"), "51169": (Rejected, "reduce_only"),
        "50001": (Temporary, "maintenance"),
    },
}

_BODY = re.compile(r"\{.*\}", re.S)
_SIGNED = re.compile(r"(?i)\b(signature|listenKey)=[^&\s\"']+")


def venue_code(exc: BaseException) -> Optional[Code]:
    """The venue's own error code from a ccxt exception's message (None when it carries none)."""
    m = _BODY.search(str(exc))
    if not m:
        return None
    try:
        body = json.loads(m.group(0))
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    code = body.get("code", body.get("retCode"))  # Bybit: retCode
    data = body.get("data")
    if str(code) == "1" and isinstance(data, list) and data and isinstance(data[0], dict) and data[0].get("sCode"):
        code = str(data[0]["sCode"])  # OKX: the order's own code inside a batch answer
    return code if isinstance(code, (int, str)) and not isinstance(code, bool) else None


def retry_after(client: Any) -> Optional[float]:
    """Seconds from the last response's Retry-After header (None when absent or unreadable)."""
    headers = getattr(client, "last_response_headers", None) or {}
    for k, v in dict(headers).items():
        if str(k).lower() == "retry-after":
            try:
                return min(MAX_RETRY_AFTER_S, max(0.0, float(v)))
            except (TypeError, ValueError):
                return None
    return None


def _by_type(exc: BaseException, writes: bool) -> Optional[_Kind]:
    """The class and reason for a ccxt exception type; None for non-ccxt exceptions."""
    # order matters: ccxt's hierarchy nests RateLimitExceeded and RequestTimeout in NetworkError
    if isinstance(exc, (ccxt.RateLimitExceeded, ccxt.DDoSProtection)):
        return RateLimited, None       # refused before execution: never an unknown outcome
    if isinstance(exc, ccxt.AuthenticationError):
        return AuthError, None
    if isinstance(exc, ccxt.InsufficientFunds):
        return InsufficientMargin, None
    if isinstance(exc, ccxt.BadSymbol):
        return Rejected, "bad_symbol"
    if isinstance(exc, ccxt.OrderNotFound):
        return Rejected, "order_not_found"
    if isinstance(exc, ccxt.OrderImmediatelyFillable):
        return Rejected, "post_only"
    if isinstance(exc, ccxt.InvalidOrder):
        return Rejected, "invalid_order"
    if isinstance(exc, ccxt.InvalidNonce):
        return Temporary, "timestamp"  # the request was refused: safe to retry even for writes
    if isinstance(exc, (ccxt.OperationFailed, ccxt.NetworkError)):
        # network trouble, timeouts, unavailability, unreadable answers: the venue may have acted
        return (UnknownOutcome, None) if writes else (Temporary, None)
    if isinstance(exc, ccxt.BaseError):
        return ExchangeError, None
    return None


def classify(exc: BaseException, *, venue: str = "", client: Any = None,
             writes: bool = False) -> BaseException:
    """The project's exception for a ccxt exception; other exceptions come back unchanged.

    venue: the ccxt id (its code table is consulted first). client: the ccxt client,
    for the Retry-After of a rate limit. writes: the request may have changed the book
    (place, cancel), so that a timeout is an UnknownOutcome rather than Temporary.
    """
    code = venue_code(exc) if isinstance(exc, ccxt.BaseError) else None
    kind = VENUE_CODES.get(venue, {}).get(code) if code is not None else None
    if kind is None:
        kind = _by_type(exc, writes)
    if kind is None:
        return exc
    cls, reason = kind
    if writes and cls is Temporary and reason in ("disconnected", None):
        cls, reason = UnknownOutcome, None  # an internal error after sending: the order may exist
    where = f"{venue}: " if venue else ""
    shown = f" [{code}]" if code is not None else ""
    text = _SIGNED.sub(r"\1=***", str(exc))  # a failed GET's url carries its signature
    err = cls(f"{where}{type(exc).__name__}{shown}: {text[:200]}", reason)
    err.venue_code = code  # type: ignore[attr-defined]
    if isinstance(err, RateLimited):
        err.retry_after = retry_after(client)  # type: ignore[attr-defined]
    return err
