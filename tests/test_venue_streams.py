"""The local venue's Binance USDⓈ-M streams, read by ccxt.pro.binanceusdm (and raw where ccxt
hides a field): user data on price moves, partial fills, listen keys, drops and zombies."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import aiohttp
import ccxt
import pytest

from venue_harness import KEY, SECRET, LocalVenue, binance_client

BTC = "BTC/USDT:USDT"


@pytest.fixture
def venue():
    with LocalVenue(secret=SECRET) as v:
        v.price(BTC, "65000")
        yield v


def run(venue, scenario, **options):
    async def main():
        ex = binance_client(venue.url, **options)
        try:
            await ex.load_markets()
            return await asyncio.wait_for(scenario(ex), 30)
        finally:
            await ex.close()
    return asyncio.run(main())


async def admin_price(venue, price):
    await asyncio.to_thread(venue.price, BTC, price)


async def listen_key(venue) -> str:
    async with aiohttp.ClientSession() as s:
        async with s.post(venue.url + "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": KEY}) as r:
            return (await r.json())["listenKey"]


def test_watch_orders_and_my_trades_see_a_fill_made_by_a_price_move(venue):
    async def scenario(ex):
        orders = asyncio.create_task(ex.watch_orders(BTC))
        await asyncio.sleep(0.3)  # the private socket is open before the order
        await ex.create_order(BTC, "limit", "buy", 0.01, 64000, {"postOnly": True, "clientOrderId": "w-1"})
        new = [(o["clientOrderId"], o["status"]) for o in await orders]  # ccxt updates its rows in place
        trades = asyncio.create_task(ex.watch_my_trades(BTC))
        filled = asyncio.create_task(ex.watch_orders(BTC))
        await asyncio.sleep(0.1)
        await admin_price(venue, "63900")
        return new, await trades, await filled
    new, trades, filled = run(venue, scenario)
    assert new == [("w-1", "open")]
    assert len(trades) == 1
    t = trades[0]
    assert (t["price"], t["amount"], t["takerOrMaker"], t["info"]["c"]) == (64000, 0.01, "maker", "w-1")
    assert t["fee"] == {"cost": 0.128, "currency": "USDT"}
    assert filled[-1]["status"] == "closed" and filled[-1]["filled"] == 0.01


def test_partial_fault_fills_a_resting_order_in_several_trades(venue):
    venue.faults({"partial": {"count": 1, "pieces": 3}})

    async def scenario(ex):
        raw = asyncio.create_task(ex.watch_my_trades(BTC))
        await asyncio.sleep(0.3)
        o = await ex.create_order(BTC, "limit", "sell", 0.1, 66000, {"clientOrderId": "p-1"})
        await admin_price(venue, "66001")
        await raw
        await asyncio.sleep(0.5)  # the burst's other trades land in ccxt's cache (no watch pending)
        seen = list(ex.myTrades)
        rest = await ex.fetch_my_trades(BTC)
        return o, seen, rest, await ex.fetch_order(o["id"], BTC)
    o, seen, rest, order = run(venue, scenario)
    assert len({t["id"] for t in seen}) == 3 and {t["order"] for t in seen} == {o["id"]}
    assert sorted(t["id"] for t in rest) == sorted(t["id"] for t in seen)
    assert sum(Decimal(t["info"]["qty"]) for t in rest) == Decimal("0.1")
    assert sum(Decimal(t["info"]["commission"]) for t in rest) == Decimal("1.32")  # 6600 x 0.0002
    assert order["status"] == "closed" and order["filled"] == 0.1


def test_raw_user_stream_messages(venue):
    """ORDER_TRADE_UPDATE NEW/TRADE/CANCELED/EXPIRED and ACCOUNT_UPDATE m=ORDER/FUNDING_FEE."""
    async def scenario(ex):
        key = await listen_key(venue)
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(venue.ws + f"/private/ws?listenKey={key}") as ws:
                await ex.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "m-1"})
                await ex.create_order(BTC, "limit", "buy", 0.01, 60000, {"clientOrderId": "c-1"})
                await ex.cancel_order(None, BTC, {"clientOrderId": "c-1"})
                await ex.create_order(BTC, "limit", "sell", 0.01, 70000, {"clientOrderId": "ro-1", "reduceOnly": True})
                await ex.create_order(BTC, "market", "sell", 0.01, None, {"clientOrderId": "m-2"})  # ro-1 expires
                await asyncio.to_thread(venue.admin, "/_admin/funding", {"symbol": BTC, "rate": "0.0001"})
                await ex.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "m-3"})
                await asyncio.to_thread(venue.admin, "/_admin/funding", {"symbol": BTC, "rate": "0.0001"})
                msgs = []
                while not any(m.get("a", {}).get("m") == "FUNDING_FEE" for m in msgs):
                    msgs.append(json.loads((await ws.receive()).data))
                return msgs
    msgs = run(venue, scenario)
    orders = [(m["o"]["c"], m["o"]["x"], m["o"]["X"]) for m in msgs if m["e"] == "ORDER_TRADE_UPDATE"]
    assert orders[:8] == [("m-1", "NEW", "NEW"), ("m-1", "TRADE", "FILLED"), ("c-1", "NEW", "NEW"),
                          ("c-1", "CANCELED", "CANCELED"), ("ro-1", "NEW", "NEW"), ("m-2", "NEW", "NEW"),
                          ("m-2", "TRADE", "FILLED"), ("ro-1", "EXPIRED", "EXPIRED")]
    trade = next(m["o"] for m in msgs if m["e"] == "ORDER_TRADE_UPDATE" and m["o"]["x"] == "TRADE")
    assert trade["t"] > 0 and trade["N"] == "USDT" and Decimal(trade["n"]) == Decimal("0.325")
    assert trade["m"] is False and trade["L"] == "65000" and trade["rp"] == "0.00000000"
    accounts = [m["a"] for m in msgs if m["e"] == "ACCOUNT_UPDATE"]
    assert accounts[0]["m"] == "ORDER" and accounts[0]["P"][0]["pa"] == "0.010"
    funding = accounts[-1]
    assert funding["m"] == "FUNDING_FEE" and Decimal(funding["B"][0]["bc"]) == Decimal("-0.065")


def test_ticker_mark_and_book_streams_follow_the_price(venue):
    async def scenario(ex):
        await ex.watch_ticker(BTC)
        await ex.watch_mark_price(BTC)
        await ex.watch_bids_asks([BTC])
        await admin_price(venue, "65432.1")
        t = await ex.watch_ticker(BTC)
        while t["last"] != 65432.1:
            t = await ex.watch_ticker(BTC)
        m = await ex.watch_mark_price(BTC)
        while m["markPrice"] != 65432.1:
            m = await ex.watch_mark_price(BTC)
        b = (await ex.watch_bids_asks([BTC]))[BTC]
        return t, m, b
    t, m, b = run(venue, scenario)
    assert t["info"]["e"] == "24hrMiniTicker"
    assert m["info"]["e"] == "markPriceUpdate" and m["info"]["r"] == "0.0001"
    assert b["bid"] < b["ask"]


def test_listen_key_keep_alive_and_expiry(venue):
    async def scenario(ex):
        first = await listen_key(venue)
        again = await listen_key(venue)  # POST returns the live key
        kept = await ex.fapiPrivatePutListenKey()
        watch = asyncio.create_task(ex.watch_orders(BTC))
        await asyncio.sleep(0.3)
        # the key's hour is up: listenKeyExpired is sent and the stream closes
        fp = next(iter(venue.venue.accounts))
        await asyncio.to_thread(venue.sync, lambda: venue.venue.extra_state["listen_keys"][fp].update(expires_ms=0))
        try:
            await asyncio.wait_for(watch, 5)
            outcome = "no error"
        except ccxt.NetworkError as exc:
            outcome = type(exc).__name__
        try:
            await ex.fapiPrivatePutListenKey()
            put = "ok"
        except ccxt.AuthenticationError as exc:
            put = json.loads(str(exc)[str(exc).index("{"):])["code"]
        fresh = await listen_key(venue)
        return first, again, kept, outcome, put, fresh
    first, again, kept, outcome, put, fresh = run(venue, scenario)
    assert first == again == kept["listenKey"] and len(first) == 64
    assert outcome == "NetworkError" and put == -1125
    assert fresh != first


def test_listen_key_expired_message_is_sent_before_the_close(venue):
    async def scenario(ex):
        key = await listen_key(venue)
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(venue.ws + f"/private/ws?listenKey={key}") as ws:
                await asyncio.to_thread(venue.faults, {"expire_auth": {"count": 1}})
                msg = await asyncio.wait_for(ws.receive(), 5)
                closed = await asyncio.wait_for(ws.receive(), 5)
                return json.loads(msg.data), closed.type
    msg, closed = run(venue, scenario)
    assert msg["e"] == "listenKeyExpired" and len(msg["listenKey"]) == 64
    assert closed in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)


def test_dropped_streams_raise_and_the_next_watch_reconnects(venue):
    async def scenario(ex):
        await ex.watch_ticker(BTC)
        pending = asyncio.create_task(ex.watch_ticker(BTC))
        await asyncio.sleep(0.2)
        closed = await asyncio.to_thread(venue.admin, "/_admin/drop-streams", {})
        try:
            await asyncio.wait_for(pending, 5)
            outcome = "no error"
        except ccxt.NetworkError as exc:
            outcome = type(exc).__name__
        await admin_price(venue, "65100")
        t = await ex.watch_ticker(BTC)  # dials again and re-subscribes
        return closed, outcome, t
    closed, outcome, t = run(venue, scenario)
    assert closed["closed"] >= 1 and outcome == "NetworkError"
    assert t["last"] in (65000, 65100)


def test_silent_streams_time_out_on_ping(venue):
    async def scenario(ex):
        await ex.watch_ticker(BTC)
        await asyncio.to_thread(venue.faults, {"silent_streams": {"on": True}})
        try:
            await asyncio.wait_for(ex.watch_ticker(BTC), 10)
            return "no error"
        except ccxt.RequestTimeout:
            return "RequestTimeout"
    assert run(venue, scenario, streaming={"keepAlive": 500, "maxPingPongMisses": 2}) == "RequestTimeout"
