"""Opening the database: SQLite in WAL mode in the state dir, or a URL (PostgreSQL)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional, Union

from peewee import Database, OperationalError, SqliteDatabase

from gridctl.process.private import create_private, private_dir, tighten
from gridctl.store.migrations import migrate
from gridctl.store.models import MODELS

DB_FILE = "gridctl.db"


class NoDatabase(Exception):
    """There is no gridctl database where one was expected."""


def db_path(state_dir: Union[str, Path]) -> Path:
    """Where the SQLite database of a state dir lives."""
    return Path(state_dir).expanduser() / DB_FILE


def bind(db: Database) -> Database:
    """Point every model at `db` (one database per process is the normal case)."""
    if MODELS[0]._meta.database is not db:
        db.bind(MODELS, bind_refs=False, bind_backrefs=False)
    return db


def open_database(state_dir: Union[str, Path], url: Optional[str] = None, timeout: float = 5.0,
                  create: bool = True) -> Database:
    """Open (and migrate) the gridctl database, binding the models to it.

    Without `url`: SQLite in WAL mode at `<state_dir>/gridctl.db`, created with its
    directory unless `create` is False (then a missing file raises NoDatabase).
    With `url` (e.g. ``postgresql://user@host/gridctl``): that database, through
    playhouse.db_url. `timeout` is how long a write waits for another writer's lock.
    """
    if url:
        return _open_url(url, timeout)
    else:
        path = db_path(state_dir)
        if not path.exists():
            if not create:
                raise NoDatabase(f"no gridctl database in {path.parent}; start a strategy first")
            private_dir(path.parent, tighten_existing=False)
        # SQLite makes the file (and its -wal/-shm, which copy its mode) with the umask's
        # mode: create it 0600 first; tighten the files of an older, looser gridctl.
        create_private(path)
        for extra in ("-wal", "-shm"):
            tighten(str(path) + extra)
        # WAL: readers (status, logs) never block the workers' writes and vice versa.
        db = SqliteDatabase(str(path), timeout=timeout,
                            pragmas={"busy_timeout": int(timeout * 1000), "journal_mode": "wal",
                                     "synchronous": "normal"})
    bind(db)
    _connect(db, timeout)
    migrate(db)
    return db


def _open_url(url: str, timeout: float) -> Database:
    """A URL database (PostgreSQL through gridctl.store.postgres), connected and migrated.

    Every error raised from here has the URL's password replaced by ***.
    """
    from gridctl.store import postgres

    try:
        if postgres.is_postgres(url):
            db = postgres.open_postgres(url)
        else:
            from playhouse.db_url import connect

            db = connect(url)
        bind(db)
        _connect(db, timeout)
        migrate(db)
        return db
    except Exception as exc:
        text = postgres.scrub(str(exc), url)
        if text == str(exc):
            raise
        raise type(exc)(text) if _rebuildable(exc) else postgres.UrlError(text) from None


def _rebuildable(exc: Exception) -> bool:
    try:
        type(exc)("x")
        return True
    except Exception:
        return False


def _connect(db: Database, timeout: float) -> None:
    """Connect, retrying while another process holds the lock SQLite needs to switch a new
    file to WAL: that pragma answers "database is locked" at once instead of waiting for
    the busy timeout (workers forked together all open a new database at the same moment)."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        try:
            db.connect(reuse_if_open=True)
            return
        except OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            if not db.is_closed():
                db.close()
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
