"""The ccxt adapter on the local Backpack venue (in this process): ED25519-signed requests
through ccxt's own backpack class, u32 client ids, and the confirmation of an order whose
placement answer never came, through the order history when the order no longer rests."""

from __future__ import annotations

import asyncio
import base64

import pytest
from nacl.signing import SigningKey

from gridctl.config.model import AccountConfig, Secret
from gridctl.config.strategy import rules_for
from gridctl.core import clientid
from gridctl.core.fills import Fill, StreamState
from gridctl.core.grid import Side
from gridctl.core.orders import Intent, OrderRequest
from gridctl.exchange.base import UnknownOutcome
from gridctl.exchange.ccxt_adapter import CcxtExchange, PreflightError, Timing
from gridctl.exchange.ccxt_streams import StreamTiming
from gridctl.venue.records import fingerprint
from venue_harness import LocalVenue

SOL = "SOL/USDC:USDC"
SEED = b"\x05" * 32
KEY = base64.b64encode(bytes(SigningKey(SEED).verify_key)).decode()
SECRET = base64.b64encode(SEED).decode()
FAST = Timing(streams=StreamTiming(reconnect_delays=(0.5, 0.5, 0.5), safe_retry_s=0.5, connect_timeout_s=3),
              heartbeat_s=0.2, confirm_stream_s=0.5, confirm_tries=2, confirm_retry_s=0.2, rest_timeout_ms=1500,
              read_retries=1)


@pytest.fixture
def venue():
    with LocalVenue("backpack") as v:
        v.price(SOL, "170.00")
        yield v


def cid(level: int, gen: int = 1) -> int:
    return clientid.encode("backpack", "abc123", level, Intent.ENTRY, gen)


def run(venue, scenario, timing: Timing = FAST, hedge: bool = False, leverage: int = 3):
    async def main():
        acc = AccountConfig("bp", "backpack", api_key=Secret(KEY), secret=Secret(SECRET), endpoint=venue.url,
                            position_mode="hedge" if hedge else "one-way")
        ex = CcxtExchange(acc, SOL, rules_for(acc, SOL), leverage=leverage, timing=timing)
        try:
            await ex.connect()
            return await asyncio.wait_for(scenario(ex), 40)
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


def account(venue) -> dict:
    return venue.state()["accounts"][fingerprint(KEY)]


def test_a_grid_order_rests_fills_and_is_reported_with_its_u32_client_id(venue):
    async def scenario(ex):
        order = await ex.place(OrderRequest(cid(1), Side.BUY, 10, 16900, post_only=True, level=1))
        await asyncio.to_thread(venue.price, SOL, "168.90")
        evs = await until(ex, lambda s: any(isinstance(e, Fill) for e in s))
        return order, evs, await ex.positions()
    order, evs, pos = run(venue, scenario, leverage=25)
    assert order.client_id == cid(1) and order.status == "open"
    fill = next(e for e in evs if isinstance(e, Fill))
    assert fill.client_id == cid(1) and fill.qty == 10 and fill.price == 16900 and fill.trade_id
    assert [(r.leg, r.qty) for r in pos] == [(None, 10)]
    # the account-wide leverage limit (20 on a new account) was raised to what the strategy uses
    assert account(venue)["positions"][SOL]["leverage"] == 25


def test_a_filled_order_whose_answer_never_came_is_found_in_the_order_history(venue):
    timing = Timing(streams=StreamTiming(reconnect_delays=(8.0, 8.0, 8.0), connect_timeout_s=3), heartbeat_s=0.2,
                    confirm_stream_s=0.3, confirm_tries=2, confirm_retry_s=0.2, rest_timeout_ms=1500)

    async def scenario(ex):
        await asyncio.to_thread(venue.admin, "/_admin/drop-streams", {})  # the stream will not tell us
        await until(ex, lambda s: any(isinstance(e, StreamState) and e.state == "lost" for e in s))
        await asyncio.to_thread(venue.faults, {"timeout": {"count": 1, "delay": 4}})
        with pytest.raises(UnknownOutcome):  # a buy above the market: it fills at once, never rests
            await ex.place(OrderRequest(cid(2), Side.BUY, 10, 17100, level=2))
        return await ex.fetch_order(cid(2))
    found = run(venue, scenario, timing)
    assert found is not None and found.client_id == cid(2) and found.status == "filled"
    assert account(venue)["orders"] == 1


def test_hedge_mode_is_refused_before_anything_is_sent(venue):
    with pytest.raises(PreflightError, match="backpack has no hedge position mode"):
        run(venue, lambda ex: asyncio.sleep(0), hedge=True)
