"""The backtest driver: the fast (candle-skipping) mode gives exactly the reference mode's fills and
figures on real data, with funding and with a mark series; data loading and cutting."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from gridctl.config.model import MarginRatioConfig

from backtest_helpers import (
    BTC_1M, SOL_1M, XRP_1H_MARK, XRP_5M, XRP_8H_FUNDING, account, checked, real_data, strategy, venue_rules,
)
from gridctl.backtest import BacktestInputError, interval_of, load_market_data, prepare
from gridctl.backtest.summary import summarize
from gridctl.config import load
from gridctl.config.strategy import rules_for
from shared_data import require

D = Decimal
EXAMPLE = Path(__file__).resolve().parent.parent / "strategies.yaml.example"
SOL = venue_rules("SOL/USDT:USDT")
XRP = venue_rules("XRP/USDT:USDT")
BTC = venue_rules("BTC/USDT:USDT")
_data: dict = {}


def data(key: str):
    """Real data sets, loaded once per session."""
    if key not in _data:
        _data[key] = {
            "sol": lambda: real_data(SOL, SOL_1M),
            "xrp-funding": lambda: real_data(XRP, XRP_5M, funding=XRP_8H_FUNDING),
            "xrp-mark": lambda: real_data(XRP, XRP_5M, funding=XRP_8H_FUNDING, mark=XRP_1H_MARK),
            "btc": lambda: real_data(BTC, BTC_1M, rows=6_000),
        }[key]()
    return _data[key]


def both_modes(rules, s, acct, d, balance=None):
    """(fast, reference) finished backtests of the same strategy over the same data."""
    out = []
    for fast in (True, False):
        p = prepare(rules, s, acct, d, balance)
        bt = checked(p.backtest)
        bt.run(fast=fast)
        out.append((bt, summarize(bt, p.investment, p.interval_ms)))
    return out


def assert_same(fast, ref):
    (bf, ff), (br, fr) = fast, ref
    assert ff == fr
    assert bf.fills == br.fills
    assert bf.engine.trades == br.engine.trades
    assert bf.sim.liquidations == br.sim.liquidations
    # the reference really visited every candle (up to the stop)
    assert br.handled == len(br.data) or br.engine.status == "stopped"


@pytest.fixture(scope="module")
def example():
    return load(EXAMPLE)


@pytest.mark.parametrize("name, key", [
    ("sol-neutral", "sol"), ("sol-long", "sol"), ("xrp-short", "sol"),
    ("xrp-short", "xrp-funding"), ("xrp-short", "xrp-mark"),
])
def test_fast_equals_reference_for_the_example_strategies(example, name, key):
    s = example.strategies[name]
    acct = example.accounts[s.account]
    rules = rules_for(acct, s.symbol)
    if key == "sol" and rules.symbol != SOL.symbol:
        d = real_data(rules, SOL_1M)  # SOL prices in XRP's ticks: xrp-short's 1.26 stop fires at once
    else:
        d = data(key)
    fast, ref = both_modes(rules, s, acct, d)
    assert_same(fast, ref)
    figures, bt = fast[1], fast[0]
    if key != "sol" or name != "xrp-short":
        assert figures["fills"] > 10
    assert bt.handled < len(d) / 5  # the fast mode skips most candles in Python
    if key == "xrp-mark":
        plain = both_modes(rules, s, acct, data("xrp-funding"))[0][1]
        assert figures["unrealized_pnl"] != plain["unrealized_pnl"]  # the mark series is used


def test_example_figures_on_the_bundled_sol_data(example):
    """What the README example prints: sol-neutral is stopped by its 5 % stop as SOL falls to 140."""
    s = example.strategies["sol-neutral"]
    acct = example.accounts[s.account]
    p = prepare(SOL, s, acct, data("sol"))
    p.backtest.run()
    f = summarize(p.backtest, p.investment, p.interval_ms)
    assert f["stop_reason"] == "stop_loss" and f["final_position"] == 0
    assert f["candles"] == 4320 and f["start"] == "2024-08-01 00:00" and f["end"] == "2024-08-04 00:00"
    assert f["investment"] == D("500.00")
    assert f["realized_pnl"] == f["grid_profit"] + f["other_realized"]
    assert abs(f["total_pnl"] - (f["realized_pnl"] - f["fees"] + f["funding"] + f["unrealized_pnl"])) <= D("0.0002")


@pytest.mark.parametrize("spacing", ["arithmetic", "geometric"])
@pytest.mark.parametrize("mode", ["long", "short", "neutral"])
def test_fast_equals_reference_on_btc_for_each_mode_and_spacing(mode, spacing):
    s = strategy(mode, "43000", "48000", 25, symbol=BTC.symbol, spacing=spacing, leverage=5, amount="0.01",
                 max_position="0.08")
    fast, ref = both_modes(BTC, s, account(), data("btc"), D(100000))
    assert_same(fast, ref)
    assert fast[1]["cycles"] > 10


@pytest.mark.parametrize("key, rules, mode, lo, hi, amount, risk", [
    ("btc", BTC, "long", "43000", "48000", "0.05", dict(max_loss="40")),
    ("btc", BTC, "short", "43000", "48000", "0.05", dict(max_level_loss="15", on_stop="keep")),
    ("btc", BTC, "neutral", "43000", "48000", "0.05", dict(take_profit="30")),
    ("sol", SOL, "long", "150", "175", "2", dict(stop_loss_pct="3")),
    ("xrp-mark", XRP, "neutral", "1.00", "1.25", "100", dict(max_loss="30", take_profit_pct="5")),
], ids=["max_loss", "max_level_loss-keep", "take_profit", "stop_loss_pct", "mark-max_loss"])
def test_fast_equals_reference_when_money_and_price_stops_fire(key, rules, mode, lo, hi, amount, risk):
    s = strategy(mode, lo, hi, 20, symbol=rules.symbol, leverage=5, amount=amount, **risk)
    fast, ref = both_modes(rules, s, account(), data(key), D(100000))
    assert_same(fast, ref)
    assert fast[1]["stop_reason"] is not None


NO_MR = MarginRatioConfig(D(1), D(1), D(1))


@pytest.mark.parametrize("key, rules, mode, lo, hi, grids, amount, leverage, balance", [
    ("btc", BTC, "short", "46400", "47200", 4, "0.2", 150, "300"),  # BTC rises to 48080
    ("xrp-mark", XRP, "long", "1.00", "1.22", 20, "400", 50, "200"),  # liquidated at a fixed hourly mark
], ids=["btc-short", "xrp-long-mark"])
def test_fast_equals_reference_through_a_liquidation(key, rules, mode, lo, hi, grids, amount, leverage, balance):
    # margin-ratio stop at 1.0: nothing closes the grid before the venue liquidates it
    s = strategy(mode, lo, hi, grids, symbol=rules.symbol, leverage=leverage, amount=amount, margin_ratio=NO_MR)
    fast, ref = both_modes(rules, s, account(balance), data(key), D(balance))
    assert_same(fast, ref)
    bt = fast[0]
    assert len(bt.sim.liquidations) >= 1
    assert any(f.intent == "liquidation" and f.level is None and f.reduce_only for f in bt.fills)


@pytest.mark.parametrize("key, rules, mode, lo, hi, grids, amount, leverage, balance", [
    ("btc", BTC, "short", "46400", "47200", 4, "0.2", 150, "300"),
], ids=["btc-short"])
def test_margin_ratio_close_stops_before_the_venue_liquidates(key, rules, mode, lo, hi, grids, amount, leverage,
                                                              balance):
    """The same run as the liquidation above, with the default thresholds (warn 0.5, reduce
    0.75, close 0.95): the grid stops new entries, then closes before liquidation."""
    s = strategy(mode, lo, hi, grids, symbol=rules.symbol, leverage=leverage, amount=amount)
    fast, ref = both_modes(rules, s, account(balance), data(key), D(balance))
    assert_same(fast, ref)
    bt = fast[0]
    assert bt.engine.stop_reason == "margin_ratio" and bt.sim.liquidations == []
    assert bt.sim.position == 0 and any(f.intent == "close" for f in bt.fills)
    risk = [ev.message for ev in bt.events if getattr(ev, "kind", None) == "risk"]
    # at 150x one entry fill takes the ratio from under 50 % to 83 %: straight to "no new entries"
    assert any("no new entries" in m for m in risk)


def test_fast_equals_reference_when_entries_are_rejected_for_margin():
    s = strategy("short", "46400", "47200", 8, symbol=BTC.symbol, leverage=50, amount="0.1")
    fast, ref = both_modes(BTC, s, account("800"), data("btc"), D(800))
    assert_same(fast, ref)


# -- data ---------------------------------------------------------------------------------
def test_from_and_to_cut_the_candles_half_open():
    require(SOL_1M)
    full = load_market_data(SOL, SOL_1M)
    start, end = int(full.ts[100]), int(full.ts[160])
    cut = load_market_data(SOL, SOL_1M, start_ms=start, end_ms=end)
    assert len(cut) == 60 and cut.ts[0] == start and cut.ts[-1] == full.ts[159]
    assert list(cut.close) == list(full.close[100:160])
    assert interval_of(cut) == 60_000 and interval_of(data("xrp-funding")) == 300_000


def test_an_empty_window_is_an_input_error_naming_the_file():
    require(SOL_1M)
    with pytest.raises(BacktestInputError, match="gridtradingbot_SOLUSDT_1m.csv"):
        load_market_data(SOL, SOL_1M, start_ms=0, end_ms=1)


def test_prices_are_read_onto_the_tick_grid_without_float_noise():
    d = data("xrp-funding")
    assert d.open[0] == 11893 and d.close[0] == 11941  # 1.1893 / 1.1941 at tick 0.0001
    assert (d.low <= d.open).all() and (d.open <= d.high).all() and (d.low <= d.close).all()
    # the file has 91 rows to 2021-12-18; the 12 from 11-18 00:00 to 11-21 16:00 fall inside the candles
    assert len(d.funding_ts) == 12 and d.funding_rates[0] == D("0.0001")
    assert d.funding_ts[0] == 1637193600017 and d.funding_ts[-1] < d.ts[-1] + 300_000
    # and the series starts 3 days after the first candle, which is reported
    assert [w.split(";")[0] for w in d.warnings] == [
        "funding series freqtrade_XRPUSDT-PERP_8h.csv starts 2021-11-18 00:00 UTC, 3 days after the candles"
        " (2021-11-15 00:00 UTC)"]


def test_progress_reports_reach_the_end():
    s = strategy("neutral", "150", "175", 10, symbol=SOL.symbol, amount="1")
    p = prepare(SOL, s, account(), data("sol"))
    seen = []
    p.backtest.run(progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (4320, 4320)
    assert all(a <= b for (a, _), (b, _) in zip(seen, seen[1:]))
