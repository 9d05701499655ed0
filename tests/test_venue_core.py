"""The local venue's protocol-neutral core (gridctl.venue.core), as a protocol module uses it."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from gridctl.datasets import resolve
from gridctl.venue.core import Venue
from gridctl.venue.market import FeedSpec
from gridctl.venue.records import OrderEvent, VenueReject

BTC, SOL = "BTC/USDT:USDT", "SOL/USDT:USDT"
D = Decimal


def venue(tmp_path=None, **kw) -> Venue:
    v = Venue("binanceusdm", [BTC, SOL], state_path=(tmp_path / "v.json") if tmp_path else None, **kw)
    v.load()
    v.pin(BTC, D("65000"))
    v.pin(SOL, D("170"))
    return v


def test_post_only_crossing_can_expire_instead_of_refusing():
    v = venue()
    acc = v.account_for("k")
    with pytest.raises(VenueReject) as err:
        v.place_order(acc, BTC, "buy", "limit", D("0.01"), D("65100"), "a", "PO")
    assert err.value.reason == "post_only_would_cross" and v.all_orders(acc) == []
    o = v.place_order(acc, BTC, "buy", "limit", D("0.01"), D("65100"), "b", "PO", post_only_crossing="expire")
    assert (o.status, o.expiry_reason) == ("expired", "post_only_would_cross")
    assert v.get_order(acc, BTC, client_id="b").status == "expired" and v.open_orders(acc) == []


def test_events_in_order_for_a_resting_order_that_fills():
    async def main():
        v = venue()
        q = v.subscribe()
        acc = v.account_for("k")
        v.place_order(acc, SOL, "sell", "limit", D("1"), D("171"), 7)  # an int client id (Backpack's uint32)
        v.move_price(SOL, 17110)
        events = []
        while not q.empty():
            events.append(q.get_nowait())
        return acc, events
    acc, events = asyncio.run(main())
    orders = [(e.execution, e.order.status) for e in events if isinstance(e, OrderEvent)]
    assert orders == [("new", "new"), ("trade", "filled")]
    trade = next(e for e in events if isinstance(e, OrderEvent) and e.fill)
    assert (trade.fill.client_id, trade.fill.price, trade.fill.qty, trade.fill.maker) == (7, D("171.00"), D("1.00"), True)
    assert trade.fill.fee == D("0.0342")  # 171 x 0.0002
    kinds = [type(e).__name__ for e in events]
    assert kinds.index("AccountEvent") > kinds.index("OrderEvent") and "MarketEvent" in kinds


def test_realized_pnl_per_fill_and_one_wallet():
    v = venue()
    acc = v.account_for("k")
    v.place_order(acc, SOL, "buy", "market", D("10"))
    v.place_order(acc, SOL, "sell", "limit", D("4"), D("175"), "tp1")
    v.place_order(acc, BTC, "buy", "market", D("0.01"))
    v.pin(SOL, D("176"))
    tp = v.fills(acc, SOL)[-1]
    assert tp.realized == D("20.00")  # 4 x (175 - 170)
    fees = sum((f.fee for f in v.fills(acc)), D(0))
    assert v.balance(acc).wallet == D(10000) + D("20") - fees
    legs = {p.symbol: p.qty for p in v.positions(acc)}
    assert legs == {BTC: D("0.010"), SOL: D("6.00")}


def test_partial_fault_splits_fees_and_pnl_exactly():
    v = venue()
    acc = v.account_for("k")
    v.faults.configure({"partial": {"count": 1, "pieces": 3}})
    v.place_order(acc, SOL, "buy", "limit", D("1"), D("169"), "g")
    v.pin(SOL, D("168"))
    fills = v.fills(acc, SOL)
    assert [f.qty for f in fills] == [D("0.34"), D("0.33"), D("0.33")]
    assert sum((f.fee for f in fills), D(0)) == D("169") * D("0.0002")
    assert len({f.trade_id for f in fills}) == 3


def test_hedge_mode_round_trip_through_the_state_file(tmp_path):
    v = venue(tmp_path)
    acc = v.account_for("k")
    v.set_position_mode(acc, True)
    v.set_leverage(acc, BTC, 10)
    v.place_order(acc, BTC, "buy", "market", D("0.02"), position_side="long")
    v.place_order(acc, BTC, "sell", "limit", D("0.01"), D("66000"), "x", position_side="short")
    v.save()
    w = Venue("binanceusdm", [BTC, SOL], state_path=tmp_path / "v.json")
    w.load()
    acc2 = w.account_for("k")
    assert acc2.hedge and acc2.leverage[BTC] == 10 and acc2.sims[BTC].leverage == 10
    assert [(p.position_side, p.qty) for p in w.positions(acc2, BTC)] == [("long", D("0.020")), ("short", D("0.000"))]
    assert [o.client_id for o in w.open_orders(acc2)] == ["x"]
    w.pin(BTC, D("66001"))
    assert w.get_order(acc2, BTC, client_id="x").status == "filled"
    assert w.balance(acc2).wallet == v.balance(acc).wallet - D("66000") * D("0.01") * D("0.0002")


def test_api_key_restriction_and_fingerprints():
    v = Venue("binanceusdm", [BTC], api_key="only-me")
    v.load()
    assert v.account_for("someone") is None and v.account_for("") is None
    acc = v.account_for("only-me")
    assert acc.fingerprint != "only-me" and len(acc.fingerprint) == 16
    assert "only-me" not in str(v.state())


def test_replayed_funding_is_paid_as_the_replay_reaches_it():
    xrp = "XRP/USDT:USDT"
    spec = FeedSpec(replay=resolve("builtin:XRPUSDT_5m", None), funding=resolve("builtin:XRPUSDT_8h_funding", None),
                    speed=D(100000))
    v = Venue("binanceusdm", [xrp], {xrp: spec})
    v.load()
    acc = v.account_for("k")
    v.place_order(acc, xrp, "buy", "market", D("100"))

    async def main():
        await v.start()
        for _ in range(200):
            if v.income(acc):
                break
            await asyncio.sleep(0.05)
        await v.stop()
    asyncio.run(main())
    paid = v.income(acc)
    assert paid and paid[0].position == D("100.0") and paid[0].amount == -D("100") * paid[0].mark * paid[0].rate


def test_funding_on_the_wall_clock_schedule_also_for_a_pinned_market():
    now = [1_800_000_000.0]  # seconds; the next 8 h boundary is 1 800 028 800
    v = Venue("binanceusdm", [BTC], clock=lambda: now[0])
    v.load()
    v.pin(BTC, D("65000"))
    acc = v.account_for("k")
    v.place_order(acc, BTC, "buy", "market", D("0.1"))

    async def main():
        await v.start()
        await asyncio.sleep(0.3)
        before = list(v.income(acc))
        now[0] = 1_800_028_800.5
        for _ in range(40):
            if v.income(acc):
                break
            await asyncio.sleep(0.05)
        await v.stop()
        return before
    before = asyncio.run(main())
    assert before == []
    paid = v.income(acc)
    assert len(paid) == 1 and paid[0].amount == -D("0.65") and paid[0].ts == 1_800_028_800_500
    assert v.market(BTC).next_funding_ms == 1_800_057_600_000
