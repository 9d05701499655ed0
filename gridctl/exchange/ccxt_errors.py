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
        -4131: (Rejected, "price_band"),
        -4164: (Rejected, "min_notional"),
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
}

_BODY = re.compile(r"\{.*\}", re.S)


def venue_code(exc: BaseException) -> Optional[Code]:
    """The venue's own error code from a ccxt exception's message (None when it carries none)."""
    m = _BODY.search(str(exc))
    if not m:
        return None
    try:
        body = json.loads(m.group(0))
    except ValueError:
        return None
    code = body.get("code") if isinstance(body, dict) else None
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
    err = cls(f"{where}{type(exc).__name__}{shown}: {str(exc)[:200]}", reason)
    err.venue_code = code  # type: ignore[attr-defined]
    if isinstance(err, RateLimited):
        err.retry_after = retry_after(client)  # type: ignore[attr-defined]
    return err
