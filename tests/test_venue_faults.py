"""Faults of the local venue, as ccxt's binanceusdm meets them: each one answered the way
Binance answers, and the outcome (placed or not) as the venue says."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import aiohttp
import ccxt
import pytest

from gridctl.venue.faults import FaultError, Faults, parse_spec
from venue_harness import KEY, SECRET, LocalVenue, binance_client

BTC = "BTC/USDT:USDT"


@pytest.fixture
def venue():
    with LocalVenue(secret=SECRET) as v:
        v.price(BTC, "65000")
        yield v


def run(venue, scenario, faults=None, **options):
    """scenario(ex) with the faults switched on once ccxt has loaded the markets."""
    async def main():
        ex = binance_client(venue.url, pro=False, **options)
        try:
            await ex.load_markets()
            if faults:
                await asyncio.to_thread(venue.faults, faults)
            return await scenario(ex)
        finally:
            await ex.close()
    return asyncio.run(main())


async def outcome(coro):
    try:
        return await coro
    except ccxt.BaseError as exc:
        return exc


def test_rate_limit_answers_429_with_retry_after_and_binance_body(venue):
    async def scenario(ex):
        async with aiohttp.ClientSession() as s:
            async with s.get(venue.url + "/fapi/v1/time") as r:
                raw = r.status, r.headers.get("Retry-After"), await r.json()
        return raw, await ex.fetch_time()
    (status, retry_after, body), t = run(venue, scenario, faults={"rate_limit": {"count": 1, "retry_after": 7}})
    assert (status, retry_after, body["code"]) == (429, "7", -1003)
    assert t > 0  # the count was used up: the next request is served


def test_rate_limit_on_placement_only(venue):
    venue.faults({"rate_limit": {"count": 1, "on": "place"}})

    async def scenario(ex):
        bal = await ex.fetch_balance()
        placed = await outcome(ex.create_order(BTC, "limit", "buy", 0.01, 60000, {"clientOrderId": "r-1"}))
        return bal, placed, await ex.fetch_open_orders(BTC)
    bal, placed, open_orders = run(venue, scenario)
    assert bal["USDT"]["total"] == 10000
    assert isinstance(placed, ccxt.DDoSProtection) and "-1003" in str(placed)
    assert open_orders == []  # refused before it reached the book


def test_server_error_places_nothing(venue):
    venue.faults({"server_error": {"count": 1, "on": "place"}})

    async def scenario(ex):
        placed = await outcome(ex.create_order(BTC, "limit", "buy", 0.01, 60000, {"clientOrderId": "e-1"}))
        return placed, await ex.fetch_open_orders(BTC)
    placed, open_orders = run(venue, scenario)
    assert isinstance(placed, ccxt.OperationFailed) and "-1001" in str(placed) and open_orders == []


def test_html_503(venue):
    async def scenario(ex):
        return await outcome(ex.fetch_ticker(BTC))
    got = run(venue, scenario, faults={"server_error": {"count": 1, "html": True}})
    assert isinstance(got, ccxt.ExchangeNotAvailable) and "503" in str(got)


def test_timeout_after_the_order_was_accepted(venue):
    venue.faults({"timeout": {"count": 1, "delay": 3}})

    async def scenario(ex):
        placed = await outcome(ex.create_order(BTC, "limit", "buy", 0.01, 60000, {"clientOrderId": "t-1"}))
        found = await ex.fetch_order(None, BTC, {"clientOrderId": "t-1"})
        return placed, found
    placed, found = run(venue, scenario, timeout=1000)
    assert isinstance(placed, ccxt.RequestTimeout)
    assert found["status"] == "open" and found["clientOrderId"] == "t-1"


def test_empty_200_after_the_order_was_accepted(venue):
    venue.faults({"empty": {"count": 1}})

    async def scenario(ex):
        placed = await ex.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "x-1"})
        return placed, await ex.fetch_order(None, BTC, {"clientOrderId": "x-1"})
    placed, found = run(venue, scenario)
    assert placed["id"] is None  # ccxt raises nothing: the outcome is unknown to the caller
    assert found["status"] == "closed" and found["filled"] == 0.01


@pytest.mark.parametrize("reason,code", [("insufficient_margin", -2019), ("post_only_would_cross", -5022),
                                         ("reduce_only_rejected", -2022), ("notional_below_min", -4164)])
def test_injected_rejects_carry_the_venue_code(venue, reason, code):
    venue.faults({"reject": {"count": 1, "reason": reason}})

    async def scenario(ex):
        refused = await outcome(ex.create_order(BTC, "limit", "buy", 0.01, 60000, {"clientOrderId": "j-1"}))
        again = await ex.create_order(BTC, "limit", "buy", 0.01, 60000, {"clientOrderId": "j-1"})
        return refused, again
    refused, again = run(venue, scenario)
    assert json.loads(str(refused)[str(refused).index("{"):])["code"] == code
    assert again["status"] == "open"


def _pattern(seed: int) -> list[bool]:
    with LocalVenue(seed=seed, faults={"rate_limit": {"p": 0.5}}) as v:
        out = []
        for _ in range(24):
            try:
                urllib.request.urlopen(v.url + "/fapi/v1/time", timeout=5).read()
                out.append(False)
            except urllib.error.HTTPError as exc:
                assert exc.code == 429
                out.append(True)
        return out


def test_random_faults_repeat_with_the_seed():
    a, b, c = _pattern(3), _pattern(3), _pattern(4)
    assert a == b and any(a) and not all(a)
    assert a != c


def test_admin_faults_refuses_an_unknown_fault(venue):
    req = urllib.request.Request(venue.url + "/_admin/faults", data=json.dumps({"meteor": {}}).encode(),
                                 method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    assert err.value.code == 400
    assert "unknown fault 'meteor'" in json.loads(err.value.read())["error"]


def test_fault_spec_strings():
    spec = parse_spec("rate_limit:p=0.05,on=place;partial;timeout:count=2,delay=20;silent_streams")
    assert spec == {"rate_limit": {"p": 0.05, "on": "place"}, "partial": {"p": 1.0},
                    "timeout": {"count": 2, "delay": 20}, "silent_streams": {"on": True}}
    f = Faults(1)
    f.configure(spec)
    assert f.take("timeout", "read") is None  # timeouts hit placements
    assert f.take("timeout", "place")["delay"] == 20
    with pytest.raises(FaultError, match="p must be between 0 and 1"):
        f.configure({"empty": {"p": 2}})


def test_api_key_restriction_uses_the_venue_error():
    with LocalVenue(api_key=KEY, secret=SECRET) as v:
        async def main():
            async with aiohttp.ClientSession() as s:
                async with s.post(v.url + "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": "other"}) as r:
                    return r.status, await r.json()
        status, body = asyncio.run(main())
    assert status == 401 and body["code"] == -2015
