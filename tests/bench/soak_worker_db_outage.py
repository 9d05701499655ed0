"""Soak: a long database outage under a busy grid with the REAL supervisor and worker.

Runs tests/worker_outage.run_worker_outage: the paper exchange replays the bundled
SOLUSDT 1m candles at --speed, a neutral grid of --levels between --lower and --upper
trades it, and this process holds BEGIN EXCLUSIVE on <state>/gridctl.db for --outage
seconds. The worker's writer keeps --maxsize rows in memory (production: 1000) and
journals orders and fills past that. --kill kills the worker -9 halfway through the
outage (restarted by the supervisor after the release; --kill during: at once).
Prints the figures and exits 1 unless every fill and order is stored exactly once,
the ledger agrees with the venue and `stop` leaves the venue flat.

    python tests/bench/soak_worker_db_outage.py [--outage 150] [--speed 600] [--levels 120] [--kill]

The default range (156..174) holds the replay's first ~1700 minutes: at 600x about
170 s of trading; widen it (and add levels) for longer outages or higher speeds.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))  # worker_outage

from worker_outage import problems, run_worker_outage  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--outage", type=float, default=150.0, help="seconds the database stays locked")
    p.add_argument("--speed", type=int, default=600, help="replay speed (600: 10 one-minute candles a second)")
    p.add_argument("--levels", type=int, default=120, help="grid levels")
    p.add_argument("--lower", type=float, default=156.0)
    p.add_argument("--upper", type=float, default=174.0)
    p.add_argument("--maxsize", type=int, default=1000, help="rows the worker's writer keeps in memory")
    p.add_argument("--kill", nargs="?", const="after", choices=("after", "during"),
                   help="kill -9 the worker halfway; restarted after the release (default) or at once")
    a = p.parse_args()
    t = time.monotonic()

    def log(msg: str) -> None:
        print(f"[{time.monotonic() - t:7.1f} s] {msg}", file=sys.stderr, flush=True)

    kill = {None: False, "after": True, "during": "during"}[a.kill]
    with tempfile.TemporaryDirectory(prefix="gridctl-worker-soak-") as d:
        r = run_worker_outage(Path(d), outage_s=a.outage, speed=a.speed, levels=a.levels, lower=a.lower,
                              upper=a.upper, maxsize=a.maxsize, kill=kill, log=log)
    r["wall_s"] = round(time.monotonic() - t, 1)
    print(json.dumps(r, indent=2))
    bad = problems(r)
    print("OK: every fill and order stored exactly once, ledger = venue, flat after stop" if not bad
          else "FAILED: " + "; ".join(bad))
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
