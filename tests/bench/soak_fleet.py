"""The soak's fleet: paper accounts and strategies under one real supervisor, and the handles a
fault needs (the pids of the supervisor, each worker and each account's venue, each venue's
admin API, the database file).

An account entry is a dict of the YAML account; a strategy entry names its account and
symbol and its grid's mode. Adding a strategy is one entry in STRATEGIES: a second
strategy on a hedge leg (virtual positions) is, once supported,

    "hl2": {"account": "bn-hedge", "symbol": SOL, "mode": "long"},

The grid range comes from the replayed data itself (the low and high of the hours the soak
plays, plus a margin), so every strategy trades the whole run.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Optional

import yaml

from gridctl.datasets import resolve
from gridctl.process.paths import StatePaths
from gridctl.process.pidfile import lock_holder, pid_alive, read_pid
from tests.proc_helpers import shut_down_everything

SOL, XRP, SOLC = "SOL/USDT:USDT", "XRP/USDT:USDT", "SOL/USDC:USDC"
REPLAY = "builtin:SOLUSDT_1m"

ACCOUNTS: dict[str, dict] = {
    # shared, hedge mode: a long grid on the long leg, a short grid on the short leg
    "bn-hedge": {"exchange": "paper", "like": "binanceusdm", "balance": 20000, "position_mode": "hedge"},
    # shared, one-way: one strategy per symbol (the venue's one replay drives both markets)
    "bn-oneway": {"exchange": "paper", "like": "binanceusdm", "balance": 20000},
    # a separate account on the other wire protocol
    "bp": {"exchange": "paper", "like": "backpack", "balance": 20000},
}

STRATEGIES: dict[str, dict] = {
    "hl": {"account": "bn-hedge", "symbol": SOL, "mode": "long"},
    "hs": {"account": "bn-hedge", "symbol": SOL, "mode": "short"},
    "os": {"account": "bn-oneway", "symbol": SOL, "mode": "neutral"},
    "ox": {"account": "bn-oneway", "symbol": XRP, "mode": "neutral"},
    "bp": {"account": "bp", "symbol": SOLC, "mode": "neutral"},
}


def replay_range(hours: float, margin: Decimal = Decimal("0.02")) -> tuple[Decimal, Decimal]:
    """(lower, upper) around the low and high of the replay's first `hours`."""
    path = resolve(REPLAY, Path("."))
    lows, highs = [], []
    with open(path, newline="") as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            if i >= max(60, int(hours * 60) + 60):
                break
            lows.append(Decimal(row["low"]))
            highs.append(Decimal(row["high"]))
    lo, hi = min(lows), max(highs)
    return (lo * (1 - margin)).quantize(Decimal("0.1")), (hi * (1 + margin)).quantize(Decimal("0.1"))


def build_config(names: list[str], speed: int, hours: float, grids: int = 40) -> dict:
    """The strategies.yaml of the fleet (only the accounts the named strategies use)."""
    lower, upper = replay_range(hours)
    strategies = {}
    for n in names:
        s = STRATEGIES[n]
        per_level = Decimal(30)  # quote per level before leverage rounding
        strategies[n] = {
            "account": s["account"], "symbol": s["symbol"], "mode": s["mode"],
            "lower": float(lower), "upper": float(upper), "grids": grids,
            "investment": float(per_level * grids / 3), "leverage": 3,
            # binding: the price walks through more levels than this holds
            "max_position": 2.0 if s["symbol"] != XRP else 1.5,
            "risk": {"on_stop": "close"},
        }
    accounts = {}
    for a in sorted({STRATEGIES[n]["account"] for n in names}):
        accounts[a] = {**ACCOUNTS[a], "feed": {"replay": REPLAY, "speed": speed}}
    return {"version": 1, "accounts": accounts, "strategies": strategies}


@dataclass
class Fleet:
    """One state dir and its config; every process it starts ends in close()."""

    root: Path
    config: dict
    log: callable = print
    seen: set = field(default_factory=set)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.state = self.root / "st"
        self.paths = StatePaths(self.state)
        self.config_path = self.root / "strategies.yaml"
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        self.env = dict(os.environ, GRIDCTL_STATE_DIR=str(self.state), GRIDCTL_BACKOFF_BASE="0.3",
                        GRIDCTL_EQUITY_EVERY_S="5")
        for k in ("GRIDCTL_WORKER_MAIN", "GRIDCTL_PRELOAD", "GRIDCTL_CONFIG"):
            self.env.pop(k, None)

    @property
    def names(self) -> list[str]:
        return list(self.config["strategies"])

    @property
    def accounts(self) -> list[str]:
        return list(self.config["accounts"])

    def account_of(self, name: str) -> str:
        return self.config["strategies"][name]["account"]

    def protocol(self, account: str) -> str:
        return self.config["accounts"][account]["like"]

    # -- the CLI -------------------------------------------------------------------------------
    def gridctl(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "gridctl", *args], env=self.env, text=True,
                              capture_output=True, timeout=timeout, cwd=self.root)

    def start(self) -> str:
        """`gridctl start` (a fresh supervisor adopts running workers and venues)."""
        r = self.gridctl("start", "-c", str(self.config_path))
        if r.returncode != 0:
            raise RuntimeError(f"gridctl start -> {r.returncode}: {r.stdout}{r.stderr}")
        return r.stdout

    def status(self) -> dict[str, dict]:
        r = self.gridctl("status", "-c", str(self.config_path), "--json")
        if r.returncode != 0:
            raise RuntimeError(f"gridctl status -> {r.returncode}: {r.stdout}{r.stderr}")
        return {row["name"]: row for row in json.loads(r.stdout)}

    # -- processes -------------------------------------------------------------------------------
    def supervisor_pid(self) -> Optional[int]:
        pid = read_pid(self.paths.pid_file)
        return pid if pid and pid_alive(pid) else None

    def worker_pid(self, name: str) -> Optional[int]:
        pid = lock_holder(self.paths.worker_pid(name))
        if pid:
            self.seen.add(pid)
        return pid

    def venue_pid(self, account: str) -> Optional[int]:
        pid = lock_holder(self.paths.venue_pid(account))
        if pid:
            self.seen.add(pid)
        return pid

    def kill(self, pid: Optional[int]) -> bool:
        """SIGKILL one process this fleet started; False if it was not running."""
        if not pid or not pid_alive(pid):
            return False
        os.kill(pid, signal.SIGKILL)
        return True

    def all_up(self) -> bool:
        return (self.supervisor_pid() is not None and all(self.venue_pid(a) for a in self.accounts)
                and all(self.worker_pid(n) for n in self.names))

    def missing(self) -> list[str]:
        """What is not running now (for the log)."""
        out = [] if self.supervisor_pid() else ["supervisor"]
        out += [f"venue {a}" for a in self.accounts if not self.venue_pid(a)]
        return out + [f"worker {n}" for n in self.names if not self.worker_pid(n)]

    def revive(self, timeout: float = 180) -> None:
        """Wait for every process; `gridctl start` again every 15 s meanwhile (a supervisor killed
        last, or a worker it gave up on after many kills in a row)."""
        deadline = time.monotonic() + timeout
        while not self.all_up():
            if time.monotonic() > deadline:
                raise AssertionError(f"not running after {timeout:g} s: {', '.join(self.missing())}")
            self.log(f"waiting for: {', '.join(self.missing())}; gridctl start")
            try:
                self.start()
            except Exception as exc:
                self.log(str(exc)[:300])
            end = time.monotonic() + 15
            while time.monotonic() < end and not self.all_up():
                time.sleep(0.5)

    # -- the venues' admin API ------------------------------------------------------------------------
    def venue_url(self, account: str) -> Optional[str]:
        try:
            return self.paths.venue_url(account).read_text().strip() or None
        except OSError:
            return None

    def admin(self, account: str, path: str, body: Optional[dict] = None, timeout: float = 10) -> dict:
        """GET (body None) or POST one of the account's venue's /_admin endpoints."""
        url = self.venue_url(account)
        if url is None:
            raise OSError(f"{account}: no venue URL yet")
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url + path, data=data, method="GET" if body is None else "POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())

    def try_admin(self, account: str, path: str, body: Optional[dict] = None) -> Optional[dict]:
        """admin(), or None while the venue is down (it may have just been killed)."""
        try:
            return self.admin(account, path, body)
        except (OSError, ValueError):
            return None

    # -- the database ------------------------------------------------------------------------------
    @property
    def db(self) -> Path:
        return self.state / "gridctl.db"

    def wait(self, pred, timeout: float, what: str, step: float = 0.2):
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = pred()
            except Exception:  # a process between lives: ask again
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
            time.sleep(step)

    def close(self) -> None:
        shut_down_everything(self.state, self.seen)
