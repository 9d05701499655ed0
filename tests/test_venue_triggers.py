"""Trigger (stop-market) orders on the local venue through ccxt's own classes: Binance's
algo orders (POST /fapi/v1/algoOrder, ALGO_UPDATE) and Backpack's triggerPrice orders.

What a user relies on: a reduce-only stop rests on the venue (listed, cancellable, found by
client id), fires when the price crosses it with no client connected, and flattens the
position; one already crossed is refused."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import ccxt
import pytest

from venue_harness import SECRET, LocalVenue, binance_client

BTC = "BTC/USDT:USDT"


def run(venue: LocalVenue, scenario):
    async def main():
        ex = binance_client(venue.url, pro=False)
        try:
            await ex.load_markets()
            return await scenario(ex)
        finally:
            await ex.close()
    return asyncio.run(main())


def code_of(exc: Exception) -> int:
    text = str(exc)
    return json.loads(text[text.index("{"):])["code"]


def net(venue: LocalVenue, symbol: str = BTC) -> Decimal:
    acc = next(iter(venue.state()["accounts"].values()))
    return Decimal(acc["positions"][symbol]["net"])


@pytest.fixture
def venue():
    with LocalVenue(secret=SECRET, start_price=None) as v:
        v.price(BTC, "65000")
        yield v


def test_binance_stop_market_rests_fires_and_flattens(venue):
    async def open_and_arm(ex):
        await ex.create_order(BTC, "market", "buy", 0.01)
        o = await ex.create_order(BTC, "market", "sell", 0.01, None,
                                  {"stopPrice": 64000, "reduceOnly": True, "clientOrderId": "gx-abcdef-511c1",
                                   "workingType": "MARK_PRICE"})
        listed = await ex.fetch_open_orders(BTC, params={"trigger": True})
        plain = await ex.fetch_open_orders(BTC)
        return o, listed, plain
    o, listed, plain = run(venue, open_and_arm)
    assert o["clientOrderId"] == "gx-abcdef-511c1" and o["status"] == "open"
    assert o["triggerPrice"] == 64000 and o["reduceOnly"] is True
    assert [x["clientOrderId"] for x in listed] == ["gx-abcdef-511c1"]
    assert plain == []  # not in the book's open orders, as on Binance
    assert net(venue) == Decimal("0.01")
    venue.price(BTC, "63900")  # no client connected: the venue fires the stop itself
    assert net(venue) == 0

    async def after(ex):
        got = await ex.fetch_order(None, BTC, {"trigger": True, "clientOrderId": "gx-abcdef-511c1"})
        trades = await ex.fetch_my_trades(BTC)
        return got, trades
    got, trades = run(venue, after)
    assert got["info"]["algoStatus"] == "FINISHED" and got["info"]["actualOrderId"]
    assert trades[-1]["side"] == "sell" and trades[-1]["amount"] == 0.01 and trades[-1]["price"] == 63900


def test_binance_stop_cancel_lookup_and_refusals(venue):
    async def scenario(ex):
        await ex.create_order(BTC, "market", "buy", 0.01)
        await ex.create_order(BTC, "market", "sell", 0.01, None,
                              {"triggerPrice": 64000, "reduceOnly": True, "clientOrderId": "s-1"})
        cancelled = await ex.cancel_order(None, BTC, {"trigger": True, "clientOrderId": "s-1"})
        left = await ex.fetch_open_orders(BTC, params={"trigger": True})
        codes = []
        for params in ({"triggerPrice": 66000, "reduceOnly": True},  # a sell stop above the price: fires at once
                       {"type": "STOP_MARKET", "stopPrice": 64000}):
            try:
                if "type" in params:  # the old endpoint
                    await ex.fapiPrivatePostOrder({"symbol": "BTCUSDT", "side": "SELL", "type": "STOP_MARKET",
                                                   "quantity": "0.01", "stopPrice": "64000"})
                else:
                    await ex.create_order(BTC, "market", "sell", 0.01, None, params)
            except ccxt.BaseError as exc:
                codes.append(code_of(exc))
        try:
            await ex.cancel_order(None, BTC, {"trigger": True, "clientOrderId": "s-1"})
        except ccxt.BaseError as exc:
            codes.append(code_of(exc))
        return cancelled, left, codes
    cancelled, left, codes = run(venue, scenario)
    assert cancelled["clientOrderId"] == "s-1"
    assert left == []
    assert codes == [-2021, -4120, -2011]
    venue.price(BTC, "63000")
    assert net(venue) == Decimal("0.01")  # the cancelled stop did not fire


# -- Backpack ------------------------------------------------------------------------------------
def test_backpack_trigger_order_rests_fires_and_flattens():
    from backpack_helpers import SOL, SOL_ID, backpack_client, loaded

    with LocalVenue("backpack") as v:
        v.price(SOL_ID, "170")

        async def arm():
            ex = await loaded(backpack_client(v.url))
            try:
                await ex.create_order(SOL, "market", "buy", 1)
                o = await ex.create_order(SOL, "market", "sell", 1, None,
                                          {"triggerPrice": 160, "reduceOnly": True, "clientOrderId": 4242})
                listed = await ex.fetch_open_orders(SOL)
                found = await ex.privateGetApiV1Order({"symbol": SOL_ID, "clientId": 4242})
                return ex.apiKey, ex.secret, o, listed, found
            finally:
                await ex.close()
        key, secret, o, listed, found = asyncio.run(arm())
        assert o["info"]["status"] == "TriggerPending" and o["status"] == "open"
        assert o["triggerPrice"] == 160 and o["amount"] == 1 and o["clientOrderId"] == "4242"
        assert [x["clientOrderId"] for x in listed] == ["4242"]
        assert found["triggerPrice"] == "160" and found["reduceOnly"] is True
        v.price(SOL_ID, "159")  # nobody connected: the venue fires it
        acc = next(iter(v.state()["accounts"].values()))
        assert Decimal(acc["positions"][SOL]["net"]) == 0

        async def after():
            ex = await loaded(backpack_client(v.url, key, secret))
            try:
                fills = await ex.fetch_my_trades(SOL)
                left = await ex.fetch_open_orders(SOL)
                # a second stop, cancelled by clientId as the adapter cancels
                await ex.create_order(SOL, "market", "buy", 1)
                await ex.create_order(SOL, "market", "sell", 1, None,
                                      {"triggerPrice": 150, "reduceOnly": True, "clientOrderId": 4243})
                gone = await ex.privateDeleteApiV1Order({"symbol": SOL_ID, "clientId": 4243})
                left2 = await ex.fetch_open_orders(SOL)
                return fills, left, gone, left2
            finally:
                await ex.close()
        fills, left, gone, left2 = asyncio.run(after())
        assert fills[-1]["side"] == "sell" and fills[-1]["amount"] == 1 and fills[-1]["price"] == 159
        assert str(fills[-1]["info"]["clientId"]) == "4242"
        assert left == [] and gone["status"] == "Cancelled" and left2 == []
