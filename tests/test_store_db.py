"""The database: migrations, WAL, exact decimals."""

from __future__ import annotations

import sqlite3
from decimal import Decimal

import pytest
from hypothesis import given, settings, strategies as st

from gridctl.store.db import NoDatabase, bind, db_path, open_database
from gridctl.store.migrations import LATEST, current_version, migrate
from gridctl.store.models import TABLES, Level, SchemaVersion


def test_migrations_create_every_table_once_and_are_idempotent(tmp_path):
    db = open_database(tmp_path)
    assert set(TABLES) | {"schema_version"} <= set(db.get_tables())
    Level.insert(strategy="s", idx=0, side="buy", entry_price=Decimal("1.5"), size=Decimal("2")).execute()
    assert migrate(db) == LATEST
    db.close()
    db = open_database(tmp_path)  # a second process opening the same file
    assert current_version(db) == LATEST
    assert SchemaVersion.select().count() == LATEST
    assert Level.select().count() == 1  # re-running migrations kept the data


def test_sqlite_database_is_in_wal_mode_in_the_state_dir(tmp_path):
    open_database(tmp_path / "state").close()
    con = sqlite3.connect(db_path(tmp_path / "state"))
    assert con.execute("pragma journal_mode").fetchone()[0] == "wal"


def test_reader_open_does_not_create_a_database(tmp_path):
    with pytest.raises(NoDatabase, match="start a strategy first"):
        open_database(tmp_path / "empty", create=False)
    assert not (tmp_path / "empty").exists()


def test_indexes_serve_status_logs_and_report(tmp_path):
    db = open_database(tmp_path)
    names = {i.name for t in ("events", "equity", "orders", "fills", "trades") for i in db.get_indexes(t)}
    for cols in ("strategy_ts", "strategy_type_ts", "strategy_status_side", "strategy_exit_ts"):
        assert any(n.endswith(cols) for n in names), cols


EXACT = ["0.1", "1.50", "-0.00000001", "123456789012345678901234.123456789012", "0", "-0", "151.00", "100"]


@pytest.mark.parametrize("text", EXACT)
def test_decimal_text_round_trips_exactly(tmp_path, text):
    """Money comes back as the same Decimal, stored as plain text (never a float, never 1E-8)."""
    db = open_database(tmp_path)
    Level.insert(strategy="s", idx=0, side="buy", entry_price=Decimal(text), size=Decimal(text)).execute()
    got = Level.get().entry_price
    assert got == Decimal(text) and format(got, "f") == text and isinstance(got, Decimal)
    # Stored as text, so SQLite never turned it into a float.
    assert db.execute_sql("select typeof(entry_price), entry_price from levels").fetchone() == ("text", text)


@pytest.fixture(scope="module")
def shared_db(tmp_path_factory):
    return open_database(tmp_path_factory.mktemp("d"))


@settings(max_examples=100, deadline=None)
@given(value=st.decimals(allow_nan=False, allow_infinity=False, places=None))
def test_decimal_text_round_trips_any_finite_decimal(shared_db, value):
    bind(shared_db)  # other tests opened other databases
    Level.delete().execute()
    Level.insert(strategy="s", idx=0, side="buy", entry_price=value, size=Decimal(1)).execute()
    got = Level.get().entry_price
    assert got == value and got.is_signed() == value.is_signed()
    if value.as_tuple().exponent <= 0:  # plain text keeps every fractional digit, trailing zeros too
        assert got.as_tuple() == value.as_tuple()


def test_a_database_from_before_keeps_its_unused_runs_and_market_rules_tables(tmp_path):
    """Schema 1 used to define `runs` and `market_rules` (never written); old files still open."""
    db = open_database(tmp_path)
    db.execute_sql("CREATE TABLE runs (id INTEGER PRIMARY KEY, strategy VARCHAR(255), started_ts BIGINT)")
    db.execute_sql("CREATE TABLE market_rules (id INTEGER PRIMARY KEY, venue VARCHAR(255))")
    db.close()
    db = open_database(tmp_path)
    assert {"runs", "market_rules"} <= set(db.get_tables()) and "runs" not in TABLES
    assert current_version(db) == LATEST
    db.close()


def _open_after(barrier, state_dir) -> None:
    import os

    from gridctl.store.db import open_database

    barrier.wait()
    try:
        open_database(state_dir).close()
    except Exception:
        os._exit(1)
    os._exit(0)


def test_workers_started_together_all_migrate_a_new_database(tmp_path):
    """The supervisor forks every worker at once, and each one migrates the (new) database."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    for attempt in range(3):
        d = tmp_path / f"s{attempt}"
        barrier = ctx.Barrier(8)
        procs = [ctx.Process(target=_open_after, args=(barrier, d)) for _ in range(8)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
        assert [p.exitcode for p in procs] == [0] * 8


def test_a_version_2_database_gets_equity_exchange_position_and_keeps_its_snapshots(tmp_path):
    """Migration 3 adds equity.exchange_position to a database made before it (null: not known)."""
    from gridctl.store.models import Equity
    from gridctl.store.read import status

    db = open_database(tmp_path)
    db.execute_sql("ALTER TABLE equity DROP COLUMN exchange_position")
    db.execute_sql("DELETE FROM schema_version WHERE version >= 3")
    db.execute_sql("INSERT INTO strategies (name, status) VALUES ('s', 'stopped')")
    db.execute_sql("INSERT INTO equity (strategy, ts, position, realized, grid_profit, unrealized, fees, funding, "
                   "total_pnl, open_buys, open_sells) VALUES ('s', 1, '1.92', '0', '0', '0', '0', '0', '0', 0, 0)")
    db.close()
    db = open_database(tmp_path)
    assert current_version(db) == LATEST >= 3
    assert "exchange_position" in {c.name for c in db.get_columns("equity")}
    assert migrate(db) == LATEST  # a re-run checks before it alters
    row = status(db, ["s"])[0]
    assert row["position"] == Decimal("1.92") and row["exchange_position"] is None
    Equity.insert(strategy="s", ts=2, position=Decimal("1.92"), exchange_position=Decimal("2.42")).execute()
    row = status(db, ["s"])[0]
    assert (row["position"], row["exchange_position"]) == (Decimal("1.92"), Decimal("2.42"))
    db.close()
