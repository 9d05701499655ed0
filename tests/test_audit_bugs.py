"""The audit's money and semantics bugs, each on hand-made candles (both backtest modes).

Market: tick 0.01, step 0.1, maker fee 0.02 %, taker 0.05 % (backtest_helpers.toy_rules).
Within a candle the price goes open-low-high-close when close >= open, else open-high-low-close;
between a close and the next open nothing trades (a gap).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from backtest_helpers import MIN, candles, fill_rows, run_strategy, strategy, toy_rules
from gridctl.backtest.summary import summarize

D = Decimal
R = toy_rules()
MODES = pytest.mark.parametrize("fast", [True, False], ids=["fast", "reference"])


def total(bt) -> Decimal:
    return summarize(bt, D(1), MIN)["total_pnl"]


@MODES
def test_max_loss_is_rechecked_after_every_fill_of_the_walk(fast):
    # a long grid, 10 per level at 90..97; one candle falls from 97.60 to 91.00
    path = [("97.60", "97.70", "97.50", "97.60"), ("97.60", "97.60", "91.00", "91.00")]
    bt = run_strategy(R, strategy("long", "90", "98", 8, amount="10", max_loss="60"), candles(path, R), fast=fast)
    # after the buys at 97, 96, 95 (30 from 2880, maker fees 0.576): total(M) = 30 M - 2880.576 <= -60
    # from M = 94.0192 down: the first tick there is 94.01, before the 94 buy can fill
    assert fill_rows(bt) == [
        (1, 7, "buy", "entry", "97.00", "10.0"), (1, 6, "buy", "entry", "96.00", "10.0"),
        (1, 5, "buy", "entry", "95.00", "10.0"), (1, None, "sell", "close", "94.01", "30.0")]
    # -59.70 - 0.576 - taker 30 x 94.01 x 0.0005 (1.41015): the limit overshot only by the close's fee
    assert total(bt) == D("-61.6862") and bt.engine.stop_reason == "max_loss"


@MODES
def test_a_stop_crossed_in_a_gap_closes_at_the_first_traded_price_beyond_it(fast):
    # the stop is 85.50; the market closes at 99.10 and opens the next candle at 84.00
    path = [("99.50", "99.60", "98.95", "99.10"), ("84.00", "84.50", "83.90", "84.20")]
    s = strategy("long", "98", "100", 2, amount="1", stop_loss_price="85.50")
    bt = run_strategy(R, s, candles(path, R), fast=fast)
    rows = fill_rows(bt)
    # the 99 buy filled in candle 0; the 98 buy rests in the gap and fills at its own price;
    # no price between 99.10 and 84.00 ever traded, so the close is at the open, 84.00
    assert rows == [(0, 1, "buy", "entry", "99.00", "1.0"), (1, 0, "buy", "entry", "98.00", "1.0"),
                    (1, None, "sell", "close", "84.00", "2.0")]
    assert bt.engine.stop_reason == "stop_loss"


@MODES
def test_initial_position_is_capped_by_max_position(fast):
    # start 90.50 in a 90..100 long grid: the nine levels with entries 91..99 are "held at start"
    # (initial_position would buy all nine); max_position 5
    path = [("90.50", "90.60", "90.40", "90.50")]
    s = strategy("long", "90", "100", 10, amount="1", initial_position=True, max_position="5")
    bt = run_strategy(R, s, candles(path, R), fast=fast)
    buys = [r for r in fill_rows(bt) if r[3] == "entry"]
    # the five levels nearest the market (entries 91..95), at market, and nothing more
    assert [(r[1], r[4]) for r in buys] == [(1, "90.50"), (2, "90.50"), (3, "90.50"), (4, "90.50"),
                                            (5, "90.50")]
    assert bt.engine.ledger.position == 50


@MODES
def test_initial_position_waits_for_the_trigger_and_is_bought_there(fast):
    # a long grid 100..104 with a trigger at 102.00; the market starts above and falls through it
    path = [("103.50", "103.60", "103.40", "103.50"),   # above the trigger: nothing happens
            ("103.50", "103.55", "101.80", "101.90")]   # falls through 102.00 inside the candle
    s = strategy("long", "100", "104", 4, amount="1", initial_position=True, trigger_price="102.00")
    bt = run_strategy(R, s, candles(path, R), fast=fast)
    rows = fill_rows(bt)
    # nothing at the first candle; at the trigger the levels above 102 (entries 102, 103) are bought
    # at market where the path crossed it, 102.00
    assert [r for r in rows if r[0] == 0] == []
    assert rows[:2] == [(1, 2, "buy", "entry", "102.00", "1.0"), (1, 3, "buy", "entry", "102.00", "1.0")]


@MODES
def test_the_grid_is_placed_where_the_price_crosses_the_trigger(fast):
    # trigger 102.00; one candle falls from 103.50 through the trigger to 100.50
    path = [("103.50", "103.60", "103.40", "103.50"), ("103.50", "103.55", "100.50", "100.60")]
    s = strategy("long", "100", "104", 4, amount="1", trigger_price="102.00")
    bt = run_strategy(R, s, candles(path, R), fast=fast)
    # placed at 102.00, the buys at 101 (and not 102: at the market) rest and the fall fills 101;
    # placed at the candle's close (100.60) the 101 buy would never have rested
    assert fill_rows(bt) == [(1, 1, "buy", "entry", "101.00", "1.0")]
