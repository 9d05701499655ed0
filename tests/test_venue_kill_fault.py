"""The venue's `kill` fault: a given process SIGKILLed at a precise moment of a request
(executed but not answered, or not executed) or right after a fill is pushed, on both
protocols. The victim here is a sleeping child process; the e2e tests aim it at workers."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from gridctl.venue.faults import FaultError, Faults
from backpack_helpers import SOL, SOL_ID, backpack_client, loaded
from venue_harness import SECRET, LocalVenue, binance_client

BTC = "BTC/USDT:USDT"


@pytest.fixture
def victim():
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield p
    if p.poll() is None:
        p.kill()
    p.wait(10)


@pytest.fixture
def venue():
    with LocalVenue(secret=SECRET) as v:
        v.price(BTC, "65000")
        yield v


def _run(venue, scenario, faults):
    async def main():
        ex = binance_client(venue.url, pro=False)
        try:
            await ex.load_markets()
            await asyncio.to_thread(venue.faults, faults)
            return await scenario(ex)
        finally:
            await ex.close()
    return asyncio.run(main())


def test_kill_after_a_placement_executes_it_then_kills_before_the_answer(venue, victim):
    async def scenario(ex):
        o = await ex.create_order(BTC, "limit", "buy", 0.01, 60000, {"newClientOrderId": "k-1"})
        return o, await ex.fetch_open_orders(BTC)
    order, book = _run(venue, scenario, {"kill": {"pid": victim.pid, "on": "place"}})
    assert victim.wait(5) == -9
    assert order["clientOrderId"] == "k-1" and [o["clientOrderId"] for o in book] == ["k-1"]
    assert "kill" not in venue.state()["faults"]  # count 1: used up


def test_kill_before_a_cancel_leaves_the_order_on_the_book(venue, victim):
    async def scenario(ex):
        await ex.create_order(BTC, "limit", "buy", 0.01, 60000, {"newClientOrderId": "k-2"})
        venue.faults({"kill": {"pid": victim.pid, "on": "cancel", "when": "before"}})
        await ex.cancel_order(None, BTC, {"origClientOrderId": "k-2"})
        return await ex.fetch_open_orders(BTC)
    book = _run(venue, scenario, {})
    assert victim.wait(5) == -9
    assert book == []  # the request itself still runs: only the victim dies


def test_kill_narrowed_to_market_orders_skips_limit_orders(venue, victim):
    async def scenario(ex):
        await ex.create_order(BTC, "limit", "buy", 0.01, 60000, {"newClientOrderId": "k-3"})
        alive = victim.poll() is None
        await ex.create_order(BTC, "market", "buy", 0.01, None, {"newClientOrderId": "k-4"})
        return alive
    assert _run(venue, scenario, {"kill": {"pid": victim.pid, "on": "place", "type": "market"}})
    assert victim.wait(5) == -9


def test_kill_on_stream_fill_fires_when_a_fill_is_pushed(venue, victim):
    async def scenario(ex):
        await ex.create_order(BTC, "limit", "buy", 0.01, 64000, {"newClientOrderId": "k-5"})
        alive = victim.poll() is None
        await asyncio.to_thread(venue.price, BTC, "63000")  # crosses the buy: a fill
        return alive
    assert _run(venue, scenario, {"kill": {"pid": victim.pid, "on": "stream_fill"}})
    assert victim.wait(5) == -9


def test_kill_on_backpack_after_a_placement(victim):
    async def body(v):
        ex = await loaded(backpack_client(v.url))
        try:
            v.faults({"kill": {"pid": victim.pid, "on": "place"}})
            await ex.create_order(SOL, "limit", "buy", 1, 160, {"clientOrderId": 7})
            return [o["clientOrderId"] for o in await ex.fetch_open_orders(SOL)]
        finally:
            await ex.close()
    with LocalVenue("backpack") as v:
        v.price(SOL_ID, "170")
        assert asyncio.run(body(v)) == ["7"]
    assert victim.wait(5) == -9


@pytest.mark.parametrize("spec, message", [
    ({"on": "stream_fill", "when": "later"}, "kill: when must be one of after, before"),
    ({"pid": "x"}, "kill: pid must be an integer"),
    ({"pid": 1}, "kill: pid must be a process id above 1"),
    ({"on": "fill"}, "kill: on must be one of any, place, cancel, read, order, stream_fill"),
    ({"type": "stop"}, "kill: type must be market or limit"),
])
def test_a_bad_kill_spec_names_the_field(spec, message):
    with pytest.raises(FaultError, match=message):
        Faults().configure({"kill": spec})
