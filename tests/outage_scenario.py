"""A database outage under a busy grid, with real threads and a real SQLite file.

Another connection holds `BEGIN EXCLUSIVE` on the database for `outage_s` seconds
(every write of the worker's writer then fails with "database is locked") while a
producer thread adds fills, order upserts (placed, then filled) and events at an
even pace over the outage. The writer flushes from its background thread. Once the
lock is released, the scenario waits until the writer has nothing pending and
counts what reached the database. Used by tests/test_store_outage.py (seconds) and
tests/bench/soak_db_outage.py (the 150 s version). With `url` and `outage` (begin()/end(),
e.g. a PostgreSQL server crashed and started again) tests/test_store_postgres.py runs it
on PostgreSQL.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Optional

from gridctl.store.db import db_path, open_database
from gridctl.store.journal import journal_path
from gridctl.store.models import FillRow, Order
from gridctl.store.writer import BufferedWriter

NAME = "soak"


class _Lock:
    """The SQLite outage: another connection holds BEGIN EXCLUSIVE until end()."""

    def __init__(self, path: Path):
        self.con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    def begin(self) -> None:
        self.con.execute("BEGIN EXCLUSIVE")

    def end(self) -> None:
        self.con.execute("COMMIT")
        self.con.close()


def run_outage(state_dir: Path, outage_s: float = 3.0, fills: int = 5000, orders: int = 1000,
               maxsize: int = 200, interval_s: float = 0.02, retry_s: float = 0.1, db_timeout_s: float = 0.05,
               drain_timeout_s: float = 120.0, url: Optional[str] = None, outage: Any = None) -> dict[str, Any]:
    """Run the scenario in `state_dir`; returns the figures (see the module doc).

    Every `fills // orders`-th fill (at least every 2nd) also places an order and
    the next one fills it, so each order is upserted twice and must end up `filled`.
    """
    db = open_database(state_dir, url, timeout=db_timeout_s)
    jpath = journal_path(state_dir, NAME)
    w = BufferedWriter(db, maxsize=maxsize, retry_s=retry_s, strategy=NAME, journal_path=jpath)
    if outage is None:
        outage = _Lock(db_path(state_dir))
    outage.begin()
    t0 = time.monotonic()
    w.start_background(interval_s)
    every = max(2, fills // max(1, orders))  # order j is placed at fill j*every, filled at the next one
    orders = min(orders, (fills + every - 2) // every)
    peak = {"journaled": 0, "queued": 0, "unavailable_since_ms": None}

    def produce() -> None:
        for i in range(fills):
            j, k = divmod(i, every)
            if k == 0 and j < orders:
                w.upsert("orders", {"strategy": NAME, "client_id": f"o{j}", "order_id": f"x{j}",
                                    "side": "buy", "price": Decimal("150.25"), "qty": Decimal("0.3"),
                                    "filled": Decimal(0), "status": "open", "created_ts": i, "updated_ts": i})
            elif k == 1 and j < orders:
                w.upsert("orders", {"strategy": NAME, "client_id": f"o{j}", "status": "filled",
                                    "filled": Decimal("0.3"), "updated_ts": i})
            w.add("fills", {"strategy": NAME, "ts": 1_000 + i, "side": "buy", "price": Decimal("150.25"),
                            "qty": Decimal("0.3"), "fee": Decimal("0.009015"), "client_id": f"c{i}",
                            "trade_id": f"t{i}"})
            w.event(NAME, "fill", f"fill {i}", ts=1_000 + i)
            # an even pace over 90% of the outage: rows keep coming while the database is away
            due = t0 + outage_s * 0.9 * (i + 1) / fills
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    producer = threading.Thread(target=produce, name="producer")
    producer.start()
    while time.monotonic() - t0 < outage_s:
        s = w.stats()
        peak["journaled"] = max(peak["journaled"], s["journaled"])
        peak["queued"] = max(peak["queued"], s["queued"])
        peak["unavailable_since_ms"] = peak["unavailable_since_ms"] or s["unavailable_since_ms"]
        time.sleep(0.01)
    producer.join()
    during = w.stats()
    outage.end()
    released = time.monotonic()
    while w.pending and time.monotonic() - released < drain_timeout_s:
        time.sleep(0.01)
    drain_s = time.monotonic() - released
    closed = w.close()
    after = w.stats()
    stored_fills = FillRow.select().where(FillRow.strategy == NAME).count()
    distinct = (FillRow.select(FillRow.trade_id).where(FillRow.strategy == NAME).distinct().count())
    stored_orders = Order.select().where(Order.strategy == NAME).count()
    filled_orders = Order.select().where((Order.strategy == NAME) & (Order.status == "filled")).count()
    db.close()
    return {
        "outage_s": outage_s, "fills_added": fills, "orders_added": orders, "maxsize": maxsize,
        "fills_stored": stored_fills, "distinct_trade_ids": distinct, "orders_stored": stored_orders,
        "orders_filled": filled_orders, "peak_journaled": peak["journaled"], "peak_in_memory": peak["queued"],
        "unavailable_since_ms": peak["unavailable_since_ms"], "failed_flushes": after["failures"],
        "events_dropped": after["dropped"], "pending_at_release": during["pending"], "drain_s": round(drain_s, 3),
        "pending_after": after["pending"], "journal_left": jpath.exists(), "closed_clean": closed,
    }
