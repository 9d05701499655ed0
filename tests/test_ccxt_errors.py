"""ccxt exceptions → the project's small error set, by the venue's own code first, then by type."""

from __future__ import annotations

import pytest

ccxt = pytest.importorskip("ccxt")

from gridctl.exchange.base import (  # noqa: E402
    AuthError, ExchangeError, InsufficientMargin, RateLimited, Rejected, Temporary, UnknownOutcome,
)
from gridctl.exchange.ccxt_errors import classify, venue_code  # noqa: E402


def binance(cls, code: int, msg: str = "x"):
    return cls(f'binanceusdm {{"code":{code},"msg":"{msg}"}}')


@pytest.mark.parametrize("exc, want", [
    (ccxt.NetworkError("x"), Temporary), (ccxt.RequestTimeout("x"), Temporary),
    (ccxt.ExchangeNotAvailable("x"), Temporary), (ccxt.RateLimitExceeded("x"), RateLimited),
    (ccxt.DDoSProtection("x"), RateLimited), (ccxt.BadResponse("x"), Temporary),
    (ccxt.AuthenticationError("x"), AuthError), (ccxt.PermissionDenied("x"), AuthError),
    (ccxt.InsufficientFunds("x"), InsufficientMargin), (ccxt.InvalidOrder("x"), Rejected),
    (ccxt.ExchangeError("x"), ExchangeError),
])
def test_by_type_on_reads(exc, want):
    assert type(classify(exc)) is want


def test_timeouts_while_writing_are_unknown_outcomes_but_rate_limits_are_not():
    assert type(classify(ccxt.RequestTimeout("x"), writes=True)) is UnknownOutcome
    assert type(classify(ccxt.ExchangeNotAvailable("x"), writes=True)) is UnknownOutcome
    assert type(classify(ccxt.RateLimitExceeded("x"), writes=True)) is RateLimited
    assert type(classify(ccxt.InvalidNonce("x"), writes=True)) is Temporary  # refused: safe to resend


def test_the_venues_code_wins_over_cccxts_type():
    # ccxt maps -1007 to a plain timeout; Binance says the order's status is unknown
    err = classify(binance(ccxt.RequestTimeout, -1007), venue="binanceusdm")
    assert type(err) is UnknownOutcome and err.venue_code == -1007
    err = classify(binance(ccxt.ExchangeError, -5022, "Due to the order could not be executed as maker"),
                   venue="binanceusdm", writes=True)
    assert type(err) is Rejected and err.reason == "post_only" and "[-5022]" in str(err)
    assert type(classify(binance(ccxt.ExchangeError, -2019), venue="binanceusdm")) is InsufficientMargin
    assert type(classify(binance(ccxt.ExchangeError, -2015), venue="binanceusdm")) is AuthError
    assert classify(binance(ccxt.ExchangeError, -2022), venue="binanceusdm").reason == "reduce_only"


def test_an_internal_error_after_sending_an_order_may_have_placed_it():
    assert type(classify(binance(ccxt.ExchangeError, -1001), venue="binanceusdm")) is Temporary
    assert type(classify(binance(ccxt.ExchangeError, -1001), venue="binanceusdm", writes=True)) is UnknownOutcome


def test_backpack_codes_are_strings():
    exc = ccxt.ExchangeError('backpack {"code":"INSUFFICIENT_MARGIN","message":"Insufficient margin"}')
    assert venue_code(exc) == "INSUFFICIENT_MARGIN"
    assert type(classify(exc, venue="backpack")) is InsufficientMargin


def test_unknown_codes_fall_back_to_the_type_and_other_exceptions_pass_through():
    assert type(classify(binance(ccxt.InvalidOrder, -9999), venue="binanceusdm")) is Rejected
    assert venue_code(ccxt.ExchangeError("no json here")) is None
    boom = ValueError("not ccxt")
    assert classify(boom) is boom


def test_retry_after_comes_from_the_clients_last_response():
    class Client:
        last_response_headers = {"Retry-After": "7"}

    assert classify(ccxt.RateLimitExceeded("x"), client=Client()).retry_after == 7.0


def test_bybit_and_okx_codes_are_read_where_those_venues_put_them():
    by = ccxt.InvalidOrder('bybit {"retCode":110007,"retMsg":"ab not enough for new order","result":{}}')
    assert venue_code(by) == 110007 and type(classify(by, venue="bybit")) is InsufficientMargin
    okx = ccxt.ExchangeError('okx {"code":"1","data":[{"clOrdId":"gx1","sCode":"51008","sMsg":"Insufficient"}],'
                             '"msg":"All operations failed"}')
    assert venue_code(okx) == "51008" and type(classify(okx, venue="okx", writes=True)) is InsufficientMargin
    dup = ccxt.InvalidOrder('bybit {"retCode":110072,"retMsg":"OrderLinkedID is duplicate"}')
    assert type(classify(dup, venue="bybit", writes=True)) is UnknownOutcome


def test_a_failed_requests_signature_and_listen_key_stay_out_of_the_message():
    exc = ccxt.ExchangeNotAvailable("binanceusdm GET http://127.0.0.1:1/fapi/v1/order?timestamp=1&signature=deadbeef01"
                                    "&recvWindow=10000 listenKey=abcDEF123")
    text = str(classify(exc, venue="binanceusdm"))
    assert "deadbeef01" not in text and "abcDEF123" not in text and "signature=***" in text
