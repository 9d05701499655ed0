"""Sweep speed: 100 candidates over one year of 1-minute candles, on 1 and on 2 processes.

The year is the one tests/bench/bench_backtest.py builds (the real BTC-PERP 1-minute data
tiled forwards and backwards), written to a CSV in a temporary folder; the strategy is
that bench's 50-level neutral grid, as a strategies file. `gridctl sweep` runs end to end
as a user runs it (a fresh process: imports, loading, validation, backtests, ranking),
first with --jobs 1, then --jobs 2, over 10 grid counts x 10 upper bounds. It prints
candidates per second per core and the speed-up, and checks both rank the same.

    python tests/bench/bench_sweep.py [--days 365] [--quick]

It also prints how long loading the year takes (CSV and binary copy) and its peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from gridctl.markets import load_snapshot

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_backtest import year_of_candles  # noqa: E402

CONFIG = """\
version: 1
accounts:
  paper:
    exchange: paper
    like: binanceusdm
    balance: 100000
    feed: {{replay: "{csv}"}}
strategies:
  btc-neutral:
    account: paper
    symbol: BTC/USDT:USDT
    mode: neutral
    spacing: arithmetic
    lower: 33000
    upper: 48000
    grids: 50
    amount: 0.01
    leverage: 5
"""


def write_year(path: Path, days: int) -> int:
    """The bench year as a candles CSV (prices back from ticks at BTC's 0.1 tick)."""
    rules = load_snapshot("binanceusdm")["BTC/USDT:USDT"]
    d = year_of_candles(rules, days * 1440)
    tick = float(rules.tick)
    cols = [d.ts] + [np.round(a * tick, 1) for a in (d.open, d.high, d.low, d.close)]
    table = np.column_stack([c.astype(np.float64) for c in cols] + [np.ones(len(d))])
    with open(path, "w") as fh:
        fh.write("timestamp_ms,open,high,low,close,volume\n")
        np.savetxt(fh, table, fmt=["%d", "%.1f", "%.1f", "%.1f", "%.1f", "%d"], delimiter=",")
    return len(d)


def measure_load(csv: Path) -> str:
    """One line: the year parsed (rows/s, peak bytes a candle) and read back from its binary copy."""
    import tracemalloc

    from gridctl.sim import candle_cache, load_candles, load_tick_candles

    rules = load_snapshot("binanceusdm")["BTC/USDT:USDT"]
    copy = candle_cache.cache_path(csv)
    copy.unlink(missing_ok=True)
    t0 = time.perf_counter()
    c = load_tick_candles(csv, rules, cache=False)
    parse_s = time.perf_counter() - t0
    tracemalloc.start()  # apart from the timing: tracing allocations slows them
    load_tick_candles(csv, rules, cache=False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    load_tick_candles(csv, rules)  # writes the copy
    t0 = time.perf_counter()
    load_tick_candles(csv, rules)
    cached_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    load_candles(csv).to_ticks(rules)  # the careful reader, which load_tick_candles replaces
    before_s = time.perf_counter() - t0
    tracemalloc.start()
    load_candles(csv).to_ticks(rules)
    before_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    n = len(c)
    return (f"loading {n:,} candles: CSV {parse_s:.3f} s ({n / parse_s:,.0f} rows/s), "
            f"binary copy {cached_s:.3f} s, peak {peak / n:.0f} bytes/candle (int64 ts + OHLC ticks: 40); "
            f"load_candles().to_ticks(): {before_s:.3f} s ({n / before_s:,.0f} rows/s), "
            f"peak {before_peak / n:.0f} bytes/candle")


def sweep(config: Path, jobs: int, sets: list[str]) -> tuple[float, list[dict]]:
    """Wall time of one `gridctl sweep --json` process, and its rows."""
    cmd = [sys.executable, "-m", "gridctl", "sweep", "-c", str(config), "btc-neutral", "--jobs", str(jobs),
           "--json", *(a for s in sets for a in ("--set", s))]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "GRIDCTL_DATA_CACHE": "1"})
    elapsed = time.perf_counter() - t0
    if out.returncode != 0:
        sys.exit(f"sweep failed ({out.returncode}): {out.stderr}")
    return elapsed, json.loads(out.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--quick", action="store_true", help="10 candidates instead of 100")
    args = ap.parse_args()
    sets = ["grids=30:75:5", "upper=46000:50500:500"] if not args.quick else ["grids=30:75:5"]
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        csv = Path(tmp) / "BTCUSDT_1m.csv"
        n = write_year(csv, args.days)
        config = Path(tmp) / "strategies.yaml"
        config.write_text(CONFIG.format(csv=csv))
        print(measure_load(csv))  # leaves the binary copy beside the CSV, as a user's first run would
        t1, one = sweep(config, 1, sets)
        t2, two = sweep(config, 2, sets)
    k = len(one)
    print(f"candidates: {k}, candles each: {n:,} ({args.days} days), cores: {os.cpu_count()}")
    print(f"--jobs 1: {t1:8.1f} s  {k / t1:7.2f} candidates/s  {k / t1:7.2f} per core  "
          f"{k * n / t1:14,.0f} candidate-candles/s per core")
    print(f"--jobs 2: {t2:8.1f} s  {k / t2:7.2f} candidates/s  {k / t2 / 2:7.2f} per core  "
          f"{k * n / t2 / 2:14,.0f} candidate-candles/s per core")
    print(f"speed-up --jobs 2 / --jobs 1: {t1 / t2:.2f}x (efficiency {t1 / t2 / 2:.0%})")
    same = one == two
    print(f"same ranking on 1 and 2 processes: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
