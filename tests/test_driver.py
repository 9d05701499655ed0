"""The one driver and Exchange protocol v2, event by event: fills deduplicated by the venue's
trade id, fills that are not ours never booked, order updates, the open-order mirror, own-ids-only
cancels, rejections and their cooldown, and the stop procedure as engine state."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from backtest_helpers import account, strategy, toy_rules
from gridctl.config.strategy import engine_config, grid_params
from gridctl.core import clientid
from gridctl.core.driver import Driver
from gridctl.core.engine import GridEngine
from gridctl.core.fills import FOREIGN, Fill, OrderUpdate
from gridctl.core.grid import Side
from gridctl.core.orders import Cancel, Intent, OpenOrder, OrderRequest, Submit
from gridctl.core.plan import build_grid
from gridctl.exchange.base import ExchangeOrder, OrderMirror, Rejected
from gridctl.exchange.memory import InMemoryExchange
from backtest_helpers import candles

D = Decimal
R = toy_rules()
T = 1_700_000_000_000


def make(mode="long", **kw) -> Driver:
    s = strategy(mode, "100", "103", 3, amount="1", **kw)
    params = grid_params(R, s, 10250)
    return Driver(GridEngine(R, build_grid(R, params, 10250), engine_config(R, s, account(), params)))


def entry_fill(d: Driver, level: int, trade_id: str, qty: int = 10, ts: int = T) -> Fill:
    cid = d.e.client_id(level, Intent.ENTRY, 1)
    return Fill(ts, cid, "o1", Side.BUY, d.e.levels[level].spec.entry, qty, D("0.01"), trade_id=trade_id)


def test_equal_partial_fills_with_their_own_trade_ids_are_both_booked():
    d = make()
    a, b = entry_fill(d, 2, "t1", qty=5), entry_fill(d, 2, "t2", qty=5)  # same order, time, price and size
    assert d.on_fill(a) is not None and d.on_fill(b) is not None
    assert d.e.ledger.position == 10


def test_a_trade_reported_twice_stream_and_rest_is_booked_once():
    d = make()
    f = entry_fill(d, 2, "t1")
    assert d.on_fill(f) is not None
    assert d.on_fill(Fill(f.ts, f.client_id, f.order_id, f.side, f.price, f.qty, f.fee, trade_id="t1")) is None
    assert d.e.ledger.position == 10 and d.e.ledger.fills == 1


@pytest.mark.parametrize("cid,kind", [("gx-aaaaaa-002e1", "own"), ("manual-123", "own"), (None, FOREIGN)])
def test_a_fill_that_is_not_ours_is_never_booked(cid, kind):
    d = make()
    f = Fill(T, cid, "o9", Side.SELL, 10300, 40, D("0.1"), trade_id="x1", kind=kind)
    booked = d.on_fill(f)
    assert booked is not None and not booked.ours and booked.intent == "foreign"
    assert d.e.ledger.position == 0 and d.e.ledger.fills == 0 and d.e.ledger.realized == 0
    assert list(d.foreign) == [f]


def test_an_entry_the_venue_expires_after_a_partial_fill_sends_the_part_to_its_exit():
    d = make()
    d.on_fill(entry_fill(d, 2, "t1", qty=4))
    cid = d.e.client_id(2, Intent.ENTRY, 1)
    d.on_order_update(OrderUpdate(T, cid, "o1", "expired", 4, "venue"))
    lv = d.e.levels[2]
    assert lv.held == 4 and lv.exiting  # the exit for the 0.4 held is wanted now, not more entry


def test_actions_twice_yield_nothing_the_second_time():
    d = make()
    actions, _ = d.actions(T, 10250, 0, lambda: [])
    assert actions and all(isinstance(a, Submit) for a in actions)
    book = [OpenOrder(a.request.level, a.request.intent, a.request.side, a.request.price, a.request.qty,
                      a.request.reduce_only, a.request.client_id) for a in actions]
    assert d.actions(T, 10250, 1, lambda: book) == ([], [])


def test_a_rejected_level_waits_for_a_change_and_the_cooldown():
    d = make()
    actions, _ = d.actions(T, 10250, 0, lambda: [])
    r = actions[0].request
    others = [a.request for a in actions[1:]]
    book = [OpenOrder(q.level, q.intent, q.side, q.price, q.qty, q.reduce_only, q.client_id) for q in others]
    d.rejected(r, T, "insufficient_margin")
    assert d.actions(T, 10250, 1, lambda: book) == ([], [])  # nothing changed: not retried
    assert d.actions(T + 60_000, 10250, 1, lambda: book) == ([], [])  # later, but still nothing changed
    assert d.actions(T + 10_000, 10250, 2, lambda: book)[0] == []  # something changed, within 30 s: waits
    assert d.wake_at == T + 30_000
    again, _ = d.actions(T + 30_000, 10250, 2, lambda: book)
    assert [a.request.level for a in again] == [r.level]  # retried, with a new client id
    assert again[0].request.client_id != r.client_id


def test_the_stop_cancels_own_orders_then_closes_then_waits_for_the_fills():
    d = make()
    d.on_fill(entry_fill(d, 2, "t1"))
    resting = OpenOrder(1, Intent.ENTRY, Side.BUY, 10100, 10, False, d.e.client_id(1, Intent.ENTRY, 1))
    d.e.stop("user")
    acts, _ = d.actions(T, 10250, 0, lambda: [resting])
    assert acts == [Cancel(resting)]  # own orders first, one by one (never cancel-all)
    acts, _ = d.actions(T, 10250, 1, lambda: [])
    close = acts[0].request
    assert (close.side, close.qty, close.price, close.reduce_only, close.intent) == (
        Side.SELL, 10, None, True, Intent.CLOSE)
    assert d.actions(T + 1000, 10250, 1, lambda: []) == ([], [])  # waiting for the close's fill
    d.on_fill(Fill(T + 1500, close.client_id, "o2", Side.SELL, 10240, 10, D("0.05"), trade_id="t2"))
    _, events = d.actions(T + 2000, 10250, 1, lambda: [])
    assert d.e.status == "stopped" and d.e.ledger.position == 0
    assert events[-1].message == "stopped (user)"


def test_a_close_that_never_fills_ends_the_stop_at_the_deadline_and_says_so():
    d = make()
    d.on_fill(entry_fill(d, 2, "t1"))
    d.e.stop("stop_loss")
    d.actions(T, 10250, 0, lambda: [])  # the close is sent
    assert d.actions(T + 29_000, 10250, 0, lambda: []) == ([], [])
    _, events = d.actions(T + 30_000, 10250, 0, lambda: [])
    assert d.e.status == "stopped"
    assert events[0].message == "the close did not fill within 30s; position 1.0 left open"


def test_an_entry_filled_while_its_cancel_was_on_the_way_is_closed_by_a_second_close():
    d = make()
    d.on_fill(entry_fill(d, 2, "t1"))
    d.e.stop("user")
    acts, _ = d.actions(T, 10250, 0, lambda: [])  # the resting level 1 entry is gone: the close is sized to 1.0
    first = acts[0].request
    assert first.qty == 10
    # level 1's entry filled before the cancel reached it; its fill comes after the close was sent
    d.on_fill(entry_fill(d, 1, "t2"))
    d.on_fill(Fill(T + 500, first.client_id, "o2", Side.SELL, 10240, 10, D("0.05"), trade_id="t3"))
    acts, _ = d.actions(T + 1000, 10250, 1, lambda: [])
    rest = acts[0].request
    assert (rest.side, rest.qty, rest.reduce_only, rest.intent) == (Side.SELL, 10, True, Intent.CLOSE)
    assert rest.client_id != first.client_id
    d.on_fill(Fill(T + 1500, rest.client_id, "o3", Side.SELL, 10240, 10, D("0.05"), trade_id="t4"))
    _, events = d.actions(T + 2000, 10250, 1, lambda: [])
    assert d.e.status == "stopped" and d.e.ledger.position == 0
    assert events[-1].message == "stopped (user)"


def test_a_close_the_venue_expires_half_filled_is_followed_by_a_close_of_the_rest():
    d = make()
    d.on_fill(entry_fill(d, 2, "t1"))
    d.e.stop("user")
    close = d.actions(T, 10250, 0, lambda: [])[0][0].request
    d.on_fill(Fill(T + 100, close.client_id, "o2", Side.SELL, 10240, 4, D("0.02"), trade_id="t2"))
    assert d.actions(T + 200, 10250, 0, lambda: []) == ([], [])  # still working: no second close
    d.on_order_update(OrderUpdate(T + 300, close.client_id, "o2", "expired", 4, "IOC"))
    acts, _ = d.actions(T + 400, 10250, 0, lambda: [])
    assert [a.request.qty for a in acts] == [6]


def test_a_close_reported_filled_before_its_fill_arrives_is_not_sent_twice():
    d = make()
    d.on_fill(entry_fill(d, 2, "t1"))
    d.e.stop("user")
    close = d.actions(T, 10250, 0, lambda: [])[0][0].request
    d.on_order_update(OrderUpdate(T + 100, close.client_id, "o2", "filled", 10, None))
    assert d.actions(T + 200, 10250, 0, lambda: []) == ([], [])


def test_a_refused_close_is_sent_again_three_times_in_all():
    d = make()
    d.on_fill(entry_fill(d, 2, "t1"))
    d.e.stop("user")
    sent = []
    for _ in range(3):
        acts, _ = d.actions(T, 10250, 0, lambda: [])
        sent.append(acts[0].request.client_id)
        events = d.rejected(acts[0].request, T, "margin")
    assert len(set(sent)) == 3 and d.e.status == "stopped"
    assert events[0].message == "the close was refused 3 times (margin); position 1.0 left open"


def test_the_mirror_follows_fills_and_updates_and_a_reconcile_reports_what_vanished():
    m = OrderMirror()
    o = ExchangeOrder("a", "1", Side.BUY, 100, 10, 0)
    m.put(o)
    m.put(ExchangeOrder("b", "2", Side.SELL, 110, 10, 0))
    v = m.version
    m.apply(Fill(T, "a", "1", Side.BUY, 100, 4, D(0), trade_id="t1"))
    assert m.get("a").remaining == 6 and m.version > v
    m.apply(OrderUpdate(T, "b", "2", "expired"))
    assert [x.client_id for x in m.orders()] == ["a"]
    gone = m.confirm([], T)
    assert [(u.client_id, u.status) for u in gone] == [("a", "cancelled")] and m.orders() == []


def test_an_order_the_venue_calls_filled_stays_until_its_fills_are_booked():
    # a taking exit answered FILLED before its trade came over the stream: while the fill is on its
    # way the level still shows its order, so no second exit is sent (seen on the venue: the venue's
    # position flat, the ledger one level long, that level's exit refused as reduce-only for ever)
    m = OrderMirror()
    m.put(ExchangeOrder("x", "1", Side.SELL, 100, 10, 10, True, "filled"))
    assert [(o.client_id, o.remaining) for o in m.orders()] == [("x", 10)]
    m.apply(Fill(T, "x", "1", Side.SELL, 100, 10, D(0), trade_id="t1"))
    assert m.orders() == []
    # the stream's order report before its trade
    m.put(ExchangeOrder("y", "2", Side.SELL, 100, 10, 0))
    m.apply(OrderUpdate(T, "y", "2", "filled", 10))
    assert [o.client_id for o in m.orders()] == ["y"]
    m.apply(Fill(T, "y", "2", Side.SELL, 100, 10, D(0), trade_id="t2"))
    assert m.orders() == []
    # the trade before the placement's answer: nothing left to wait for
    m.apply(Fill(T, "z", "3", Side.SELL, 100, 10, D(0), trade_id="t3"))
    m.put(ExchangeOrder("z", "3", Side.SELL, 100, 10, 10, True, "filled"))
    assert m.orders() == []


def test_an_adapter_cancels_only_the_strategys_own_orders():
    tag = clientid.strategy_tag("mine")
    ex = InMemoryExchange(R, candles([("102.50", "102.60", "102.40", "102.50")], R), D(10000), 1,
                          owns=lambda cid: clientid.belongs("binance", tag, cid))
    mine = clientid.encode("binance", tag, 1, Intent.ENTRY, 1)
    theirs = clientid.encode("binance", clientid.strategy_tag("other"), 1, Intent.ENTRY, 1)

    async def scenario():
        await ex.place(OrderRequest(mine, Side.BUY, 10, 10100))
        await ex.place(OrderRequest(theirs, Side.BUY, 10, 10000))
        with pytest.raises(Rejected) as err:
            await ex.cancel(theirs)
        await ex.cancel(mine)
        return err.value.reason

    assert asyncio.run(scenario()) == "not_own_order"
    assert [o.client_id for o in ex.sim.open_orders()] == [theirs]  # the sibling's order is untouched
    assert ex.mirror.orders() == []  # the mirror holds only our own orders


def test_after_a_stream_loss_the_mirror_is_confirmed_and_what_vanished_is_placed_again(tmp_path):
    from gridctl.store.db import open_database
    from gridctl.store.writer import BufferedWriter
    from gridctl.worker.loop import WorkerLoop
    from gridctl.worker.recorder import Recorder

    s = strategy("long", "100", "103", 3, amount="1")
    tag = clientid.strategy_tag(s.name)
    data = candles([("102.50", "102.60", "102.40", "102.50")] * 3, R)
    ex = InMemoryExchange(R, data, D(10000), 1, owns=lambda cid: clientid.belongs("binance", tag, cid))
    params = grid_params(R, s, ex.price())
    engine = GridEngine(R, build_grid(R, params, ex.price()), engine_config(R, s, account(), params))
    writer = BufferedWriter(open_database(tmp_path), strategy=s.name)
    loop = WorkerLoop(s.name, engine, ex, Recorder(writer, engine, s.name), D(10000), clock=ex.clock)

    async def scenario():
        await loop.sync()
        lost = ex.sim.open_orders()[0]
        ex.lose_stream(venue_cancels=(lost.client_id,))
        for ev in await ex.events():
            loop.apply(ev)
        await loop.reconcile()  # due at once after "restored"
        await loop.sync()
        return lost

    lost = asyncio.run(scenario())
    book = ex.sim.open_orders()
    assert len(book) == 3 and lost.client_id not in {o.client_id for o in book}
    assert {o.price for o in book} == {10000, 10100, 10200}  # the vanished level is back, under a new id
    assert [m for m in (e["message"] for e in writer.recent_events()) if "stream" in m] == [
        "exchange stream lost: connection reset", "exchange stream restored"]


def test_initial_position_never_buys_what_an_unpaired_adopted_lot_already_holds():
    """A kept position of 1.5 lots on a long grid whose start would hold 7: the adoption puts
    one full lot on the nearest level and 0.5 unpaired; the initial position buys the rest,
    never a lot the unpaired part covers (it holds 7 lots or less, never 7.5)."""
    from backtest_helpers import strategy as strat

    s = strat("long", "100", "110", 10, amount="1", initial_position=True)
    params = grid_params(R, s, 10250)
    levels = build_grid(R, params, 10250)
    fresh = GridEngine(R, levels, engine_config(R, s, account(), params))
    wanted = sum(r.qty for r in fresh.opening_requests(10250))
    assert wanted == 70
    for kept in (15, 5, 25):
        e = GridEngine(R, levels, engine_config(R, s, account(), params))
        e.adopt(T, 1, kept, D("105"), 10250)
        bought = sum(r.qty for r in e.opening_requests(10250))
        assert wanted - 10 < kept + bought <= wanted, (kept, bought)
