"""Backtest speed: fast (band-jumping) vs reference (every candle) on one year of 1m candles.

The year is built by tiling the real BTC-PERP 1-minute data in ../shared/data/candles,
every other tile played backwards (open and close swapped), so the price path
continues without a jump or a drift. A 50-level neutral grid runs in both modes
in this process; the script checks they agree and prints candles/s and the ratio.

    python tests/bench/bench_backtest.py [--days 365] [--reference-days 365]
"""

from __future__ import annotations

import argparse
import sys
import time
from decimal import Decimal
from pathlib import Path

import numpy as np

from gridctl.backtest.runner import Backtest, MarketData
from gridctl.backtest.summary import summarize
from gridctl.core.engine import EngineConfig, GridEngine
from gridctl.core.grid import Mode, Spacing
from gridctl.core.plan import GridParams, build_grid
from gridctl.markets import load_snapshot
from gridctl.sim import SimExchange
from gridctl.sim.sources import load_candles

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/shared_data.py
from shared_data import shared_data  # noqa: E402

BTC = shared_data() / "candles" / "nautilus-ftx_BTC-PERP_1m.csv"


def year_of_candles(rules, minutes: int) -> MarketData:
    """Tile the real data forwards and backwards until `minutes` candles."""
    c = load_candles(BTC).to_ticks(rules)
    tiles, n = [], 0
    forward = True
    while n < minutes:
        if forward:
            o, h, lo, cl = c.open, c.high, c.low, c.close
        else:
            o, h, lo, cl = c.close[::-1], c.high[::-1], c.low[::-1], c.open[::-1]
        tiles.append((o, h, lo, cl))
        n += len(o)
        forward = not forward
    cat = [np.concatenate([t[i] for t in tiles])[:minutes] for i in range(4)]
    ts = int(c.ts[0]) + np.arange(minutes, dtype=np.int64) * 60_000
    return MarketData(ts=ts, open=cat[0], high=cat[1], low=cat[2], close=cat[3])


def run(data: MarketData, fast: bool):
    rules = load_snapshot("binanceusdm")["BTC/USDT:USDT"]
    start = int(data.open[0])
    params = GridParams(Mode.NEUTRAL, Spacing.ARITHMETIC, rules.price_to_ticks(Decimal(33000)),
                        rules.price_to_ticks(Decimal(48000)), 50, 5, amount=10)
    levels = build_grid(rules, params, start)
    engine = GridEngine(rules, levels, EngineConfig(Mode.NEUTRAL, params.lower, params.upper, tag="bench0"))
    bt = Backtest(engine, SimExchange(rules, Decimal(100000), 5, price=start), data)
    t0 = time.perf_counter()
    bt.run(fast=fast)
    elapsed = time.perf_counter() - t0
    return bt, elapsed, summarize(bt, Decimal(10000), 60_000)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--reference-days", type=int, default=None,
                    help="days for the reference run (default: the same as --days)")
    args = ap.parse_args()
    rules = load_snapshot("binanceusdm")["BTC/USDT:USDT"]
    data = year_of_candles(rules, args.days * 1440)
    ref_days = args.reference_days or args.days
    ref_data = data if ref_days == args.days else year_of_candles(rules, ref_days * 1440)

    bt_fast, t_fast, fig_fast = run(data, fast=True)
    if ref_data is not data:
        _, _, fig_fast_same = run(ref_data, fast=True)
    else:
        fig_fast_same = fig_fast
    bt_ref, t_ref, fig_ref = run(ref_data, fast=False)
    if ref_data is data:
        agree = fig_fast == fig_ref and [f.__dict__ for f in bt_fast.fills] == [f.__dict__ for f in bt_ref.fills]
    else:
        agree = fig_fast_same == fig_ref
    fast_rate = len(data) / t_fast
    ref_rate = len(ref_data) / t_ref
    print(f"candles: fast {len(data):,} / reference {len(ref_data):,}; fills {fig_fast['fills']:,}, "
          f"cycles {fig_fast['cycles']:,}")
    print(f"fast mode:      {t_fast:8.3f} s  {fast_rate:12,.0f} candles/s")
    print(f"reference mode: {t_ref:8.3f} s  {ref_rate:12,.0f} candles/s")
    print(f"ratio fast/reference: {fast_rate / ref_rate:.1f}x")
    print(f"fast == reference: {'yes' if agree else 'NO'}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
