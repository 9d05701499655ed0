"""The local venue's Backpack streams through ccxt.pro.backpack: the signed subscribe, order,
position, ticker and mark price updates, and the refusals (error frame 4006)."""

from __future__ import annotations

import asyncio
import json

import ccxt
import pytest

from backpack_helpers import BTC_ID, SOL, SOL_ID, backpack_client, key_pair, loaded, run, watching
from venue_harness import LocalVenue


@pytest.fixture(scope="module")
def venue():
    with LocalVenue("backpack") as v:
        v.price(SOL_ID, "170")
        v.price(BTC_ID, "65000")
        yield v


@pytest.fixture
def sol(venue):
    venue.price(SOL_ID, "170")
    return venue


def test_watch_orders_receives_the_fill_when_the_price_moves_through(sol):
    async def body():
        ex = await loaded(backpack_client(sol.url))
        try:
            first = await watching(sol, ex.watch_orders(SOL), "account.orderUpdate.SOL_USDC_PERP")  # before the order exists
            o = await ex.create_order(SOL, "limit", "buy", 1, 168, {"postOnly": True, "clientOrderId": 41})
            [accepted] = await asyncio.wait_for(first, 5)
            assert (accepted["id"], accepted["status"], accepted["info"]["e"]) == (o["id"], "open", "orderAccepted")
            fill = asyncio.ensure_future(ex.watch_orders(SOL))
            await asyncio.sleep(0.1)
            await asyncio.get_running_loop().run_in_executor(None, sol.price, SOL_ID, "167.5")
            [filled] = await asyncio.wait_for(fill, 5)
            info = filled["info"]
            assert (filled["status"], info["e"], info["c"], info["l"], info["z"], info["L"]) == (
                "closed", "orderFill", 41, "1.00", "1.00", "168.00")
            assert info["m"] is True and info["N"] == "USDC" and len(str(info["E"])) == 16  # µs
            [p] = await ex.fetch_positions()
            assert p["info"]["netQuantity"] == "1"
            await ex.create_order(SOL, "market", "sell", 1, None, {"reduceOnly": True})
        finally:
            await ex.close()
    run(body())


def test_watch_positions_and_ticker(sol):
    async def body():
        ex = await loaded(backpack_client(sol.url))
        try:
            pos = await watching(sol, ex.watch_positions([SOL]), "account.positionUpdate.SOL_USDC_PERP")
            tick = await watching(sol, ex.watch_ticker(SOL), "ticker.SOL_USDC_PERP")
            await ex.create_order(SOL, "market", "sell", 3)
            [p] = await asyncio.wait_for(pos, 5)
            assert (p["side"], p["info"]["e"], p["info"]["q"]) == ("short", "positionOpened", "-3")
            await asyncio.get_running_loop().run_in_executor(None, sol.price, SOL_ID, "169.4")
            t = await asyncio.wait_for(tick, 5)
            assert t["last"] == 169.4 and t["info"]["e"] == "ticker"
            closed = asyncio.ensure_future(ex.watch_positions([SOL]))
            await asyncio.sleep(0.1)
            await ex.create_order(SOL, "market", "buy", 3, None, {"reduceOnly": True})
            [p] = await asyncio.wait_for(closed, 5)
            assert (p["info"]["e"], p["info"]["q"]) == ("positionClosed", "0")
        finally:
            await ex.close()
    run(body())


def test_mark_price_stream(sol):
    async def body():
        import aiohttp
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect("ws" + sol.url[4:] + "/") as ws:
                await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": [f"markPrice.{SOL_ID}"]}))
                await asyncio.sleep(0.2)
                await asyncio.get_running_loop().run_in_executor(None, sol.price, SOL_ID, "172")
                seen = []
                while not seen or seen[-1]["p"] != "172":
                    msg = json.loads((await ws.receive(timeout=5)).data)
                    assert msg["stream"] == f"markPrice.{SOL_ID}"
                    seen.append(msg["data"])
                d = seen[-1]
                assert (d["e"], d["s"], d["f"]) == ("markPrice", SOL_ID, "0.0000125")
                assert len(str(d["E"])) == 16 and d["n"] % 3_600_000_000 == 0  # on the hour, in µs
    run(body())


def test_mark_price_is_published_every_second_in_a_quiet_market(sol):
    async def body():
        import aiohttp
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect("ws" + sol.url[4:] + "/") as ws:
                await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": [f"markPrice.{BTC_ID}"]}))
                times = [json.loads((await ws.receive(timeout=3)).data)["data"]["E"] for _ in range(2)]
                assert 0.5e6 < times[1] - times[0] < 1.5e6  # µs apart, with no price move at all
    run(body())


def test_subscribe_with_a_bad_signature_gets_the_error_frame(venue):
    async def body():
        key, _ = key_pair()
        _, other = key_pair()
        ex = await loaded(backpack_client(venue.url, key, other))
        try:
            with pytest.raises(ccxt.ExchangeError, match="Invalid signature"):
                await asyncio.wait_for(ex.watch_orders(SOL), 5)
        finally:
            await ex.close()
        import aiohttp
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect("ws" + venue.url[4:] + "/") as ws:
                await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": ["account.orderUpdate"]}))
                frame = json.loads((await ws.receive(timeout=5)).data)
                assert frame == {"id": None, "error": {"code": 4006,
                                                       "message": "Signature required for private streams"}}
    run(body())


def test_expired_subscribe_is_refused(venue):
    async def body():
        ex = await loaded(backpack_client(venue.url))
        ex.options["timeDifference"] = 6000
        try:
            with pytest.raises(ccxt.ExchangeError, match="Request has expired"):
                await asyncio.wait_for(ex.watch_positions([SOL]), 5)
        finally:
            await ex.close()
    run(body())


def test_watch_orders_without_a_symbol_sees_every_market(venue):
    async def body():
        ex = await loaded(backpack_client(venue.url))
        try:
            first = await watching(venue, ex.watch_orders(), "account.orderUpdate")
            await ex.create_order("BTC/USDC:USDC", "limit", "buy", 0.001, 60000, {"clientOrderId": 91})
            [o] = await asyncio.wait_for(first, 5)
            second = asyncio.ensure_future(ex.watch_orders())
            await asyncio.sleep(0.1)
            await ex.create_order(SOL, "limit", "buy", 1, 160, {"clientOrderId": 92})
            [p] = await asyncio.wait_for(second, 5)
            assert (o["symbol"], o["clientOrderId"], p["symbol"], p["clientOrderId"]) == (
                "BTC/USDC:USDC", "91", SOL, "92")
            await ex.cancel_all_orders(SOL)
            await ex.cancel_all_orders("BTC/USDC:USDC")
        finally:
            await ex.close()
    run(body())


def test_pings_are_answered_so_a_quiet_watch_stays_open(venue):
    async def body():
        ex = await loaded(backpack_client(venue.url, streaming={"keepAlive": 300, "maxPingPongMisses": 2}))
        try:
            watch = asyncio.ensure_future(ex.watch_orders(SOL))
            await asyncio.sleep(2.0)  # about 6 pings with no event at all
            assert not watch.done()
            await ex.create_order(SOL, "limit", "buy", 1, 160, {"clientOrderId": 93})
            [o] = await asyncio.wait_for(watch, 5)
            assert o["clientOrderId"] == "93"
            await ex.cancel_all_orders(SOL)
        finally:
            await ex.close()
    run(body())


def test_one_accounts_events_never_reach_another(venue):
    async def body():
        mine, other = await loaded(backpack_client(venue.url)), await loaded(backpack_client(venue.url))
        try:
            theirs = await watching(venue, other.watch_orders(SOL), "account.orderUpdate.SOL_USDC_PERP")
            await mine.create_order(SOL, "limit", "buy", 1, 160, {"clientOrderId": 94})
            await asyncio.sleep(0.5)
            assert not theirs.done()
            theirs.cancel()
            await mine.cancel_all_orders(SOL)
        finally:
            await mine.close()
            await other.close()
    run(body())
