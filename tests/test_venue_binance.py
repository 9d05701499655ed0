"""The local venue's Binance USDⓈ-M REST API, driven by ccxt's own binanceusdm classes.

ccxt signs, sends and parses exactly as it does against fapi.binance.com; the venue
runs in the test process on 127.0.0.1 (tests/venue_harness.py).
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import ccxt
import pytest

from venue_harness import KEY, SECRET, LocalVenue, binance_client

BTC, ETH, SOL = "BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"


def run(venue: LocalVenue, scenario, **client_options):
    """Run scenario(ex) with a ccxt.async_support.binanceusdm pointed at the venue."""
    async def main():
        ex = binance_client(venue.url, pro=False, **client_options)
        try:
            await ex.load_markets()
            return await scenario(ex)
        finally:
            await ex.close()
    return asyncio.run(main())


def code_of(exc: Exception) -> int:
    """The Binance error code in a ccxt exception's message ("binanceusdm {json}")."""
    text = str(exc)
    return json.loads(text[text.index("{"):])["code"]


async def raises_code(coro) -> int:
    try:
        await coro
    except ccxt.BaseError as exc:
        return code_of(exc)
    raise AssertionError("no error")


@pytest.fixture
def venue():
    with LocalVenue(secret=SECRET, start_price=None) as v:
        v.price(BTC, "65000")
        v.price(SOL, "170")
        yield v


def test_markets_follow_the_bundled_rules(venue):
    async def scenario(ex):
        return ex.markets
    markets = run(venue, scenario)
    assert set(markets) == {BTC, ETH, SOL}
    btc = markets[BTC]
    assert btc["id"] == "BTCUSDT" and btc["linear"] and btc["swap"]
    assert btc["precision"]["price"] == 0.1 and btc["precision"]["amount"] == 0.001
    assert btc["limits"]["cost"]["min"] == 5


def test_balance_positions_and_a_market_order(venue):
    async def scenario(ex):
        bal = await ex.fetch_balance()
        flat = await ex.fetch_positions([BTC])
        await ex.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "m-1"})
        pos = await ex.fetch_positions([BTC])
        after = await ex.fetch_balance()
        return bal, flat, pos, after
    bal, flat, pos, after = run(venue, scenario)
    assert bal["USDT"]["total"] == 10000
    assert flat == []  # ccxt drops flat rows (entryPrice 0)
    assert len(pos) == 1 and pos[0]["contracts"] == 0.01 and pos[0]["side"] == "long"
    assert pos[0]["entryPrice"] == 65000 and Decimal(pos[0]["info"]["positionAmt"]) == Decimal("0.01")
    # taker fee 0.0005 x 650 = 0.325 taken from the wallet
    assert Decimal(after["info"]["totalWalletBalance"]) == Decimal("9999.675")


def test_post_only_rests_and_fills_when_the_price_crosses(venue):
    async def scenario(ex):
        o = await ex.create_order(BTC, "limit", "buy", 0.01, 64000, {"postOnly": True, "clientOrderId": "g-1"})
        opened = await ex.fetch_open_orders(BTC)
        await asyncio.to_thread(venue.price, BTC, "63999")
        done = await ex.fetch_order(None, BTC, {"clientOrderId": "g-1"})
        trades = await ex.fetch_my_trades(BTC)
        return o, opened, done, trades
    o, opened, done, trades = run(venue, scenario)
    assert o["status"] == "open" and o["postOnly"] and o["clientOrderId"] == "g-1"
    assert [x["clientOrderId"] for x in opened] == ["g-1"]
    assert done["status"] == "closed" and done["filled"] == 0.01 and done["average"] == 64000
    assert len(trades) == 1 and trades[0]["takerOrMaker"] == "maker" and trades[0]["order"] == o["id"]
    assert trades[0]["fee"]["cost"] == pytest.approx(0.128)  # maker 0.0002 x 640


def test_post_only_that_would_take_is_refused_and_not_recorded(venue):
    async def scenario(ex):
        code = await raises_code(ex.create_order(BTC, "limit", "buy", 0.01, 65100, {"postOnly": True,
                                                                                     "clientOrderId": "p-1"}))
        lookup = await raises_code(ex.fetch_order(None, BTC, {"clientOrderId": "p-1"}))
        return code, lookup
    assert run(venue, scenario) == (-5022, -2013)


def test_cancel_by_client_id_and_fetch_it_afterwards(venue):
    async def scenario(ex):
        await ex.create_order(BTC, "limit", "sell", 0.01, 66000, {"clientOrderId": "s-1"})
        cancelled = await ex.cancel_order(None, BTC, {"clientOrderId": "s-1"})
        again = await raises_code(ex.cancel_order(None, BTC, {"clientOrderId": "s-1"}))
        fetched = await ex.fetch_order(None, BTC, {"clientOrderId": "s-1"})
        unknown = await raises_code(ex.fetch_order(None, BTC, {"clientOrderId": "never"}))
        return cancelled, again, fetched, unknown
    cancelled, again, fetched, unknown = run(venue, scenario)
    assert cancelled["status"] == "canceled" and cancelled["clientOrderId"] == "s-1"
    assert again == -2011 and unknown == -2013
    assert fetched["status"] == "canceled"


def test_cancel_all_leaves_nothing_open(venue):
    async def scenario(ex):
        for i, px in enumerate((64000, 63000, 66000)):
            await ex.create_order(BTC, "limit", "buy" if px < 65000 else "sell", 0.01, px, {"clientOrderId": f"a-{i}"})
        await ex.create_order(SOL, "limit", "buy", 1, 160, {"clientOrderId": "sol-1"})
        await ex.cancel_all_orders(BTC)
        return await ex.fetch_open_orders(BTC), await ex.fetch_open_orders(SOL)
    btc, sol = run(venue, scenario)
    assert btc == [] and [o["clientOrderId"] for o in sol] == ["sol-1"]


def test_duplicate_client_id_among_open_orders_is_refused(venue):
    async def scenario(ex):
        await ex.create_order(BTC, "limit", "buy", 0.01, 64000, {"clientOrderId": "d-1"})
        return await raises_code(ex.create_order(BTC, "limit", "buy", 0.01, 63000, {"clientOrderId": "d-1"}))
    assert run(venue, scenario) == -4116


def test_reduce_only_in_one_way_mode(venue):
    async def scenario(ex):
        nothing = await raises_code(ex.create_order(BTC, "market", "sell", 0.01, None, {"reduceOnly": True}))
        await ex.create_order(BTC, "market", "buy", 0.02, None)
        close = await ex.create_order(BTC, "market", "sell", 0.02, None, {"reduceOnly": True, "clientOrderId": "r-1"})
        return nothing, close, await ex.fetch_positions([BTC])
    nothing, close, pos = run(venue, scenario)
    assert nothing == -2022
    assert close["status"] == "closed" and close["reduceOnly"] is True
    assert pos == []


def test_position_mode_switch_and_hedge_legs(venue):
    async def scenario(ex):
        same = await raises_code(ex.set_position_mode(False))
        await ex.set_position_mode(True)
        mode = await ex.fetch_position_mode(BTC)
        no_side = await raises_code(ex.create_order(BTC, "market", "buy", 0.01, None))
        with_ro = await raises_code(ex.create_order(BTC, "market", "sell", 0.01, None,
                                                    {"positionSide": "LONG", "reduceOnly": True}))
        await ex.create_order(BTC, "market", "buy", 0.02, None, {"positionSide": "LONG"})
        await ex.create_order(BTC, "market", "sell", 0.01, None, {"positionSide": "SHORT"})
        legs = await ex.fetch_positions([BTC])
        busy = await raises_code(ex.set_position_mode(False))
        await ex.create_order(BTC, "market", "sell", 0.02, None, {"hedged": True, "reduceOnly": True})
        await ex.create_order(BTC, "market", "buy", 0.01, None, {"positionSide": "SHORT"})
        await ex.create_order(BTC, "limit", "buy", 0.01, 60000, {"positionSide": "LONG"})
        orders_open = await raises_code(ex.set_position_mode(False))
        return same, mode, no_side, with_ro, legs, busy, orders_open, await ex.fetch_positions([BTC])
    same, mode, no_side, with_ro, legs, busy, orders_open, flat = run(venue, scenario)
    assert same == -4059 and mode["hedged"] is True
    assert no_side == -4061 and with_ro == -1106
    assert sorted((p["info"]["positionSide"], p["info"]["positionAmt"]) for p in legs) == [
        ("LONG", "0.020"), ("SHORT", "-0.010")]
    assert busy == -4068 and orders_open == -4067
    assert flat == []


def test_leverage_and_margin_type(venue):
    async def scenario(ex):
        lev = await ex.set_leverage(7, BTC)
        bad = await raises_code(ex.set_leverage(120, SOL))  # SOL allows 100
        same = await ex.set_margin_mode("cross", BTC)  # -4046 is a no-op with throwMarginModeAlreadySet off
        iso = await ex.set_margin_mode("isolated", BTC)
        tiers = await ex.fetch_leverage_tiers([BTC])
        return lev, bad, same, iso, tiers
    lev, bad, same, iso, tiers = run(venue, scenario)
    assert lev["leverage"] == 7 and bad == -4028
    assert same["code"] == -4046 and iso["code"] == 200
    assert tiers[BTC][0]["maxLeverage"] == 150
    acc = next(iter(venue.state()["accounts"].values()))
    assert acc["positions"][BTC]["leverage"] == 7


def test_insufficient_margin_and_min_notional(venue):
    async def scenario(ex):
        await ex.set_leverage(1, BTC)
        margin = await raises_code(ex.create_order(BTC, "limit", "buy", 0.2, 64000))  # 12 800 > 10 000
        small = await raises_code(ex.create_order(BTC, "limit", "buy", 0.001, 1000))  # 1 USDT < 5
        return margin, small
    assert run(venue, scenario) == (-2019, -4164)


def test_my_trades_page_with_from_id(venue):
    async def scenario(ex):
        for _ in range(5):
            await ex.create_order(SOL, "market", "buy", 0.1, None)
        first = await ex.fetch_my_trades(SOL, None, 2, {"fromId": 0})
        nxt = await ex.fetch_my_trades(SOL, None, 2, {"fromId": int(first[-1]["id"]) + 1})
        rest = await ex.fetch_my_trades(SOL, None, 10, {"fromId": int(nxt[-1]["id"]) + 1})
        return first, nxt, rest
    first, nxt, rest = run(venue, scenario)
    ids = [int(t["id"]) for t in first + nxt + rest]
    assert len(ids) == 5 and ids == sorted(ids) and len(set(ids)) == 5


def test_funding_income(venue):
    async def scenario(ex):
        await ex.create_order(BTC, "market", "buy", 0.1, None)
        await asyncio.to_thread(venue.admin, "/_admin/funding", {"symbol": BTC, "rate": "0.0001"})
        return await ex.fetch_funding_history(BTC)
    hist = run(venue, scenario)
    assert len(hist) == 1
    assert hist[0]["amount"] == pytest.approx(-0.65)  # a long pays 0.1 x 65000 x 0.0001
    assert hist[0]["id"] and hist[0]["code"] == "USDT"


def test_ticker_and_premium_index(venue):
    async def scenario(ex):
        return await ex.fetch_ticker(BTC), await ex.fetch_funding_rate(BTC)
    ticker, funding = run(venue, scenario)
    assert ticker["last"] == 65000 and ticker["timestamp"]
    assert funding["markPrice"] == 65000 and funding["fundingRate"] == 0.0001
    assert funding["fundingTimestamp"] % (8 * 3600 * 1000) == 0


def test_bad_signature_and_unknown_key_are_refused():
    with LocalVenue(api_key=KEY, secret=SECRET) as v:
        async def wrong_secret(ex):
            return await raises_code(ex.fetch_balance())
        assert run(v, wrong_secret, secret="not-the-secret") == -1022
        async def other_key(ex):
            return await raises_code(ex.fetch_balance())
        assert run(v, other_key, key="someone-else") == -2015
        async def right(ex):
            return (await ex.fetch_balance())["USDT"]["total"]
        assert run(v, right) == 10000


def test_timestamp_outside_the_recv_window(venue):
    async def scenario(ex):
        ex.options["timeDifference"] = 60_000  # ccxt's clock a minute behind the venue's
        return await raises_code(ex.fetch_balance())
    assert run(venue, scenario) == -1021


def test_two_keys_are_two_accounts(venue):
    async def buy(ex):
        await ex.create_order(BTC, "market", "buy", 0.01, None)
        return await ex.fetch_positions([BTC])
    async def look(ex):
        return await ex.fetch_positions([BTC]), (await ex.fetch_balance())["USDT"]["total"]
    assert len(run(venue, buy, key="alice")) == 1
    pos, total = run(venue, look, key="bob")
    assert pos == [] and total == 10000
    assert len(venue.state()["accounts"]) == 2


def test_two_symbols_share_one_wallet(venue):
    """Cross margin: a position on one market uses margin the other market's orders need."""
    async def scenario(ex):
        await ex.set_leverage(1, BTC)
        await ex.set_leverage(1, SOL)
        await ex.create_order(BTC, "market", "buy", 0.1, None)  # 6 500 of 10 000 used at 1x
        refused = await raises_code(ex.create_order(SOL, "limit", "buy", 25, 160))  # 4 000 more: too much
        ok = await ex.create_order(SOL, "limit", "buy", 20, 160)  # 3 200 fits
        await asyncio.to_thread(venue.price, BTC, "64000")  # BTC loses 100: one wallet sees it
        bal = await ex.fetch_balance()
        return refused, ok, bal
    refused, ok, bal = run(venue, scenario)
    assert refused == -2019 and ok["status"] == "open"
    assert Decimal(bal["info"]["totalUnrealizedProfit"]) == Decimal("-100")
    assert Decimal(bal["info"]["totalWalletBalance"]) == Decimal("9996.75")  # one fee, one wallet


def test_all_orders_lists_every_status(venue):
    async def scenario(ex):
        await ex.create_order(BTC, "limit", "buy", 0.01, 60000, {"clientOrderId": "h-open"})
        await ex.create_order(BTC, "limit", "buy", 0.01, 61000, {"clientOrderId": "h-gone"})
        await ex.cancel_order(None, BTC, {"clientOrderId": "h-gone"})
        await ex.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "h-filled"})
        await ex.create_order(BTC, "limit", "buy", 0.01, 60000, {"clientOrderId": "h-ioc", "timeInForce": "IOC"})
        return await ex.fetch_orders(BTC)
    rows = {o["clientOrderId"]: o["status"] for o in run(venue, scenario)}
    assert rows == {"h-open": "open", "h-gone": "canceled", "h-filled": "closed", "h-ioc": "expired"}


def test_a_loss_past_the_margin_liquidates_the_position(venue):
    async def scenario(ex):
        await ex.set_leverage(100, BTC)
        await ex.create_order(BTC, "market", "buy", 1, None)  # 65 000 long on a 10 000 wallet
        await ex.create_order(BTC, "limit", "buy", 0.01, 50000, {"clientOrderId": "below"})
        await asyncio.to_thread(venue.price, BTC, "50000")
        return (await ex.fetch_positions([BTC]), await ex.fetch_my_trades(BTC), await ex.fetch_orders(BTC),
                await ex.fetch_balance())
    pos, trades, orders, bal = run(venue, scenario)
    assert pos == []
    liq = [o for o in orders if o["clientOrderId"].startswith("autoclose-")]
    assert len(liq) == 1 and liq[0]["side"] == "sell" and liq[0]["filled"] == 1
    assert next(o for o in orders if o["clientOrderId"] == "below")["status"] == "canceled"
    assert trades[-1]["order"] == liq[0]["id"] and trades[-1]["price"] < 65000
    assert 0 < bal["USDT"]["total"] < 10000  # the loss stops at the maintenance margin


def test_client_order_id_outside_binance_rule_is_refused(venue):
    async def scenario(ex):
        bad = await raises_code(ex.create_order(BTC, "limit", "buy", 0.01, 60000, {"clientOrderId": "has space"}))
        long = await raises_code(ex.create_order(BTC, "limit", "buy", 0.01, 60000, {"clientOrderId": "x" * 37}))
        ok = await ex.create_order(BTC, "limit", "buy", 0.01, 60000, {"clientOrderId": "gx-a.b:c/d_e-" + "1" * 23})
        return bad, long, ok
    bad, long, ok = run(venue, scenario)
    assert bad == long == -1100 and ok["status"] == "open"
