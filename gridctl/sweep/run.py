"""Running a sweep's candidates: in this process, on every core, or (cluster.py) on Dask.

Each candidate is one `gridctl backtest` through the backtest's public API (prepare,
Backtest.run in fast mode, summarize), so whatever makes the backtest faster makes the
sweep faster. The market data is loaded once per process: worker processes are forked
after it is loaded (they share it copy-on-write); where fork is not available each
worker receives it once, in the pool's initializer.
"""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

from gridctl.backtest import MarketData, fit_warnings, prepare
from gridctl.backtest.summary import summarize
from gridctl.config.model import AccountConfig, StrategyConfig
from gridctl.core.market import MarketRules

Progress = Callable[[int], None]  # called with the number of candidates just finished


@dataclass(frozen=True)
class Market:
    """What every candidate shares besides the candles: the rules, the account and how the
    data is named in warnings."""

    rules: MarketRules
    account: AccountConfig
    label: str
    file_name: Optional[str] = None


@dataclass
class Outcome:
    """One candidate's result: the backtest figures and warnings, or why it failed."""

    index: int
    figures: Optional[dict[str, Any]] = None
    warnings: list[str] = field(default_factory=list)
    error: Optional[str] = None


def run_candidate(data: MarketData, market: Market, index: int, s: StrategyConfig) -> Outcome:
    """One backtest, figure for figure what `gridctl backtest` prints for this strategy."""
    try:
        prepared = prepare(market.rules, s, market.account, data)
        # as `backtest --json` has them: the data's warnings, then the strategy's fit to the data
        warnings = list(data.warnings) + fit_warnings(prepared, s.symbol, market.label, market.file_name)
        bt = prepared.backtest
        bt.run(fast=True)
        figures = summarize(bt, prepared.investment, prepared.interval_ms, prepared.mode, prepared.leverage)
    except Exception as exc:  # one candidate's failure must not lose the others' results
        return Outcome(index, error=f"the backtest failed: {type(exc).__name__}: {exc}")
    return Outcome(index, figures, warnings)


# -- every core ---------------------------------------------------------------------------------
_shared: dict[str, Any] = {}  # this process's data and market (set before forking, or by _init)


def _init(data: Optional[MarketData], market: Market) -> None:
    if data is not None:  # a spawned worker; a forked one has it already
        _shared["data"] = data
    _shared["market"] = market


def _run_one(job: tuple[int, StrategyConfig]) -> Outcome:
    return run_candidate(_shared["data"], _shared["market"], *job)


def default_jobs() -> int:
    """One worker per core."""
    return os.cpu_count() or 1


def run_local(data: MarketData, market: Market, jobs: Iterable[tuple[int, StrategyConfig]], processes: int,
              progress: Optional[Progress] = None) -> list[Outcome]:
    """Run every job (candidate index, strategy) on `processes` processes (1: in this one)."""
    jobs = list(jobs)
    done = progress or (lambda n: None)
    if processes <= 1 or len(jobs) <= 1:
        out = []
        for index, s in jobs:
            out.append(run_candidate(data, market, index, s))
            done(1)
        return out
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    if ctx.get_start_method() == "fork":
        _shared["data"] = data  # inherited by the forked workers: loaded once, shared
        init_args: tuple = (None, market)
    else:
        init_args = (data, market)  # pickled once per worker
    try:
        with ctx.Pool(min(processes, len(jobs)), initializer=_init, initargs=init_args) as pool:
            out = []
            for outcome in pool.imap_unordered(_run_one, jobs):
                out.append(outcome)
                done(1)
            return out
    finally:
        _shared.pop("data", None)
