"""The local venue's Backpack protocol, driven by ccxt's own `ccxt.pro.backpack` on 127.0.0.1.

ccxt signs every private request with a real ED25519 key pair; the venue verifies it.
Prices are pinned through the admin API so every expectation is exact.
"""

from __future__ import annotations

import asyncio
import urllib.request
from decimal import Decimal

import ccxt
import pytest

from backpack_helpers import BTC, BTC_ID, SOL, SOL_ID, backpack_client, key_pair, loaded, run, watching
from gridctl.venue.core import Venue
from venue_harness import LocalVenue


@pytest.fixture(scope="module")
def venue():
    with LocalVenue("backpack") as v:
        v.price(SOL_ID, "170")
        v.price(BTC_ID, "65000")
        yield v


@pytest.fixture
def sol(venue):
    """Each test on SOL starts at 170 with no resting orders of earlier tests in the way."""
    venue.price(SOL_ID, "170")
    return venue


def test_markets_carry_the_real_rules(venue):
    async def body():
        ex = await loaded(backpack_client(venue.url))
        try:
            assert sorted(ex.markets) == [BTC, SOL]
            btc, sol = ex.markets[BTC], ex.markets[SOL]
            assert (btc["precision"]["price"], btc["precision"]["amount"]) == (0.1, 0.00001)
            assert (sol["precision"]["price"], sol["precision"]["amount"]) == (0.01, 0.01)
            assert btc["limits"]["amount"]["min"] == 0.00001 and sol["swap"] and sol["linear"]
            assert btc["info"]["imfFunction"] == {"type": "sqrt", "base": "0.01333333", "factor": "0.00002494"}
        finally:
            await ex.close()
    run(body())


def test_unknown_path_is_404_plain_text(venue):
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(venue.url + "/api/v1/nothing", timeout=5)
    assert e.value.code == 404


def test_ticker_and_mark_price_follow_the_admin_price(sol):
    async def body():
        ex = await loaded(backpack_client(sol.url))
        try:
            sol.price(SOL_ID, "171.23")
            t = await ex.fetch_ticker(SOL)
            f = await ex.fetch_funding_rate(SOL)
            assert t["last"] == 171.23 and f["markPrice"] == 171.23 and f["fundingRate"] == 0.0000125
            now = sol.venue.now_ms()
            # Backpack settles hourly, on the hour
            assert now < f["nextFundingTimestamp"] <= now + 3_600_000
            assert f["nextFundingTimestamp"] % 3_600_000 == 0
            with pytest.raises(ccxt.BadRequest, match="Symbol not found"):
                await ex.publicGetApiV1MarkPrices({"symbol": "XRP_USDC_PERP"})
        finally:
            await ex.close()
    run(body())


def test_balance_collateral_and_account(venue):
    async def body():
        ex = await loaded(backpack_client(venue.url))
        try:
            b = await ex.fetch_balance()
            assert b["USDC"] == {"free": 10000.0, "used": 0.0, "total": 10000.0}
            c = await ex.privateGetApiV1CapitalCollateral()
            assert (c["netEquity"], c["netEquityAvailable"], c["pnlUnrealized"]) == ("10000", "10000", "0")
            a = await ex.privateGetApiV1Account()
            assert (a["futuresMakerFee"], a["futuresTakerFee"], a["leverageLimit"]) == ("2", "5", "20")
        finally:
            await ex.close()
    run(body())


def test_leverage_limit_is_account_wide(venue):
    async def body():
        ex = await loaded(backpack_client(venue.url))
        try:
            assert await ex.privatePatchApiV1Account({"leverageLimit": "5"}) in (None, "", {})
            assert (await ex.privateGetApiV1Account())["leverageLimit"] == "5"
            with pytest.raises(ccxt.BadRequest, match="between 1 and 75"):
                await ex.privatePatchApiV1Account({"leverageLimit": "500"})
            with pytest.raises(ccxt.NotSupported):
                await ex.set_leverage(5, SOL)
        finally:
            await ex.close()
    run(body())


def test_post_only_limit_with_u32_client_id_rests_and_cancels_by_client_id(sol):
    async def body():
        ex = await loaded(backpack_client(sol.url))
        try:
            o = await ex.create_order(SOL, "limit", "buy", 1, 165, {"postOnly": True, "clientOrderId": 4294967295})
            assert (o["status"], o["clientOrderId"], o["postOnly"], o["price"]) == ("open", "4294967295", True, 165.0)
            rest = await ex.privateGetApiV1Order({"symbol": SOL_ID, "clientId": 4294967295})
            assert rest["id"] == o["id"] and rest["status"] == "New"
            assert [x["id"] for x in await ex.fetch_open_orders(SOL)] == [o["id"]]
            gone = await ex.privateDeleteApiV1Order({"symbol": SOL_ID, "clientId": 4294967295})
            assert (gone["id"], gone["status"]) == (o["id"], "Cancelled")
            assert await ex.fetch_open_orders(SOL) == []
            with pytest.raises(ccxt.ExchangeNotAvailable, match="RESOURCE_NOT_FOUND"):  # resting only
                await ex.privateGetApiV1Order({"symbol": SOL_ID, "clientId": 4294967295})
            with pytest.raises(ccxt.ExchangeNotAvailable, match="Order not found"):
                await ex.privateDeleteApiV1Order({"symbol": SOL_ID, "clientId": 4294967295})
            with pytest.raises(ccxt.BadRequest, match="exactly one of orderId or clientId"):
                await ex.privateDeleteApiV1Order({"symbol": SOL_ID, "clientId": 1, "orderId": o["id"]})
        finally:
            await ex.close()
    run(body())


@pytest.mark.parametrize("cid", [2**32, -1])
def test_client_id_outside_u32_is_refused(sol, cid):
    async def body():
        ex = await loaded(backpack_client(sol.url))
        try:
            with pytest.raises(ccxt.BadRequest, match="clientId"):
                await ex.create_order(SOL, "limit", "buy", 1, 165, {"clientOrderId": cid})
            assert await ex.fetch_open_orders(SOL) == []
        finally:
            await ex.close()
    run(body())


def test_crossing_post_only_expires_with_post_only_taker(sol):
    async def body():
        ex = await loaded(backpack_client(sol.url))
        try:
            o = await ex.create_order(SOL, "limit", "buy", 1, 171, {"postOnly": True, "clientOrderId": 11})
            assert o["status"] == "canceled"  # ccxt's reading of Expired
            assert (o["info"]["status"], o["info"]["expiryReason"]) == ("Expired", "PostOnlyTaker")
            assert await ex.fetch_open_orders(SOL) == [] and await ex.fetch_positions() == []
        finally:
            await ex.close()
    run(body())


def test_market_then_reduce_only_close_and_reduce_only_refused_when_flat(sol):
    async def body():
        ex = await loaded(backpack_client(sol.url))
        try:
            m = await ex.create_order(SOL, "market", "buy", 2, None, {"clientOrderId": 21})
            assert (m["status"], m["filled"], m["average"]) == ("closed", 2.0, 170.0)
            [p] = await ex.fetch_positions()
            assert (p["symbol"], p["side"], p["info"]["netQuantity"], p["entryPrice"]) == (SOL, "long", "2", "170")
            c = await ex.create_order(SOL, "market", "sell", 2, None, {"reduceOnly": True, "clientOrderId": 22})
            assert (c["status"], c["reduceOnly"]) == ("closed", True)
            assert await ex.fetch_positions() == []
            with pytest.raises(ccxt.InvalidOrder, match="Reduce only"):
                await ex.create_order(SOL, "market", "sell", 1, None, {"reduceOnly": True})
        finally:
            await ex.close()
    run(body())


def test_hedge_mode_is_refused(sol):
    async def body():
        ex = await loaded(backpack_client(sol.url))
        try:
            with pytest.raises(ccxt.NotSupported):
                await ex.set_position_mode(True, SOL)
            with pytest.raises(ccxt.BadRequest, match="positionSide"):
                await ex.create_order(SOL, "market", "buy", 1, None, {"positionSide": "LONG"})
            assert await ex.fetch_positions() == []
        finally:
            await ex.close()
    run(body())


def test_insufficient_margin(sol):
    async def body():
        ex = await loaded(backpack_client(sol.url))
        try:
            with pytest.raises(ccxt.InsufficientFunds, match="INSUFFICIENT_MARGIN"):
                await ex.create_order(SOL, "limit", "buy", 5000, 160)  # 800k notional on 10k at 20x
        finally:
            await ex.close()
    run(body())


def test_order_history_and_fills_with_paging(sol):
    async def body():
        ex = await loaded(backpack_client(sol.url))
        try:
            for i, side in enumerate(["buy", "buy", "sell"]):
                await ex.create_order(SOL, "market", side, 1, None, {"clientOrderId": 31 + i})
            rested = await ex.create_order(SOL, "limit", "buy", 1, 150, {"clientOrderId": 34})
            await ex.cancel_order(rested["id"], SOL)
            # Asc: ccxt re-sorts by time, and orders of the same millisecond keep the venue's order
            history = await ex.fetch_orders(SOL, None, None, {"sortDirection": "Asc"})
            assert [o["clientOrderId"] for o in history] == ["31", "32", "33", "34"]
            assert [o["status"] for o in history] == ["closed", "closed", "closed", "canceled"]
            found = await ex.fetch_order(rested["id"], SOL)  # history first, as ccxt does
            assert found["status"] == "canceled"
            first = await ex.fetch_my_trades(SOL, None, 2, {"sortDirection": "Asc"})
            rest = await ex.fetch_my_trades(SOL, None, 2, {"sortDirection": "Asc", "offset": 2})
            assert [t["info"]["clientId"] for t in first + rest] == ["31", "32", "33"]
            assert len({t["id"] for t in first + rest}) == 3
            assert all(t["fee"]["cost"] == 0.085 and t["takerOrMaker"] == "taker" for t in first + rest)
            newest = await ex.fetch_my_trades(SOL, None, 1)  # Desc by default: the last fill
            assert newest[0]["info"]["clientId"] == "33"
            since = await ex.fetch_my_trades(SOL, first[1]["timestamp"] + 1)
            assert all(t["timestamp"] > first[1]["timestamp"] for t in since)
        finally:
            await ex.close()
    run(body())


def test_funding_history(venue):
    async def body():
        ex = await loaded(backpack_client(venue.url))
        try:
            venue.price(BTC_ID, "65000")
            await ex.create_order(BTC, "market", "buy", 0.01)
            venue.admin("/_admin/funding", {"symbol": BTC_ID, "rate": "0.0001"})
            # (an hourly settlement at 0.0000125 may also strike if the test runs across the hour)
            [f] = [x for x in await ex.fetch_funding_history(BTC) if x["rate"] == 0.0001]
            assert (f["symbol"], f["amount"], f["rate"]) == (BTC, -0.065, 0.0001)  # a long pays
            [p] = await ex.fetch_positions()
            paid = sum(Decimal(str(x["amount"])) for x in await ex.fetch_funding_history(BTC))
            assert Decimal(p["info"]["cumulativeFundingPayment"]) == paid <= Decimal("-0.065")
            await ex.create_order(BTC, "market", "sell", 0.01, None, {"reduceOnly": True})
        finally:
            await ex.close()
    run(body())


def test_bad_signature_and_expired_window_are_refused(venue):
    async def body():
        key, _ = key_pair()
        _, other = key_pair()
        forged = await loaded(backpack_client(venue.url, key, other))
        late = await loaded(backpack_client(venue.url))
        late.options["timeDifference"] = 6000  # signs a timestamp 6 s old, window 5 s
        try:
            with pytest.raises(ccxt.AuthenticationError, match="INVALID_SIGNATURE"):
                await forged.fetch_balance()
            with pytest.raises(ccxt.BadRequest, match="Request has expired"):
                await late.fetch_balance()
            late.options["timeDifference"] = 0
            assert (await late.fetch_balance())["USDC"]["total"] == 10000.0
        finally:
            await forged.close()
            await late.close()
    run(body())


def test_only_the_configured_key_with_api_key():
    key, secret = key_pair()
    with LocalVenue("backpack", api_key=key) as v:
        async def body():
            mine = await loaded(backpack_client(v.url, key, secret))
            other = await loaded(backpack_client(v.url))
            try:
                assert (await mine.fetch_balance())["USDC"]["total"] == 10000.0
                with pytest.raises(ccxt.AuthenticationError, match="UNAUTHORIZED"):
                    await other.fetch_balance()
            finally:
                await mine.close()
                await other.close()
        run(body())


def test_cancel_all_returns_the_cancelled_orders(sol):
    async def body():
        ex = await loaded(backpack_client(sol.url))
        try:
            for i, px in enumerate((160, 161, 162)):
                await ex.create_order(SOL, "limit", "buy", 1, px, {"clientOrderId": 51 + i})
            gone = await ex.cancel_all_orders(SOL)
            assert sorted(o["clientOrderId"] for o in gone) == ["51", "52", "53"]
            assert {o["info"]["status"] for o in gone} == {"Cancelled"}
            assert await ex.fetch_open_orders(SOL) == []
            assert await ex.cancel_all_orders(SOL) == []
        finally:
            await ex.close()
    run(body())


def test_ioc_limit_fills_within_its_bound_or_expires(sol):
    async def body():
        ex = await loaded(backpack_client(sol.url))
        try:
            hit = await ex.create_order(SOL, "limit", "buy", 1, 171, {"timeInForce": "IOC", "clientOrderId": 61})
            assert (hit["status"], hit["filled"], hit["average"]) == ("closed", 1.0, 170.0)
            miss = await ex.create_order(SOL, "limit", "buy", 1, 169, {"timeInForce": "IOC", "clientOrderId": 62})
            assert (miss["info"]["status"], miss["info"]["expiryReason"], miss["filled"]) == (
                "Expired", "ImmediateOrCancel", 0.0)
            assert await ex.fetch_open_orders(SOL) == []
            await ex.create_order(SOL, "market", "sell", 1, None, {"reduceOnly": True})
        finally:
            await ex.close()
    run(body())


def test_a_restart_continues_the_accounts_orders_and_leverage(tmp_path):
    key, secret = key_pair()
    state = tmp_path / "venue-state.json"

    async def before(url):
        ex = await loaded(backpack_client(url, key, secret))
        try:
            await ex.create_order(SOL, "market", "buy", 2, None, {"clientOrderId": 71})
            await ex.create_order(SOL, "limit", "buy", 1, 160, {"clientOrderId": 72})
            await ex.privatePatchApiV1Account({"leverageLimit": "7"})
        finally:
            await ex.close()

    async def after(url):
        ex = await loaded(backpack_client(url, key, secret))
        try:
            [o] = await ex.fetch_open_orders(SOL)
            [p] = await ex.fetch_positions()
            assert (o["clientOrderId"], p["info"]["netQuantity"]) == ("72", "2")
            assert (await ex.privateGetApiV1Account())["leverageLimit"] == "7"
            assert [t["info"]["clientId"] for t in await ex.fetch_my_trades(SOL)] == ["71"]
            closing = await watching(v, ex.watch_positions([SOL]), "account.positionUpdate.SOL_USDC_PERP")
            await ex.create_order(SOL, "market", "sell", 1, None, {"reduceOnly": True})
            [p] = await asyncio.wait_for(closing, 5)
            assert (p["info"]["e"], p["info"]["q"]) == ("positionAdjusted", "1")  # not "opened" again
        finally:
            await ex.close()

    with LocalVenue("backpack", state=state) as v:
        v.price(SOL_ID, "170")
        run(before(v.url))
    with LocalVenue("backpack", state=state) as v:
        run(after(v.url))


def test_a_liquidation_is_reported_apart_from_the_users_fills():
    with LocalVenue("backpack", balance=Decimal(100)) as v:
        v.price(SOL_ID, "170")

        async def body():
            ex = await loaded(backpack_client(v.url))
            try:
                raw: list[dict] = []
                original = ex.handle_order

                def tee(client, message):
                    raw.append(message["data"])
                    return original(client, message)
                ex.handle_order = tee
                watch = await watching(v, ex.watch_orders(SOL), "account.orderUpdate.SOL_USDC_PERP")
                await ex.create_order(SOL, "market", "buy", 10, None, {"clientOrderId": 81})
                await asyncio.get_running_loop().run_in_executor(None, v.price, SOL_ID, "150")
                assert await ex.fetch_positions() == []
                for _ in range(30):
                    if any(d["O"] == "LIQUIDATION_AUTOCLOSE" and d["e"] == "orderFill" for d in raw):
                        break
                    await asyncio.sleep(0.1)
                origins = {(d["e"], d["O"], d.get("c")) for d in raw}
                assert ("orderFill", "USER", 81) in origins and ("orderFill", "LIQUIDATION_AUTOCLOSE", None) in origins
                watch.cancel()
                own = await ex.fetch_my_trades(SOL)  # ccxt asks fillType=User
                assert [t["info"]["clientId"] for t in own] == ["81"]
                [liq] = await ex.fetch_my_trades(SOL, None, None, {"fillType": "Liquidation"})
                assert (liq["side"], liq["amount"], liq["info"]["systemOrderType"]) == (
                    "sell", 10.0, "LiquidatePositionOnBook")
                assert liq["info"]["clientId"] is None
                orders = await ex.fetch_orders(SOL, None, None, {"sortDirection": "Asc"})
                assert [o["info"]["systemOrderType"] for o in orders] == [None, "LiquidatePositionOnBook"]
            finally:
                await ex.close()
        run(body())


def test_batch_of_orders_signed_as_ccxt_signs_it(sol):
    async def body():
        ex = await loaded(backpack_client(sol.url))
        try:
            placed = await ex.create_orders([
                {"symbol": SOL, "type": "limit", "side": "buy", "amount": 1, "price": 165,
                 "params": {"postOnly": True, "clientOrderId": 101}},
                {"symbol": SOL, "type": "limit", "side": "sell", "amount": 1, "price": 175,
                 "params": {"postOnly": True, "clientOrderId": 102}},
                {"symbol": SOL, "type": "limit", "side": "buy", "amount": 9000, "price": 160,
                 "params": {"clientOrderId": 103}}])  # refused alone: insufficient margin
            # ccxt sorts the results by time; the refused slot has none
            assert sorted(o["clientOrderId"] for o in placed if o["id"]) == ["101", "102"]
            assert [o["info"] for o in placed if not o["id"]] == [
                {"code": "INSUFFICIENT_MARGIN", "message": "Insufficient margin"}]
            assert sorted(o["clientOrderId"] for o in await ex.fetch_open_orders(SOL)) == ["101", "102"]
            with pytest.raises(ccxt.BadRequest, match="clientId"):  # validated all or nothing
                await ex.create_orders([
                    {"symbol": SOL, "type": "limit", "side": "buy", "amount": 1, "price": 161,
                     "params": {"clientOrderId": 104}},
                    {"symbol": SOL, "type": "limit", "side": "buy", "amount": 1, "price": 162,
                     "params": {"clientOrderId": 2**32}}])
            assert len(await ex.fetch_open_orders(SOL)) == 2
            await ex.cancel_all_orders(SOL)
        finally:
            await ex.close()
    run(body())


def test_a_confirmed_order_is_in_the_state_file_before_the_answer(tmp_path):
    state = tmp_path / "venue-state.json"
    with LocalVenue("backpack", state=state) as v:
        v.price(SOL_ID, "170")

        def later():  # the deferred save never comes: only a flush before the answer writes it
            v.venue._save_scheduled = True
        v.venue.dirty = later

        async def body():
            ex = await loaded(backpack_client(v.url))
            try:
                o = await ex.create_order(SOL, "limit", "buy", 1, 160, {"clientOrderId": 111})
                probe = Venue("backpack", [BTC, SOL], state_path=state)  # what a restart would read now
                probe.load()
                orders = [x for a in probe.accounts.values() for x in a.open_orders()]
                assert [(str(x.order_id), x.client_id) for x in orders] == [(o["id"], 111)]
            finally:
                await ex.close()
        run(body())
