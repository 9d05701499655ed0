"""One driver: the worker loop on an in-memory exchange with a virtual clock, over the same
candles as a backtest, makes the same fills and the same figures.

The in-memory exchange reports a price at every tick (as a live trade stream would) and the
worker reacts to each; the backtest walks from band edge to band edge. Both drive the strategy
through gridctl.core.driver.Driver, and both venues are the same simulated walk
(gridctl.sim.replay), so any difference is a behaviour written twice.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from backtest_helpers import (
    MIN, SOL_1M, T0, XRP_5M, XRP_8H_FUNDING, account, candles, real_data, strategy, toy_rules, venue_rules,
)
from gridctl.backtest import prepare
from gridctl.config.strategy import engine_config, grid_params
from gridctl.core import clientid
from gridctl.core.engine import GridEngine
from gridctl.core.plan import build_grid
from gridctl.exchange.memory import EndOfData, InMemoryExchange
from gridctl.store.db import open_database
from gridctl.store.writer import BufferedWriter
from gridctl.worker.loop import WorkerLoop
from gridctl.worker.recorder import Recorder
from shared_data import needs_data as needs

D = Decimal


def backtest(rules, s, data, balance="10000"):
    p = prepare(rules, s, account(balance), data, D(balance))
    p.backtest.run(fast=True)
    return p.backtest


def worker(tmp_path, rules, s, data, balance="10000"):
    """The real WorkerLoop (driver, recorder, store) on an InMemoryExchange over `data`."""
    acct = account(balance)
    tag = clientid.strategy_tag(s.name)
    ex = InMemoryExchange(rules, data, D(balance), s.leverage,
                          owns=lambda cid: clientid.belongs("binance", tag, cid))
    start = ex.price()
    params = grid_params(rules, s, start)
    engine = GridEngine(rules, build_grid(rules, params, start), engine_config(rules, s, acct, params))
    writer = BufferedWriter(open_database(tmp_path), strategy=s.name, recent=100_000)
    loop = WorkerLoop(s.name, engine, ex, Recorder(writer, engine, s.name), D(balance), clock=ex.clock)

    async def run():
        try:
            await loop.run()
        except EndOfData:
            pass

    asyncio.run(run())
    loop.events_seen = [e["message"] for e in writer.recent_events()]
    writer.close()
    return loop, ex


def fills_of_backtest(bt):
    return [(f.ts, f.side, f.intent, f.level, f.price, f.qty, f.fee) for f in bt.fills]


def fills_of_worker(ex, rules, engine):
    out = []
    for f in ex.trades:
        d = engine.decode(f.client_id)
        intent = f.kind if f.kind != "own" else d.intent.value
        level = d.level if d is not None and d.intent.value != "close" else None
        out.append((f.ts, f.side.value, intent, level, rules.price(f.price), rules.qty(f.qty), f.fee))
    return out


def figures(engine, mark):
    led = engine.ledger
    return {"position": led.position, "grid_profit": led.grid_profit, "realized": led.realized, "fees": led.fees,
            "funding": led.funding, "unrealized": led.unrealized(mark), "cycles": len(engine.trades),
            "status": engine.status, "stop_reason": engine.stop_reason}


def assert_same(tmp_path, rules, s, data, balance="10000"):
    bt = backtest(rules, s, data, balance)
    loop, ex = worker(tmp_path, rules, s, data, balance)
    assert fills_of_worker(ex, rules, loop.e) == fills_of_backtest(bt)
    assert len(bt.fills) > 0
    # the position check on the reconcile timer never mistakes a fill just read for a difference
    assert loop.exchange_position is None
    assert not [m for m in loop.events_seen if m.startswith("position differs")]
    mark = bt.sim.mark
    assert figures(loop.e, mark) == figures(bt.engine, mark)
    assert sorted((o.client_id, o.price, o.remaining) for o in ex.sim.open_orders()) == sorted(
        (o.client_id, o.price, o.remaining) for o in bt.sim.open_orders())
    return bt, loop


R = toy_rules()
PATH = [
    ("102.50", "102.60", "102.40", "102.50"),
    ("102.50", "102.55", "101.50", "101.60"),
    ("101.60", "101.70", "100.90", "101.00"),
    ("101.00", "102.10", "100.95", "102.05"),
    ("102.05", "103.20", "101.95", "103.10"),
    ("103.10", "103.15", "99.50", "99.80"),
    ("99.80", "99.90", "98.50", "98.60"),
    ("98.60", "103.50", "98.55", "103.40"),
]


@pytest.mark.parametrize("mode", ["long", "short", "neutral"])
def test_hand_made_candles_same_fills_and_figures(tmp_path, mode):
    assert_same(tmp_path, R, strategy(mode, "99", "104", 5, amount="1"), candles(PATH, R))


@pytest.mark.parametrize("risk", [dict(stop_loss_price="99"), dict(max_loss="2"), dict(take_profit="1.5"),
                                  dict(max_level_loss="1.2"), dict(stop_loss_price="99", on_stop="keep")],
                         ids=["price stop", "max_loss", "take_profit", "max_level_loss", "keep"])
def test_stops_act_at_the_same_price_in_the_worker_and_the_backtest(tmp_path, risk):
    bt, loop = assert_same(tmp_path, R, strategy("long", "100", "103", 3, amount="1", **risk), candles(PATH, R))
    assert loop.e.status == "stopped" and loop.e.stop_reason == bt.engine.stop_reason


def test_initial_position_and_trigger(tmp_path):
    s = strategy("long", "99", "104", 5, amount="1", initial_position=True, trigger_price="101.00",
                 max_position="3")
    bt, _ = assert_same(tmp_path, R, s, candles(PATH, R))
    assert bt.fills[0].intent == "entry"


@needs(SOL_1M)
@pytest.mark.parametrize("mode,spacing", [("neutral", "arithmetic"), ("long", "geometric"),
                                          ("short", "arithmetic")])
def test_real_sol_candles(tmp_path, mode, spacing):
    rules = venue_rules("SOL/USDT:USDT")
    s = strategy(mode, "163", "170", 14, symbol="SOL/USDT:USDT", spacing=spacing, investment="1000", leverage=2)
    assert_same(tmp_path, rules, s, real_data(rules, SOL_1M, rows=400))


@needs(XRP_5M, XRP_8H_FUNDING)
def test_real_xrp_candles_with_funding(tmp_path):
    rules = venue_rules("XRP/USDT:USDT")
    s = strategy("neutral", "1.00", "1.30", 12, symbol="XRP/USDT:USDT", amount="40", leverage=2)
    bt, loop = assert_same(tmp_path, rules, s, real_data(rules, XRP_5M, rows=1200, funding=XRP_8H_FUNDING))
    assert bt.engine.ledger.funding != 0  # funding was paid, and the same in both


# -- generated candle paths -------------------------------------------------------------------
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

import numpy as np  # noqa: E402

from gridctl.sim.replay import MarketData  # noqa: E402


@st.composite
def candle_paths(draw):
    """20 candles around 101.00 (ticks), with gaps between a close and the next open."""
    price = 10100
    rows = []
    for _ in range(20):
        o = price + draw(st.integers(-60, 60))  # a gap of up to 0.60
        c = o + draw(st.integers(-120, 120))
        h = max(o, c) + draw(st.integers(0, 60))
        lo = min(o, c) - draw(st.integers(0, 60))
        rows.append((max(o, 1), max(h, 1), max(lo, 1), max(c, 1)))
        price = c
    ts = T0 + np.arange(len(rows), dtype=np.int64) * MIN
    col = lambda i: np.array([r[i] for r in rows], dtype=np.int64)  # noqa: E731
    return MarketData(ts=ts, open=col(0), high=col(1), low=col(2), close=col(3))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=candle_paths(), mode=st.sampled_from(["long", "short", "neutral"]),
       risk=st.sampled_from([{}, {"stop_loss_pct": "1"}, {"max_loss": "3"}, {"take_profit": "2"}]))
def test_generated_paths_same_fills_and_figures(tmp_path_factory, data, mode, risk):
    s = strategy(mode, "99.00", "103.00", 8, amount="1", **risk)
    bt = backtest(R, s, data)
    loop, ex = worker(tmp_path_factory.mktemp("w"), R, s, data)
    assert fills_of_worker(ex, R, loop.e) == fills_of_backtest(bt)
    assert figures(loop.e, bt.sim.mark) == figures(bt.engine, bt.sim.mark)
