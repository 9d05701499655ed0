"""`gridctl backtest`: a strategy exactly as configured, over real candles."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Optional

import numpy as np

from gridctl.backtest.runner import Backtest, MarketData
from gridctl.config.model import AccountConfig, StrategyConfig
from gridctl.core.engine import GridEngine
from gridctl.core.market import MarketRules
from gridctl.core.plan import build_grid
from gridctl.sim import SimExchange
from gridctl.sim.sources import load_candles, load_funding
from gridctl.config.strategy import engine_config, grid_params


class BacktestInputError(ValueError):
    """The data cannot be used (empty window, unreadable file)."""


@dataclass
class Prepared:
    backtest: Backtest
    investment: Decimal
    interval_ms: int


def load_market_data(rules: MarketRules, candles: Path, mark: Optional[Path] = None,
                     funding: Optional[Path] = None, start_ms: Optional[int] = None,
                     end_ms: Optional[int] = None) -> MarketData:
    """Candles (and mark / funding) in ticks, cut to [start_ms, end_ms)."""
    c = load_candles(candles).to_ticks(rules)
    keep = np.ones(len(c.ts), dtype=bool)
    if start_ms is not None:
        keep &= c.ts >= start_ms
    if end_ms is not None:
        keep &= c.ts < end_ms
    if not keep.any():
        raise BacktestInputError(f"no candles in {candles} between the given dates")
    data = MarketData(ts=c.ts[keep], open=c.open[keep], high=c.high[keep], low=c.low[keep], close=c.close[keep])
    if mark is not None:
        m = load_candles(mark).to_ticks(rules)
        data.mark_ts, data.mark_close = m.ts, m.close
    if funding is not None:
        fts, rates = load_funding(funding)
        data.funding_ts, data.funding_rates = np.asarray(fts, dtype=np.int64), list(rates)
    return data


def interval_of(data: MarketData) -> int:
    """The candle interval in ms (the most common step between timestamps)."""
    if len(data.ts) < 2:
        return 60_000
    steps = np.diff(data.ts[: min(len(data.ts), 1000)])
    values, counts = np.unique(steps, return_counts=True)
    return int(values[counts.argmax()])


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
    return Prepared(Backtest(engine, sim, data), investment.quantize(Decimal("0.01")), interval_of(data))
