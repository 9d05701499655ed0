"""Backtest speed on one year of 1-minute candles and a 50-level grid: the reference mode, the
pure-Python integer core (fast mode), the compiled kernel; load time and peak memory (one and
five years); `gridctl backtest` end to end.

The year is built by tiling the real BTC-PERP 1-minute data in ../shared/data/candles (FTX,
2021: 20,160 candles), every other tile played backwards (open and close swapped), so the
price path continues without a jump or a drift. A 50-level neutral grid (33,000-48,000 USDT,
0.01 BTC per level, 5x) runs in every mode in this process; the script checks that they agree
fill for fill and figure for figure and prints candles/s (wall and CPU time: the machine may
be shared; the load average is printed) and the ratios. Memory and the CLI run in fresh
processes on the year written to a CSV file.

    python tests/bench/bench_backtest.py [--days 365] [--reference-days 365] [--no-5y]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import numpy as np

from gridctl.backtest import fastcore
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
TARGET_PY, TARGET_COMPILED, TARGET_CLI_S = 1_000_000, 5_000_000, 1.0
YAML = """version: 1
accounts:
  paper: {exchange: paper, like: binanceusdm, balance: 100000, feed: {replay: "CSV"}}
strategies:
  bench:
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
    """(backtest, wall s, cpu s, figures) of the bench grid over data."""
    rules = load_snapshot("binanceusdm")["BTC/USDT:USDT"]
    start = int(data.open[0])
    params = GridParams(Mode.NEUTRAL, Spacing.ARITHMETIC, rules.price_to_ticks(Decimal(33000)),
                        rules.price_to_ticks(Decimal(48000)), 50, 5, amount=10)
    levels = build_grid(rules, params, start)
    engine = GridEngine(rules, levels, EngineConfig(Mode.NEUTRAL, params.lower, params.upper, tag="bench0"))
    bt = Backtest(engine, SimExchange(rules, Decimal(100000), 5, price=start), data)
    t0, c0 = time.perf_counter(), time.process_time()
    bt.run(fast=fast)
    figures = summarize(bt, Decimal(10000), 60_000)  # the figures are part of the run
    return bt, time.perf_counter() - t0, time.process_time() - c0, figures


def best_of(data, fast: bool, times: int):
    """The fastest of `times` runs (the machine may be shared), by CPU time."""
    best = None
    for _ in range(times):
        r = run(data, fast)
        if best is None or r[2] < best[2]:
            best = r
    return best


def fills(bt) -> list:
    return [(f.ts, f.side, f.price, f.qty, f.fee, f.level, f.intent) for f in bt.fills]


def write_csv(data: MarketData, path: Path) -> None:
    """The candles as the loader reads them (timestamp_ms,open,high,low,close,volume; tick 0.1)."""
    cols = [data.ts] + [np.char.mod("%d", a // 10).astype(object) + "." + np.char.mod("%d", a % 10).astype(object)
                        for a in (data.open, data.high, data.low, data.close)]
    with open(path, "w") as fh:
        fh.write("timestamp_ms,open,high,low,close,volume\n")
        rows = zip(*(c.tolist() for c in cols))
        fh.writelines(f"{t},{o},{h},{lo},{c},1\n" for t, o, h, lo, c in rows)


PROBE = """
import sys, time
sys.path.insert(0, sys.argv[2])
def hwm():  # peak resident memory of this process (KiB); ru_maxrss would include the parent's
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
from bench_backtest import run
from gridctl.backtest import load_market_data
from gridctl.markets import load_snapshot
rules = load_snapshot("binanceusdm")["BTC/USDT:USDT"]
base = hwm()
t1 = time.perf_counter()
data = load_market_data(rules, __import__("pathlib").Path(sys.argv[1]))
t2 = time.perf_counter()
loaded = hwm()
run(data, True)
print(len(data), t2 - t1, base, loaded, hwm())
"""


def probe(csv: Path) -> tuple[int, float, int, int, int]:
    """(candles, load s, peak KiB after the imports, after loading, after a fast run) in a fresh process."""
    out = subprocess.run([sys.executable, "-c", PROBE, str(csv), str(Path(__file__).parent)],
                         capture_output=True, text=True, check=True)
    n, load_s, base, loaded, ran = out.stdout.split()
    return int(n), float(load_s), int(base), int(loaded), int(ran)


def describe(k: int, load_s: float, base: int, loaded: int, ran: int) -> str:
    per = lambda kib: kib * 1024 / k  # noqa: E731
    return (f"load {load_s:.3f} s ({k / load_s:,.0f} rows/s); peak memory {base / 1024:.0f} MiB after the imports, "
            f"{loaded / 1024:.0f} MiB after loading (+{per(loaded - base):.0f} bytes/candle), {ran / 1024:.0f} MiB "
            f"after a fast run (+{per(ran - base):.0f} bytes/candle)")


def cli_wall(csv: Path, cfg: Path) -> tuple[float, float, str]:
    """(wall s of `gridctl backtest` on csv, wall s of a bare interpreter start, its output)."""
    gridctl = Path(sys.executable).with_name("gridctl")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    bare = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = subprocess.run([str(gridctl), "backtest", "-c", str(cfg), "bench", "--data", str(csv), "--json"],
                         capture_output=True, text=True)
    wall = time.perf_counter() - t0
    return wall, bare, out.stdout if out.returncode == 0 else out.stderr


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--reference-days", type=int, default=None,
                    help="days for the reference run (default: the same as --days; the reference is slow)")
    ap.add_argument("--repeat", type=int, default=3, help="fast runs per mode, the best counted")
    ap.add_argument("--no-5y", action="store_true", help="skip the five-year memory probe")
    args = ap.parse_args()
    rules = load_snapshot("binanceusdm")["BTC/USDT:USDT"]
    data = year_of_candles(rules, args.days * 1440)
    ref_days = args.reference_days or args.days
    ref_data = data if ref_days == args.days else MarketData(
        ts=data.ts[:ref_days * 1440], open=data.open[:ref_days * 1440], high=data.high[:ref_days * 1440],
        low=data.low[:ref_days * 1440], close=data.close[:ref_days * 1440])
    print(f"data: {len(data):,} 1-minute candles ({args.days} days) tiled from {BTC.name}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

    fastcore.use_kernel(False)
    bt_py, w_py, c_py, fig_py = best_of(data, True, args.repeat)
    search = fastcore.use_kernel(True)
    compiled = search is not None
    if compiled:
        bt_nb, w_nb, c_nb, fig_nb = best_of(data, True, args.repeat)
    fastcore.use_kernel(False)
    bt_ref, w_ref, c_ref, fig_ref = run(ref_data, fast=False)
    if ref_data is data:
        agree = fig_py == fig_ref and fills(bt_py) == fills(bt_ref)
    else:
        _, _, _, fig_py_ref = run(ref_data, True)
        agree = fig_py_ref == fig_ref
    agree_nb = (not compiled) or (fig_nb == fig_py and fills(bt_nb) == fills(bt_py))
    n, nr = len(data), len(ref_data)
    rate = lambda k, s: k / s  # noqa: E731
    events = max(1, bt_py.stats["core"])
    print(f"fills {fig_py['fills']:,}, cycles {fig_py['cycles']:,}; candles walked by the core "
          f"{bt_py.stats['core']:,} ({bt_py.stats['core'] / n:.1%}), by the reference {bt_py.stats['reference']}; "
          f"core spans {bt_py.stats['spans']}")
    print(f"{'mode':<28}{'wall s':>9}{'cpu s':>9}{'candles/s (cpu)':>18}")
    print(f"{'reference':<28}{w_ref:9.3f}{c_ref:9.3f}{rate(nr, c_ref):18,.0f}")
    print(f"{'fast, pure-Python core':<28}{w_py:9.3f}{c_py:9.3f}{rate(n, c_py):18,.0f}")
    if compiled:
        print(f"{'fast, compiled kernel':<28}{w_nb:9.3f}{c_nb:9.3f}{rate(n, c_nb):18,.0f}")
    else:
        print("fast, compiled kernel: numba is not installed (pip install 'gridctl[fast]')")
    print(f"ratio pure-Python core / reference: {rate(n, c_py) / rate(nr, c_ref):.0f}x")
    if compiled:
        print(f"ratio compiled / pure-Python: {c_py / c_nb:.2f}x; compiled / reference: "
              f"{rate(n, c_nb) / rate(nr, c_ref):.0f}x")
    print(f"fast == reference: {'yes' if agree else 'NO'}; compiled == pure-Python: {'yes' if agree_nb else 'NO'}")

    with tempfile.TemporaryDirectory(prefix="gridctl-bench-") as tmp:
        year_csv, cfg = Path(tmp) / "BTCUSDT_1m_year.csv", Path(tmp) / "bench.yaml"
        write_csv(data, year_csv)
        cfg.write_text(YAML.replace("CSV", str(year_csv)))
        k, *mem = probe(year_csv)
        print(f"{args.days} days, {k:,} candles from CSV: {describe(k, *mem)}")
        if not args.no_5y:
            five = Path(tmp) / "BTCUSDT_1m_5y.csv"
            with open(five, "w") as out, open(year_csv) as src:
                out.write(src.readline())
                body = src.readlines()
                for y in range(5):
                    shift = y * len(body) * 60_000
                    out.writelines(f"{int(t) + shift},{rest}" for t, rest in (line.split(",", 1) for line in body))
            k5, *mem5 = probe(five)
            print(f"five times that, {k5:,} candles: {describe(k5, *mem5)}")
        wall, bare, out = cli_wall(year_csv, cfg)
        print(f"gridctl backtest on the year, end to end: {wall:.2f} s wall ({wall - bare:.2f} s after the "
              f"interpreter's own start-up of {bare:.2f} s)")
        if '"fills"' not in out:
            print(f"  gridctl backtest failed: {out.strip()[:300]}")
    print("targets:")
    py_rate = rate(n, c_py)
    print(f"  pure-Python core >= {TARGET_PY:,} candles/s: {'met' if py_rate >= TARGET_PY else 'NOT met'} "
          f"({py_rate:,.0f})")
    if compiled:
        nb_rate = rate(n, c_nb)
        print(f"  compiled >= {TARGET_COMPILED:,} candles/s: {'met' if nb_rate >= TARGET_COMPILED else 'NOT met'} "
              f"({nb_rate:,.0f}): only the skip-ahead search is compiled; the candles that can change "
              f"something (fills, the reconcile, the guards) stay in Python, {c_nb / events * 1e6:.0f} us each")
    print(f"  gridctl backtest < {TARGET_CLI_S} s after start-up: "
          f"{'met' if wall - bare < TARGET_CLI_S else 'NOT met'} ({wall - bare:.2f} s: imports, the CSV "
          f"loader and the run)")
    return 0 if agree and agree_nb else 1


if __name__ == "__main__":
    sys.exit(main())
