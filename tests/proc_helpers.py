"""Helpers for the tests that run real processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional

from gridctl.control.client import ControlClient, supervisor_status
from gridctl.core.clientid import decode as decode_cid, strategy_tag
from gridctl.process.pidfile import lock_holder, pid_alive as alive, read_pid
from tests.venue_view import VenueAccountView


def wait_until(pred: Callable[[], object], timeout: float = 20.0, what: str = "condition"):
    """Poll pred until it returns something truthy (and return that); fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


class Paper:
    """One state dir with its own copy of the config; every process it starts dies in cleanup()."""

    def __init__(self, tmp: Path, config: Path, backoff: float = 0.3):
        self.root = tmp
        self.state = tmp / "st"
        self.config = tmp / "strategies.yaml"
        shutil.copy(config, self.config)
        self.env = dict(os.environ, GRIDCTL_STATE_DIR=str(self.state), GRIDCTL_BACKOFF_BASE=str(backoff))
        for k in ("GRIDCTL_WORKER_MAIN", "GRIDCTL_PRELOAD", "GRIDCTL_CONFIG"):
            self.env.pop(k, None)  # the real worker, the real preload
        self.seen_pids: set[int] = set()
        self._where: dict[str, VenueAccountView] = {}

    # -- the CLI ------------------------------------------------------------------------------
    def gridctl(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "gridctl", *args], env=self.env, text=True,
                              capture_output=True, timeout=timeout, cwd=self.root)

    def ok(self, *args: str) -> str:
        r = self.gridctl(*args)
        assert r.returncode == 0, f"gridctl {' '.join(args)} -> {r.returncode}\n{r.stdout}\n{r.stderr}"
        return r.stdout

    def start(self, *names: str) -> str:
        out = self.ok("start", "-c", str(self.config), *names)
        self.workers()  # remember the pids for cleanup()
        return out

    def status(self) -> dict[str, dict]:
        """`gridctl status --json`, by strategy name."""
        return {r["name"]: r for r in json.loads(self.ok("status", "-c", str(self.config), "--json"))}

    def workers(self) -> dict[str, dict]:
        """The supervisor's view (process state, pid, restarts, reason)."""
        st = supervisor_status(self.state)
        assert st is not None, "the supervisor does not answer"
        ws = {w["name"]: w for w in st["workers"]}
        self.seen_pids.update(w["pid"] for w in ws.values() if w["pid"])
        return ws

    # -- the paper account's venue (gridctl venue) ---------------------------------------------
    def where(self, name: str) -> "VenueAccountView":
        """Where strategy `name` trades: its account's venue files, key fingerprint and market rules
        (read from the config once: a test may delete the strategy from the file later)."""
        if name not in self._where:
            self._where[name] = VenueAccountView.of(self.state, self.config, name, self.env)
        return self._where[name]

    def paper(self, name: str) -> dict:
        """The venue's view of one strategy at one instant: open orders of its symbol by client id
        ("orders"), its trades on that symbol ("journal", oldest first, dicts as in trades()) and
        its net position in lot steps ("position")."""
        return self.where(name).snapshot()

    def trades(self, name: str) -> list[dict]:
        """The venue's trade history of the strategy's symbol on its account, oldest first:
        {ts, cid, oid, tid, side, price (ticks), qty (steps), fee, asset, maker, ro, realized}."""
        return self.where(name).snapshot(wait=False)["journal"]

    def book(self, name: str) -> dict[str, dict]:
        """Open orders on the venue (the strategy's symbol, any client id), by client id."""
        return self.paper(name)["orders"]

    def venue_position(self, name: str) -> int:
        """Net position on the venue in the strategy's symbol, in lot steps."""
        return self.paper(name)["position"]

    def venue_admin(self, name: str, path: str, body: Optional[dict] = None) -> dict:
        """GET (body None) or POST one of the venue's /_admin endpoints (gridctl/venue/server.py)."""
        return self.where(name).admin(path, body)

    # -- the database -------------------------------------------------------------------------
    def sql(self, query: str, *params) -> list[tuple]:
        con = sqlite3.connect(self.state / "gridctl.db", timeout=10)
        try:
            return con.execute(query, params).fetchall()
        finally:
            con.close()

    def count(self, table: str, name: str, where: str = "1") -> int:
        return self.sql(f"SELECT COUNT(*) FROM {table} WHERE strategy = ? AND {where}", name)[0][0]

    # -- teardown -----------------------------------------------------------------------------
    def kill_all(self) -> None:
        """SIGKILL the supervisor, then every worker and venue: for a test that leaves a worker that cannot stop."""
        pids = [read_pid(self.state / "supervisor.pid")]
        pids += [lock_holder(p) or 0 for p in (self.state / "run").rglob("*.pid")]  # and run/venue/*.pid
        for pid in pids:
            if pid and alive(pid):
                os.kill(pid, signal.SIGKILL)

    def cleanup(self) -> None:
        shut_down_everything(self.state, self.seen_pids)


def own_ids_unique(book: dict[str, dict], name: str) -> None:
    """Every open order on the venue is this strategy's, and no (level, intent) has two."""
    tag = strategy_tag(name)
    seen: dict[tuple, str] = {}
    for cid in book:
        d = decode_cid("binance", cid)
        assert d is not None and d.tag == tag, f"{cid} on {name}'s book is not {name}'s order"
        key = (d.level, d.intent.value)
        assert key not in seen, f"duplicate orders for level {d.level} {d.intent.value}: {seen[key]} and {cid}"
        seen[key] = cid


def shut_down_everything(state, seen_pids: set) -> None:
    """Shut the supervisor of a state dir down, then SIGKILL whatever of it is still alive:
    no test leaves a process behind."""
    if ControlClient(state).is_running():
        try:
            ControlClient(state, timeout=60).call("shutdown")
        except Exception:
            pass
    pids = {read_pid(state / "supervisor.pid")} | set(seen_pids)
    run = state / "run"
    if run.exists():
        pids |= {lock_holder(p) or 0 for p in run.rglob("*.pid")}  # workers and run/venue/*.pid
    deadline = time.monotonic() + 5
    while any(alive(p) for p in pids if p) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:
        if pid and alive(pid):
            os.kill(pid, signal.SIGKILL)
