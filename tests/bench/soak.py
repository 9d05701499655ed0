"""The faulted soak: a paper fleet on the local venue for simulated hours, faults injected at
random with a fixed seed, then every invariant checked from the venue's own records.

The fleet (tests/bench/soak_fleet.py): a hedge account shared by a long and a short grid on
SOL, a one-way account shared by neutral grids on two symbols, and a Backpack account with a
neutral grid, all under one real supervisor, each account's venue replaying the bundled
SOLUSDT 1m candles at --speed (simulated time = wall time x speed). Funding is settled on
every market each simulated --funding-hours at a random rate (POST /_admin/funding).
The faults (tests/bench/soak_faults.py): 429s, 5xx, timeouts after acceptance, empty 200s,
rejects, partial fills, listen-key expiry, dropped and silent streams, SIGKILLs of workers,
venues and the supervisor, and windows of --db-window seconds with the database locked.

At the end the faults stop, every process is back, the prices are pinned, the fleet is given
--settle seconds to converge, the pre-stop checks run (desired orders, positions, order
rows), every strategy is stopped, and the rest run (tests/bench/soak_checks.py). It prints the
faults by kind, the fills, each check, and finally

    soak: <faults> faults, <fills> fills, <violations> violations

and exits 1 on any violation.

    python tests/bench/soak.py [--sim-hours 24] [--seed 1] [--speed 120] [--strategies hl hs os ox bp]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Callable, Optional

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # tests.*

from tests.bench.soak_checks import AFTER_STOP, BEFORE_STOP, Result, Seen, strategies  # noqa: E402
from tests.bench.soak_faults import KINDS, Scheduler  # noqa: E402
from tests.bench.soak_fleet import STRATEGIES, Fleet, build_config  # noqa: E402


def observe(fleet: Fleet, strats: dict, with_status: bool = True) -> Seen:
    """Everything the checks read, taken now."""
    history, audit, prices = {}, {}, {}
    for a in fleet.accounts:
        history[a] = fleet.admin(a, "/_admin/history", timeout=60)
        audit[a] = fleet.admin(a, "/_admin/audit")
        for sym, m in fleet.admin(a, "/_admin/state")["markets"].items():
            prices[(a, sym)] = Decimal(m["last"])
    status = fleet.status() if with_status else {}
    return Seen(strats, history, audit, fleet.db, status, prices)


def run_checks(checks, seen: Seen) -> list[Result]:
    out = []
    for check in checks:
        try:
            out.append(check(seen))
        except Exception as exc:  # a check that cannot run is a failed check, with its reason
            r = Result(check.__name__.replace("check_", ""))
            r.bad(f"could not run: {type(exc).__name__}: {exc}")
            out.append(r)
    return out


def schedule_funding(fleet: Fleet, rates: dict, every_ms: int) -> None:
    """Funding on every market each `every_ms` (a simulated interval), at instants the venue
    announces; posted again and again because a restarted venue forgets the schedule."""
    for a in fleet.accounts:
        for sym in {s["symbol"] for s in fleet.config["strategies"].values() if s["account"] == a}:
            fleet.try_admin(a, "/_admin/funding", {"symbol": sym, "rate": str(rates[(a, sym)]), "every_ms": every_ms})


def soak(root: Path, names: list[str], sim_hours: float, seed: int, speed: int, rate: float = 1.0,
         db_window: tuple[float, float] = (30.0, 150.0), db_every: float = 300.0, funding_hours: float = 2.0,
         settle: float = 90.0, log: Callable[[str], None] = print) -> dict:
    """Run the soak in `root`; returns {"faults": Counter, "fills", "before": [Result], "after": [Result], ...}."""
    root.mkdir(parents=True, exist_ok=True)
    logfile = open(root / "soak.log", "a")
    outer = log

    def log(msg: str) -> None:  # noqa: F811 (the file keeps the run's story for the evidence)
        outer(msg)
        logfile.write(time.strftime("%H:%M:%S ") + msg + "\n")
        logfile.flush()

    cfg = build_config(names, speed, sim_hours)
    fleet = Fleet(root, cfg, log)
    t0 = time.monotonic()
    sched: Optional[Scheduler] = None
    try:
        log(fleet.start().strip())
        fleet.wait(fleet.all_up, 60, "every worker and venue running")
        fleet.wait(lambda: all(r["open_buys"] + r["open_sells"] for r in fleet.status().values()), 90,
                   "every grid placed")
        strats = strategies(fleet.config_path, fleet.env)
        wall = sim_hours * 3600 / speed
        log(f"fleet up in {time.monotonic() - t0:.0f} s; soaking {sim_hours:g} simulated hours = {wall:.0f} s "
            f"at {speed}x, seed {seed}")
        sched = Scheduler(fleet, seed, rate=rate, db_window=db_window, db_every=db_every, log=log)
        sched.start()
        rng = random.Random(seed + 1)
        rates = {(s["account"], s["symbol"]): Decimal(rng.choice((-1, 1)) * rng.randint(5, 30)) / 100_000
                 for s in cfg["strategies"].values()}
        every_ms = int(funding_hours * 3600 * 1000 / speed)
        start = time.monotonic()
        last_log = last_funding = start
        while (elapsed := time.monotonic() - start) < wall:
            if time.monotonic() - last_funding >= 5:
                last_funding = time.monotonic()
                schedule_funding(fleet, rates, every_ms)
            if time.monotonic() - last_log >= 30:
                last_log = time.monotonic()
                log(f"{elapsed * speed / 3600:5.1f} h simulated; injected {sum(sched.injected.values())}")
            time.sleep(0.5)
        sched.stop()
        schedule_funding(fleet, rates, 30 * 86_400_000)  # no funding while the fleet comes to rest
        log("faults stopped; waiting for every process")
        fleet.revive()
        schedule_funding(fleet, rates, 30 * 86_400_000)  # a venue restarted meanwhile
        for a in fleet.accounts:  # pin every market where it is: the fleet can come to rest
            for sym, m in fleet.admin(a, "/_admin/state")["markets"].items():
                fleet.admin(a, "/_admin/price", {"symbol": sym, "price": m["last"]})
        deadline = time.monotonic() + settle
        while True:
            time.sleep(3)
            before = run_checks(BEFORE_STOP, observe(fleet, strats))
            if not any(r.violations for r in before) or time.monotonic() > deadline:
                break
        log(f"settled in {settle - max(0.0, deadline - time.monotonic()):.0f} s; stopping every strategy")
        r = fleet.gridctl("stop", *fleet.names, timeout=300)
        log((r.stdout + r.stderr).strip())
        fleet.wait(lambda: all(row["state"] == "stopped" for row in fleet.status().values()), 120, "every stop")
        time.sleep(2)  # the last snapshots and fills reach the database
        seen = observe(fleet, strats)
        after = run_checks(AFTER_STOP, seen)
        fired = sched.fired()
        for a in fleet.accounts:  # the venues' fault logs, for the evidence of a violation
            (root / f"audit-{a}.json").write_text(json.dumps(seen.audit.get(a), indent=1))
        fills = sum(len(seen.own(s, "fills")) for s in strats.values())
        fundings = sum(len(seen.venue(a)["income"]) for a in fleet.accounts)
        return {"faults": fired, "fills": fills, "before": before, "after": after, "fundings": fundings,
                "injected": sched.injected, "errors": sched.errors, "wall_s": time.monotonic() - t0}
    finally:
        if sched is not None:
            sched._stop.set()
        fleet.close()


def report(r: dict, out: Callable[[str], None] = print) -> int:
    """Print the figures; returns the number of violations."""
    out("faults fired, by kind:")
    for k in KINDS:
        out(f"  {k:<16} {r['faults'].get(k, 0)}")
    out(f"funding payments on the venues: {r['fundings']}; venue fills of the strategies: {r['fills']}")
    out("checks before the stop (at rest, prices pinned):")
    for res in r["before"]:
        out("  " + res.line())
        out("\n".join("      " + e for e in res.evidence)) if res.evidence else None
    out("checks after the stop:")
    for res in r["after"]:
        out("  " + res.line())
        out("\n".join("      " + e for e in res.evidence)) if res.evidence else None
    violations = sum(x.violations for x in r["before"] + r["after"])
    out(f"soak: {sum(r['faults'].values())} faults, {r['fills']} fills, {violations} violations")
    return violations


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sim-hours", type=float, default=24.0, help="simulated hours of replayed market data")
    p.add_argument("--seed", type=int, default=1, help="the fault scheduler's seed")
    p.add_argument("--speed", type=int, default=120, help="replay speed (simulated seconds per wall second)")
    p.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES))
    p.add_argument("--rate", type=float, default=1.5, help="fault choices per wall second (mean)")
    p.add_argument("--db-window", type=float, nargs=2, default=(30.0, 150.0), metavar=("MIN", "MAX"),
                   help="seconds a database lock lasts")
    p.add_argument("--db-every", type=float, default=240.0, help="mean wall seconds between database locks")
    p.add_argument("--funding-hours", type=float, default=2.0, help="simulated hours between funding payments")
    p.add_argument("--settle", type=float, default=90.0, help="seconds to come to rest before the checks")
    p.add_argument("--keep", type=Path, help="run in this directory and keep it (default: a temporary one)")
    a = p.parse_args(argv)
    t = time.monotonic()

    def log(msg: str) -> None:
        print(f"[{time.monotonic() - t:7.1f} s] {msg}", file=sys.stderr, flush=True)

    kw = dict(names=a.strategies, sim_hours=a.sim_hours, seed=a.seed, speed=a.speed, rate=a.rate,
              db_window=tuple(a.db_window), db_every=a.db_every, funding_hours=a.funding_hours, settle=a.settle, log=log)
    if a.keep:
        r = soak(a.keep, **kw)
    else:
        with tempfile.TemporaryDirectory(prefix="soak-") as d:
            r = soak(Path(d), **kw)
    log(f"wall {r['wall_s']:.0f} s")
    return 1 if report(r) else 0


if __name__ == "__main__":
    sys.exit(main())
