"""The workers' ccxt clients pace requests as ccxt does, but credit the time they sat idle:
a fill's replacement order is not held back by the previous order's cost (ccxt's own
Throttler made every binanceusdm order wait ~200 ms after the last request, however long
ago that was: tests/bench/bench_live.py showed fill -> replacement at ~200 ms)."""

from __future__ import annotations

import asyncio
import time

from gridctl.config.model import AccountConfig
from gridctl.exchange.ccxt_adapter import make_client
from gridctl.exchange.ccxt_client import Timing
from gridctl.exchange.ccxt_throttle import IdleCreditBucket

ORDER_COST = 4  # ccxt's cost of POST fapi/v1/order on binanceusdm (50 ms a unit)


def binance_client():
    return make_client(AccountConfig("main", "binanceusdm", endpoint="http://127.0.0.1:9"), Timing())


async def timed(throttle, cost) -> float:
    t = time.monotonic()
    await throttle(cost)
    return time.monotonic() - t


def test_an_order_after_an_idle_spell_goes_at_once():
    async def run():
        client = binance_client()
        try:
            await client.throttle(ORDER_COST)  # the previous order
            await asyncio.sleep(0.3)  # the worker waits for the market
            return await timed(client.throttle, ORDER_COST)  # a fill: its replacement
        finally:
            await client.close()
    assert asyncio.run(run()) < 0.05


def test_back_to_back_orders_keep_ccxts_pace():
    async def run():
        client = binance_client()
        try:
            await client.throttle(ORDER_COST)
            return await timed(client.throttle, ORDER_COST)
        finally:
            await client.close()
    assert 0.15 <= asyncio.run(run()) < 0.4  # 4 units at 50 ms, as ccxt paces it


def test_idle_credit_is_capped_at_ccxts_capacity():
    now = [0.0]
    bucket = IdleCreditBucket({"refillRate": 1 / 50, "capacity": 1, "cost": 1}, clock=lambda: now[0])
    slept = []

    async def run():
        real_sleep = asyncio.sleep

        async def fake_sleep(s):
            slept.append(s)
            now[0] += s
            await real_sleep(0)
        asyncio.sleep = fake_sleep
        try:
            now[0] = 3600.0  # an hour idle: worth one unit of credit, not 72,000
            await bucket(ORDER_COST)
            await bucket(ORDER_COST)
            await bucket(1)
        finally:
            asyncio.sleep = real_sleep
    asyncio.run(run())
    assert [round(s, 3) for s in slept] == [0.15, 0.2]  # 1 - 4 = -3 units, then 0 - 4 = -4
