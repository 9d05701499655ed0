"""The venue core's faults as a Backpack client sees them, through ccxt.pro.backpack.

Each fault is switched on through POST /_admin/faults for the next request(s) only.
"""

from __future__ import annotations

import asyncio
import time

import ccxt
import pytest

from backpack_helpers import SOL, SOL_ID, backpack_client, loaded, run, watching
from venue_harness import LocalVenue


@pytest.fixture(scope="module")
def venue():
    with LocalVenue("backpack") as v:
        yield v


@pytest.fixture
def sol(venue):
    venue.faults({"clear": True})
    venue.price(SOL_ID, "170")
    yield venue
    venue.faults({"clear": True})


def test_rate_limited_request_is_429_too_many_requests_then_served(sol):
    async def body():
        ex = await loaded(backpack_client(sol.url))
        try:
            sol.faults({"rate_limit": {"count": 1}})
            with pytest.raises(ccxt.RateLimitExceeded, match="TOO_MANY_REQUESTS"):
                await ex.create_order(SOL, "limit", "buy", 1, 160, {"clientOrderId": 1})
            assert await ex.fetch_open_orders(SOL) == []  # refused before it was executed
            assert (await ex.fetch_balance())["USDC"]["total"] == 10000.0
        finally:
            await ex.close()
    run(body())


def test_server_error_is_500_server_error_and_nothing_executed(sol):
    async def body():
        ex = await loaded(backpack_client(sol.url))
        try:
            sol.faults({"server_error": {"count": 1, "on": "place"}})
            with pytest.raises(ccxt.NetworkError, match="SERVER_ERROR"):
                await ex.create_order(SOL, "limit", "buy", 1, 160, {"clientOrderId": 2})
            assert await ex.fetch_open_orders(SOL) == []
        finally:
            await ex.close()
    run(body())


def test_timeout_after_acceptance_leaves_the_order_live(sol):
    async def body():
        ex = await loaded(backpack_client(sol.url, timeout=1000))
        try:
            sol.faults({"timeout": {"count": 1, "delay": 3}})
            started = time.monotonic()
            with pytest.raises(ccxt.RequestTimeout):
                await ex.create_order(SOL, "limit", "buy", 1, 160, {"clientOrderId": 3})
            assert time.monotonic() - started < 2.5
            rest = await ex.privateGetApiV1Order({"symbol": SOL_ID, "clientId": 3})
            assert rest["status"] == "New" and rest["price"] == "160"
        finally:
            await ex.close()
    run(body())


def test_empty_202_gives_no_id_but_the_order_exists(sol):
    async def body():
        ex = await loaded(backpack_client(sol.url))
        try:
            sol.faults({"empty": {"count": 1}})
            o = await ex.create_order(SOL, "limit", "buy", 1, 160, {"clientOrderId": 4})
            assert o["id"] is None  # ccxt raises nothing: the outcome is unknown to the client
            [found] = await ex.fetch_open_orders(SOL)
            assert found["clientOrderId"] == "4"
            sol.faults({"empty": {"count": 1, "on": "cancel"}})
            gone = await ex.privateDeleteApiV1Order({"symbol": SOL_ID, "clientId": 4})
            assert gone in (None, "", {})
            assert await ex.fetch_open_orders(SOL) == []
        finally:
            await ex.close()
    run(body())


@pytest.mark.parametrize("reason,cls,code", [
    ("insufficient_margin", ccxt.InsufficientFunds, "INSUFFICIENT_MARGIN"),
    ("reduce_only_rejected", ccxt.InvalidOrder, "INVALID_ORDER"),
    ("qty_below_min", ccxt.BadRequest, "INVALID_QUANTITY"),
])
def test_injected_rejects_use_backpack_codes(sol, reason, cls, code):
    async def body():
        ex = await loaded(backpack_client(sol.url))
        try:
            sol.faults({"reject": {"count": 1, "reason": reason}})
            with pytest.raises(cls, match=code):
                await ex.create_order(SOL, "limit", "buy", 1, 160)
            assert await ex.fetch_open_orders(SOL) == []
        finally:
            await ex.close()
    run(body())


def test_partial_fills_arrive_as_separate_fills_with_cumulative_quantity(sol):
    async def body():
        ex = await loaded(backpack_client(sol.url))
        try:
            raw: list[dict] = []
            original = ex.handle_order

            def tee(client, message):  # ccxt's cache collapses an order's updates: keep the raw events
                raw.append(message["data"])
                return original(client, message)
            ex.handle_order = tee
            watch = await watching(sol, ex.watch_orders(SOL), "account.orderUpdate.SOL_USDC_PERP")
            o = await ex.create_order(SOL, "limit", "buy", 3, 169, {"postOnly": True, "clientOrderId": 5})
            await asyncio.wait_for(watch, 5)
            sol.faults({"partial": {"count": 1, "pieces": 3}})
            await asyncio.get_running_loop().run_in_executor(None, sol.price, SOL_ID, "168.9")
            for _ in range(50):
                if sum(1 for d in raw if d["e"] == "orderFill") == 3:
                    break
                await asyncio.sleep(0.1)
            fills = [d for d in raw if d["e"] == "orderFill"]
            assert [(d["l"], d["z"], d["X"]) for d in fills] == [
                ("1.00", "1.00", "PartiallyFilled"), ("1.00", "2.00", "PartiallyFilled"), ("1.00", "3.00", "Filled")]
            trades = await ex.fetch_my_trades(SOL, None, None, {"sortDirection": "Asc"})
            assert [t["amount"] for t in trades] == [1.0, 1.0, 1.0]
            assert len({t["id"] for t in trades}) == 3 and {t["order"] for t in trades} == {o["id"]}
            assert {str(d["t"]) for d in fills} == {t["id"] for t in trades}
            watch.cancel()
        finally:
            await ex.close()
    run(body())


def test_dropped_streams_close_the_socket_and_a_new_watch_resubscribes(sol):
    async def body():
        ex = await loaded(backpack_client(sol.url))
        try:
            watch = await watching(sol, ex.watch_orders(SOL), "account.orderUpdate.SOL_USDC_PERP")
            sol.admin("/_admin/drop-streams", {})
            with pytest.raises(ccxt.NetworkError):
                await asyncio.wait_for(watch, 5)
            again = asyncio.ensure_future(ex.watch_orders(SOL))
            await asyncio.sleep(0.5)
            await ex.create_order(SOL, "limit", "buy", 1, 160, {"clientOrderId": 6})
            [o] = await asyncio.wait_for(again, 5)
            assert o["clientOrderId"] == "6"
        finally:
            await ex.close()
    run(body())


def test_silent_streams_answer_no_ping_so_the_watch_times_out(sol):
    async def body():
        ex = await loaded(backpack_client(sol.url, streaming={"keepAlive": 500, "maxPingPongMisses": 2}))
        try:
            watch = await watching(sol, ex.watch_orders(SOL), "account.orderUpdate.SOL_USDC_PERP")
            sol.faults({"silent_streams": {"on": True}})
            await ex.create_order(SOL, "limit", "buy", 1, 160, {"clientOrderId": 7})  # REST still works
            with pytest.raises(ccxt.RequestTimeout):
                await asyncio.wait_for(watch, 6)
        finally:
            sol.faults({"silent_streams": {"on": False}})
            await ex.close()
    run(body())
