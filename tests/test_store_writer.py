"""The buffered writer: trading never waits for, or fails because of, the database."""

from __future__ import annotations

import sqlite3
import time
from decimal import Decimal

import pytest

from gridctl.store.db import db_path, open_database
from gridctl.store.models import Equity, Event, FillRow, Level, Order, Strategy
from gridctl.store.writer import BufferedWriter


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def fill(i: int) -> dict:
    return {"strategy": "s", "ts": 1_000 + i, "side": "buy", "price": Decimal("150.25"), "qty": Decimal("0.3"),
            "fee": Decimal("0.009015"), "client_id": f"c{i}"}


@pytest.fixture
def db(tmp_path):
    d = open_database(tmp_path, timeout=0.05)  # a locked database fails fast instead of waiting 5 s
    yield d
    d.close()


def writer(db, clock, **kw) -> BufferedWriter:
    return BufferedWriter(db, now=clock, wall_ms=lambda: 5_000, strategy="s", **kw)


def test_flush_writes_every_queued_row_in_order(db):
    w = writer(db, Clock())
    for i in range(250):
        w.add("fills", fill(i))
    w.event("s", "fill", "buy 0.3 @ 150.25", level=3, data={"price": Decimal("150.25")})
    assert w.flush() is True and w.pending == 0
    assert [f.client_id for f in FillRow.select().order_by(FillRow.id)] == [f"c{i}" for i in range(250)]
    assert FillRow.get(FillRow.client_id == "c7").price == Decimal("150.25")
    ev = Event.get()
    assert (ev.type, ev.level, ev.data_json, ev.ts) == ("fill", 3, '{"price":"150.25"}', 5_000)


def test_locked_database_loses_nothing_and_retries_no_sooner_than_10s(db, tmp_path):
    clock = Clock()
    w = writer(db, clock)
    locker = sqlite3.connect(db_path(tmp_path), isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    for i in range(1000):
        w.add("fills", fill(i))
    assert w.flush() is False
    assert w.pending == 1000 and w.dropped == 0 and "locked" in w.last_error
    locker.execute("COMMIT")
    clock.t += 9.9
    assert w.flush() is False and w.attempts == 1  # too soon: not even tried
    clock.t += 0.1
    assert w.flush() is True
    assert FillRow.select().count() == 1000 and w.pending == 0


def test_unwritable_database_keeps_rows_until_it_recovers(db):
    clock = Clock()
    w = writer(db, clock)
    db.execute_sql("PRAGMA query_only = ON")  # every write now fails: "attempt to write a readonly database"
    for i in range(10):
        w.add("fills", fill(i))
    assert w.flush() is False and w.pending == 10 and "readonly" in w.last_error
    clock.t += 10
    assert w.flush() is False and w.attempts == 2  # retried after 10 s, still failing
    db.execute_sql("PRAGMA query_only = OFF")
    clock.t += 10
    assert w.flush() is True and FillRow.select().count() == 10


def equity(i: int) -> dict:
    return {"strategy": "s", "ts": 2_000 + i, "price": Decimal("150.25"), "total_pnl": Decimal(i)}


def test_full_queue_drops_the_oldest_events_and_equity_and_reports_it(db):
    clock = Clock()
    w = writer(db, clock, maxsize=100)
    db.execute_sql("PRAGMA query_only = ON")
    for i in range(130):
        w.event("s", "info", f"e{i}", ts=i) if i % 2 else w.add("equity", equity(i))
    assert w.flush() is False
    assert w.pending == 100 and w.dropped == 30
    warning = [e for e in w.recent_events() if e["type"] == "warn"]
    assert len(warning) == 1 and "dropping the oldest events" in warning[0]["message"]
    db.execute_sql("PRAGMA query_only = OFF")
    clock.t += 10
    assert w.flush() is True
    kept = sorted([e.ts for e in Event.select().where(Event.type == "info")] + [q.ts - 2_000 for q in Equity.select()])
    assert kept == list(range(30, 130))
    ev = Event.get(Event.type == "warn")
    assert "30 queued events and equity snapshots were dropped" in ev.message and ev.strategy == "s"
    assert w.flush() is True and Event.select().where(Event.type == "warn").count() == 1  # reported once


def test_add_never_blocks_while_the_database_is_locked(db, tmp_path):
    w = writer(db, Clock())
    locker = sqlite3.connect(db_path(tmp_path), isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    w.flush()
    t = time.perf_counter()
    for i in range(5000):
        w.add("fills", fill(i))
    assert time.perf_counter() - t < 0.5
    assert w.pending == 5000 and w.dropped == 0  # no journal given: money rows stay in memory
    locker.execute("ROLLBACK")


def test_a_row_the_database_refuses_is_dropped_alone(db):
    w = writer(db, Clock())
    w.add("fills", fill(1))
    w.add("fills", {"strategy": "s", "ts": 1, "side": None, "price": Decimal(1), "qty": Decimal(1)})  # NOT NULL
    w.add("fills", fill(2))
    assert w.flush() is True
    assert [f.client_id for f in FillRow.select()] == ["c1", "c2"] and w.rejected == 1


def test_upsert_updates_only_the_given_columns(db):
    w = writer(db, Clock())
    w.upsert("strategies", {"name": "s", "config_json": {"investment": Decimal("500")}, "status": "starting",
                            "started_ts": 1})
    w.upsert("orders", {"strategy": "s", "client_id": "c1", "side": "buy", "price": Decimal("150.00"),
                        "qty": Decimal("0.5"), "status": "open", "created_ts": 10, "updated_ts": 10})
    w.flush()
    w.upsert("strategies", {"name": "s", "status": "running"})
    w.upsert("orders", {"strategy": "s", "client_id": "c1", "status": "filled", "filled": Decimal("0.5"),
                        "updated_ts": 20})
    w.upsert("levels", {"strategy": "s", "idx": 0, "side": "buy", "entry_price": Decimal("150"),
                        "size": Decimal("0.5"), "held": Decimal("0")})
    w.upsert("levels", {"strategy": "s", "idx": 0, "side": "buy", "entry_price": Decimal("150"),
                        "size": Decimal("0.5"), "held": Decimal("0.5")})
    assert w.flush() is True
    s = Strategy.get()
    assert (s.status, s.config_json, s.started_ts) == ("running", '{"investment":"500"}', 1)
    o = Order.get()
    assert (o.status, o.filled, o.price, o.created_ts, o.updated_ts) == ("filled", Decimal("0.5"),
                                                                          Decimal("150.00"), 10, 20)
    assert Level.select().count() == 1 and Level.get().held == Decimal("0.5")


def test_recent_events_keeps_the_last_200_in_memory(db):
    w = writer(db, Clock())
    db.execute_sql("PRAGMA query_only = ON")
    for i in range(250):
        w.event("s", "info", f"e{i}", ts=i)
    w.flush()
    recent = w.recent_events()
    assert len(recent) == 200 and recent[0]["message"] == "e50" and recent[-1]["message"] == "e249"


def test_unknown_table_is_a_programming_error(db):
    with pytest.raises(ValueError, match="unknown table"):
        writer(db, Clock()).add("fils", fill(0))


def test_background_thread_flushes_and_close_writes_the_rest(db):
    w = BufferedWriter(db)
    w.start_background(interval_s=0.02)
    w.add("fills", fill(1))
    deadline = time.time() + 5
    while FillRow.select().count() == 0 and time.time() < deadline:
        time.sleep(0.01)
    assert FillRow.select().count() == 1
    w.add("fills", fill(2))
    assert w.close() is True
    assert FillRow.select().count() == 2
