"""A database outage under a busy grid, with the REAL supervisor and worker on the paper exchange.

Driven through the CLI (`python -m gridctl`) in a temporary state dir, like
tests/test_e2e_paper.py. A tight neutral grid with many levels trades the bundled
SOLUSDT 1m replay at high speed; once it trades, a connection in this process holds
`BEGIN EXCLUSIVE` on `<state>/gridctl.db` for `outage_s` seconds (every write of
the worker fails with "database is locked"). The worker's writer keeps only
`maxsize` rows in memory (GRIDCTL_WRITER_MAXSIZE), so orders and fills go to its
journal. Optionally the worker is killed -9 during the outage and restarted by the
supervisor once the database is back (`kill`), or at once, still inside the outage
(`kill="during"`).

After the release it measures what the venue did against what the database holds:
the paper account's venue's trade history (tests/venue_view.py) against the `fills`
table by trade id, the venue's order ids against the `orders` table, the ledger
position the worker reports (`status --json`) against the venue's position, and
finally `gridctl stop NAME` against a flat venue. Used by
tests/test_e2e_db_outage.py (seconds) and tests/bench/soak_worker_db_outage.py (150 s).

With `database` (a PostgreSQL URL) and `outage` (an object with begin() and end(), e.g.
the server stopped with `pg_ctl stop -m immediate` and started again) the same scenario
runs on PostgreSQL (tests/test_e2e_postgres_outage.py); nothing is readable during that
outage, so `stored_during_outage` is None and `status` is expected to fail clearly.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Optional, Union

import yaml

from gridctl.control.client import supervisor_status
from gridctl.process.pidfile import pid_alive
from gridctl.store.db import db_path
from gridctl.store.journal import journal_path
from tests.proc_helpers import shut_down_everything
from tests.venue_view import VenueAccountView

NAME = "busy"
LOT = Decimal("0.01")  # SOL/USDT:USDT lot on binanceusdm


def wait_until(pred: Callable[[], object], timeout: float = 20.0, what: str = "condition", step: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(step)


def config(speed: int, lower: float, upper: float, levels: int, database: Optional[str] = None) -> dict:
    return {"version": 1, **({"database": database} if database else {}),
            "accounts": {"paper": {"exchange": "paper", "like": "binanceusdm", "balance": 100000,
                                   "feed": {"replay": "builtin:SOLUSDT_1m", "speed": speed}}},
            "strategies": {NAME: {"account": "paper", "symbol": "SOL/USDT:USDT", "mode": "neutral",
                                  "lower": lower, "upper": upper, "grids": levels, "investment": 2000,
                                  "leverage": 5, "risk": {"on_stop": "close"}}}}


class Fleet:
    """One state dir, one strategy; every process it starts dies in cleanup()."""

    def __init__(self, root: Path, cfg: dict, maxsize: int, backoff: float = 0.3):
        self.database = cfg.get("database")
        self.root = root
        self.state = root / "st"
        self.config = root / "strategies.yaml"
        self.config.write_text(yaml.safe_dump(cfg, sort_keys=False))
        self.env = dict(os.environ, GRIDCTL_STATE_DIR=str(self.state), GRIDCTL_BACKOFF_BASE=str(backoff),
                        GRIDCTL_WRITER_MAXSIZE=str(maxsize))
        for k in ("GRIDCTL_WORKER_MAIN", "GRIDCTL_PRELOAD", "GRIDCTL_CONFIG"):
            self.env.pop(k, None)
        self.seen_pids: set[int] = set()
        self._venue: Optional[VenueAccountView] = None

    def gridctl(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "gridctl", *args], env=self.env, text=True,
                              capture_output=True, timeout=timeout, cwd=self.root)

    def ok(self, *args: str, timeout: float = 120) -> str:
        r = self.gridctl(*args, timeout=timeout)
        assert r.returncode == 0, f"gridctl {' '.join(args)} -> {r.returncode}\n{r.stdout}\n{r.stderr}"
        return r.stdout

    def status(self) -> dict:
        return {r["name"]: r for r in json.loads(self.ok("status", "-c", str(self.config), "--json"))}[NAME]

    def worker(self) -> dict:
        st = supervisor_status(self.state)
        assert st is not None, "the supervisor does not answer"
        w = {w["name"]: w for w in st["workers"]}[NAME]
        if w["pid"]:
            self.seen_pids.add(w["pid"])
        return w

    def venue(self) -> VenueAccountView:
        """The strategy's market on the paper account's local venue (tests/venue_view.py)."""
        if self._venue is None:
            self._venue = VenueAccountView.of(self.state, self.config, NAME, self.env)
        return self._venue

    def trades(self) -> list[dict]:
        """The venue's trade history of the strategy's market, oldest first."""
        return self.venue().snapshot(wait=False)["journal"]

    def book(self) -> dict[str, dict]:
        return self.venue().snapshot()["orders"]

    def venue_position(self) -> int:
        return self.venue().snapshot()["position"]

    def sql(self, query: str, *params) -> list[tuple]:
        if self.database:
            from gridctl.store.postgres import connect_params
            import psycopg2

            kw = connect_params(self.database)
            con = psycopg2.connect(dbname=kw.pop("database"), **kw)
            try:
                with con.cursor() as cur:
                    cur.execute(query.replace("%", "%%").replace("?", "%s"), params)
                    return cur.fetchall()
            finally:
                con.close()
        con = sqlite3.connect(db_path(self.state), timeout=30)
        try:
            return con.execute(query, params).fetchall()
        finally:
            con.close()

    def journal_rows(self) -> int:
        path = journal_path(self.state, NAME)
        try:
            return path.read_bytes().count(b"\n")
        except OSError:
            return 0

    def cleanup(self) -> None:
        shut_down_everything(self.state, self.seen_pids)


def consistent_positions(f: Fleet, timeout: float = 20.0) -> tuple[Decimal, Decimal]:
    """(ledger position the worker reports, venue position) read at a moment the venue was still.

    The worker trades on (~25 fills a second), so both are read between two identical
    venue snapshots, the worker's figure through the supervisor's status call (the
    live figure `gridctl status --json` shows, without a process start in between).
    """
    def live() -> Decimal:
        st = supervisor_status(f.state)
        w = {w["name"]: w for w in st["workers"]}[NAME]
        return Decimal(str(w["worker"]["position"]))

    def sample():
        before = (len(f.trades()), f.venue_position())
        ledger = live()
        after = (len(f.trades()), f.venue_position())
        if before != after:
            return None
        venue = Decimal(after[1]) * LOT
        return (ledger, venue) if ledger == venue else None

    try:
        return wait_until(sample, timeout, "the ledger position equal to the venue's", step=0.02)
    except AssertionError:
        return live(), Decimal(f.venue_position()) * LOT


def run_worker_outage(root: Path, outage_s: float = 20.0, speed: int = 600, levels: int = 90,
                      lower: float = 165, upper: float = 174, maxsize: int = 200,
                      kill: Union[bool, str] = False, min_fills_before: int = 10,
                      log: Callable[[str], None] = lambda m: None, database: Optional[str] = None,
                      outage: Any = None) -> dict[str, Any]:
    """Run the scenario in `root` (see the module doc); returns its figures.

    kill: False, True (kill -9 halfway through the outage, restart after the release)
    or "during" (kill -9 halfway, restart at once, inside the outage).
    """
    # a restart after the release: the supervisor's first backoff outlasts the rest of the outage
    backoff = outage_s / 2 + 3 if kill is True else 0.3
    f = Fleet(root, config(speed, lower, upper, levels, database), maxsize, backoff=backoff)
    r: dict[str, Any] = {"outage_s": outage_s, "speed": speed, "levels": levels, "maxsize": maxsize,
                         "kill": kill}
    try:
        out = f.ok("start", "-c", str(f.config), NAME)
        assert f"started {NAME} (pid" in out, out
        pid = f.worker()["pid"]
        wait_until(lambda: f.sql("SELECT COUNT(*) FROM strategies WHERE name = ? AND grid_json IS NOT NULL",
                                 NAME)[0][0], 20, "grid stored")
        wait_until(lambda: f.sql("SELECT COUNT(*) FROM fills WHERE strategy = ?", NAME)[0][0] >= min_fills_before,
                   60, f"{min_fills_before} fills stored before the outage")

        if outage is None:
            outage = SqliteLock(db_path(f.state))
        stored_at_lock = f.sql("SELECT COUNT(*) FROM fills WHERE strategy = ?", NAME)[0][0]  # WAL: readers go on
        outage.begin()
        t0 = time.monotonic()
        venue_at_lock = len(f.trades())
        log(f"database locked: venue {venue_at_lock} fills, {stored_at_lock} stored")
        status_line, status_ok, status_tries, journal_peak = None, 0, 0, 0
        killed_pid: Optional[int] = None
        while time.monotonic() - t0 < outage_s:
            journal_peak = max(journal_peak, f.journal_rows())
            if kill and killed_pid is None and time.monotonic() - t0 >= outage_s / 2:
                killed_pid = f.worker()["pid"]
                journal_peak = max(journal_peak, f.journal_rows())
                os.kill(killed_pid, signal.SIGKILL)
                wait_until(lambda: not pid_alive(killed_pid), 5, "worker gone")
                r["journal_at_kill"] = f.journal_rows()
                r["venue_fills_at_kill"] = len(f.trades())
                log(f"worker {killed_pid} killed -9 at {time.monotonic() - t0:.1f} s, "
                    f"journal {r['journal_at_kill']} rows")
            if kill == "during" and killed_pid is not None and "restarted_in_outage_s" not in r:
                w = f.worker()
                if w["state"] == "running" and w["pid"] not in (None, killed_pid):
                    r["restarted_in_outage_s"] = round(time.monotonic() - t0, 1)
                    r["venue_fills_at_restart"] = len(f.trades())
                    log(f"worker {w['pid']} running again at {r['restarted_in_outage_s']} s, inside the outage")
            if status_line is None or (time.monotonic() - t0) % 10 < 1:
                status_tries += 1
                s = f.gridctl("status", "-c", str(f.config), timeout=60)
                if s.returncode:  # PostgreSQL down: status says why (kept to check it names no password)
                    r.setdefault("status_errors", set()).add(s.stderr.strip()[:300])
                if s.returncode == 0:
                    status_ok += 1
                    line = next((ln for ln in s.stdout.splitlines()
                                 if ln.startswith(f"{NAME}: database unavailable since ")), None)
                    status_line = status_line or line
            time.sleep(0.25)
        if "venue_fills_at_restart" in r:  # the restarted worker traded on inside the outage
            r["venue_fills_after_restart_in_outage"] = len(f.trades()) - r["venue_fills_at_restart"]
        r["venue_fills_during_outage"] = len(f.trades()) - venue_at_lock
        r["stored_during_outage"] = (None if f.database else  # nothing is readable while the server is down
                                     f.sql("SELECT COUNT(*) FROM fills WHERE strategy = ?", NAME)[0][0] - stored_at_lock)
        r["journal_peak"] = max(journal_peak, f.journal_rows())
        r["status_answered"] = f"{status_ok}/{status_tries}"
        r["status_line"] = status_line
        r["status_errors"] = sorted(r.get("status_errors", ()))
        outage.end()
        released = time.monotonic()
        log(f"database released after {released - t0:.1f} s: venue made {r['venue_fills_during_outage']} "
            f"fills meanwhile, journal peak {r['journal_peak']} rows")

        if kill:
            w = wait_until(lambda: (w := f.worker())["state"] == "running" and w["pid"] != killed_pid and w,
                           outage_s + 30, "the worker restarted")
            r["restarts"] = w["restarts"]
            r["restarted_after_release"] = kill is not True or time.monotonic() > released
            pid = w["pid"]

        # drained: every fill the venue made up to the release is stored (the worker trades on)
        cutoff = len(f.trades())
        venue_tids = [j["tid"] for j in f.trades()[:cutoff]]

        def drained() -> bool:
            have = {t for (t,) in f.sql("SELECT trade_id FROM fills WHERE strategy = ?", NAME)}
            return set(venue_tids) <= have and f.journal_rows() == 0

        try:
            wait_until(drained, 120, "every fill of the outage stored", step=0.2)
        except AssertionError:
            pass  # counted below
        r["drain_s"] = round(time.monotonic() - released, 1)
        r["journal_left_after_drain"] = f.journal_rows()

        ledger, venue = consistent_positions(f)
        r["position_ledger_trading"], r["position_venue_trading"] = str(ledger), str(venue)
        st = f.status()
        r["db_unavailable_since_after"] = st["db_unavailable_since"]

        out = f.ok("stop", NAME, timeout=180)
        r["stop_output"] = out.strip()
        r["venue_position_after_stop"] = str(Decimal(f.venue_position()) * LOT)
        r["venue_book_after_stop"] = len(f.book())
        st = f.status()
        r["state_after_stop"], r["position_after_stop"] = st["state"], st["position"]

        # what the venue did against what the database holds (the worker has exited: all written)
        wait_until(lambda: not pid_alive(pid), 30, "worker exited")
        venue = f.trades()
        tids = Counter(j["tid"] for j in venue)
        stored = Counter(t for (t,) in f.sql("SELECT trade_id FROM fills WHERE strategy = ?", NAME))
        r["venue_fills"] = len(venue)
        r["venue_duplicate_trade_ids"] = sum(n - 1 for n in tids.values() if n > 1)
        r["fills_stored"] = sum(stored.values())
        r["fills_missing"] = sum(1 for t in tids if t not in stored)
        r["fills_duplicated"] = sum(n - 1 for n in stored.values() if n > 1)
        r["fills_unknown_to_venue"] = sum(1 for t in stored if t not in tids)
        r["fills_without_trade_id"] = stored.get(None, 0)
        order_ids = {c for (c,) in f.sql("SELECT client_id FROM orders WHERE strategy = ?", NAME)}
        venue_cids = {str(j["cid"]) for j in venue}
        r["orders_stored"] = len(order_ids)
        r["venue_order_ids"] = len(venue_cids)
        r["orders_missing"] = sorted(venue_cids - order_ids)[:20]
        r["orders_missing_n"] = len(venue_cids - order_ids)
        r["orders_open_in_db_after_stop"] = f.sql(
            "SELECT COUNT(*) FROM orders WHERE strategy = ? AND status = 'open'", NAME)[0][0]
        filled = {c for (c,) in f.sql("SELECT client_id FROM orders WHERE strategy = ? AND status = 'filled'", NAME)}
        r["orders_filled_not_marked"] = len(venue_cids - filled)
        r["orders_filled_not_marked_rows"] = [  # shown when it fails: what the store says of them
            f.sql("SELECT client_id, status, filled, qty, reason FROM orders WHERE strategy = ? AND client_id = ?",
                  NAME, c) or [(c, "no row")] for c in sorted(venue_cids - filled)[:5]]
        trades = f.sql("SELECT level, side, entry_ts, exit_ts, qty FROM trades WHERE strategy = ?", NAME)
        r["trades_stored"] = len(trades)
        r["trades_duplicated"] = len(trades) - len(set(trades))
        ledger_qty = sum((Decimal(q) if s == "buy" else -Decimal(q))
                         for s, q in f.sql("SELECT side, qty FROM fills WHERE strategy = ?", NAME))
        r["position_from_stored_fills_after_stop"] = str(ledger_qty)
        r["events_dropped_warning"] = f.sql("SELECT COUNT(*) FROM events WHERE strategy = ? AND type = 'warn' "
                                            "AND message LIKE '%dropped%'", NAME)[0][0]
        return r
    finally:
        f.cleanup()


class SqliteLock:
    """The SQLite outage: another connection holds BEGIN EXCLUSIVE until end()."""

    def __init__(self, path: Path):
        self.con = sqlite3.connect(path, timeout=30, isolation_level=None)

    def begin(self) -> None:
        self.con.execute("BEGIN EXCLUSIVE")

    def end(self) -> None:
        self.con.execute("COMMIT")
        self.con.close()


def problems(r: dict[str, Any]) -> list[str]:
    """What is wrong in a run's figures (empty: nothing lost, nothing doubled, positions agree)."""
    out = []
    for key in ("fills_missing", "fills_duplicated", "fills_unknown_to_venue", "fills_without_trade_id",
                "orders_missing_n", "orders_open_in_db_after_stop", "orders_filled_not_marked",
                "trades_duplicated", "venue_book_after_stop", "journal_left_after_drain"):
        if r.get(key):
            out.append(f"{key} = {r[key]}")
    if r["position_ledger_trading"] != r["position_venue_trading"]:
        out.append(f"ledger position {r['position_ledger_trading']} != venue {r['position_venue_trading']}")
    if Decimal(r["venue_position_after_stop"]) != 0:
        out.append(f"venue not flat after stop: {r['venue_position_after_stop']}")
    if Decimal(r["position_from_stored_fills_after_stop"]) != 0:
        out.append(f"stored fills sum to {r['position_from_stored_fills_after_stop']} after stop, not 0")
    if not r["status_line"] and r["stored_during_outage"] is not None:  # a PostgreSQL outage: status cannot read
        out.append("status never showed 'database unavailable since'")
    if r["db_unavailable_since_after"] is not None:
        out.append(f"status still shows the database unavailable since {r['db_unavailable_since_after']}")
    if r["journal_peak"] <= r["maxsize"] // 2 and not r.get("journal_at_kill"):
        out.append(f"the journal was barely used (peak {r['journal_peak']} rows)")
    return out
