"""The ccxt adapter's stop-market orders (gridctl.exchange.ccxt_stops) on the local venue of
each protocol, through ccxt's own classes: what create_order is called with per venue, a stop
placed, listed with its trigger, cancelled by client id; and when the venue fires it, its fill
comes in on the order stream as an own close with the stop's client id."""

from __future__ import annotations

import asyncio
import base64

import pytest
from nacl.signing import SigningKey

from gridctl.config.model import AccountConfig, Secret
from gridctl.config.strategy import rules_for
from gridctl.core import clientid
from gridctl.core.fills import Fill
from gridctl.core.grid import Side
from gridctl.core.orders import Intent, OrderRequest
from gridctl.exchange import ccxt_stops
from gridctl.exchange.base import Rejected
from gridctl.exchange.ccxt_adapter import CcxtExchange, Timing
from gridctl.exchange.ccxt_streams import StreamTiming
from gridctl.worker.safety_stop import STOP_LEVEL
from venue_harness import KEY, SECRET, LocalVenue

SEED = b"\x05" * 32
BP_KEY = base64.b64encode(bytes(SigningKey(SEED).verify_key)).decode()
BP_SECRET = base64.b64encode(SEED).decode()
SYMBOL = {"binanceusdm": "SOL/USDT:USDT", "backpack": "SOL/USDC:USDC"}
FMT = {"binanceusdm": "binance", "backpack": "backpack"}
FAST = Timing(streams=StreamTiming(reconnect_delays=(0.5, 0.5, 0.5), safe_retry_s=0.5, connect_timeout_s=3),
              heartbeat_s=0.2, confirm_stream_s=0.5, confirm_tries=2, confirm_retry_s=0.2, rest_timeout_ms=1500,
              read_retries=1)


def stop_cid(venue: str, gen: int):
    return clientid.encode(FMT[venue], "abc123", STOP_LEVEL, Intent.CLOSE, gen)


def test_the_create_order_call_per_venue():
    acc = AccountConfig("m", "binanceusdm", api_key=Secret("k"), secret=Secret("s"))
    rules = rules_for(acc, "SOL/USDT:USDT")
    t = rules.price_to_ticks(150)
    c = ccxt_stops.stop_call("binanceusdm", rules, "gx-abc123-511c5", Side.SELL, 100, t, hedge=False, position_side=None)
    assert (c.type, c.side, c.price) == ("market", "sell", None)
    assert c.params == {"clientOrderId": "gx-abc123-511c5", "stopPrice": 150.0, "workingType": "CONTRACT_PRICE",
                        "reduceOnly": True}
    hedge = ccxt_stops.stop_call("binanceusdm", rules, "x", Side.SELL, 100, t, hedge=True, position_side="long")
    assert hedge.params["positionSide"] == "LONG" and "reduceOnly" not in hedge.params  # Binance -1106
    bp = AccountConfig("b", "backpack", api_key=Secret("k"), secret=Secret("s"))
    b = ccxt_stops.stop_call("backpack", rules_for(bp, "SOL/USDC:USDC"), 7, Side.BUY, 10, 20000, hedge=False,
                             position_side=None)
    assert b.params == {"clientOrderId": 7, "triggerPrice": 200.0, "reduceOnly": True}
    assert not ccxt_stops.supported("okx") and ccxt_stops.supported("backpack")


def run(protocol: str, scenario):
    with LocalVenue(protocol, **({"secret": SECRET} if protocol == "binanceusdm" else {})) as v:
        sym = SYMBOL[protocol]
        v.price(sym, "170.00")

        async def main():
            key, secret = (KEY, SECRET) if protocol == "binanceusdm" else (BP_KEY, BP_SECRET)
            acc = AccountConfig("m", protocol, api_key=Secret(key), secret=Secret(secret), endpoint=v.url)
            ex = CcxtExchange(acc, sym, rules_for(acc, sym), leverage=3, timing=FAST,
                              owns=lambda c: clientid.belongs(FMT[protocol], "abc123", c))
            try:
                await ex.connect()
                return await asyncio.wait_for(scenario(ex, v), 40)
            finally:
                await ex.close()
        return asyncio.run(main())


async def until(ex, pred, timeout: float = 10.0) -> list:
    seen: list = []
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred(seen):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out; events: {seen[-10:]}")
        seen += await ex.events()
    return seen


@pytest.mark.parametrize("protocol", ["binanceusdm", "backpack"])
def test_place_list_cancel_and_the_fill_of_a_fired_stop(protocol):
    async def scenario(ex, v):
        r = ex.rules
        entry = clientid.encode(FMT[protocol], "abc123", 1, Intent.ENTRY, 1)
        await ex.place(OrderRequest(entry, Side.BUY, r.qty_to_steps(1), None, intent=Intent.ENTRY))
        await until(ex, lambda seen: any(isinstance(e, Fill) for e in seen))
        trigger = r.price_to_ticks(160)
        s1, s2 = stop_cid(protocol, 1), stop_cid(protocol, 2)
        placed = await ex.place_stop(s1, Side.SELL, r.qty_to_steps(1), trigger)
        assert placed.client_id == s1 and placed.trigger == trigger
        if protocol == "binanceusdm":  # a sell stop above the price would fire at once: -2021
            with pytest.raises(Rejected) as crossed:
                await ex.place_stop(s2, Side.SELL, r.qty_to_steps(1), r.price_to_ticks(175))
            assert crossed.value.reason == "would_trigger"
        # (Backpack takes no direction: a sell trigger above the price rests as a take-profit, which
        # is why the worker never sends a stop the price is already through)
        (listed,) = await ex.open_stops()
        assert (listed.client_id, listed.side, listed.qty, listed.trigger) == (s1, Side.SELL, r.qty_to_steps(1), trigger)
        await ex.cancel_stop(s1)
        assert await ex.open_stops() == []
        with pytest.raises(Rejected) as gone:
            await ex.cancel_stop(s1)
        assert gone.value.reason == "order_not_found"
        await ex.place_stop(s2, Side.SELL, r.qty_to_steps(1), trigger)
        v.price(SYMBOL[protocol], "159.00")  # the venue fires it
        seen = await until(ex, lambda seen: any(isinstance(e, Fill) and e.client_id == s2 for e in seen))
        (fill,) = [e for e in seen if isinstance(e, Fill) and e.client_id == s2]
        assert fill.side is Side.SELL and fill.qty == r.qty_to_steps(1) and fill.kind == "own"
        assert fill.price == r.price_to_ticks(159)
        assert await ex.open_stops() == []
        assert sum(p.qty for p in await ex.positions()) == 0
        again = await ex.fills_since(0)  # the trade history has it too, with the stop's client id
        assert [f.client_id for f in again if f.trade_id == fill.trade_id] == [s2]
    run(protocol, scenario)
