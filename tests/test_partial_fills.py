"""Partly filled entries (issue 9, point 2): the level keeps its one entry order and rests an
exit for what filled; after `partial_fill_timeout` the rest is cancelled and the level goes on
with the filled quantity; a late fill of the cancelled rest grows the exit, never a second entry."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from backtest_helpers import account, strategy, toy_rules
from gridctl.config.strategy import engine_config, grid_params
from gridctl.core.driver import Driver
from gridctl.core.engine import GridEngine
from gridctl.core.fills import Fill, PriceUpdate
from gridctl.core.grid import Side
from gridctl.core.orders import Cancel, Intent, OpenOrder
from gridctl.core.plan import build_grid

D = Decimal
R = toy_rules()
T = 1_700_000_000_000
MIN = 60_000
START = 10250  # 102.50: long grid 100..103, entries at 100, 101, 102 (1.0 = 10 steps each)


class Book:
    """A perfect venue for one driver: what it placed rests, what it cancelled is gone."""

    def __init__(self, d: Driver):
        self.d = d
        self.orders: dict[object, OpenOrder] = {}
        self.version = 0
        self.trades = 0

    def step(self, now: int, market: int = START) -> list:
        self.version += 1
        actions, self.events = self.d.actions(now, market, self.version, lambda: list(self.orders.values()))
        for a in actions:
            if isinstance(a, Cancel):
                del self.orders[a.order.client_id]
                self.d.on_cancelled(a.order)
            else:
                r = a.request
                self.orders[r.client_id] = OpenOrder(r.level, r.intent, r.side, r.price, r.qty, r.reduce_only,
                                                     r.client_id)
        return actions

    def at(self, level: int, intent: Intent) -> list[OpenOrder]:
        return [o for o in self.orders.values() if o.level == level and o.intent is intent]

    def fill(self, o: OpenOrder, qty: int, ts: int) -> None:
        """The venue fills `qty` of a resting order (the rest keeps resting)."""
        self.trades += 1
        self.d.on_fill(Fill(ts, o.client_id, "o", o.side, o.price, qty, D("0.001"), trade_id=f"t{self.trades}"))
        if qty >= o.qty:
            del self.orders[o.client_id]
        else:
            self.orders[o.client_id] = replace(o, qty=o.qty - qty)


def make(mode: str = "long", timeout_ms=600_000, hedge: bool = False, **kw) -> Driver:
    s = replace(strategy(mode, "100", "103", 3, amount="1", **kw), partial_fill_timeout_ms=timeout_ms)
    acc = replace(account(), position_mode="hedge") if hedge else account()
    params = grid_params(R, s, START)
    return Driver(GridEngine(R, build_grid(R, params, START), engine_config(R, s, acc, params)))


def partly_filled(timeout_ms=600_000, qty: int = 4) -> tuple[Book, OpenOrder]:
    """Level 2's entry (BUY 1.0 @ 102) filled `qty` steps at T; the price moved back up to 102.60."""
    book = Book(make(timeout_ms=timeout_ms))
    book.step(T - 1000)
    (entry,) = book.at(2, Intent.ENTRY)
    book.fill(entry, qty, T)
    return book, entry


def kinds(actions) -> list[tuple]:
    return [("cancel" if isinstance(a, Cancel) else "place", (a.order if isinstance(a, Cancel) else a.request).level,
             (a.order if isinstance(a, Cancel) else a.request).intent.value,
             (a.order if isinstance(a, Cancel) else a.request).qty) for a in actions]


# -- before the timeout: one entry order, an exit for what filled ---------------------------------
def test_a_partly_filled_entry_keeps_its_order_and_its_exit_rests_for_the_filled_part():
    book, entry = partly_filled()
    assert kinds(book.step(T + 1, 10260)) == [("place", 2, "exit", 4)]  # the exit of the 0.4 held, at once
    assert [o.qty for o in book.at(2, Intent.ENTRY)] == [6]  # the same order, its rest still resting
    assert book.at(2, Intent.ENTRY)[0].client_id == entry.client_id
    assert book.step(T + 9 * MIN, 10270) == []  # nothing else, ever, while the rest may still fill


def test_a_rest_that_fills_in_time_completes_the_level_normally():
    book, _ = partly_filled()
    book.step(T + 1, 10260)
    (rest,) = book.at(2, Intent.ENTRY)
    book.fill(rest, 6, T + 5 * MIN)
    assert kinds(book.step(T + 5 * MIN + 1, 10260)) == [("cancel", 2, "exit", 4), ("place", 2, "exit", 10)]
    assert book.d.e.partials.since == {}
    assert book.step(T + 60 * MIN, 10260) == [] and book.events == []  # no timeout left to fire


# -- the timeout ---------------------------------------------------------------------------------------
def test_after_partial_fill_timeout_the_rest_is_cancelled_and_the_level_continues_with_the_filled_part():
    book, entry = partly_filled()
    book.step(T + 1, 10260)
    assert book.step(T + 10 * MIN - 1, 10260) == []
    assert kinds(book.step(T + 10 * MIN, 10260)) == [("cancel", 2, "entry", 6)]
    assert [e.message for e in book.events] == [
        "level 2 entry filled 0.4 of 1.0 in 10m: the rest is cancelled, the level continues with 0.4"]
    lv = book.d.e.levels[2]
    assert lv.held == 4 and lv.exiting
    assert [(o.qty, o.reduce_only) for o in book.at(2, Intent.EXIT)] == [(4, True)]  # sized to the fill
    assert book.at(2, Intent.ENTRY) == [] and book.step(T + 11 * MIN, 10150) == []  # no new entry, even below


def test_the_timeout_counts_from_the_first_partial_fill():
    book, _ = partly_filled(qty=2)
    (rest,) = book.at(2, Intent.ENTRY)
    book.fill(rest, 3, T + 7 * MIN)
    assert book.step(T + 9 * MIN, 10260) and book.step(T + 10 * MIN - 1, 10260) == []
    assert kinds(book.step(T + 10 * MIN, 10260)) == [("cancel", 2, "entry", 5)]


def test_a_price_update_carrying_its_time_also_ends_the_wait():
    book, _ = partly_filled()
    book.step(T + 1, 10260)
    events = book.d.on_price(PriceUpdate(T + 10 * MIN, 10260, 10260))
    assert [e.data["held"] for e in events] == ["0.4"] and book.d.e.levels[2].exiting
    assert kinds(book.step(T + 10 * MIN + 1, 10260)) == [("cancel", 2, "entry", 6)]


@pytest.mark.parametrize("timeout_ms", [None])
def test_with_the_timeout_off_the_rest_rests_until_it_fills(timeout_ms):
    book, _ = partly_filled(timeout_ms=timeout_ms)
    book.step(T + 1, 10260)
    assert book.step(T + 7 * 24 * 60 * MIN, 10260) == [] and book.d.wake_at is None
    assert [o.qty for o in book.at(2, Intent.ENTRY)] == [6]


def test_the_driver_wakes_at_the_deadline_so_a_backtest_stops_at_that_candle():
    book, _ = partly_filled()
    book.step(T + 1, 10260)
    assert book.d.wake_at == T + 10 * MIN


def test_a_paused_grid_gives_up_the_rest_when_it_resumes():
    book, _ = partly_filled()
    book.step(T + 1, 10260)
    book.d.e.pause()
    assert book.step(T + 10 * MIN, 10260) == []  # paused: orders stay as they are
    book.d.e.resume()
    assert kinds(book.step(T + 10 * MIN + 1, 10260)) == [("cancel", 2, "entry", 6)]


# -- races and what comes after ---------------------------------------------------------------------------
def test_a_late_fill_of_the_cancelled_rest_grows_the_exit_and_places_no_second_entry():
    book, entry = partly_filled()
    book.step(T + 1, 10260)
    book.step(T + 10 * MIN, 10260)  # the rest is cancelled ...
    # ... but the venue filled 0.2 of it before the cancel arrived: that fill comes now
    book.d.on_fill(Fill(T + 10 * MIN + 5, entry.client_id, "o", Side.BUY, entry.price, 2, D("0.001"),
                        trade_id="late"))
    assert kinds(book.step(T + 10 * MIN + 6, 10260)) == [("cancel", 2, "exit", 4), ("place", 2, "exit", 6)]
    assert book.at(2, Intent.ENTRY) == [] and book.d.e.levels[2].held == 6


def test_a_late_fill_after_the_venue_expired_a_partial_entry_places_no_second_entry():
    """The same race without the timeout: the entry's end is reported before its last fill."""
    book, entry = partly_filled(timeout_ms=None)
    book.step(T + 1, 10260)
    del book.orders[entry.client_id]
    book.d.on_cancelled(replace(entry, qty=6))
    book.d.on_fill(Fill(T + 2, entry.client_id, "o", Side.BUY, entry.price, 2, D("0.001"), trade_id="late"))
    assert kinds(book.step(T + 3, 10260)) == [("cancel", 2, "exit", 4), ("place", 2, "exit", 6)]


def test_after_its_partial_exit_the_level_is_idle_and_its_next_entry_is_full_size():
    book, _ = partly_filled()
    book.step(T + 1, 10260)
    book.step(T + 10 * MIN, 10260)
    (exit_,) = book.at(2, Intent.EXIT)
    book.fill(exit_, 4, T + 20 * MIN)  # the price reached 103: the 0.4 is sold
    lv = book.d.e.levels[2]
    assert lv.held == 0 and not lv.exiting and len(book.d.e.trades) == 1
    assert book.d.e.trades[0].qty == D("0.4")
    assert kinds(book.step(T + 20 * MIN + 1, 10250)) == [("place", 2, "entry", 10)]
    assert book.d.e.partials.since == {}


def test_an_exit_that_completes_before_the_timeout_makes_the_entry_full_size_again():
    book, _ = partly_filled()
    book.step(T + 1, 10260)
    (exit_,) = book.at(2, Intent.EXIT)
    book.fill(exit_, 4, T + 3 * MIN)
    assert kinds(book.step(T + 3 * MIN + 1, 10250)) == [("cancel", 2, "entry", 6), ("place", 2, "entry", 10)]
    assert book.d.e.partials.since == {} and book.step(T + 30 * MIN, 10250) == []


def test_a_worker_rebuilt_from_its_stored_fills_gives_up_an_overdue_rest_at_once():
    book, entry = partly_filled()
    fresh = make()  # a restart: the engine is rebuilt from the fills in the store
    fresh.remember(f := Fill(T, entry.client_id, "o", Side.BUY, entry.price, 4, D("0.001"), trade_id="t1"))
    fresh.e.on_fill(f)
    rebuilt = Book(fresh)
    rebuilt.orders = dict(book.orders)  # the rest still rests on the venue
    assert kinds(rebuilt.step(T + 15 * MIN, 10260)) == [("cancel", 2, "entry", 6), ("place", 2, "exit", 4)]


def test_one_way_neutral_exits_of_partial_lots_stay_within_the_net_position():
    d = make("neutral")
    book = Book(d)
    book.step(T - 1000, START)
    (buy,) = book.at(1, Intent.ENTRY)  # BUY 1.0 @ 101 below the start price
    (sell,) = book.at(3, Intent.ENTRY)  # SELL 1.0 @ 103 above it
    book.fill(buy, 4, T)
    book.fill(sell, 3, T + 1)
    book.step(T + 2, START)
    book.step(T + 10 * MIN + 1, START)
    assert book.at(buy.level, Intent.ENTRY) == [] and book.at(sell.level, Intent.ENTRY) == []
    exits = {o.level: (o.side, o.qty, o.reduce_only) for o in book.orders.values() if o.intent is Intent.EXIT}
    # net +0.1: the SELL exit of the 0.4 long may only reduce 0.1 of it, so it is not reduceOnly
    assert exits == {buy.level: (Side.SELL, 4, False), sell.level: (Side.BUY, 3, False)}


def test_hedge_mode_exits_of_partial_lots_are_reduce_only():
    book = Book(make(hedge=True))
    book.step(T - 1000)
    (entry,) = book.at(2, Intent.ENTRY)
    book.fill(entry, 4, T)
    book.step(T + 1, 10260)
    book.step(T + 10 * MIN, 10260)
    assert [(o.qty, o.reduce_only) for o in book.at(2, Intent.EXIT)] == [(4, True)]


# -- the backtest: the same driver; the simulator fills resting orders whole ----------------------------
def test_the_backtest_fills_every_entry_whole_so_the_timeout_never_fires():
    from backtest_helpers import SOL_1M, real_data, run_strategy, venue_rules
    from shared_data import require
    require(SOL_1M)
    sol = venue_rules("SOL/USDT:USDT")
    data = real_data(sol, SOL_1M, rows=3000)
    for mode in ("long", "neutral"):
        s = replace(strategy(mode, "140", "170", 30, symbol="SOL/USDT:USDT", investment="3000"),
                    partial_fill_timeout_ms=1000)
        for fast in (True, False):
            bt = run_strategy(sol, s, data, fast=fast)
            sizes = {lv.spec.index: sol.qty(lv.spec.size) for lv in bt.engine.levels.values()}
            entries = [f for f in bt.fills if f.intent == "entry"]
            assert entries and all(f.qty == sizes[f.level] for f in entries), (mode, fast)
            assert not [e for e in bt.events if "the rest is cancelled" in e.message]


def test_a_backtest_whose_simulator_fills_part_applies_the_same_rule():
    """Were the simulator to leave a rest (as the local venue's partial fault does), the backtest's
    driver gives it up at the candle the timeout ends, as the worker does."""
    from backtest_helpers import MIN as BT_MIN, T0, candles
    from gridctl.backtest import prepare
    rows = [("102.50", "102.50", "102.50", "102.50"), ("102.50", "102.60", "102.00", "102.60")]
    rows += [("102.60", "102.70", "102.55", "102.60")] * 20
    data = candles(rows, R)
    s = replace(strategy("long", "100", "103", 3, amount="1"), partial_fill_timeout_ms=10 * BT_MIN)
    bt = prepare(R, s, account(), data, D(10000)).backtest
    taken, fired = [], []
    bt.sim.maker_take = lambda o: (taken.append(o.client_id), 4)[1] if not taken else o.remaining
    expire = bt.engine.expire_partials
    bt.engine.expire_partials = lambda now: (ev := expire(now)) and fired.append(now) or ev
    bt.run(fast=False)
    assert [(f.intent, str(f.qty)) for f in bt.fills] == [("entry", "0.4")]
    (gone,) = [e for e in bt.events if "the rest is cancelled" in e.message]
    assert gone.level == 2
    book = [(o.side.value, o.price, o.remaining) for o in bt.sim.open_orders() if o.price >= 10200]
    assert book == [("sell", 10300, 4)]  # the entry's rest is gone, the exit rests for the 0.4
    assert bt.engine.levels[2].held == 4 and bt.engine.levels[2].exiting
    assert fired == [T0 + 11 * BT_MIN] and bt.engine.partials.since == {}  # filled at T0 + 1 min


def test_a_fill_the_venue_reports_before_its_trade_is_booked_places_no_second_entry():
    """The timer's REST confirm sees level 2's entry filled 0.4 while the trade is still on its way
    over the stream: the level's order keeps what the ledger sees left of it (was: cancelled and
    replaced by a second entry of 1.0, which could then fill beside the late 0.4)."""
    from gridctl.exchange.base import ExchangeOrder, OrderMirror
    d = make()
    m = OrderMirror(d.e.is_ours)
    actions, _ = d.actions(T, START, m.version, lambda: d.own_orders(m.orders()))
    for a in actions:
        r = a.request
        m.put(ExchangeOrder(r.client_id, str(r.level), r.side, r.price, r.qty, 0))
    cid = next(a.request.client_id for a in actions if a.request.level == 2)
    m.confirm([o if o.client_id != cid else replace(o, filled=4) for o in m.orders()], T + 1)
    assert d.actions(T + 2, 10260, m.version, lambda: d.own_orders(m.orders()))[0] == []
    fill = Fill(T + 3, cid, "2", Side.BUY, 10200, 4, D("0.001"), trade_id="t1")
    m.apply(fill)
    d.on_fill(fill)
    actions, _ = d.actions(T + 4, 10260, m.version, lambda: d.own_orders(m.orders()))
    assert kinds(actions) == [("place", 2, "exit", 4)]
