"""The buffered writer: trading never waits for, or fails because of, the database."""

from __future__ import annotations

import sqlite3
import time
from decimal import Decimal

import pytest

from gridctl.store.db import db_path, open_database
from gridctl.store.models import Equity, Event, FillRow, Level, Order, Strategy, Trade
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


# ---- orders and fills are never lost: the journal


def order(cid: str, status: str, ts: int) -> dict:
    return {"strategy": "s", "client_id": cid, "side": "buy", "price": Decimal("150.25"), "qty": Decimal("0.3"),
            "status": status, "created_ts": 1, "updated_ts": ts}


def tfill(i: int) -> dict:
    return {**fill(i), "trade_id": f"t{i}"}


def journal_lines(path) -> list[dict]:
    import json

    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_money_rows_past_the_bound_go_to_the_journal_and_reach_the_database_in_order(db, tmp_path):
    import stat

    clock = Clock()
    jp = tmp_path / "journal" / "s.jsonl"
    w = writer(db, clock, maxsize=100, journal_path=jp)
    db.execute_sql("PRAGMA query_only = ON")
    w.upsert("orders", order("o1", "open", 10))
    for i in range(250):
        w.add("fills", tfill(i))
        w.event("s", "fill", f"fill {i}", ts=i)
    w.upsert("orders", order("o1", "filled", 20))
    w.add("trades", {"strategy": "s", "side": "buy", "exit_ts": 30, "entry_price": Decimal("150.25"),
                     "exit_price": Decimal("151.25"), "qty": Decimal("0.3"), "profit": Decimal("0.3"),
                     "net_profit": Decimal("0.281970")})
    assert w.flush() is False
    # every money row is on disk, owner-only, Decimals as exact strings; memory holds only events
    lines = journal_lines(jp)
    assert len(lines) == 253 and w.stats()["journaled"] == 253 and w.queued == 100
    assert stat.S_IMODE(jp.stat().st_mode) == 0o600
    assert lines[1]["row"]["price"] == "150.25" and lines[-1]["row"]["net_profit"] == "0.281970"
    assert w.dropped == 150 and w.pending == 353  # events past the bound go, oldest first, counted
    db.execute_sql("PRAGMA query_only = OFF")
    clock.t += 10
    assert w.flush() is True
    assert [f.client_id for f in FillRow.select().order_by(FillRow.id)] == [f"c{i}" for i in range(250)]
    assert Order.get().status == "filled"  # the later upsert was applied last
    assert Trade.get().net_profit == Decimal("0.281970")
    assert not jp.exists() and w.stats()["journaled"] == 0 and w.pending == 0
    assert [e.message for e in Event.select().where(Event.type == "fill").order_by(Event.id)] == \
        [f"fill {i}" for i in range(150, 250)]


def test_without_a_journal_money_rows_stay_in_memory_past_the_bound(db):
    clock = Clock()
    w = writer(db, clock, maxsize=10)
    db.execute_sql("PRAGMA query_only = ON")
    for i in range(50):
        w.add("fills", fill(i))
        w.event("s", "info", f"e{i}", ts=i)
    w.upsert("orders", order("o1", "open", 10))
    assert w.flush() is False
    assert w.pending == 61 and w.dropped == 40
    db.execute_sql("PRAGMA query_only = OFF")
    clock.t += 10
    assert w.flush() is True
    assert FillRow.select().count() == 50 and Order.select().count() == 1
    assert Event.select().where(Event.type == "info").count() == 10


def test_a_journal_left_by_a_crashed_process_is_written_first(db, tmp_path):
    clock = Clock()
    jp = tmp_path / "journal" / "s.jsonl"
    w1 = writer(db, clock, maxsize=5, journal_path=jp)
    db.execute_sql("PRAGMA query_only = ON")
    w1.upsert("orders", order("o1", "open", 10))
    for i in range(10):
        w1.add("fills", tfill(i))
    assert w1.flush() is False and len(journal_lines(jp)) == 11
    del w1  # the process dies during the outage: its journal stays behind
    # the next process starts while the database is still down: the journal waits
    w2 = writer(db, clock, journal_path=jp)
    assert w2.pending == 11 and w2.stats()["unavailable_since_ms"] == 5_000
    w2.upsert("orders", order("o1", "filled", 20))
    w2.add("fills", tfill(10))
    db.execute_sql("PRAGMA query_only = OFF")
    clock.t += 10
    assert w2.flush() is True
    assert [f.client_id for f in FillRow.select().order_by(FillRow.id)] == [f"c{i}" for i in range(11)]
    assert Order.get().status == "filled"  # the journal's 'open' went first
    assert not jp.exists()


def test_a_journal_found_at_start_is_written_at_once(db, tmp_path):
    jp = tmp_path / "journal" / "s.jsonl"
    w1 = writer(db, Clock(), maxsize=2, journal_path=jp)
    db.execute_sql("PRAGMA query_only = ON")
    for i in range(5):
        w1.add("fills", tfill(i))
    w1.flush()
    db.execute_sql("PRAGMA query_only = OFF")
    w2 = writer(db, Clock(), journal_path=jp)  # the worker reads its fills back right after this
    assert FillRow.select().count() == 5 and w2.pending == 0 and not jp.exists()


def test_replaying_a_journal_twice_never_doubles_a_fill(db, tmp_path):
    clock = Clock()
    jp = tmp_path / "journal" / "s.jsonl"
    w = writer(db, clock, maxsize=5, journal_path=jp)
    db.execute_sql("PRAGMA query_only = ON")
    w.upsert("orders", order("o1", "open", 10))
    for i in range(20):
        w.add("fills", tfill(i))
    w.upsert("orders", order("o1", "filled", 20))
    w.flush()
    saved = jp.read_bytes()
    db.execute_sql("PRAGMA query_only = OFF")
    clock.t += 10
    assert w.flush() is True and FillRow.select().count() == 20
    # a crash after the commit and before the journal was removed: the next process replays it
    jp.write_bytes(saved)
    w2 = writer(db, Clock(), journal_path=jp)
    assert w2.pending == 0 and not jp.exists()
    assert FillRow.select().count() == 20 and Order.select().count() == 1 and Order.get().status == "filled"
    assert w2.rejected == 0  # a replayed fill is skipped quietly, not refused and logged as an error
    # fills without a trade id (older workers) are never mistaken for duplicates
    w2.add("fills", fill(100))
    w2.add("fills", fill(100))
    assert w2.flush() is True and FillRow.select().where(FillRow.client_id == "c100").count() == 2


def test_a_torn_last_journal_line_is_skipped_and_the_rest_replayed(db, tmp_path, caplog):
    jp = tmp_path / "journal" / "s.jsonl"
    w1 = writer(db, Clock(), maxsize=2, journal_path=jp)
    db.execute_sql("PRAGMA query_only = ON")
    for i in range(5):
        w1.add("fills", tfill(i))
    w1.flush()
    with open(jp, "a") as fh:
        fh.write('{"seq": 99, "op": "add", "ta')  # the crash came in the middle of a write
    db.execute_sql("PRAGMA query_only = OFF")
    writer(db, Clock(), journal_path=jp)
    assert FillRow.select().count() == 5 and "unreadable" in caplog.text


def test_a_journal_that_cannot_be_written_keeps_the_rows_in_memory(db, tmp_path):
    clock = Clock()
    (tmp_path / "notadir").write_text("")
    w = writer(db, clock, maxsize=2, journal_path=tmp_path / "notadir" / "s.jsonl")
    db.execute_sql("PRAGMA query_only = ON")
    for i in range(10):
        w.add("fills", tfill(i))
    assert w.flush() is False
    assert w.pending == 10 and w.stats()["journal_error"] and w.dropped == 0
    db.execute_sql("PRAGMA query_only = OFF")
    clock.t += 10
    assert w.flush() is True and FillRow.select().count() == 10


def test_close_during_an_outage_journals_every_money_row(db, tmp_path):
    jp = tmp_path / "journal" / "s.jsonl"
    w = writer(db, Clock(), journal_path=jp)  # 1000 rows of room: nothing spilled yet
    db.execute_sql("PRAGMA query_only = ON")
    for i in range(3):
        w.add("fills", tfill(i))
    w.event("s", "info", "stopping")
    assert w.flush() is False and not jp.exists()
    assert w.close() is False
    assert [r["row"]["client_id"] for r in journal_lines(jp)] == ["c0", "c1", "c2"]


def test_unavailable_since_is_the_first_failure_of_the_outage(db):
    clock = Clock()
    wall = [5_000]
    w = BufferedWriter(db, now=clock, wall_ms=lambda: wall[0], strategy="s")
    assert w.stats()["unavailable_since_ms"] is None
    db.execute_sql("PRAGMA query_only = ON")
    w.add("fills", fill(1))
    assert w.flush() is False and w.stats()["unavailable_since_ms"] == 5_000
    wall[0], clock.t = 15_000, clock.t + 10
    assert w.flush() is False and w.stats()["unavailable_since_ms"] == 5_000 and w.failures == 2
    db.execute_sql("PRAGMA query_only = OFF")
    wall[0], clock.t = 25_000, clock.t + 10
    assert w.flush() is True and w.stats()["unavailable_since_ms"] is None
    db.execute_sql("PRAGMA query_only = ON")
    w.add("fills", fill(2))
    wall[0] = 30_000
    assert w.flush() is False and w.stats()["unavailable_since_ms"] == 30_000  # a new outage


def test_an_old_database_gets_the_trade_id_column_and_its_unique_index(tmp_path):
    from peewee import SqliteDatabase

    from gridctl.store.db import bind
    from gridctl.store.migrations import LATEST, current_version, migrate
    from gridctl.store.models import MODELS, SchemaVersion

    path = tmp_path / "gridctl.db"
    old = SqliteDatabase(str(path))
    bind(old)
    old.create_tables([m for m in MODELS if m is not FillRow])
    # the version-1 fills table, as databases created before trade_id have it
    old.execute_sql('CREATE TABLE "fills" ("id" INTEGER NOT NULL PRIMARY KEY, "strategy" VARCHAR(255) NOT NULL, '
                    '"ts" INTEGER NOT NULL, "client_id" VARCHAR(255), "order_id" VARCHAR(255), "level" INTEGER, '
                    '"intent" VARCHAR(255), "side" VARCHAR(255) NOT NULL, "price" TEXT NOT NULL, '
                    '"qty" TEXT NOT NULL, "fee" TEXT NOT NULL, "maker" INTEGER NOT NULL, '
                    '"reduce_only" INTEGER NOT NULL, "realized_pnl" TEXT)')
    old.execute_sql("INSERT INTO fills (strategy, ts, side, price, qty, fee, maker, reduce_only) "
                    "VALUES ('s', 1, 'buy', '150.25', '0.3', '0', 1, 0)")
    SchemaVersion.insert(version=1, applied_ts=1).execute()
    old.close()
    db = open_database(tmp_path)
    assert current_version(db) == LATEST
    assert "trade_id" in {c.name for c in db.get_columns("fills")}
    assert FillRow.get().price == Decimal("150.25") and FillRow.get().trade_id is None
    w = BufferedWriter(db, strategy="s")
    w.add("fills", tfill(1))
    w.add("fills", tfill(1))
    assert w.flush() is True and FillRow.select().where(FillRow.trade_id == "t1").count() == 1
    assert w.rejected == 0
    assert migrate(db) == LATEST  # running it again changes nothing
    db.close()
