"""Fleet benchmark: 20 and then 100 paper strategies under one supervisor, real processes.

For each fleet size it generates a config of N SOL strategies (neutral, long and short
grids with varied ranges and grid counts; long/short open their base position so every
level has an order) on paper accounts that all replay the same SOLUSDT feed. An account
keeps one position per symbol (one per leg in hedge mode), so `validate` refuses two
strategies sharing one; the fleet is spread accordingly: each neutral grid has its own
one-way account (`nNNN`, named after it), and each long grid shares a hedge account
(`hNNN`, named after the long) with the short grid after it, one strategy per leg (N
strategies -> about 2N/3 accounts, each its own local venue process). It starts the
fleet with `gridctl start` in a fresh state dir and prints:

  - the time until every worker has its whole grid on the (paper) book, polled
    through the control socket (one order per level, or all but one: a level whose
    post-only entry the moving price crossed while the grid was placed waits, by design,
    for the price to come back);
  - memory: PSS from /proc/PID/smaps_rollup summed over the supervisor, the workers,
    the paper accounts' venues and the reporter, and per worker;
  - CPU at rest: utime+stime deltas from /proc/PID/stat of all those processes over
    --rest seconds, as % of one core (the feed is slow, --speed 60 = one candle a
    second per worker, so this is the cost of idling plus a live-like tick rate);
  - `gridctl status --json` latency against the running fleet (median of 5);
  - the time `gridctl shutdown` takes (every strategy stops and flattens).

Then `gridctl status --json` latency (median of 5) on a separate state dir filled by
tests/store_fixture.populate with 1,000,000 events and 100,000 fills, supervisor down.

    python tests/bench/bench_fleet.py [--sizes 20,100] [--rest 30] [--speed 60]

Everything it starts is shut down (and killed if need be) on exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # tests.store_fixture

from gridctl.control.client import ControlClient, supervisor_status  # noqa: E402
from gridctl.process.pidfile import lock_holder, pid_alive as alive, read_pid  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
TARGET_PSS_MB = 2500
TARGET_STATUS_MS = 300


# ---- config -----------------------------------------------------------------------------------
MODES = ("neutral", "long", "short")


def account_of(i: int) -> str:
    """Strategy i's account: a neutral grid alone on a one-way account, a long grid and the
    short grid after it on the two legs of one hedge account."""
    return f"n{i:03d}" if MODES[i % 3] == "neutral" else f"h{i - i % 3 + 1:03d}"


def fleet_config(n: int, speed: int) -> str:
    """N strategies around SOLUSDT's replay start price (~171.7), spread over paper accounts
    so no two share a position (see account_of)."""
    lines = ["version: 1", "accounts:"]
    for name in dict.fromkeys(account_of(i) for i in range(n)):
        lines += [f"  {name}:", "    exchange: paper", "    like: binanceusdm",
                  *(["    position_mode: hedge"] if name.startswith("h") else []),
                  "    balance: 1000000", f"    feed: {{replay: \"builtin:SOLUSDT_1m\", speed: {speed}}}"]
    lines.append("strategies:")
    for i in range(n):
        mode = MODES[i % 3]
        lower = 150 + (i * 7) % 19          # 150..168
        upper = 176 + (i * 11) % 21         # 176..196
        grids = 10 + (i * 13) % 31          # 10..40
        spacing = "geometric" if i % 4 == 3 else "arithmetic"
        lines += [f"  s{i:03d}:", f"    account: {account_of(i)}", "    symbol: SOL/USDT:USDT", f"    mode: {mode}",
                  f"    spacing: {spacing}", f"    lower: {lower}", f"    upper: {upper}", f"    grids: {grids}",
                  f"    investment: {grids * 25}", "    leverage: 2",
                  *(["    initial_position: true"] if mode != "neutral" else []),
                  "    risk: {on_stop: close}"]
    lines += ["reports:", "  daily: {cron: \"0 8 * * *\", period: 1d, format: csv, dir: reports}"]
    return "\n".join(lines) + "\n"


# ---- processes --------------------------------------------------------------------------------
def gridctl(env: dict, cwd: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gridctl", *args], env=env, cwd=cwd, text=True,
                          capture_output=True, timeout=timeout)




def pss_kb(pid: int) -> int:
    """Proportional set size: shared pages are divided among the processes that map them."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)
    except (OSError, IndexError, ValueError):
        return 0


class Fleet:
    """One state dir, one supervisor; stop() always leaves no process behind."""

    def __init__(self, n: int, speed: int, root: Path):
        self.n = n
        self.dir = root / f"fleet{n}"
        self.dir.mkdir(parents=True)
        self.state = self.dir / "st"
        self.config = self.dir / "strategies.yaml"
        self.config.write_text(fleet_config(n, speed))
        self.env = dict(os.environ, GRIDCTL_STATE_DIR=str(self.state))
        for k in ("GRIDCTL_WORKER_MAIN", "GRIDCTL_PRELOAD", "GRIDCTL_CONFIG", "GRIDCTL_BACKOFF_BASE"):
            self.env.pop(k, None)
        self.grids = {f"s{i:03d}": 10 + (i * 13) % 31 for i in range(n)}
        self.pids: set[int] = set()

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return gridctl(self.env, self.dir, *args)

    def validate(self) -> None:
        r = self.run("validate", "-c", str(self.config))
        if r.returncode != 0:
            raise SystemExit(f"generated config does not validate:\n{r.stdout}{r.stderr}")

    def status(self) -> Optional[dict]:
        st = supervisor_status(self.state, timeout=30)
        if st:
            self.pids.update(w["pid"] for w in st["workers"] if w.get("pid"))
        return st

    def processes(self) -> dict[str, list[int]]:
        st = self.status() or {}
        sup = st.get("supervisor") or {}
        return {"supervisor": [sup["pid"]] if sup.get("pid") else [],
                "reporter": [sup["reporter_pid"]] if sup.get("reporter_pid") else [],
                "workers": [w["pid"] for w in st.get("workers", []) if w.get("pid")],
                "venues": [v["pid"] for v in sup.get("venues", []) if v.get("pid")]}

    def stop(self) -> Optional[float]:
        """`gridctl shutdown` (timed), then SIGKILL for anything still alive."""
        took = None
        if ControlClient(self.state).is_running():
            t = time.monotonic()
            r = self.run("shutdown")
            took = time.monotonic() - t
            if r.returncode != 0:
                print(f"  shutdown: exit {r.returncode}: {r.stderr.strip()[-500:]}", file=sys.stderr)
        pids = set(self.pids) | {read_pid(self.state / "supervisor.pid")}
        run = self.state / "run"
        if run.exists():
            pids |= {lock_holder(p) or 0 for p in run.rglob("*.pid")}  # workers and run/venue/*.pid
        for pid in pids:
            if pid and alive(pid):
                os.kill(pid, signal.SIGKILL)
        return took


def median_ms(fn, runs: int = 5) -> tuple[float, list[float]]:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), times


def status_cli(env: dict, cwd: Path) -> None:
    r = gridctl(env, cwd, "status", "--json")
    if r.returncode != 0:
        raise RuntimeError(f"gridctl status failed: {r.stderr}")
    json.loads(r.stdout)


# ---- the measurements ---------------------------------------------------------------------------
def bench_fleet(f: Fleet, rest_s: float) -> dict:
    f.validate()
    t0 = time.monotonic()
    # Poll the supervisor while `gridctl start` runs: it returns once every worker answers.
    proc = subprocess.Popen([sys.executable, "-m", "gridctl", "start", "-c", str(f.config)], env=f.env,
                            cwd=f.dir, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    start_cmd: Optional[float] = None
    placed: dict[str, float] = {}
    complete: set[str] = set()  # an order on every level (the others are one short, see below)
    deadline = t0 + 600
    while (len(placed) < f.n or start_cmd is None) and time.monotonic() < deadline:
        if start_cmd is None and proc.poll() is not None:
            start_cmd = time.monotonic() - t0
            out, err = proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"gridctl start failed ({proc.returncode}):\n{out[-2000:]}\n{err[-2000:]}")
        st = f.status() if ControlClient(f.state).is_running() else None
        now = time.monotonic()
        for w in (st or {}).get("workers", []):
            live = w.get("worker") or {}
            # One level may stay empty: the price (60x) passed it while ccxt paced the grid's
            # orders, its post-only entry was refused and it waits for the price to come back.
            if w["name"] not in placed and live and live["open_buys"] + live["open_sells"] >= f.grids[w["name"]] - 1:
                placed[w["name"]] = now - t0
            if live and live["open_buys"] + live["open_sells"] >= f.grids[w["name"]]:
                complete.add(w["name"])
        time.sleep(0.25)
    if start_cmd is None:
        proc.kill()
        raise RuntimeError("gridctl start did not return within 600 s")
    if len(placed) < f.n:
        missing = sorted(set(f.grids) - set(placed))
        raise RuntimeError(f"{len(missing)} workers never had their grid placed: {missing[:10]}")
    all_placed = max(placed.values())

    time.sleep(3)  # let start-up settle before measuring rest
    procs = f.processes()
    every = [p for ps in procs.values() for p in ps]
    before = {p: cpu_ticks(p) for p in every}
    t = time.monotonic()
    time.sleep(rest_s)
    elapsed = time.monotonic() - t
    cpu_pct = sum(cpu_ticks(p) - before[p] for p in every) / CLK_TCK / elapsed * 100
    worker_cpu = [(cpu_ticks(p) - before[p]) / CLK_TCK / elapsed * 100 for p in procs["workers"]]

    pss = {k: [pss_kb(p) for p in ps] for k, ps in procs.items()}
    status_ms, status_runs = median_ms(lambda: status_cli(f.env, f.dir))
    shutdown_s = f.stop()
    workers = pss["workers"]
    return {"n": f.n, "start_cmd_s": start_cmd, "all_placed_s": all_placed, "complete": len(complete),
            "median_placed_s": statistics.median(placed.values()), "rest_s": elapsed, "cpu_pct": cpu_pct,
            "cpu_worker_pct_max": max(worker_cpu) if worker_cpu else 0.0,
            "pss_total_mb": sum(sum(v) for v in pss.values()) / 1024,
            "pss_supervisor_mb": sum(pss["supervisor"]) / 1024, "pss_reporter_mb": sum(pss["reporter"]) / 1024,
            "pss_venues_mb": sum(pss["venues"]) / 1024, "venues": len(pss["venues"]),
            "pss_worker_mb_avg": statistics.mean(workers) / 1024, "pss_worker_mb_max": max(workers) / 1024,
            "workers": len(workers), "status_ms": status_ms, "status_runs": status_runs, "shutdown_s": shutdown_s}


def bench_big_db(root: Path, events: int, fills: int, strategies: int) -> dict:
    from gridctl.store.db import open_database
    from tests.store_fixture import populate

    state = root / "bigdb"
    t = time.monotonic()
    db = open_database(state)
    populate(db, [f"s{i:03d}" for i in range(strategies)], events=events, fills=fills)
    db.close()
    fill_s = time.monotonic() - t
    env = dict(os.environ, GRIDCTL_STATE_DIR=str(state))
    env.pop("GRIDCTL_CONFIG", None)
    status_cli(env, root)  # warm the page cache once, as a second `status` would find it
    status_ms, runs = median_ms(lambda: status_cli(env, root))
    one_ms, _ = median_ms(lambda: gridctl(env, root, "status", "s000", "--json"))
    size_mb = sum(p.stat().st_size for p in state.glob("gridctl.db*")) / 2**20
    return {"events": events, "fills": fills, "strategies": strategies, "populate_s": fill_s,
            "db_mb": size_mb, "status_ms": status_ms, "status_runs": runs, "status_one_ms": one_ms}


def python_startup_ms() -> float:
    return median_ms(lambda: subprocess.run([sys.executable, "-c", "import gridctl.cli"], check=True))[0]


def report_fleet(m: dict) -> None:
    ok_pss = "ok" if m["pss_total_mb"] < TARGET_PSS_MB else "OVER TARGET"
    ok_st = "ok" if m["status_ms"] < TARGET_STATUS_MS else "OVER TARGET"
    print(f"\n== {m['n']} strategies ({m['workers']} workers + {m['venues']} venues + supervisor + reporter) ==")
    print(f"  gridctl start returned after        {m['start_cmd_s']:8.2f} s")
    print(f"  every grid placed after              {m['all_placed_s']:8.2f} s   (median worker {m['median_placed_s']:.2f} s; "
          f"{m['complete']} of {m['n']} seen with an order on every level, the others one short)")
    print(f"  PSS total                            {m['pss_total_mb']:8.1f} MB  (target < {TARGET_PSS_MB} MB: {ok_pss})")
    print(f"    supervisor {m['pss_supervisor_mb']:.1f} MB, reporter {m['pss_reporter_mb']:.1f} MB, "
          f"venues {m['pss_venues_mb']:.1f} MB, "
          f"per worker avg {m['pss_worker_mb_avg']:.1f} MB / max {m['pss_worker_mb_max']:.1f} MB")
    print(f"  CPU at rest over {m['rest_s']:.0f} s                {m['cpu_pct']:8.1f} % of one core  "
          f"(busiest worker {m['cpu_worker_pct_max']:.2f} %)")
    print(f"  gridctl status --json (live fleet)   {m['status_ms']:8.0f} ms median of 5  "
          f"(target < {TARGET_STATUS_MS} ms: {ok_st}; runs {', '.join(f'{x:.0f}' for x in m['status_runs'])})")
    if m["shutdown_s"] is not None:
        print(f"  gridctl shutdown (stop + flatten)    {m['shutdown_s']:8.2f} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="20,100", help="fleet sizes, comma-separated (default 20,100)")
    ap.add_argument("--rest", type=float, default=30.0, help="seconds of CPU measurement at rest (default 30)")
    ap.add_argument("--speed", type=int, default=60, help="paper feed speed, x real time (default 60)")
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--fills", type=int, default=100_000)
    ap.add_argument("--db-strategies", type=int, default=100)
    ap.add_argument("--skip-db", action="store_true", help="skip the large-database status timing")
    ap.add_argument("--keep", action="store_true", help="keep the temporary state dirs")
    args = ap.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    root = Path(tempfile.mkdtemp(prefix="gxb-"))  # short: socket paths have a 107-byte limit
    print(f"bench_fleet: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, feed speed {args.speed}x, "
          f"state under {root}")
    print(f"python -c 'import gridctl.cli' takes {python_startup_ms():.0f} ms (part of every CLI timing)")
    current: Optional[Fleet] = None
    try:
        for n in [int(x) for x in args.sizes.split(",") if x]:
            current = Fleet(n, args.speed, root)
            m = bench_fleet(current, args.rest)
            current = None
            report_fleet(m)
        if not args.skip_db:
            d = bench_big_db(root, args.events, args.fills, args.db_strategies)
            ok = "ok" if d["status_ms"] < TARGET_STATUS_MS else "OVER TARGET"
            print("\n== status on a large database (supervisor down) ==")
            print(f"  {d['events']:,} events, {d['fills']:,} fills, {d['strategies']} strategies: "
                  f"{d['db_mb']:.0f} MB (populated in {d['populate_s']:.1f} s)")
            print(f"  gridctl status --json                {d['status_ms']:8.0f} ms median of 5  "
                  f"(target < {TARGET_STATUS_MS} ms: {ok}; runs {', '.join(f'{x:.0f}' for x in d['status_runs'])})")
            print(f"  gridctl status s000 --json           {d['status_one_ms']:8.0f} ms median of 5")
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        if current is not None:
            current.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
