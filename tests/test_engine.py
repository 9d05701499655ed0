"""The grid engine against the simulated exchange over hand-written candles, checked by hand:
fills, grid profit, fees and PnL; funding sign and timing; liquidation; stops; trigger.

Market: tick 0.01, step 0.1, maker fee 0.02 %, taker 0.05 % (tests/backtest_helpers.toy_rules).
Within a candle the price goes open-low-high-close when close >= open, else open-high-low-close.
Every scenario runs in both the fast (candle-skipping) and the reference (per-candle) mode.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from gridctl.config.model import MarginRatioConfig
from backtest_helpers import (
    MIN, T0, Recorder, account, candles, checked, fill_rows, run_strategy, strategy, toy_rules,
)
from gridctl.backtest import prepare
from gridctl.backtest.summary import summarize

D = Decimal
R = toy_rules()
MODES = pytest.mark.parametrize("fast", [True, False], ids=["fast", "reference"])


def figures(bt) -> dict:
    f = summarize(bt, D(1), MIN)
    return {k: f[k] for k in ("fills", "cycles", "grid_profit", "other_realized", "fees", "funding",
                              "unrealized_pnl", "total_pnl", "max_drawdown", "max_position", "final_position",
                              "stop_reason")}


# A 3-level long grid: lines 100, 101, 102, 103; 1.0 per level; buys at 100/101/102, each sells one line up.
LONG_PATH = [
    ("102.50", "102.60", "102.40", "102.50"),  # 0: buys rest at 102, 101, 100; nothing fills
    ("102.50", "102.55", "101.50", "101.60"),  # 1: falls through 102: L2 buys, its sell at 103 rests
    ("101.60", "101.70", "100.90", "101.00"),  # 2: falls through 101: L1 buys, its sell at 102 rests
    ("101.00", "102.10", "100.95", "102.05"),  # 3: rises (low first): L1 sells at 102 (+1.00), L1 buy at 101 rests again
    ("102.05", "103.20", "101.95", "103.10"),  # 4: low 101.95 misses 101; L2 sells at 103 (+1.00); buy 102 rests again
    ("103.10", "103.15", "99.50", "99.80"),    # 5: falls: L2, L1, L0 buy at 102, 101, 100
]


@MODES
def test_long_grid_by_hand(fast):
    bt = run_strategy(R, strategy("long", "100", "103", 3, amount="1"), candles(LONG_PATH, R), fast=fast)
    # (minute, level, side, intent, price, qty)
    assert fill_rows(bt) == [
        (1, 2, "buy", "entry", "102.00", "1.0"),
        (2, 1, "buy", "entry", "101.00", "1.0"),
        (3, 1, "sell", "exit", "102.00", "1.0"),
        (4, 2, "sell", "exit", "103.00", "1.0"),
        (5, 2, "buy", "entry", "102.00", "1.0"),
        (5, 1, "buy", "entry", "101.00", "1.0"),
        (5, 0, "buy", "entry", "100.00", "1.0"),
    ]
    # maker fee = price x 1.0 x 0.0002: 0.0204 + 0.0202 + 0.0204 + 0.0206 + 0.0204 + 0.0202 + 0.0200
    assert [f.fee for f in bt.fills] == [D(x) for x in ("0.0204", "0.0202", "0.0204", "0.0206", "0.0204",
                                                        "0.0202", "0.0200")]
    assert [f.reduce_only for f in bt.fills] == [False, False, True, True, False, False, False]
    assert [(t.level, t.profit, t.fees) for t in bt.engine.trades] == [
        (1, D("1.00"), D("0.0406")), (2, D("1.00"), D("0.0410"))]
    # grid profit 2 x 1.00; unrealized at the last close 99.80: -2.20 - 1.20 - 0.20 = -3.60
    # total = 2.00 - 0.1422 - 3.60 = -1.7422
    # equity at closes: 0, -0.4204, -1.0406, 0.9890, 1.9184 (peak), -1.7422: drawdown 3.6606
    assert figures(bt) == {
        "fills": 7, "cycles": 2, "grid_profit": D("2.0000"), "other_realized": D("0.0000"), "fees": D("0.1422"),
        "funding": D("0.0000"), "unrealized_pnl": D("-3.6000"), "total_pnl": D("-1.7422"),
        "max_drawdown": D("3.6606"), "max_position": D("3.0"), "final_position": D("3.0"), "stop_reason": None}
    # each level's exit is resting one line up
    assert sorted((o.side.value, o.price, o.qty, o.reduce_only) for o in bt.sim.open_orders()) == [
        ("sell", 10100, 10, True), ("sell", 10200, 10, True), ("sell", 10300, 10, True)]


@MODES
def test_short_grid_by_hand(fast):
    # lines 100..103; sells at 101/102/103, each buys back one line down
    path = [
        ("100.50", "100.60", "100.40", "100.50"),  # 0: nothing
        ("100.50", "101.50", "100.45", "101.40"),  # 1: rises through 101: L1 sells
        ("101.40", "102.10", "101.30", "102.00"),  # 2: L2 sells at 102
        ("102.00", "102.05", "100.90", "100.95"),  # 3: falls: L2 buys back at 101 (+1.00)
        ("100.95", "101.05", "99.80", "99.90"),    # 4: high 101.05 hits nothing (L1 holds); L1 buys at 100 (+1.00)
        ("99.90", "103.50", "99.85", "103.20"),    # 5: rises: L1, L2, L3 sell at 101, 102, 103
    ]
    bt = run_strategy(R, strategy("short", "100", "103", 3, amount="1"), candles(path, R), fast=fast)
    assert fill_rows(bt) == [
        (1, 1, "sell", "entry", "101.00", "1.0"),
        (2, 2, "sell", "entry", "102.00", "1.0"),
        (3, 2, "buy", "exit", "101.00", "1.0"),
        (4, 1, "buy", "exit", "100.00", "1.0"),
        (5, 1, "sell", "entry", "101.00", "1.0"),
        (5, 2, "sell", "entry", "102.00", "1.0"),
        (5, 3, "sell", "entry", "103.00", "1.0"),
    ]
    # fees 0.0202 + 0.0204 + 0.0202 + 0.0200 + 0.0202 + 0.0204 + 0.0206 = 0.1420
    # unrealized at 103.20: (101 - 103.2) + (102 - 103.2) + (103 - 103.2) = -3.60
    # total = 2.00 - 0.1420 - 3.60 = -1.7420; equity peak 1.9192 (k4) - (-1.7420) = 3.6612
    assert figures(bt) == {
        "fills": 7, "cycles": 2, "grid_profit": D("2.0000"), "other_realized": D("0.0000"), "fees": D("0.1420"),
        "funding": D("0.0000"), "unrealized_pnl": D("-3.6000"), "total_pnl": D("-1.7420"),
        "max_drawdown": D("3.6612"), "max_position": D("3.0"), "final_position": D("-3.0"), "stop_reason": None}


@MODES
def test_neutral_grid_by_hand(fast):
    # lines 100..104 from 102: line 102 stays empty; buys at 100/101 (exit +1 line), sells at 103/104 (exit -1 line)
    path = [
        ("102.00", "102.10", "101.90", "102.00"),  # 0: nothing
        ("102.00", "103.20", "100.80", "100.90"),  # 1: up: L3 sells 103; down: L3 buys back at 102 (+1.00), L1 buys 101
        ("100.90", "102.50", "99.90", "102.40"),   # 2: down: L0 buys 100; up: L0 sells 101 (+1.00), L1 sells 102 (+1.00)
    ]
    bt = run_strategy(R, strategy("neutral", "100", "104", 4, amount="1"), candles(path, R), fast=fast)
    assert fill_rows(bt) == [
        (1, 3, "sell", "entry", "103.00", "1.0"),
        (1, 3, "buy", "exit", "102.00", "1.0"),
        (1, 1, "buy", "entry", "101.00", "1.0"),
        (2, 0, "buy", "entry", "100.00", "1.0"),
        (2, 0, "sell", "exit", "101.00", "1.0"),
        (2, 1, "sell", "exit", "102.00", "1.0"),
    ]
    # fees 0.0206 + 0.0204 + 0.0202 + 0.0200 + 0.0202 + 0.0204 = 0.1218; total 3.00 - 0.1218;
    # L1 and L0 both hold 1.0 at candle 2's low: |position| peaks at 2.0
    # equity at closes 0, 0.8388, 2.8782: never below a peak
    assert figures(bt) == {
        "fills": 6, "cycles": 3, "grid_profit": D("3.0000"), "other_realized": D("0.0000"), "fees": D("0.1218"),
        "funding": D("0.0000"), "unrealized_pnl": D("0.0000"), "total_pnl": D("2.8782"),
        "max_drawdown": D("0.0000"), "max_position": D("2.0"), "final_position": D("0.0"), "stop_reason": None}
    # flat again: all four entries rest, nothing else
    assert sorted((o.side.value, o.price) for o in bt.sim.open_orders()) == [
        ("buy", 10000), ("buy", 10100), ("sell", 10300), ("sell", 10400)]


@MODES
def test_initial_position_buys_the_levels_above_the_start_at_market(fast):
    path = [("101.50", "101.60", "101.40", "101.50"), ("101.50", "102.10", "101.45", "102.05")]
    s = strategy("long", "100", "103", 3, amount="1", initial_position=True)
    bt = run_strategy(R, s, candles(path, R), fast=fast)
    # L2's entry (102) is above the start 101.50: bought at market, taker 101.50 x 0.0005 = 0.05075
    assert fill_rows(bt) == [(0, 2, "buy", "entry", "101.50", "1.0")]
    assert bt.fills[0].fee == D("0.05075")
    assert sorted((o.side.value, o.price) for o in bt.sim.open_orders()) == [
        ("buy", 10000), ("buy", 10100), ("sell", 10300)]


# -- funding ------------------------------------------------------------------------------
def with_funding(data, events, marks=None):
    data.funding_ts = np.array([ts for ts, _ in events], dtype=np.int64)
    data.funding_rates = [D(r) for _, r in events]
    if marks is not None:
        data.mark_ts = np.array([ts for ts, _ in marks], dtype=np.int64)
        data.mark_close = np.array([R.price_to_ticks(D(p)) for _, p in marks], dtype=np.int64)
    return data


def funded_run(mode, path, events, fast, marks=None):
    s = strategy(mode, "100", "103", 3, amount="1")
    p = prepare(R, s, account(), with_funding(candles(path, R), events, marks), D(10000))
    bt = checked(p.backtest)
    rec = Recorder().attach(bt)
    bt.run(fast=fast)
    return bt, rec.payments


@MODES
def test_a_long_pays_a_positive_rate_on_the_position_held_at_the_funding_instant(fast):
    events = [
        (T0 + 90_000, "0.0003"),    # half-way through candle 1: where its path is at that instant
        (T0 + 4 * MIN, "-0.0002"),  # exactly at candle 4: settled at its open 102.05
        (T0 + 6 * MIN, "0.01"),     # after the last candle: never settled
    ]
    bt, paid = funded_run("long", LONG_PATH, events, fast)
    # candle 1 falls: path 102.50 -> 102.55 -> 101.50 -> 101.60, 120 ticks long; half-way (60 ticks)
    # is 102.00, where L2's buy fills: -1.0 x 102.00 x 0.0003 = -0.0306 (a long pays), stamped at
    # the funding instant. At candle 4 (L2 still held, L1 sold): -1.0 x 102.05 x -0.0002 = +0.02041
    assert [(p.ts, p.mark, p.position, p.amount) for p in paid] == [
        (T0 + 90_000, 10200, 10, D("-0.0306")), (T0 + 4 * MIN, 10205, 10, D("0.02041"))]
    assert bt.engine.ledger.funding == D("-0.01019") == bt.sim.funding
    fig = figures(bt)
    # the same fills as without funding; the total moves by exactly the funding: -1.7422 - 0.01019
    assert len(bt.fills) == 7 and fig["grid_profit"] == D("2.0000")
    assert (fig["funding"], fig["total_pnl"]) == (D("-0.0102"), D("-1.7524"))


@MODES
def test_a_short_receives_a_positive_rate(fast):
    path = [("100.50", "100.60", "100.40", "100.50"), ("100.50", "101.50", "100.45", "101.40"),
            ("101.40", "101.45", "101.30", "101.35")]
    bt, paid = funded_run("short", path, [(T0 + 2 * MIN, "0.0003")], fast)
    # short 1.0 (L1 sold at 101 in candle 1); candle 2 opens at 101.40: -(-1.0) x 101.40 x 0.0003 = +0.03042
    assert [(p.position, p.amount) for p in paid] == [(-10, D("0.030420"))]
    assert bt.engine.ledger.funding == D("0.03042")


@MODES
def test_nothing_is_paid_while_flat(fast):
    bt, paid = funded_run("long", LONG_PATH[:2], [(T0, "0.5"), (T0 + 30_000, "0.5")], fast)
    assert paid == [] and bt.engine.ledger.funding == 0  # the first fill comes later in candle 1


@MODES
def test_funding_uses_the_mark_known_at_its_instant_never_a_later_close(fast):
    # one-minute mark candles (closes only): 102.40 closes at T0 + 1 min, 101.70 at + 2 min, 90.00 at + 3 min
    marks = [(T0, "102.40"), (T0 + MIN, "101.70"), (T0 + 2 * MIN, "90.00")]
    bt, paid = funded_run("long", LONG_PATH, [(T0 + 90_000, "0.0001")], fast, marks)
    # at T0 + 90 s the mark candle of minute 1 is still open: its close 101.70 is not known yet;
    # the mark then is the previous close 102.40, on the 1.0 held there: -1.0 x 102.40 x 0.0001
    assert [(p.mark, p.amount) for p in paid] == [(10240, D("-0.010240"))]
    # unrealized uses the mark too: 90.00 is known from minute 3 on;
    # lots at 102, 101, 100: (90 - 102) + (90 - 101) + (90 - 100) = -33.00
    assert figures(bt)["unrealized_pnl"] == D("-33.0000")


# -- liquidation --------------------------------------------------------------------------
@MODES
def test_a_highly_leveraged_long_is_liquidated_and_left_flat(fast):
    path = [("102.50", "102.60", "102.40", "102.50"),
            ("102.50", "102.55", "90.00", "91.00"),    # crash: all three buys fill, then the margin runs out
            ("91.00", "100.80", "90.50", "100.50")]    # recovery: nothing left to trade with
    no_margin_stop = MarginRatioConfig(D(2), D(2), D(2))  # the venue liquidates at ratio 1
    s = strategy("long", "100", "103", 3, amount="1", leverage=20, margin_ratio=no_margin_stop)
    bt = run_strategy(R, s, candles(path, R), balance="16", fast=fast)
    # wallet 16 - maker fees 0.0606 = 15.9394; long 3.0 from 303.00; maintenance 0.5 %:
    # liquidated when 15.9394 + 3M - 303 <= 0.015 M, i.e. M <= 96.1677: at the tick 96.16
    assert fill_rows(bt) == [
        (1, 2, "buy", "entry", "102.00", "1.0"),
        (1, 1, "buy", "entry", "101.00", "1.0"),
        (1, 0, "buy", "entry", "100.00", "1.0"),
        (1, None, "sell", "liquidation", "96.16", "3.0"),
    ]
    liq = bt.fills[-1]
    assert liq.reduce_only and liq.fee == D("0.144240")  # taker: 3 x 96.16 x 0.0005
    assert bt.sim.position == 0 and bt.engine.ledger.position == 0
    assert len(bt.sim.liquidations) == 1 and bt.sim.liquidations[0].position == 30
    # the grid stops there: no re-entry on what is left of the margin (candle 3 trades nothing)
    assert bt.engine.stop_reason == "liquidation" and bt.sim.open_orders() == []
    # realized against the levels' lots: 3 x 96.16 - 303 = -14.52, not grid profit
    fig = figures(bt)
    assert (fig["grid_profit"], fig["other_realized"], fig["total_pnl"]) == (
        D("0.0000"), D("-14.5200"), D("-14.7248"))
    assert bt.sim.balance == D("16") + D("-14.72484")
    assert bt.engine.trades == []


@MODES
def test_the_default_margin_ratio_closes_a_leveraged_long_before_the_venue_liquidates_it(fast):
    path = [("102.50", "102.60", "102.40", "102.50"), ("102.50", "102.55", "90.00", "91.00")]
    s = strategy("long", "100", "103", 3, amount="1", leverage=20)
    bt = run_strategy(R, s, candles(path, R), balance="16", fast=fast)
    # the ratio is re-checked after every fill: after the third buy the walk halts where the
    # ratio reaches 95 %, three ticks before the liquidation at 96.16 (see the test above)
    assert fill_rows(bt)[3] == (1, None, "sell", "close", "96.19", "3.0")
    assert bt.engine.stop_reason == "margin_ratio" and bt.sim.liquidations == []


# -- stops ----------------------------------------------------------------------------------
STOP_PATH = [
    ("102.50", "102.60", "102.40", "102.50"),
    ("102.50", "102.55", "99.50", "99.80"),    # all three buys fill; the low 99.50 stays above 99
    ("99.80", "99.90", "98.50", "98.60"),      # the low 98.50 crosses 99
    ("98.60", "103.50", "98.55", "103.40"),    # a running grid would sell all three here
]


def stop_run(fast, **risk):
    return run_strategy(R, strategy("long", "100", "103", 3, amount="1", **risk), candles(STOP_PATH, R), fast=fast)


BUYS = [(1, 2, "buy", "entry", "102.00", "1.0"), (1, 1, "buy", "entry", "101.00", "1.0"),
        (1, 0, "buy", "entry", "100.00", "1.0")]


@MODES
@pytest.mark.parametrize("risk", [dict(stop_loss_price="99"), dict(stop_loss_pct="1")],
                         ids=["stop_loss_price", "stop_loss_pct"])  # 1 % below 100 is 99 too
def test_a_price_stop_cancels_everything_and_closes_the_position(fast, risk):
    bt = stop_run(fast, **risk)
    rows = fill_rows(bt)
    assert rows[:3] == BUYS and len(rows) == 4
    minute, level, side, intent, price, qty = rows[3]
    assert (minute, level, side, intent, qty) == (2, None, "sell", "close", "3.0")
    assert D("98.50") <= D(price) <= D("99.00")  # at or beyond the stop, never better than the market
    assert bt.fills[3].reduce_only
    assert bt.engine.stop_reason == "stop_loss" and bt.engine.status == "stopped"
    assert bt.sim.open_orders() == [] and bt.sim.position == 0 and bt.engine.ledger.position == 0
    fig = figures(bt)
    assert fig["final_position"] == 0 and fig["stop_reason"] == "stop_loss" and fig["grid_profit"] == 0
    # the close realizes 3 x price - 303 as other realized; its taker fee is 3 x price x 0.0005
    px = D(price)
    assert bt.engine.ledger.other_realized == 3 * px - 303
    assert bt.engine.ledger.fees == D("0.0606") + 3 * px * D("0.0005")


def test_a_price_stop_closes_where_the_path_crosses_the_stop():
    bt = stop_run(True, stop_loss_price="99")
    assert fill_rows(bt)[3] == (2, None, "sell", "close", "99.00", "3.0")


@MODES
def test_on_stop_keep_leaves_the_position_and_no_orders(fast):
    bt = stop_run(fast, stop_loss_price="99", on_stop="keep")
    assert fill_rows(bt) == BUYS  # no close, and the resting exits are gone: candle 3 sells nothing
    assert bt.engine.stop_reason == "stop_loss"
    assert bt.sim.open_orders() == [] and bt.sim.position == 30 and bt.engine.ledger.position == 30
    fig = figures(bt)
    # kept 3.0 valued at the last close 103.40: 1.40 + 2.40 + 3.40
    assert (fig["final_position"], fig["unrealized_pnl"], fig["other_realized"]) == (
        D("3.0"), D("7.2000"), D("0.0000"))


@MODES
def test_max_loss_stops_on_total_pnl_and_flattens(fast):
    bt = stop_run(fast, max_loss="2")
    rows = fill_rows(bt)
    # re-checked after every fill: with 2.0 from 203 and 0.0406 fees, 2M - 203.0406 <= -2 from
    # M = 100.5203 on, so the walk halts at 100.52, before the third buy at 100.00 can fill
    assert rows == BUYS[:2] + [(1, None, "sell", "close", "100.52", "2.0")]
    assert bt.engine.stop_reason == "max_loss"
    assert bt.sim.open_orders() == [] and bt.sim.position == 0
    # other realized 2 x 100.52 - 203 = -1.96; fees 0.0406 + taker 2 x 100.52 x 0.0005 = 0.14112
    assert figures(bt)["total_pnl"] == D("-2.1011")


@MODES
def test_take_profit_money_stops_where_total_pnl_reaches_it(fast):
    bt = run_strategy(R, strategy("long", "100", "103", 3, amount="1", take_profit="1.5"), candles(LONG_PATH, R),
                      fast=fast)
    # after L1's cycle (grid profit 1.00) L2 holds 1.0 from 102.00; maker fees so far
    # 0.0002 * (102 + 101 + 102) = 0.061, so total(M) = 1.00 + (M - 102) - 0.061 >= 1.5 from M = 102.561:
    # the path's first tick there is 102.57, where the grid stops and closes as taker
    # (fee 0.0005 * 102.57 = 0.051285): total 1.00 + 0.57 - 0.112285 = 1.457715
    rows = fill_rows(bt)
    assert rows[-1] == (4, None, "sell", "close", "102.57", "1.0") and len(rows) == 4
    assert bt.engine.stop_reason == "take_profit" and bt.sim.open_orders() == []
    assert figures(bt)["total_pnl"] == D("1.4577")


@MODES
def test_take_profit_price_stops_the_grid(fast):
    bt = run_strategy(R, strategy("long", "100", "103", 3, amount="1", take_profit_price="103.10"),
                      candles(LONG_PATH, R), fast=fast)
    # candle 4 reaches 103.20 after L2's exit: grid profit 2.00 - fees 0.0816 = 1.9184, price >= 103.10;
    # flat, so nothing to close, and candle 5's fall buys nothing
    assert [r[0] for r in fill_rows(bt)] == [1, 2, 3, 4]
    assert bt.engine.stop_reason == "take_profit" and bt.sim.open_orders() == []
    assert figures(bt)["total_pnl"] == D("1.9184")


@MODES
def test_trigger_price_delays_the_start_until_crossed(fast):
    # start 102.50 above the trigger 101.50: the grid waits until the price comes down to it
    s = strategy("long", "100", "103", 3, amount="1", trigger_price="101.50")
    bt = run_strategy(R, s, candles(LONG_PATH, R), fast=fast)
    rows = fill_rows(bt)
    # candle 1 passes 102 before reaching the trigger: no buy there (the untriggered grid buys it)
    assert rows[0] == (2, 1, "buy", "entry", "101.00", "1.0")
    assert all(r[0] >= 2 for r in rows)
    assert bt.engine.status == "running"


@MODES
def test_a_trigger_that_is_never_crossed_never_trades(fast):
    s = strategy("long", "100", "103", 3, amount="1", trigger_price="99.00")
    bt = run_strategy(R, s, candles(LONG_PATH[:5], R), fast=fast)
    assert bt.fills == [] and bt.sim.open_orders() == [] and bt.engine.status == "waiting"


@MODES
def test_a_trigger_above_the_start_waits_for_the_price_to_rise(fast):
    path = [("101.00", "101.10", "100.90", "101.00"), ("101.00", "101.20", "100.40", "101.10"),
            ("101.10", "102.30", "101.05", "102.20"), ("102.20", "102.25", "100.50", "100.60")]
    s = strategy("long", "100", "103", 3, amount="1", trigger_price="102.00")
    bt = run_strategy(R, s, candles(path, R), fast=fast)
    # candle 1 dips to 100.40 before the trigger: no buy at 101; candle 2 crosses 102 and the grid starts;
    # candle 3 falls from 102.20: buys at 102 and 101
    assert fill_rows(bt) == [(3, 2, "buy", "entry", "102.00", "1.0"), (3, 1, "buy", "entry", "101.00", "1.0")]


def test_margin_ratio_thresholds_warn_then_stop_entries_then_close():
    from gridctl.core.engine import EngineConfig, GridEngine
    from gridctl.core.grid import LevelSpec, Mode, Side

    levels = [LevelSpec(0, Side.BUY, 10000, 10100, 10), LevelSpec(1, Side.BUY, 9900, 10000, 10)]
    e = GridEngine(R, levels, EngineConfig(Mode.LONG, 9900, 10100,
                                           margin_ratio=(D("0.5"), D("0.75"), D("0.95"))))
    assert len(e.desired(10050)) == 2  # both entries rest below 100.50
    assert e.on_price(10050, margin_ratio=D("0.4")) == []
    warned = e.on_price(10050, margin_ratio=D("0.6"))
    assert [ev.kind for ev in warned] == ["risk"] and "60.0%" in warned[0].message
    assert e.on_price(10050, margin_ratio=D("0.65")) == []  # once per crossing
    assert "no new entries" in e.on_price(10050, margin_ratio=D("0.8"))[0].message
    assert e.desired(10050) == []  # entries off (exits would stay: nothing held here)
    assert "back to" in e.on_price(10050, margin_ratio=D("0.3"))[0].message
    assert len(e.desired(10050)) == 2
    e.on_price(10050, margin_ratio=D("0.96"))
    assert e.status == "stopping" and e.stop_reason == "margin_ratio"
