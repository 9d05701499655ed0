"""The buffered writer: a worker's only way to the database.

Trading must never wait for, or fail because of, the database. `add()` and
`upsert()` only append to a bounded in-memory queue; `flush()` (called by a
background thread, or directly in tests) writes the queue in one transaction.
When the database fails (locked, read-only, disk full, gone) the rows stay
queued and the next attempt waits at least `retry_s`; when the queue is full
the OLDEST row is dropped, counted, and reported as a warning event once the
database works again. A row the database rejects on its own (a constraint
violation) is dropped alone so it cannot block everything behind it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Any, Callable, Iterable, Optional

from peewee import DataError, Database, IntegrityError

from gridctl.store.models import TABLES, UPSERT_KEYS

log = logging.getLogger(__name__)

DEFAULT_MAXSIZE = 1000
DEFAULT_RETRY_S = 10.0
RECENT_EVENTS = 200
_TS_TABLES = {"fills", "funding", "equity", "events"}
# A row the database refuses by itself: retrying cannot help, so it is dropped alone.
_POISON = (IntegrityError, DataError, ValueError, TypeError)


def _json_default(o: Any) -> Any:
    if isinstance(o, Decimal):
        return str(o)
    if hasattr(o, "value"):
        return o.value
    return str(o)


def to_json(value: Any) -> str:
    """JSON text for a *_json column (Decimals as strings, keys sorted)."""
    return json.dumps(value, default=_json_default, sort_keys=True, separators=(",", ":"))


@dataclass
class _Item:
    seq: int
    op: str  # "add" | "upsert"
    table: str
    row: dict


def _prepare(table: str, row: dict) -> dict:
    """Database-ready copy: `data` -> data_json, dict/list *_json values -> text."""
    out = dict(row)
    if table == "events" and "data" in out:
        data = out.pop("data")
        out["data_json"] = None if data is None else to_json(data)
    for k, v in out.items():
        if isinstance(v, Enum):
            out[k] = v.value
        elif k.endswith("_json") and v is not None and not isinstance(v, str):
            out[k] = to_json(v)
    return out


class BufferedWriter:
    """Queue rows in memory and write them in batches; never blocks or raises on DB failure.

    `now` is a monotonic clock in seconds (injected in tests); `wall_ms` gives epoch
    ms for rows added without a `ts` and for the writer's own warning events.
    """

    def __init__(self, db: Database, maxsize: int = DEFAULT_MAXSIZE, retry_s: float = DEFAULT_RETRY_S,
                 now: Callable[[], float] = time.monotonic,
                 wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
                 strategy: Optional[str] = None, recent: int = RECENT_EVENTS):
        self.db = db
        self.maxsize = maxsize
        self.retry_s = retry_s
        self.strategy = strategy
        self._now = now
        self._wall_ms = wall_ms
        self._queue: deque[_Item] = deque()
        self._recent: deque[dict] = deque(maxlen=recent)
        self._lock = threading.Lock()  # guards the queue and counters; held only for list operations
        self._flush_lock = threading.Lock()  # one flush at a time
        self._seq = 0
        self._failed_at: Optional[float] = None
        self._unreported_drops = 0
        self._drop_strategy: Optional[str] = None
        self._listeners: list[Callable[[dict], None]] = []
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self.dropped = 0  # rows lost because the queue was full
        self.rejected = 0  # rows the database refused (constraint violations)
        self.written = 0
        self.failures = 0  # failed flush attempts
        self.attempts = 0  # flush attempts that reached the database
        self.last_error: Optional[str] = None

    # ---- the worker's side: cheap, never blocks on the database, never raises on its failure
    def add(self, table: str, row: dict) -> None:
        """Queue an insert of `row` (column -> value) into `table`."""
        self._put("add", table, row)

    def upsert(self, table: str, row: dict) -> None:
        """Queue an insert-or-update by the table's natural key (see models.UPSERT_KEYS).

        Only the columns present in `row` are updated on an existing row.
        """
        if table not in UPSERT_KEYS:
            raise ValueError(f"table {table!r} has no upsert key; use add()")
        self._put("upsert", table, row)

    def event(self, strategy: str, type: str, message: str, *, ts: Optional[int] = None,
              level: Optional[int] = None, order_id: Optional[str] = None, data: Any = None) -> None:
        """Queue one event row (a shortcut for add("events", ...))."""
        self.add("events", {"strategy": strategy, "ts": self._wall_ms() if ts is None else ts, "type": type,
                            "message": message, "level": level, "order_id": order_id, "data": data})

    def recent_events(self) -> list[dict]:
        """The last events added (at most 200), oldest first, whether written yet or not."""
        with self._lock:
            return list(self._recent)

    def subscribe(self, listener: Callable[[dict], None]) -> None:
        """Call `listener(event_row)` for every event added (e.g. the live stream); errors are ignored."""
        self._listeners.append(listener)

    @property
    def pending(self) -> int:
        """Rows waiting to be written."""
        return len(self._queue)

    def stats(self) -> dict:
        """Counters for status/diagnostics."""
        return {"pending": self.pending, "dropped": self.dropped, "rejected": self.rejected,
                "written": self.written, "failures": self.failures, "last_error": self.last_error}

    def _put(self, op: str, table: str, row: dict) -> None:
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}")  # a programming error, caught by tests
        row = dict(row)
        if table in _TS_TABLES and row.get("ts") is None:
            row["ts"] = self._wall_ms()
        warn = None
        with self._lock:
            self._seq += 1
            self._queue.append(_Item(self._seq, op, table, row))
            if len(self._queue) > self.maxsize:
                lost = self._queue.popleft()
                self.dropped += 1
                self._unreported_drops += 1
                self._drop_strategy = lost.row.get("strategy") or self._drop_strategy
                if self._unreported_drops == 1:
                    warn = {"strategy": self.strategy or self._drop_strategy or "", "ts": self._wall_ms(),
                            "type": "warn", "level": None, "order_id": None, "data": {"dropped": 1},
                            "message": f"database unavailable and {self.maxsize} rows queued: "
                                       f"dropping the oldest rows ({self.last_error or 'no error yet'})"}
                    self._recent.append(warn)
            if table == "events":
                self._recent.append(row)
        if warn is not None:
            log.warning("%s", warn["message"])
        if table == "events":
            for fn in list(self._listeners):
                try:
                    fn(row)
                except Exception:  # a broken listener must not stop trading
                    log.exception("event listener failed")

    # ---- the database side
    def flush(self, force: bool = False) -> bool:
        """Write everything queued in one transaction. True when the queue was emptied.

        After a failure nothing is attempted until `retry_s` has passed (unless
        `force`). Returns False at once if another flush is running.
        """
        if not self._flush_lock.acquire(blocking=False):
            return False
        try:
            if (not force and self._failed_at is not None
                    and self._now() - self._failed_at < self.retry_s):
                return False
            with self._lock:
                batch = list(self._queue)
                drops = self._unreported_drops
            if not batch and not drops:
                return True
            self.attempts += 1
            extra = [self._drop_event(drops)] if drops else []
            try:
                try:
                    with self.db.atomic():
                        self._write(batch + extra)
                    done = batch
                except _POISON:
                    done = self._write_one_by_one(batch + extra, drops)
                    if done is None:
                        return False
            except Exception as exc:  # the database is down/locked/read-only: keep everything queued
                self._failed(exc)
                return False
            self._done(done, drops)
            return not self._queue
        finally:
            self._flush_lock.release()

    def _drop_event(self, drops: int) -> _Item:
        return _Item(0, "add", "events", {
            "strategy": self.strategy or self._drop_strategy or "", "ts": self._wall_ms(), "type": "warn",
            "message": f"the database was unavailable: {drops} queued rows were dropped (oldest first)",
            "level": None, "order_id": None, "data": {"dropped": drops}})

    def _write_one_by_one(self, items: list[_Item], drops: int) -> Optional[list[_Item]]:
        """Write each row alone so one refused row does not block the rest (None: DB failed)."""
        done: list[_Item] = []
        for item in items:
            try:
                with self.db.atomic():
                    self._write([item])
            except _POISON as exc:
                self.rejected += 1
                log.error("database refused a %s row, dropped: %s (%s)", item.table, exc, item.row)
            except Exception as exc:
                self._done(done, drops if any(i.seq == 0 for i in done) else 0)
                self._failed(exc)
                return None
            done.append(item)
        return done

    def _failed(self, exc: Exception) -> None:
        if self._failed_at is None:
            log.warning("database write failed, rows kept in memory and retried every %ss: %s", self.retry_s, exc)
        self._failed_at = self._now()
        self.failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"

    def _done(self, done: list[_Item], drops: int) -> None:
        last = max((i.seq for i in done if i.seq), default=0)
        with self._lock:
            while self._queue and self._queue[0].seq <= last:
                self._queue.popleft()
            self._unreported_drops -= drops
        self.written += len(done)
        self._failed_at = None

    def _write(self, items: list[_Item]) -> None:
        # Consecutive rows of the same table, operation and columns go out as one statement.
        for op, table, rows in _groups(items):
            model = TABLES[table]
            prepared = [_prepare(table, r) for r in rows]
            cols = list(prepared[0])
            size = max(1, 900 // max(1, len(cols)))  # stay under old SQLite's 999 variables
            if op == "upsert":
                keys = UPSERT_KEYS[table]
                last = {tuple(r.get(k) for k in keys): r for r in prepared}  # later rows win
                prepared = list(last.values())
                key_fields = [model._meta.fields[k] for k in keys]
                update = [model._meta.fields[c] for c in cols if c not in keys]
            for i in range(0, len(prepared), size):
                q = model.insert_many(prepared[i:i + size])
                if op == "upsert":
                    q = (q.on_conflict(conflict_target=key_fields, preserve=update) if update
                         else q.on_conflict_ignore())
                q.execute()

    # ---- background thread
    def start_background(self, interval_s: float = 1.0) -> None:
        """Flush every `interval_s` seconds from a daemon thread until `close()`."""
        if self._thread is not None:
            return
        self._stop.clear()

        def run() -> None:
            while not self._stop.wait(interval_s):
                try:
                    self.flush()
                except Exception:  # never let the thread die
                    log.exception("buffered writer flush failed")

        self._thread = threading.Thread(target=run, name="gridctl-db-writer", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 5.0) -> bool:
        """Stop the background thread and try one last flush; True when nothing is left."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout)
            self._thread = None
        return self.flush(force=True)


def _groups(items: Iterable[_Item]):
    cur: Optional[tuple] = None
    rows: list[dict] = []
    for it in items:
        key = (it.op, it.table, tuple(it.row))
        if key != cur and rows:
            yield cur[0], cur[1], rows
            rows = []
        cur = key
        rows.append(it.row)
    if rows:
        yield cur[0], cur[1], rows
