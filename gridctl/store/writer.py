"""The buffered writer: a worker's only way to the database.

Trading must never wait for, or fail because of, the database. `add()` and
`upsert()` only append to an in-memory queue; `flush()` (called by a background
thread, or directly in tests) writes the queue in one transaction. When the
database fails (locked, read-only, disk full, gone) the rows stay queued and the
next attempt waits at least `retry_s`.

Money rows (orders, fills, trades, funding: what the exchange reported) are never
dropped. Once more than `maxsize` rows are in memory, each flush first moves the
queued money rows to the journal (`journal_path`, see gridctl.store.journal), and
keeps doing so until the database has taken the whole journal; without a journal
they simply stay in memory. Events and equity snapshots are bounded: past
`maxsize` of them the OLDEST is dropped, counted, and reported as a warning event
once the database works again. A row the database rejects on its own (a
constraint violation) is dropped alone so it cannot block everything behind it.
Fills carrying a `trade_id` are inserted at most once, so replaying a journal
whose rows were already committed changes nothing.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Optional, Union

from peewee import DataError, Database, IntegrityError

from gridctl.store.journal import Journal
from gridctl.store.models import TABLES, UPSERT_KEYS
from gridctl.store.rows import Item, json_default, to_json, write_items

__all__ = ["BufferedWriter", "MONEY_TABLES", "to_json"]  # to_json: kept importable from here

log = logging.getLogger(__name__)

DEFAULT_MAXSIZE = 1000
DEFAULT_RETRY_S = 10.0
RECENT_EVENTS = 200
_TS_TABLES = {"fills", "funding", "equity", "events"}
# What the exchange reported: never dropped, journaled past the memory bound.
MONEY_TABLES = frozenset({"orders", "fills", "trades", "funding"})
# A row the database refuses by itself: retrying cannot help, so it is dropped alone.
_POISON = (IntegrityError, DataError, ValueError, TypeError)


class BufferedWriter:
    """Queue rows in memory and write them in batches; never blocks or raises on DB failure.

    `now` is a monotonic clock in seconds (injected in tests); `wall_ms` gives epoch
    ms for rows added without a `ts` and for the writer's own warning events.
    `journal_path` (e.g. gridctl.store.journal.journal_path(state_dir, name)) is where
    money rows past the memory bound go; a journal found there is written first.
    """

    def __init__(self, db: Database, maxsize: int = DEFAULT_MAXSIZE, retry_s: float = DEFAULT_RETRY_S,
                 now: Callable[[], float] = time.monotonic,
                 wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
                 strategy: Optional[str] = None, recent: int = RECENT_EVENTS,
                 journal_path: Optional[Union[str, Path]] = None):
        self.db = db
        self.maxsize = maxsize
        self.retry_s = retry_s
        self.strategy = strategy
        self._now = now
        self._wall_ms = wall_ms
        # Two queues, each in seq order: money rows are never dropped, the others may be.
        self._money: deque[Item] = deque()
        self._other: deque[Item] = deque()
        self._journal = Journal(journal_path) if journal_path is not None else None
        self._recent: deque[dict] = deque(maxlen=recent)
        self._lock = threading.Lock()  # guards the queue and counters; held only for list operations
        self._flush_lock = threading.Lock()  # one flush at a time
        # A journal left by an earlier process holds the oldest rows: number ours after them.
        self._seq = self._journal.max_seq if self._journal else 0
        self._failed_at: Optional[float] = None
        self._unavailable_since: Optional[int] = None  # wall ms of the current outage's first failure
        self._unreported_drops = 0
        self._drop_strategy: Optional[str] = None
        self._listeners: list[Callable[[dict], None]] = []
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self.dropped = 0  # events/equity rows lost because the queue was full
        self.rejected = 0  # rows the database refused (constraint violations)
        self.written = 0
        self.failures = 0  # failed flush attempts
        self.attempts = 0  # flush attempts that reached the database
        self.last_error: Optional[str] = None
        self.journal_error: Optional[str] = None  # the last failed journal append (rows then stay in memory)
        if self._journal is not None and self._journal.count:
            log.warning("%s: %d rows journaled by an earlier process; writing them first",
                        self._journal.path, self._journal.count)
            self.flush(force=True)  # the worker reads its fills back right after this

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
        """Rows waiting to be written: in memory and in the journal."""
        return self.queued + self.journaled

    @property
    def queued(self) -> int:
        """Rows waiting in memory."""
        return len(self._money) + len(self._other)

    @property
    def journaled(self) -> int:
        """Rows waiting in the journal file."""
        return self._journal.count if self._journal is not None else 0

    @property
    def unavailable_since_ms(self) -> Optional[int]:
        """Epoch ms of the first failed flush of the current outage; None while the database works."""
        return self._unavailable_since

    def pending_rows(self, table: str, timeout: float = 30.0) -> list[dict]:
        """The rows of `table` not yet known to be in the database (journal and memory), oldest first.

        For a worker starting during an outage: what the last process recorded is in the
        database AND here, so read this first, then the database, and merge (a row may
        be committed in between, then it is in both). Journaled rows have Decimals as
        strings. Waits (at most `timeout`) for a flush under way, which an unavailable
        database holds for its busy timeout.
        """
        if not self._flush_lock.acquire(timeout=timeout):
            raise TimeoutError("the writer's flush did not finish")
        try:
            journaled = [i for i in self._journal_items() if i.table == table]
            with self._lock:
                memory = [i for i in heapq.merge(self._money, self._other, key=_by_seq) if i.table == table]
            return [dict(i.row) for i in heapq.merge(journaled, memory, key=_by_seq)]
        finally:
            self._flush_lock.release()

    def stats(self) -> dict:
        """Counters for status/diagnostics."""
        return {"pending": self.pending, "queued": self.queued, "journaled": self.journaled,
                "dropped": self.dropped, "rejected": self.rejected, "written": self.written,
                "failures": self.failures, "last_error": self.last_error, "journal_error": self.journal_error,
                "unavailable_since_ms": self._unavailable_since}

    def _put(self, op: str, table: str, row: dict) -> None:
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}")  # a programming error, caught by tests
        row = dict(row)
        if table in _TS_TABLES and row.get("ts") is None:
            row["ts"] = self._wall_ms()
        warn = None
        with self._lock:
            self._seq += 1
            item = Item(self._seq, op, table, row)
            if table in MONEY_TABLES:
                # never dropped: past the bound the next flush moves it to the journal
                self._money.append(item)
            else:
                self._other.append(item)
                if len(self._other) > self.maxsize:
                    lost = self._other.popleft()
                    self.dropped += 1
                    self._unreported_drops += 1
                    self._drop_strategy = lost.row.get("strategy") or self._drop_strategy
                    if self._unreported_drops == 1:
                        warn = {"strategy": self.strategy or self._drop_strategy or "", "ts": self._wall_ms(),
                                "type": "warn", "level": None, "order_id": None, "data": {"dropped": 1},
                                "message": f"database unavailable and {self.maxsize} events queued: dropping "
                                           f"the oldest events and equity snapshots (orders and fills are "
                                           f"kept) ({self.last_error or 'no error yet'})"}
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
        """Write everything queued (journal first, in seq order) in one transaction.

        True when nothing is left. Money rows past the memory bound are moved to the
        journal first, even when the database is not tried. After a failure nothing
        is attempted until `retry_s` has passed (unless `force`). Returns False at
        once if another flush is running.
        """
        if not self._flush_lock.acquire(blocking=False):
            return False
        try:
            self._spill()
            if (not force and self._failed_at is not None
                    and self._now() - self._failed_at < self.retry_s):
                return False
            with self._lock:
                memory = list(heapq.merge(self._money, self._other, key=_by_seq))
                drops = self._unreported_drops
            batch = list(heapq.merge(self._journal_items(), memory, key=_by_seq))
            if not batch and not drops:
                return True
            self.attempts += 1
            extra = [self._drop_event(drops)] if drops else []
            try:
                try:
                    with self.db.atomic():
                        write_items(batch + extra)
                    done = batch + extra
                except _POISON:
                    done = self._write_one_by_one(batch + extra, drops)
                    if done is None:
                        return False
            except Exception as exc:  # the database is down/locked/read-only: keep everything queued
                self._failed(exc)
                return False
            self._done(done, drops)
            if self._unavailable_since is not None:
                log.warning("database available again after %.1f s", (self._wall_ms() - self._unavailable_since) / 1000)
            self._failed_at = None
            self._unavailable_since = None
            return self.pending == 0
        finally:
            self._flush_lock.release()

    def _spill(self, everything: bool = False) -> None:
        """Move the queued money rows to the journal once memory is past its bound.

        Once the journal has rows, every new money row follows them there until the
        database has taken them all, so the journal always holds the OLDEST money
        rows and memory the newer ones. Called with the flush lock held.
        """
        if self._journal is None:
            return
        with self._lock:
            if not (everything or self._journal.count or self.queued > self.maxsize):
                return
            items = list(self._money)
        if not items:
            return
        first = not self._journal.count
        try:
            self._journal.append(({"seq": i.seq, "op": i.op, "table": i.table, "row": i.row} for i in items),
                                 default=json_default)
        except OSError as exc:  # disk full, read-only: the rows stay in memory, never dropped
            if self.journal_error is None:
                log.error("cannot write the journal %s, %d money rows stay in memory: %s",
                          self._journal.path, len(items), exc)
            self.journal_error = f"{type(exc).__name__}: {exc}"
            return
        self.journal_error = None
        if first:
            log.warning("database unavailable and %d rows queued: orders and fills now go to %s",
                        self.queued, self._journal.path)
        with self._lock:
            # only flush() removes rows, and it is us: the journaled rows are still the queue's head
            for _ in items:
                self._money.popleft()

    def _journal_items(self) -> list[Item]:
        if self._journal is None or not self._journal.count:
            return []
        return [Item(int(r["seq"]), r["op"], r["table"], r["row"], journaled=True) for r in self._journal.read()]

    def _drop_event(self, drops: int) -> Item:
        return Item(0, "add", "events", {
            "strategy": self.strategy or self._drop_strategy or "", "ts": self._wall_ms(), "type": "warn",
            "message": f"the database was unavailable: {drops} queued events and equity snapshots were "
                       f"dropped (oldest first)",
            "level": None, "order_id": None, "data": {"dropped": drops}})

    def _write_one_by_one(self, items: list[Item], drops: int) -> Optional[list[Item]]:
        """Write each row alone so one refused row does not block the rest (None: DB failed)."""
        done: list[Item] = []
        for item in items:
            try:
                with self.db.atomic():
                    write_items([item])
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
            log.warning("database write failed, rows kept and retried every %ss: %s", self.retry_s, exc)
        if self._unavailable_since is None:
            self._unavailable_since = self._wall_ms()
        self._failed_at = self._now()
        self.failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"

    def _done(self, done: list[Item], drops: int) -> None:
        """Forget rows the database committed (or refused): `done` is a prefix of the batch in seq order."""
        last = max((i.seq for i in done if i.seq and not i.journaled), default=0)
        from_journal = sum(1 for i in done if i.journaled)
        if from_journal and self._journal is not None:
            # after the commit, never before: a crash in between replays rows the database
            # already has, which the upsert/insert-once keys make harmless for orders and fills
            try:
                self._journal.drop_first(from_journal)
            except OSError as exc:
                log.error("cannot shorten the journal %s, its first %d rows are in the database and "
                          "will be written again (fills and orders once; trades and funding twice): %s",
                          self._journal.path, from_journal, exc)
        with self._lock:
            for q in (self._money, self._other):
                while q and q[0].seq <= last:
                    q.popleft()
            self._unreported_drops -= drops
        self.written += len([i for i in done if i.seq])

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
        """Stop the background thread and try one last flush; True when nothing is left.

        If the database is still unavailable, every money row still in memory goes to
        the journal (when there is one), for the next writer to replay.
        """
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout)
            self._thread = None
        if self.flush(force=True):
            return True
        with self._flush_lock:  # waits for a flush still running in a thread that outlived join()
            self._spill(everything=True)
        return False


def _by_seq(item: Item) -> int:
    return item.seq
