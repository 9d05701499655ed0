"""The fast mode's integer event core (gridctl/backtest/fastcore.py) against the reference mode:
every fill (ts, side, price, qty, fee, level), every figure, every trade and event, the simulated
account and book, the per-candle PnL — on every bundled and shared data set, every mode and
spacing, with funding and marks, with stops, take-profit, max_position and leverage, and on
generated candle paths; and the core really plays the candles (the reference only where it
must)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from backtest_helpers import (
    BTC_1M, DATA, MIN, SOL_1M, T0, XRP_1H_MARK, XRP_5M, XRP_8H_FUNDING, account, real_data, strategy, toy_rules,
    venue_rules,
)
from gridctl.backtest import load_market_data, prepare
from gridctl.backtest.summary import summarize
from gridctl.config.model import MarginRatioConfig
from gridctl.sim.replay import MarketData

D = Decimal
BUNDLED = Path(__file__).resolve().parent.parent / "gridctl" / "data"
SOL, XRP, BTC = venue_rules("SOL/USDT:USDT"), venue_rules("XRP/USDT:USDT"), venue_rules("BTC/USDT:USDT")
NO_MR = MarginRatioConfig(D(1), D(1), D(1))
_cache: dict = {}


def data_set(key: str) -> tuple:
    """(rules, data) of a named data set, loaded once."""
    if key not in _cache:
        c = BUNDLED / "candles"
        _cache[key] = {
            "bundled-sol-1m": lambda: (SOL, load_market_data(SOL, c / "SOLUSDT_1m.csv")),
            "bundled-sol-1h": lambda: (SOL, load_market_data(SOL, c / "SOLUSDT_1h.csv")),
            "bundled-xrp-5m-funding": lambda: (XRP, load_market_data(
                XRP, c / "XRPUSDT_5m.csv", funding=BUNDLED / "funding" / "XRPUSDT_8h_funding.csv")),
            "shared-sol-1m": lambda: (SOL, real_data(SOL, SOL_1M)),
            "shared-sol-1h": lambda: (SOL, real_data(SOL, DATA / "candles" / "backtestingpy_SOLUSDT_1h.csv")),
            "shared-xrp-1h": lambda: (XRP, real_data(XRP, DATA / "candles" / "freqtrade_XRPUSDT-PERP_1h.csv")),
            "shared-xrp-5m-funding-mark": lambda: (XRP, real_data(XRP, XRP_5M, mark=XRP_1H_MARK,
                                                                  funding=XRP_8H_FUNDING)),
            "shared-xrp-5m-8h-mark": lambda: (XRP, real_data(
                XRP, XRP_5M, mark=DATA / "candles" / "freqtrade_XRPUSDT-PERP_8h_mark.csv", funding=XRP_8H_FUNDING)),
            "shared-btc-1m": lambda: (BTC, real_data(BTC, BTC_1M, rows=6_000)),
        }[key]()
    return _cache[key]


def grid_for(rules, data, mode, spacing="arithmetic", grids=16, **kw):
    """A strategy whose range covers the middle of the data's closes."""
    lo, hi = np.percentile(data.close, [12, 88])
    q = rules.tick
    lower, upper = (rules.price(int(v)).quantize(q) for v in (lo, hi))
    return strategy(mode, str(lower), str(upper), grids, symbol=rules.symbol, spacing=spacing, **kw)


def run_both(rules, s, data, balance="100000"):
    """(fast, reference) finished backtests and their figures."""
    out = []
    for fast in (True, False):
        p = prepare(rules, s, account(balance), data, D(balance))
        bt = p.backtest
        bt.run(fast=fast)
        out.append((bt, summarize(bt, p.investment, p.interval_ms, p.mode, p.leverage)))
    return out


def pnl_per_candle(bt) -> list:
    out = []
    for _, base, tv, x in bt.series.pnl_segments:
        out += [base + tv * int(v) for v in x]
    return out


def assert_same(rules, s, data, balance="100000"):
    """Everything a user can see of the fast run equals the reference run; returns the fast one."""
    (f, ff), (r, fr) = run_both(rules, s, data, balance)
    key = lambda x: (x.ts, x.side, x.price, x.qty, x.fee, x.level, x.intent, x.reduce_only)  # noqa: E731
    assert [key(x) for x in f.fills] == [key(x) for x in r.fills]
    assert ff == fr
    assert f.engine.trades == r.engine.trades
    assert f.events == r.events
    assert f.engine.levels == r.engine.levels
    assert f.engine.status == r.engine.status and f.stop_at == r.stop_at
    lf, lr = f.engine.ledger, r.engine.ledger
    assert (lf.grid_profit, lf.other_realized, lf.fees, lf.funding, lf.fills) == \
        (lr.grid_profit, lr.other_realized, lr.fees, lr.funding, lr.fills)
    lots = lambda led: {k: (v.sign, v.qty, v.cost) for k, v in led.lots.items() if v.qty}  # noqa: E731
    assert lots(lf) == lots(lr)
    assert f.sim.account.to_dict() == r.sim.account.to_dict()
    book = lambda bt: [(o.client_id, o.order_id, o.side, o.price, o.remaining, o.reduce_only)  # noqa: E731
                       for o in bt.sim.open_orders()]
    assert book(f) == book(r)
    assert f.sim.liquidations == r.sim.liquidations
    assert (f.sim.price, f.sim.mark) == (r.sim.price, r.sim.mark)
    sf, sr = f.series, r.series
    assert (sf.max_drawdown, sf.max_abs_position, sf.sum_abs_position, sf.candles_in_position) == \
        (sr.max_drawdown, sr.max_abs_position, sr.sum_abs_position, sr.candles_in_position)
    assert pnl_per_candle(f) == pnl_per_candle(r)
    return f, ff


DATA_SETS = ["bundled-sol-1m", "bundled-sol-1h", "bundled-xrp-5m-funding", "shared-sol-1m", "shared-sol-1h",
             "shared-xrp-1h", "shared-xrp-5m-funding-mark", "shared-xrp-5m-8h-mark", "shared-btc-1m"]


@pytest.mark.parametrize("spacing", ["arithmetic", "geometric"])
@pytest.mark.parametrize("mode", ["long", "short", "neutral"])
@pytest.mark.parametrize("key", DATA_SETS)
def test_fast_equals_reference_on_every_data_set_mode_and_spacing(key, mode, spacing):
    rules, data = data_set(key)
    s = grid_for(rules, data, mode, spacing, investment="2000", leverage=3)
    bt, figures = assert_same(rules, s, data)
    assert figures["fills"] > 5
    # the core played the run: the reference handled only the first candle and the fallbacks
    assert bt.stats["reference"] < max(10, len(data) // 50), bt.stats


@pytest.mark.parametrize("key, mode, risk", [
    ("shared-btc-1m", "long", dict(max_loss="25")),
    ("shared-btc-1m", "short", dict(max_level_loss="8", on_stop="keep")),
    ("shared-btc-1m", "neutral", dict(take_profit="12")),
    ("shared-sol-1m", "long", dict(stop_loss_pct="2")),
    ("shared-sol-1m", "short", dict(take_profit_pct="2")),
    ("shared-xrp-5m-funding-mark", "neutral", dict(max_loss="30", take_profit_pct="5")),
    ("bundled-xrp-5m-funding", "long", dict(stop_loss_price="1.05", take_profit_price="1.35")),
], ids=["max_loss", "max_level_loss-keep", "take_profit", "stop_loss_pct", "take_profit_pct", "mark-funding-money",
        "price-stops"])
def test_fast_equals_reference_with_stops_and_take_profit(key, mode, risk):
    rules, data = data_set(key)
    s = grid_for(rules, data, mode, investment="3000", leverage=5, **risk)
    assert_same(rules, s, data)


@pytest.mark.parametrize("key, mode, kw, balance", [
    ("shared-btc-1m", "neutral", dict(investment="2000", leverage=5, max_position="0.02"), "100000"),
    ("shared-sol-1m", "long", dict(investment="2000", leverage=2, max_position="10"), "100000"),
    ("shared-sol-1m", "long", dict(investment="2000", leverage=3, initial_position=True), "100000"),
    ("shared-sol-1m", "neutral", dict(investment="2000", leverage=3, trigger_price="160"), "100000"),
    ("shared-btc-1m", "short", dict(investment="2000", leverage=50), "400"),  # rejected from the start
], ids=["max_position-neutral", "max_position-long", "initial_position", "trigger", "rejects-from-start"])
def test_fast_equals_reference_with_position_limits_and_leverage(key, mode, kw, balance):
    rules, data = data_set(key)
    s = grid_for(rules, data, mode, **kw)
    assert_same(rules, s, data, balance)


@pytest.mark.parametrize("key, grid, kw, balance, stop", [
    ("shared-btc-1m", ("short", "46400", "47200", 4), dict(amount="0.2", leverage=150, margin_ratio=NO_MR), "300",
     "liquidation"),
    ("shared-btc-1m", ("short", "46400", "47200", 4), dict(amount="0.2", leverage=150), "300", "margin_ratio"),
    ("shared-xrp-5m-funding-mark", ("long", "1.00", "1.22", 20), dict(amount="400", leverage=50, margin_ratio=NO_MR),
     "200", "liquidation"),
    ("shared-btc-1m", ("short", "46400", "47200", 8), dict(amount="0.1", leverage=50), "800", "margin_ratio"),
], ids=["liquidation", "margin-ratio-close", "mark-liquidation", "margin-rejects"])
def test_the_core_hands_thresholds_and_rejects_to_the_reference(key, grid, kw, balance, stop):
    """The core plays until a liquidation, a margin-ratio threshold or a reject comes within
    reach, hands exactly that candle to the reference, and takes over again after."""
    rules, data = data_set(key)
    s = strategy(*grid, symbol=rules.symbol, **kw)
    bt, figures = assert_same(rules, s, data, balance)
    assert figures["stop_reason"] == stop
    assert bt.stats["spans"] >= 1 and bt.stats["fallbacks"] >= 1


def test_after_a_fallback_the_core_takes_over_again():
    rules, data = data_set("shared-btc-1m")
    s = strategy("short", "46400", "47200", 8, symbol=rules.symbol, amount="0.1", leverage=50)
    bt, figures = assert_same(rules, s, data, "800")
    assert figures["rejects"] > 0
    assert bt.stats["spans"] > 3 and bt.stats["reference"] < len(data) // 20


# -- generated candle paths -----------------------------------------------------------------
R = toy_rules()


@st.composite
def market(draw):
    """40 candles around 101.00 with gaps, optional funding every 5 minutes and a mark series."""
    price, rows = 10100, []
    for _ in range(40):
        o = price + draw(st.integers(-60, 60))
        c = o + draw(st.integers(-150, 150))
        h = max(o, c) + draw(st.integers(0, 60))
        lo = min(o, c) - draw(st.integers(0, 60))
        rows.append((max(o, 1), max(h, 1), max(lo, 1), max(c, 1)))
        price = c
    ts = T0 + np.arange(len(rows), dtype=np.int64) * MIN
    col = lambda i: np.array([r[i] for r in rows], dtype=np.int64)  # noqa: E731
    d = MarketData(ts=ts, open=col(0), high=col(1), low=col(2), close=col(3))
    if draw(st.booleans()):
        d.funding_ts = T0 + np.arange(2, 40, 5, dtype=np.int64) * MIN + draw(st.integers(0, MIN - 1))
        d.funding_rates = [str(D(draw(st.integers(-30, 30))) / 10000) for _ in range(len(d.funding_ts))]
    if draw(st.booleans()):
        every = draw(st.sampled_from([1, 3, 7]))
        d.mark_ts = ts[::every].copy()
        d.mark_open = d.open[::every] + draw(st.integers(-20, 20))
        d.mark_close = d.close[::every] + draw(st.integers(-20, 20))
    return d


RISKS = [{}, {"stop_loss_pct": "1"}, {"max_loss": "3"}, {"take_profit": "2"}, {"max_level_loss": "1"},
         {"take_profit_pct": "1"}, {"max_position": "0.3"}, {"on_stop": "keep", "max_loss": "2"}]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(d=market(), mode=st.sampled_from(["long", "short", "neutral"]),
       spacing=st.sampled_from(["arithmetic", "geometric"]), risk=st.sampled_from(RISKS),
       leverage=st.sampled_from([1, 20, 100]), balance=st.sampled_from(["10000", "30", "8"]))
def test_generated_paths_fast_equals_reference(d, mode, spacing, risk, leverage, balance):
    s = strategy(mode, "99.00", "103.00", 8, spacing=spacing, amount="0.1", leverage=leverage, **risk)
    assert_same(R, s, d, balance)


# -- the compiled kernel (numba, optional) ------------------------------------------------------
@pytest.fixture
def compiled():
    pytest.importorskip("numba")
    from gridctl.backtest import fastcore, fastsearch
    search = fastcore.use_kernel(True)
    assert search is not None
    yield search
    fastsearch._KERNEL.clear()


def test_the_compiled_search_finds_the_candles_the_numpy_search_finds(compiled):
    rng = np.random.default_rng(7)
    low = rng.integers(0, 1000, 5000).astype(np.int64)
    high = low + rng.integers(0, 50, 5000).astype(np.int64)
    for start, lo, hi in [(0, 5, 1040), (100, 0, 2000), (4990, 500, 600), (0, -1, 10**9)]:
        hit = np.flatnonzero((low[start:] <= lo) | (high[start:] >= hi))
        want = start + int(hit[0]) if len(hit) else len(low)
        assert compiled(low, high, start, len(low), lo, hi) == want


@pytest.mark.parametrize("key, mode, spacing", [("shared-btc-1m", "neutral", "arithmetic"),
                                                ("shared-xrp-5m-funding-mark", "long", "geometric"),
                                                ("bundled-sol-1m", "short", "arithmetic")])
def test_fast_equals_reference_with_the_compiled_kernel(compiled, key, mode, spacing):
    rules, data = data_set(key)
    s = grid_for(rules, data, mode, spacing, investment="2000", leverage=3, max_loss="200")
    bt, _ = assert_same(rules, s, data)
    assert bt.stats["spans"] >= 1


def test_the_first_compile_is_said_once_and_then_cached(tmp_path):
    """GRIDCTL_KERNEL=numba: the first backtest says it compiles the kernel, the next one loads it."""
    pytest.importorskip("numba")
    import os
    import subprocess
    import sys

    example = Path(__file__).resolve().parent.parent / "strategies.yaml.example"
    env = {**os.environ, "GRIDCTL_KERNEL": "numba", "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "gridctl", "backtest", "-c", str(example), "sol-neutral", "--json"]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True)
    again = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
    msg = "compiling the fast backtest kernel with numba (once; it is cached for later runs)"
    assert msg in first.stderr and msg not in again.stderr
    assert first.stdout == again.stdout
