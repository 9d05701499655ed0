"""The soak's fault scheduler: faults chosen at random from one seeded RNG over the run.

Kinds (KINDS): the local venue's own faults, switched on through POST /_admin/faults for
the next matching request (rate_limit, server_error, timeout, empty, reject, partial,
expire_auth; drop_streams at once, silent_streams for a few seconds), the venue's counters
telling how many fired; SIGKILLs of a worker, an account's venue or the supervisor (a
killed supervisor is started again a few seconds later with `gridctl start`: it adopts the
running workers and venues); and a window of 30-150 s (`db_window`) during which another
connection holds BEGIN EXCLUSIVE on the SQLite database (every write of every worker fails
"database is locked").

The same seed gives the same sequence of choices; what they hit depends on timing.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Optional

from tests.bench.soak_fleet import Fleet

VENUE_FAULTS = ("rate_limit", "server_error", "timeout", "empty", "reject", "partial", "expire_auth")
STREAM_FAULTS = ("drop_streams", "silent_streams")
PROCESS_FAULTS = ("kill_worker", "kill_venue", "kill_supervisor")
DB_FAULTS = ("db_lock",)
KINDS = VENUE_FAULTS + STREAM_FAULTS + PROCESS_FAULTS + DB_FAULTS

# relative weights of the choices (request faults are cheap, kills and DB windows are not)
WEIGHTS = {"rate_limit": 6, "server_error": 5, "timeout": 2, "empty": 3, "reject": 4, "partial": 6,
           "expire_auth": 1, "drop_streams": 2, "silent_streams": 1, "kill_worker": 2, "kill_venue": 1,
           "kill_supervisor": 1, "db_lock": 0}
REJECT_REASONS = ("insufficient_margin", "reduce_only_rejected", "post_only_would_cross")


@dataclass
class Scheduler:
    """Injects faults into a Fleet from a background thread until stop()."""

    fleet: Fleet
    seed: int
    rate: float = 1.0  # choices per second (mean)
    db_window: tuple[float, float] = (30.0, 150.0)
    db_every: float = 300.0  # mean seconds between the starts of two database windows
    timeout_delay: float = 12.0  # s: past the client's timeout (ccxt 10 s)
    log: Callable[[str], None] = print
    cover: bool = True  # start with every kind once
    injected: Counter = field(default_factory=Counter)  # what the harness did, by kind
    errors: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._timers: list[tuple[float, Callable[[], None]]] = []
        self._db_until = 0.0
        self._lock = threading.Lock()

    # -- running ---------------------------------------------------------------------------------
    def start(self) -> None:
        t = threading.Thread(target=self._run, name="soak-faults", daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self) -> None:
        """No new fault; end the open windows (silent streams, the DB lock); switch venue faults off."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout=200)
        for _, fn in sorted(self._timers, key=lambda x: x[0]):
            self._safe(fn)
        self._timers.clear()
        for a in self.fleet.accounts:
            self.fleet.try_admin(a, "/_admin/faults", {"clear": True})

    def _run(self) -> None:
        names = list(WEIGHTS)
        weights = [WEIGHTS[k] for k in names]
        next_db = time.monotonic() + self.rng.expovariate(1 / self.db_every) * 0.5
        # every kind once first (in a seeded order), so that a short run covers them all
        first = [k for k in names if WEIGHTS[k]] if self.cover else []
        self.rng.shuffle(first)
        while not self._stop.is_set():
            now = time.monotonic()
            for due, fn in [t for t in self._timers if t[0] <= now]:
                self._timers.remove((due, fn))
                self._safe(fn)
            if now >= next_db and now >= self._db_until:
                self._safe(self.db_lock)
                next_db = self._db_until + self.rng.expovariate(1 / self.db_every)
            kind = first.pop() if first else self.rng.choices(names, weights)[0]
            self._safe(getattr(self, kind) if hasattr(self, kind) else lambda: self.venue_fault(kind))
            self._stop.wait(self.rng.expovariate(self.rate))

    def _safe(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception as exc:  # a fault aimed at a process between lives: note it, go on
            self.errors[type(exc).__name__] += 1

    def later(self, delay: float, fn: Callable[[], None]) -> None:
        self._timers.append((time.monotonic() + delay, fn))

    # -- the venue's faults ------------------------------------------------------------------------
    def _account(self) -> str:
        return self.rng.choice(self.fleet.accounts)

    def venue_fault(self, kind: str) -> None:
        acc = self._account()
        if kind == "expire_auth" and self.fleet.protocol(acc) != "binanceusdm":
            acc = next((a for a in self.fleet.accounts if self.fleet.protocol(a) == "binanceusdm"), acc)
        spec: dict = {"count": 1}
        if kind == "reject":
            spec["reason"] = self.rng.choice(REJECT_REASONS)
        elif kind == "timeout":
            spec["delay"] = self.timeout_delay
            spec["on"] = self.rng.choice(("place", "cancel"))
        elif kind == "empty":
            spec["on"] = self.rng.choice(("place", "cancel"))
        elif kind == "partial":
            spec["pieces"] = self.rng.choice((2, 3, 4))
        elif kind in ("rate_limit", "server_error"):
            spec["on"] = self.rng.choice(("any", "place", "cancel", "read"))
        if self.fleet.try_admin(acc, "/_admin/faults", {kind: spec}) is not None:
            self.injected[kind] += 1

    def drop_streams(self) -> None:
        if self.fleet.try_admin(self._account(), "/_admin/drop-streams", {}) is not None:
            self.injected["drop_streams"] += 1

    def silent_streams(self) -> None:
        acc = self._account()
        if self.fleet.try_admin(acc, "/_admin/faults", {"silent_streams": {"on": True}}) is not None:
            self.injected["silent_streams"] += 1
            self.later(self.rng.uniform(3, 20),
                       lambda: self.fleet.try_admin(acc, "/_admin/faults", {"silent_streams": None}))

    # -- processes ------------------------------------------------------------------------------------
    def kill_worker(self) -> None:
        name = self.rng.choice(self.fleet.names)
        if self.fleet.kill(self.fleet.worker_pid(name)):
            self.injected["kill_worker"] += 1
            self.log(f"SIGKILL worker {name}")

    def kill_venue(self) -> None:
        acc = self._account()
        if self.fleet.kill(self.fleet.venue_pid(acc)):
            self.injected["kill_venue"] += 1
            self.log(f"SIGKILL venue {acc}")

    def kill_supervisor(self) -> None:
        if self.fleet.kill(self.fleet.supervisor_pid()):
            self.injected["kill_supervisor"] += 1
            self.log("SIGKILL supervisor")
            self.later(self.rng.uniform(1, 6), self._restart_supervisor)

    def _restart_supervisor(self) -> None:
        for _ in range(5):
            if self.fleet.supervisor_pid() is not None:
                return
            try:
                self.fleet.start()
                return
            except Exception as exc:
                self.log(f"gridctl start after a supervisor kill: {exc}")
                time.sleep(2)

    # -- the database -------------------------------------------------------------------------------
    def db_lock(self) -> None:
        """Hold BEGIN EXCLUSIVE on the database for a window (in its own thread)."""
        length = self.rng.uniform(*self.db_window)
        self._db_until = time.monotonic() + length + 1
        t = threading.Thread(target=self._hold_db, args=(length,), name="soak-db", daemon=True)
        t.start()
        self._threads.append(t)

    def _hold_db(self, length: float) -> None:
        con: Optional[sqlite3.Connection] = None
        try:
            con = sqlite3.connect(self.fleet.db, timeout=30, isolation_level=None, check_same_thread=False)
            con.execute("BEGIN EXCLUSIVE")
            self.injected["db_lock"] += 1
            self.log(f"database locked for {length:.0f} s")
            end = time.monotonic() + length
            while time.monotonic() < end and not self._stop.is_set():
                time.sleep(0.2)
            con.execute("COMMIT")
            self.log("database released")
        except sqlite3.Error as exc:
            self.errors[f"db_lock:{exc}"] += 1
        finally:
            if con is not None:
                con.close()
            self._db_until = time.monotonic()

    # -- figures -----------------------------------------------------------------------------------------
    def fired(self) -> Counter:
        """Faults that took effect, by kind: the venues' own counters for request faults (they
        fire on the next matching request, or never), the harness's for the others."""
        out: Counter = Counter()
        for a in self.fleet.accounts:
            audit = self.fleet.try_admin(a, "/_admin/audit") or {}
            for k, n in (audit.get("faults_fired") or {}).items():
                if k in VENUE_FAULTS:
                    out[k] += int(n)
        for k in STREAM_FAULTS + PROCESS_FAULTS + DB_FAULTS:
            if self.injected[k]:
                out[k] = self.injected[k]
        return out
