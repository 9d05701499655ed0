"""Numbered schema migrations, recorded in `schema_version`.

Each migration runs once, in its own transaction, and is written to be safe to
re-run (create-if-missing, add a column only if absent), so a half-applied
upgrade can simply be retried. Migration 1 creates the version-1 schema; later
schema changes are new numbered functions that check before they alter (e.g.
`if "col" not in {c.name for c in db.get_columns("orders")}: ...` with
`playhouse.migrate`), because migration 1 creates tables from the current models.
"""

from __future__ import annotations

import contextlib
import time
from typing import Callable

from peewee import BigIntegerField, CharField, Database, PostgresqlDatabase, SqliteDatabase, TextField
from playhouse.migrate import migrate as run_migrations
from playhouse.migrate import SchemaMigrator

from gridctl.store.models import MODELS, VIRTUAL_MODELS, MarketCache, SchemaVersion


def _m1_create_everything(db: Database) -> None:
    db.create_tables(MODELS, safe=True)


def _m2_fill_trade_id(db: Database) -> None:
    """fills.trade_id (the venue's trade id) and a unique index on (strategy, trade_id).

    The index makes a fill replayed from the writer's journal a no-op the second
    time. NULLs never collide, so fills stored before this column existed stay valid.
    """
    migrator = SchemaMigrator.from_database(db)
    if "trade_id" not in {c.name for c in db.get_columns("fills")}:
        run_migrations(migrator.add_column("fills", "trade_id", CharField(null=True)))
    if not any(ix.unique and list(ix.columns) == ["strategy", "trade_id"] for ix in db.get_indexes("fills")):
        run_migrations(migrator.add_index("fills", ("strategy", "trade_id"), True))


def _m3_equity_exchange_position(db: Database) -> None:
    """equity.exchange_position: the exchange's position beside the ledger's, so `status`
    shows a difference also when no worker is running (null in older snapshots: not known)."""
    if "exchange_position" not in {c.name for c in db.get_columns("equity")}:
        migrator = SchemaMigrator.from_database(db)
        run_migrations(migrator.add_column("equity", "exchange_position", TextField(null=True)))


def _m4_market_cache(db: Database) -> None:
    """market_cache: the venues' market rules from ccxt, kept 24 h (gridctl.store.market_cache)."""
    db.create_tables([MarketCache], safe=True)


def _m5_strategy_host(db: Database) -> None:
    """strategies.host: the host whose supervisor runs the strategy (several hosts may share
    one PostgreSQL database; null in older rows: this host's, as before)."""
    if "host" not in {c.name for c in db.get_columns("strategies")}:
        migrator = SchemaMigrator.from_database(db)
        run_migrations(migrator.add_column("strategies", "host", CharField(null=True)))


# "gridctl" in ASCII: the advisory lock id of the migrations on PostgreSQL
MIGRATION_LOCK = 0x67726964_63746C


def _m6_virtual_positions(db: Database) -> None:
    """Several strategies on one account and symbol: their virtual positions, the leg checks,
    the assignments of `gridctl reconcile` and the UNASSIGNED buckets (gridctl.core.virtual)."""
    db.create_tables(VIRTUAL_MODELS, safe=True)


def _m7_strategy_fills_checked(db: Database) -> None:
    """strategies.fills_checked_ts: the time before which every venue trade of the grid is
    booked, where a restarted worker reads the trade history from (null in older rows: from
    its newest stored fill, as before)."""
    if "fills_checked_ts" not in {c.name for c in db.get_columns("strategies")}:
        migrator = SchemaMigrator.from_database(db)
        run_migrations(migrator.add_column("strategies", "fills_checked_ts", BigIntegerField(null=True)))


MIGRATIONS: dict[int, Callable[[Database], None]] = {
    1: _m1_create_everything,
    2: _m2_fill_trade_id,
    3: _m3_equity_exchange_position,
    4: _m4_market_cache,
    5: _m5_strategy_host,
    6: _m6_virtual_positions,
    7: _m7_strategy_fills_checked,
}
LATEST = max(MIGRATIONS)


def current_version(db: Database) -> int:
    """The highest applied migration (0 for an empty database)."""
    if not db.table_exists(SchemaVersion._meta.table_name):
        return 0
    row = SchemaVersion.select(SchemaVersion.version).order_by(SchemaVersion.version.desc()).first()
    return row.version if row else 0


@contextlib.contextmanager
def _write_transaction(db: Database):
    """A transaction holding the write lock from its start.

    On SQLite a plain (deferred) transaction that reads and then writes fails at
    once with "database is locked", without waiting, when another connection
    committed in between; the workers a supervisor forks together all migrate a
    new database at the same moment. On PostgreSQL (where workers of several hosts
    may start together) a transaction-scoped advisory lock serializes the migrations:
    CREATE TABLE IF NOT EXISTS is not safe against a concurrent one.
    """
    if isinstance(db, SqliteDatabase):
        with db.atomic("IMMEDIATE"):
            yield
        return
    with db.atomic():
        if isinstance(db, PostgresqlDatabase):
            db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        yield


def migrate(db: Database) -> int:
    """Apply every pending migration in order; returns the resulting version. Idempotent."""
    version = current_version(db)
    for number in sorted(n for n in MIGRATIONS if n > version):
        with _write_transaction(db):
            if current_version(db) >= number:  # another worker starting with us applied it meanwhile
                version = number
                continue
            MIGRATIONS[number](db)
            # Another process may have raced us to the same number: insert-or-ignore.
            SchemaVersion.insert(version=number, applied_ts=int(time.time() * 1000)).on_conflict_ignore().execute()
        version = number
    return version
