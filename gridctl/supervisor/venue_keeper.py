"""The local venues of paper accounts: one process per account, kept by the supervisor.

A paper account's venue is started before the first of its workers, restarted (with the
workers' back-off policy) when it ends, adopted by a new supervisor while its PID-file lock
is held, and stopped after every worker at shutdown. A restarted venue reuses its port, so
the workers' endpoints stay valid and their ccxt streams simply reconnect.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

from gridctl.config.model import AccountConfig, Config
from gridctl.exchange.paper_venue import recorded_port, venue_argv, venue_url
from gridctl.process.exits import EX_ALREADY_RUNNING, describe_exit
from gridctl.process.paths import StatePaths
from gridctl.process.pidfile import lock_holder
from gridctl.supervisor import child
from gridctl.supervisor.states import RestartPolicy

log = logging.getLogger("gridctl.supervisor")
READY_TIMEOUT = 20.0


@dataclass
class Venue:
    """The supervisor's record of one paper account's venue process."""

    account: str
    pid: int = 0
    adopted: bool = False
    state: str = "stopped"  # starting | running | backoff | fatal | stopped
    reason: str = ""
    crashes: int = 0
    retry_at: float = 0.0
    started_mono: float = 0.0
    stopping: bool = False
    ready: asyncio.Event = field(default_factory=asyncio.Event)


def account_symbols(config: Config, account: str) -> list[str]:
    """Every symbol the account's strategies trade (the venue serves each of them)."""
    return sorted({s.symbol for s in config.strategies.values() if s.account == account})


class VenueKeeper:
    """Starts, watches and stops the paper accounts' venues of one state dir."""

    def __init__(self, paths: StatePaths, config: Callable[[], Optional[Config]], fork: Callable[[Callable], int],
                 policy: Optional[RestartPolicy] = None):
        self.paths, self.config, self.fork = paths, config, fork
        self.policy = policy or RestartPolicy()
        self.venues: dict[str, Venue] = {}
        self.shutting_down = False

    # ---- starting -------------------------------------------------------------------------
    def adopt(self) -> None:
        """Take over venues left running by a previous supervisor."""
        for pidfile in sorted(self.paths.venue_run_dir.glob("*.pid")):
            holder = lock_holder(pidfile)
            if holder is None:
                continue
            if not holder:  # held by a process that cannot be proven to be this venue: leave it alone
                log.warning("%s is locked by a process that cannot be identified; not adopting it", pidfile)
                continue
            v = self.venues.setdefault(pidfile.stem, Venue(pidfile.stem))
            v.pid, v.adopted, v.state, v.started_mono = holder, True, "running", time.monotonic()
            v.ready.set()
            log.info("adopted the venue of account %s (pid %d)", v.account, holder)

    def want(self, account: str) -> None:
        """A worker of this paper account is running or about to restart: start its venue if
        no process keeps it (it was killed while no supervisor watched, so neither `adopt`
        nor a reap saw it). Does not wait; the worker's own start retries until it listens."""
        v = self.venues.setdefault(account, Venue(account))
        if v.state == "stopped" and not v.pid and not self.shutting_down:
            log.warning("the venue of account %s is not running; starting it", account)
            self._spawn(v)

    async def ensure(self, account: AccountConfig) -> Optional[str]:
        """Have the account's venue running and listening; None, or why it is not."""
        v = self.venues.setdefault(account.name, Venue(account.name))
        if v.state == "fatal":
            v.state, v.crashes = "stopped", 0  # an operator's start tries again
        if v.state == "stopped":
            self._spawn(v)
        try:
            await asyncio.wait_for(v.ready.wait(), READY_TIMEOUT)
        except asyncio.TimeoutError:
            return f"the local venue of account '{account.name}' did not start: {v.reason or 'no answer'}" \
                   f" (see {self.paths.venue_log(account.name)})"
        return None

    def _spawn(self, v: Venue) -> None:
        config = self.config()
        if config is None or v.account not in config.accounts:
            v.state, v.reason = "stopped", "no such account in the configuration"
            return
        account = config.accounts[v.account]
        port = recorded_port(self.paths, v.account)
        argv = venue_argv(self.paths, account, account_symbols(config, v.account), port)
        self.paths.venue_url(v.account).unlink(missing_ok=True)  # written again once it listens
        root = self.paths.root
        v.pid = self.fork(lambda: child.venue_child(root, v.account, argv))
        v.adopted, v.stopping, v.state, v.reason = False, False, "starting", f"pid {v.pid}"
        v.started_mono = time.monotonic()
        v.ready.clear()
        log.info("venue of account %s starting (pid %d, port %s)", v.account, v.pid, port or "any")

    # ---- watching -------------------------------------------------------------------------
    def tick(self) -> None:
        """Notice a venue that listens, an adopted one that ended, and restart after back-off."""
        now = time.monotonic()
        for v in self.venues.values():
            if v.state == "starting" and venue_url(self.paths, v.account) is not None:
                v.state, v.reason = "running", f"pid {v.pid}"
                v.ready.set()
                log.info("venue of account %s listening at %s", v.account, venue_url(self.paths, v.account))
            elif v.adopted and v.pid and lock_holder(self.paths.venue_pid(v.account)) is None:
                self._ended(v, None, None)
            elif v.state == "backoff" and now >= v.retry_at and not self.shutting_down:
                self._spawn(v)

    def reaped(self, pid: int, code: int) -> bool:
        """A child ended: True if it was one of ours (then handled)."""
        for v in self.venues.values():
            if v.pid == pid and not v.adopted:
                self._ended(v, None if code < 0 else code, signal.Signals(-code).name if code < 0 else None)
                return True
        return False

    def _ended(self, v: Venue, code: Optional[int], sig: Optional[str]) -> None:
        desc = describe_exit(code, sig)
        v.pid, v.adopted = 0, False
        v.ready.clear()
        if v.stopping or self.shutting_down:
            v.state, v.reason = "stopped", f"stopped ({desc})"
        elif code == EX_ALREADY_RUNNING:
            v.state, v.reason = "stopped", "another venue process holds this account"
        elif code == 2:  # bad arguments or an unreadable state file: restarting cannot help
            v.state, v.reason = "fatal", f"{desc}: see {self.paths.venue_log(v.account)}"
        else:
            v.crashes = self.policy.next_count(v.crashes, time.monotonic() - v.started_mono)
            if self.policy.is_loop(v.crashes):
                v.state, v.reason = "fatal", f"crash loop; last: {desc}"
            else:
                delay = self.policy.delay(v.crashes)
                v.state, v.retry_at = "backoff", time.monotonic() + delay
                v.reason = f"{desc}; restarting in {delay:g} s"
        (log.info if v.state == "stopped" else log.warning)("venue of account %s ended: %s", v.account, v.reason)

    # ---- stopping -------------------------------------------------------------------------
    async def stop_all(self, timeout: float = 10.0) -> None:
        """SIGTERM every venue (they save their state), SIGKILL what outlives timeout."""
        self.shutting_down = True
        running = [v for v in self.venues.values() if v.pid]
        for v in running:
            v.stopping = True
            self._signal(v, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while any(v.pid for v in running) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            self.tick()
        for v in running:
            if v.pid:
                self._signal(v, signal.SIGKILL)

    def _signal(self, v: Venue, sig: int) -> None:
        if v.pid <= 0:
            return  # os.kill(0, ...) would signal our whole process group
        if v.adopted and lock_holder(self.paths.venue_pid(v.account)) != v.pid:
            return  # never signal a process not proven to be this venue
        try:
            os.kill(v.pid, sig)
        except ProcessLookupError:
            pass

    def status(self) -> list[dict]:
        """One row per venue, for `gridctl status --json`."""
        return [{"account": v.account, "state": v.state, "pid": v.pid, "reason": v.reason,
                 "url": venue_url(self.paths, v.account) if v.state == "running" else None}
                for v in sorted(self.venues.values(), key=lambda v: v.account)]


@contextmanager
def venue_for_this_command(paths: StatePaths, config: Config, account: str) -> Iterator[None]:
    """The account's venue while a command trades from its own process (emergency-close of
    a strategy that is not running): the one running, or one started here and stopped after."""
    acc = config.accounts.get(account)
    if acc is None or not acc.is_paper or lock_holder(paths.venue_pid(account)) is not None:
        yield
        return
    paths.make()
    argv = venue_argv(paths, acc, account_symbols(config, account), recorded_port(paths, account))
    paths.venue_url(account).unlink(missing_ok=True)
    pid = os.fork()
    if pid == 0:
        child.venue_child(paths.root, account, argv)
    try:
        yield
    finally:
        try:
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
