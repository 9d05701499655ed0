"""`gridctl backtest`: a strategy exactly as configured, over real candles."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Optional, Union

import numpy as np

from gridctl.backtest import coverage, feed
from gridctl.backtest.runner import Backtest, MarketData
from gridctl.config.model import AccountConfig, StrategyConfig
from gridctl.core.engine import GridEngine
from gridctl.core.grid import Mode
from gridctl.core.market import MarketRules
from gridctl.core.plan import build_grid
from gridctl.sim import SimExchange
from gridctl.sim.sources import TickCandles, load_funding, load_tick_candles
from gridctl.config.strategy import engine_config, grid_params


class BacktestInputError(ValueError):
    """The data cannot be used (empty window, unreadable file)."""


@dataclass
class Prepared:
    backtest: Backtest
    investment: Decimal
    interval_ms: int
    mode: Optional[Mode] = None
    leverage: int = 1
    lower: int = 0  # the grid's range, ticks
    upper: int = 0


def load_market_data(rules: MarketRules, candles: Union[Path, TickCandles], mark: Optional[Path] = None,
                     funding: Optional[Path] = None, start_ms: Optional[int] = None,
                     end_ms: Optional[int] = None, label: Optional[str] = None) -> MarketData:
    """Candles (and mark / funding) in ticks, cut to [start_ms, end_ms).

    `candles` is a CSV file or candles already in ticks (a synthetic feed's), which the
    warnings call `label`.

    The window the backtest covers runs from the first kept candle's timestamp to the
    end of the last kept candle (its timestamp + the candle interval). Funding rows
    outside it are dropped: they belong to time the backtest does not simulate. Mark
    rows are kept from the one in force at the first candle up to the window's end.
    Series that do not reach the candles' ends are kept but reported in `.warnings`
    (one sentence each: the backtest then uses a stale or missing mark / funding there).
    The candle interval is the whole file's, so a window of one candle still knows it.
    Raises BacktestInputError for an empty window and DataError for a broken file.
    """
    full = candles if isinstance(candles, TickCandles) else load_tick_candles(candles, rules)
    name = label or (candles.name if isinstance(candles, Path) else "the candles")
    interval = _common_step(full.ts, 60_000)
    c = full.between(start_ms, end_ms)
    if not len(c):
        raise BacktestInputError(f"no candles in {candles if isinstance(candles, Path) else name} "
                                 f"between the given dates")
    first, last = int(c.ts[0]), int(c.ts[-1])
    window_end = last + interval
    data = MarketData(ts=c.ts, open=c.open, high=c.high, low=c.low, close=c.close, interval_hint=interval)
    data.warnings += coverage.window_warnings(name, interval, first, window_end, start_ms, end_ms)
    if mark is not None:
        m = load_tick_candles(mark, rules)
        data.warnings += coverage.mark_warnings(mark.name, m.ts, _common_step(m.ts, interval), first, last)
        # the mark in force at the first candle is the last one at or before it
        i = max(int(np.searchsorted(m.ts, first, side="right")) - 1, 0)
        j = int(np.searchsorted(m.ts, window_end, side="left"))
        if j > i:  # else no mark row reaches the window: the last price is the mark throughout
            data.mark_ts, data.mark_close, data.mark_open = m.ts[i:j].copy(), m.close[i:j].copy(), m.open[i:j].copy()
    if funding is not None:
        fts, rates = load_funding(funding)
        f_step = _common_step(fts, coverage.DEFAULT_FUNDING_MS, round_to=60_000)
        data.warnings += coverage.funding_warnings(funding.name, fts, f_step, first, last)
        keep = (fts >= first) & (fts < window_end)
        data.funding_ts = fts[keep]
        data.funding_rates = [r for r, k in zip(rates, keep) if k]
    return data


def _common_step(ts: np.ndarray, default: int, round_to: int = 1) -> int:
    """The most common step between timestamps (of the first 1000), `default` for one row.

    `round_to` absorbs jitter: real funding times carry millisecond offsets
    (00:00:00.017, 08:00:00.014), so their steps are rounded to the minute.
    """
    if len(ts) < 2:
        return default
    steps = np.diff(ts[: min(len(ts), 1000)])
    if round_to > 1:
        steps = np.rint(steps / round_to).astype(np.int64) * round_to
    values, counts = np.unique(steps, return_counts=True)
    return int(values[counts.argmax()])


def interval_of(data: MarketData) -> int:
    """The candle interval in ms (the most common step between timestamps)."""
    return data.interval_ms


def prepare(rules: MarketRules, s: StrategyConfig, account: AccountConfig, data: MarketData,
            balance: Optional[Decimal] = None) -> Prepared:
    """The engine and simulated exchange for one strategy, started at the first open."""
    start = int(data.open[0])
    params = grid_params(rules, s, start)
    levels = build_grid(rules, params, start)
    engine = GridEngine(rules, levels, engine_config(rules, s, account, params))
    sim = SimExchange(rules, balance if balance is not None else account.balance, s.leverage,
                      hedge=account.position_mode == "hedge", price=start)
    investment = s.investment if s.investment is not None else sum(
        (rules.notional(lv.entry, lv.size) for lv in levels), Decimal(0)) / s.leverage
    return Prepared(Backtest(engine, sim, data), investment.quantize(Decimal("0.01")), interval_of(data),
                    s.mode, s.leverage, params.lower, params.upper)


def fit_warnings(prepared: Prepared, symbol: str, label: str, file_name: Optional[str]) -> list[str]:
    """Warnings when the data cannot be the strategy's market: its prices never enter the
    grid's range, or its file name names another coin (see gridctl.backtest.feed)."""
    d, rules = prepared.backtest.data, prepared.backtest.engine.rules
    out = feed.name_warnings(file_name, symbol) if file_name else []
    if len(d):
        out += feed.range_warnings(label, rules, int(d.low.min()), int(d.high.max()), prepared.lower,
                                   prepared.upper)
    return out
