"""Soak: a long database outage under a busy grid; nothing the exchange reported may be lost.

Runs tests/outage_scenario.run_outage with the production writer settings by
default (1,000 rows in memory, a flush every second, a retry every 10 s, a 5 s
SQLite busy timeout): another connection holds BEGIN EXCLUSIVE on a fresh SQLite
database for --outage seconds while fills, order upserts and events keep coming.
Prints the figures and exits 1 unless every fill and order is stored exactly once.

    python tests/bench/soak_db_outage.py [--outage 150] [--fills 20000] [--orders 5000]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))  # outage_scenario

from outage_scenario import run_outage  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--outage", type=float, default=150.0, help="seconds the database stays locked")
    p.add_argument("--fills", type=int, default=20_000, help="fills added during the outage")
    p.add_argument("--orders", type=int, default=5_000, help="orders placed then filled during the outage")
    p.add_argument("--maxsize", type=int, default=1000, help="rows the writer keeps in memory")
    p.add_argument("--interval", type=float, default=1.0, help="background flush interval, s")
    p.add_argument("--retry", type=float, default=10.0, help="wait after a failed flush, s")
    p.add_argument("--db-timeout", type=float, default=5.0, help="SQLite busy timeout, s")
    a = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    with tempfile.TemporaryDirectory(prefix="gridctl-soak-") as d:
        t = time.monotonic()
        r = run_outage(Path(d), outage_s=a.outage, fills=a.fills, orders=a.orders, maxsize=a.maxsize,
                       interval_s=a.interval, retry_s=a.retry, db_timeout_s=a.db_timeout,
                       drain_timeout_s=max(120.0, a.outage))
        r["wall_s"] = round(time.monotonic() - t, 1)
    print(json.dumps(r, indent=2))
    ok = (r["fills_stored"] == r["distinct_trade_ids"] == r["fills_added"]
          and r["orders_stored"] == r["orders_filled"] == r["orders_added"] and r["pending_after"] == 0)
    print("OK: every fill and order stored exactly once" if ok else "FAILED: rows lost or doubled")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
