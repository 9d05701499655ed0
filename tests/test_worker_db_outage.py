"""A worker (re)starting while the database is unavailable: what it reads back and how long it waits.

The process-level proof is tests/test_e2e_db_outage.py; these pin the two fixes it led to.
"""

from __future__ import annotations

import sqlite3
import time
from decimal import Decimal

import pytest

from gridctl.store.db import db_path, open_database
from gridctl.store.journal import journal_path
from gridctl.store.writer import BufferedWriter
from gridctl.worker.main import _flush_now, _stored_fills


def fill(i: int) -> dict:
    return {"strategy": "s", "ts": 1_000 + i, "client_id": f"c{i}", "order_id": f"o{i}", "level": 3,
            "intent": "entry", "side": "buy", "price": Decimal("150.25"), "qty": Decimal("0.3"),
            "fee": Decimal("0.009015"), "maker": True, "reduce_only": False, "realized_pnl": Decimal(0),
            "trade_id": f"t{i}"}


def order(i: int) -> dict:
    return {"strategy": "s", "client_id": f"c{i}", "order_id": f"o{i}", "side": "buy", "price": Decimal("150.25"),
            "qty": Decimal("0.3"), "filled": Decimal(0), "status": "open", "created_ts": 1_000 + i,
            "updated_ts": 1_000 + i}


@pytest.fixture
def locked(tmp_path):
    db = open_database(tmp_path, timeout=0.05)
    locker = sqlite3.connect(db_path(tmp_path), isolation_level=None)
    yield tmp_path, db, locker
    if locker.in_transaction:
        locker.execute("COMMIT")
    locker.close()
    db.close()


def test_a_worker_restarted_in_an_outage_reads_its_fills_from_the_journal_too(locked):
    # regression: _stored_fills read the database only, so the last process's journaled fills
    # came back as "missed" in recovery and their cycles were stored twice
    state, db, locker = locked
    jp = journal_path(state, "s")
    w = BufferedWriter(db, maxsize=2, retry_s=0.0, strategy="s", journal_path=jp)
    w.add("fills", fill(0))
    assert w.flush()
    locker.execute("BEGIN EXCLUSIVE")
    for i in range(1, 5):
        w.upsert("orders", order(i))
        w.add("fills", fill(i))
    assert not w.flush() and w.journaled == 8  # past the bound: in the journal
    # kill -9: the memory is gone, the journal stays; the new worker starts inside the outage
    w2 = BufferedWriter(db, maxsize=2, retry_s=10.0, strategy="s", journal_path=jp)
    assert w2.unavailable_since_ms is not None and w2.journaled == 8
    rows = _stored_fills("s", 0, w2)
    assert [r.trade_id for r in rows] == ["t0", "t1", "t2", "t3", "t4"]
    assert rows[1].price == "150.25" and rows[1].maker is True  # journaled: Decimals as strings
    assert [r["client_id"] for r in w2.pending_rows("orders")] == ["c1", "c2", "c3", "c4"]
    # a row both committed and still journaled (a crash between the commit and the journal's
    # shortening) is read once
    locker.execute("COMMIT")
    w3 = BufferedWriter(db, maxsize=2, strategy="s")
    w3.add("fills", fill(2))
    assert w3.flush()
    assert [r.trade_id for r in _stored_fills("s", 0, w2)] == ["t0", "t1", "t2", "t3", "t4"]


def test_a_worker_start_does_not_wait_for_a_locked_database(tmp_path):
    # regression: _flush_now retried 20 times, each waiting the busy timeout (5 s in production:
    # 100 s before a restarted worker traded or answered status)
    db = open_database(tmp_path, timeout=0.3)
    locker = sqlite3.connect(db_path(tmp_path), isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        w = BufferedWriter(db, strategy="s", journal_path=journal_path(tmp_path, "s"))
        w.upsert("strategies", {"name": "s", "updated_ts": 1})
        t = time.monotonic()
        assert _flush_now(w) is False
        assert time.monotonic() - t < 1.5  # one attempt, not 20
        t = time.monotonic()
        assert _flush_now(w) is False  # known unavailable: no new wait within the retry time
        assert time.monotonic() - t < 0.2
    finally:
        locker.execute("COMMIT")
        locker.close()
    assert w.flush(force=True)
    db.close()
