"""The supervisor process (after gunicorn's Arbiter and supervisord's process states).

One asyncio loop: signal handlers only enqueue (asyncio's wake-up fd), children are
reaped with waitpid(-1, WNOHANG), a 0.2 s tick restarts backed-off workers, notices
when a forked worker answers on its socket, polls the locks of adopted workers
(which are not our children, so waitpid cannot see them), aborts a worker whose
heartbeat file is older than the heartbeat timeout (gunicorn's worker timeout) and
re-binds the control socket when its file is deleted or replaced.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

from gridctl.config import Config, ConfigError, load
from gridctl.config.model import EventsConfig
from gridctl.config.strategy import settings_hash
from gridctl.control.client import ControlError, NotRunning, worker_call
from gridctl.process.heartbeat import DEFAULT_TIMEOUT as HEARTBEAT_TIMEOUT
from gridctl.process.exits import (EX_ALREADY_RUNNING, EX_AUTH, EX_CONFIG, EX_DB_UNAVAILABLE, EXIT_MEANING,
                                   describe_exit)
from gridctl.process.paths import StatePaths
from gridctl.process.pidfile import AlreadyRunning, SupervisorLock, lock_holder, read_pid
from gridctl.supervisor import child
from gridctl.supervisor.commands import reload_config
from gridctl.supervisor.feed_link import FeedLink
from gridctl.supervisor.operations import Operations
from gridctl.supervisor.reporter import reporter_main
from gridctl.supervisor.states import RestartPolicy, WorkerState
from gridctl.supervisor.venue_keeper import VenueKeeper
from gridctl.supervisor.watchdog import SOCKET_CHECK, Watchdog

log = logging.getLogger("gridctl.supervisor")

WorkerMain = child.WorkerMain
DEFAULT_ENTRY = "gridctl.worker.main:run_worker"
# Imported once in the supervisor so every forked worker shares them copy-on-write.
DEFAULT_PRELOAD = ("ccxt.async_support", "ccxt.pro", "peewee", "numpy", "apscheduler.schedulers.blocking",
                   "gridctl.store.db", "gridctl.exchange.ccxt_adapter", "gridctl.venue.run", "gridctl.cli.venue_cmd")
TICK = 0.2


def resolve_entry(spec: str) -> WorkerMain:
    """'package.module:function' → the function (ImportError/AttributeError if absent)."""
    mod, _, fn = spec.partition(":")
    return getattr(importlib.import_module(mod), fn or "run_worker")


@dataclass
class Worker:
    """The supervisor's record of one strategy's process."""

    name: str
    state: WorkerState = WorkerState.STOPPED
    pid: int = 0
    adopted: bool = False
    since: float = field(default_factory=time.time)
    started_at: float = 0.0          # wall clock, for uptime
    started_mono: float = 0.0        # for crash-loop accounting
    reason: str = "not started"
    last_exit: str = ""
    restarts: int = 0
    crashes: int = 0
    retry_at: float = 0.0
    stop_requested: bool = False
    config_hash: str = ""
    running: Optional[tuple] = None  # (StrategyConfig, AccountConfig) the worker runs, for reload's diff
    next_liveness: float = 0.0
    probing: bool = False
    aborted_at: float = 0.0          # monotonic time of the SIGABRT sent for a missed heartbeat
    hung: str = ""                   # why it was aborted, for the exit's description
    forced: bool = False             # the supervisor itself signalled it to end a stop


class Arbiter(Operations, Watchdog):
    """Supervises the workers of one state dir. `run()` blocks until shutdown.

    worker_main(name, config_path, state_dir) -> exit code runs in the forked child
    after the child holds `run/<name>.pid` (see gridctl.supervisor.child).
    """

    def __init__(self, config_path: Path, state_dir: Path, worker_main: Optional[WorkerMain] = None, *,
                 start: Optional[Iterable[str]] = None, policy: Optional[RestartPolicy] = None,
                 stop_timeout: float = 60.0, kill_timeout: float = 10.0, start_wait: float = 5.0,
                 preload: Iterable[str] = DEFAULT_PRELOAD, entry: str = DEFAULT_ENTRY,
                 events: Optional[EventsConfig] = None, heartbeat_timeout: float = HEARTBEAT_TIMEOUT):
        self.config_path = Path(config_path).resolve()
        self.paths = StatePaths(Path(state_dir).resolve())
        self.worker_main = worker_main
        self.entry = entry
        self.entry_error = ""
        self.initial = None if start is None else list(start)   # None: every strategy
        self.policy = policy or RestartPolicy()
        self.stop_timeout, self.kill_timeout, self.start_wait = stop_timeout, kill_timeout, start_wait
        self.heartbeat_timeout = heartbeat_timeout  # 0 or less: never abort a silent worker
        self.server: Optional[asyncio.AbstractServer] = None
        self.socket_id: Optional[tuple[int, int]] = None  # (st_dev, st_ino) of the socket file we bound
        self.next_socket_check = 0.0
        self.preload = tuple(preload)
        self.workers: dict[str, Worker] = {}
        self.config: Optional[Config] = None
        self.shutting_down = False
        self.started_at = time.time()
        self.reporter_pid = 0
        self.reporter_crashes = 0
        self.reporter_retry_at = 0.0
        self.subscribers: set[asyncio.Queue] = set()
        self.events_cfg, self.feed = events, FeedLink(self)  # the live WebSocket feed (start --events)
        self._lock = SupervisorLock(self.paths)
        self.venues = VenueKeeper(self.paths, lambda: self.config, self._fork, self.policy)

    # ---- life cycle -------------------------------------------------------------------------
    def run(self) -> int:
        """Lock the state dir, serve the socket, adopt/start workers, loop until shutdown."""
        self.paths.make()
        try:
            self._lock.acquire()
        except AlreadyRunning as exc:
            log.error("%s", exc)
            return 1
        if self._lock.stale_pid:
            log.info("replaced a stale PID file (supervisor pid %d is gone)", self._lock.stale_pid)
        try:
            return asyncio.run(self._main())
        finally:
            self._lock.release()

    async def _main(self) -> int:

        try:
            self.config = load(self.config_path)
        except ConfigError as exc:
            for p in exc.problems:
                log.error("%s: %s", self.config_path, p)
            return EX_CONFIG
        child.set_title(f"gridctl supervisor {self.paths.root}")
        self._preload()
        self.loop = asyncio.get_running_loop()
        self.changed = asyncio.Condition()
        self.done = asyncio.Event()
        signals: asyncio.Queue[int] = asyncio.Queue()
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            self.loop.add_signal_handler(sig, signals.put_nowait, sig)
        await self._adopt()
        self.venues.adopt()
        for w in list(self.workers.values()):
            self._want_venue(w.name)
        await self._bind()
        log.info("supervisor %d serving %s (config %s; heartbeat timeout %s)", os.getpid(), self.paths.socket,
                 self.config_path, f"{self.heartbeat_timeout:g} s" if self.heartbeat_timeout > 0 else "off")
        tasks = [asyncio.create_task(self._signal_loop(signals)), asyncio.create_task(self._tick_loop())]
        if self.events_cfg is not None:
            await self.feed.start(self.events_cfg)
        self._start_reporter()
        names = list(self.config.strategies) if self.initial is None else self.initial
        for name in names:
            if name in self.config.strategies and not self._alive(name):
                asyncio.create_task(self.start_worker(name))
        await self.done.wait()
        await self.feed.close()
        if self.server is not None:
            self.server.close()
        if not self._socket_lost():  # never remove a file that is not our socket
            self.paths.socket.unlink(missing_ok=True)
        for t in tasks:
            t.cancel()
        log.info("supervisor %d exiting", os.getpid())
        return 0

    def _preload(self) -> None:
        for mod in self.preload:
            try:
                importlib.import_module(mod)
            except Exception as exc:  # optional speed-up only
                log.warning("preload of %s failed: %s", mod, exc)
        if self.worker_main is None:
            try:
                self.worker_main = resolve_entry(self.entry)
            except (ImportError, AttributeError) as exc:
                self.entry_error = f"the worker entry point {self.entry} cannot be loaded: {exc}"
                log.error("%s", self.entry_error)

    async def _signal_loop(self, signals: "asyncio.Queue[int]") -> None:
        while True:
            sig = await signals.get()
            if sig == signal.SIGCHLD:
                self.reap()
            elif sig in (signal.SIGTERM, signal.SIGINT):
                if not self.shutting_down:
                    log.info("%s: shutting down", signal.Signals(sig).name)
                    asyncio.create_task(self.shutdown())
            elif sig == signal.SIGHUP:
                log.info("SIGHUP: reloading %s", self.config_path)
                asyncio.create_task(reload_config(self))

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            self.reap()
            self.venues.tick()
            now = time.monotonic()
            if now >= self.next_socket_check and not self.shutting_down:
                self.next_socket_check = now + SOCKET_CHECK
                if self._socket_lost():
                    await self._rebind()
            for w in list(self.workers.values()):
                if w.adopted and w.pid and w.state.alive and now >= w.next_liveness:
                    w.next_liveness = now + 0.5
                    self._check_adopted(w)
                self._check_heartbeat(w, now)
                if w.state == WorkerState.BACKOFF and now >= w.retry_at and not self.shutting_down:
                    w.restarts += 1
                    self._spawn(w)
                elif w.state == WorkerState.STARTING and w.pid and not w.probing:
                    asyncio.create_task(self._probe(w, w.pid))
            if not self.reporter_pid and self.reporter_retry_at and now >= self.reporter_retry_at:
                self._start_reporter()

    # ---- state --------------------------------------------------------------------------------
    def set_state(self, w: Worker, state: WorkerState, reason: str = "") -> None:
        """Record a state change, log it, wake waiters and tell `events` subscribers."""
        if w.state != state:
            log.info("%s: %s -> %s%s", w.name, w.state.value, state.value, f" ({reason})" if reason else "")
        w.state, w.reason, w.since = state, reason, time.time()
        ev = {"type": "status", "strategy": w.name, "state": state.value, "reason": reason,
              "pid": w.pid, "ts": int(w.since * 1000), "source": "supervisor"}
        for q in list(self.subscribers):
            if not q.full():
                q.put_nowait(ev)
        asyncio.create_task(self._notify())

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def wait_for(self, pred: Callable[[], bool], timeout: float) -> bool:
        """Wait until pred() holds (re-checked on every state change), at most timeout seconds."""
        async def waiter() -> None:
            async with self.changed:
                await self.changed.wait_for(pred)
        try:
            await asyncio.wait_for(waiter(), timeout)
            return True
        except asyncio.TimeoutError:
            return pred()

    def _alive(self, name: str) -> bool:
        w = self.workers.get(name)
        return w is not None and w.state.alive

    def settings_of(self, name: str) -> Optional[tuple]:
        """(strategy, account) settings of name in the current config."""
        s = self.config.strategies.get(name) if self.config else None
        return None if s is None or self.config is None else (s, self.config.accounts.get(s.account))

    def worker(self, name: str) -> Worker:
        """The record for name, created on first use."""
        if name not in self.workers:
            self.workers[name] = Worker(name)
        return self.workers[name]

    # ---- processes ----------------------------------------------------------------------------
    def _fork(self, body: Callable[[], None]) -> int:
        sys.stdout.flush()
        sys.stderr.flush()
        for h in logging.getLogger().handlers:
            h.flush()
        gc.freeze()  # the child never collects the parent's objects (COW-friendly, fd-safe)
        pid = os.fork()
        if pid == 0:
            body()  # never returns: the child bodies end with os._exit
            os._exit(70)
        gc.unfreeze()
        return pid

    def _spawn(self, w: Worker) -> None:
        if self.entry_error:
            self.set_state(w, WorkerState.FATAL, self.entry_error)
            return
        self.paths.worker_exit(w.name).unlink(missing_ok=True)
        self._want_venue(w.name)  # a restart after a crash or mid-stop: its venue may have died too
        main = self.worker_main
        assert main is not None
        pid = self._fork(lambda: child.worker_child(w.name, self.config_path, self.paths.root, main))
        w.pid, w.adopted, w.stop_requested, w.probing = pid, False, False, False
        w.aborted_at, w.hung, w.forced = 0.0, "", False
        w.started_at, w.started_mono = time.time(), time.monotonic()
        self.set_state(w, WorkerState.STARTING, f"pid {pid}")

    async def _probe(self, w: Worker, pid: int) -> None:
        """Move a STARTING worker to RUNNING (or PAUSED) once its socket answers."""
        w.probing = True
        try:
            resp = await worker_call(self.paths.worker_socket(w.name), "status", timeout=1.0)
        except (NotRunning, ControlError, OSError):
            return
        finally:
            w.probing = False
        if w.pid == pid and w.state == WorkerState.STARTING:
            paused = bool((resp.get("status") or {}).get("paused"))
            self.set_state(w, WorkerState.PAUSED if paused else WorkerState.RUNNING)

    def reap(self) -> None:
        """Collect every exited child without blocking."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            code = os.waitstatus_to_exitcode(status)
            if pid == self.reporter_pid:
                self._reporter_exited(code)
                continue
            if self.venues.reaped(pid, code):
                continue
            for w in self.workers.values():
                if w.pid == pid and not w.adopted:
                    sig = signal.Signals(-code).name if code < 0 else None
                    self._exited(w, None if code < 0 else code, sig)
                    break

    def _check_adopted(self, w: Worker) -> None:
        if lock_holder(self.paths.worker_pid(w.name)) is not None:
            return
        code = None
        try:
            epid, ecode = self.paths.worker_exit(w.name).read_text().split()
            if int(epid) == w.pid:
                code = int(ecode)
        except (OSError, ValueError):
            pass
        self._exited(w, code, None)

    def _exited(self, w: Worker, code: Optional[int], sig: Optional[str]) -> None:
        desc = describe_exit(code, sig)
        if w.hung:
            desc = f"{desc} ({w.hung})"
        w.aborted_at, w.hung = 0.0, ""
        ran = time.monotonic() - w.started_mono
        w.last_exit, last_pid, w.pid, w.adopted = desc, w.pid, 0, False
        stopping = w.stop_requested or w.state == WorkerState.STOPPING
        if stopping and not self.shutting_down and not w.forced and code not in (0, EX_CONFIG, EX_AUTH,
                                                                                   EX_ALREADY_RUNNING):
            # killed in the middle of its stop (not by us): a new process finishes the stop the
            # old one stored as begun (gridctl.worker.main), unless it crash-loops
            w.crashes = self.policy.next_count(w.crashes, ran)
            if not self.policy.is_loop(w.crashes):
                w.restarts += 1
                self._spawn(w)
                w.stop_requested = True
                self.set_state(w, WorkerState.STOPPING, f"finishing the stop: pid {last_pid} {desc}")
                return
        if stopping or self.shutting_down:
            w.stop_requested = False
            self.set_state(w, WorkerState.STOPPED, "stopped" if code == 0 else f"stopped ({desc})")
        elif code == 0:
            self.set_state(w, WorkerState.EXITED, "exited on its own (exit 0)")
        elif code == EX_ALREADY_RUNNING:
            other = lock_holder(self.paths.worker_pid(w.name))  # the proven holder, not the file's text
            self.set_state(w, WorkerState.EXITED, f"{w.name} is already running" + (f" (pid {other})" if other else ""))
        elif code == EX_DB_UNAVAILABLE:
            # the database is down (a PostgreSQL server): wait for it however long it takes, with
            # back-off, never a crash loop; the worker's orders rest on the venue meanwhile
            w.crashes = min(self.policy.next_count(w.crashes, ran), max(1, self.policy.max_crashes - 1))
            delay = self.policy.delay(w.crashes)
            w.retry_at = time.monotonic() + delay
            self.set_state(w, WorkerState.BACKOFF, f"pid {last_pid} {desc}; restarting in {delay:g} s"
                                                   f"{self._log_tail(w.name)}")
        elif code in (EX_CONFIG, EX_AUTH):
            self.set_state(w, WorkerState.FATAL, f"{EXIT_MEANING[code]} (exit {code}){self._log_tail(w.name)}")
        else:
            w.crashes = self.policy.next_count(w.crashes, ran)
            if self.policy.is_loop(w.crashes):
                self.set_state(w, WorkerState.FATAL, f"crash loop: {w.crashes} crashes within "
                               f"{self.policy.window:g} s of starting; last: {desc}{self._log_tail(w.name)}")
            else:
                delay = self.policy.delay(w.crashes)
                w.retry_at = time.monotonic() + delay
                self.set_state(w, WorkerState.BACKOFF, f"pid {last_pid} {desc}; restarting in {delay:g} s")

    def _log_tail(self, name: str) -> str:
        """': <last line of the worker's log>' — usually the error that explains the exit."""
        try:
            with open(self.paths.worker_log(name), "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 4096))
                lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return ""
        return f": {lines[-1][:300]}" if lines else ""

    def send_signal(self, w: Worker, sig: int) -> None:
        """Signal a worker, making sure an adopted PID still is that worker."""
        if not w.pid:
            return
        if w.adopted and lock_holder(self.paths.worker_pid(w.name)) != w.pid:
            return
        try:
            os.kill(w.pid, sig)
        except ProcessLookupError:
            pass

    def _want_venue(self, name: str) -> None:
        """The paper venue a running or restarting worker trades on is kept running."""
        s = self.config.strategies.get(name) if self.config else None
        account = self.config.accounts.get(s.account) if s else None
        if account is not None and account.is_paper:
            self.venues.want(account.name)

    async def _adopt(self) -> None:
        """Take over workers left running by a previous supervisor (their PID-file locks are held)."""
        found = []
        for pidfile in sorted(self.paths.run_dir.glob("*.pid")):
            holder = lock_holder(pidfile)
            if holder is None:
                continue
            if not holder:  # held, but by no process we can prove: never adopt (so never signal) it
                log.warning("%s is locked by a process that cannot be identified (the file names pid %d); "
                            "not adopting it", pidfile, read_pid(pidfile))
                continue
            if holder != read_pid(pidfile):
                log.warning("%s names pid %d, but pid %d holds its lock: adopting pid %d",
                            pidfile, read_pid(pidfile), holder, holder)
            w = self.worker(pidfile.stem)
            w.pid, w.adopted, w.started_mono = holder, True, time.monotonic()
            try:
                w.started_at = pidfile.stat().st_mtime  # written when the worker took its lock
            except OSError:
                w.started_at = time.time()
            if self.config and w.name in self.config.strategies:
                w.config_hash = settings_hash(self.config, w.name)
                w.running = self.settings_of(w.name)
            self.set_state(w, WorkerState.STARTING, f"adopted pid {holder}")
            log.info("adopted %s (pid %d)", w.name, holder)
            found.append(w)
        # Before the control socket answers, so the first status already shows them running.
        await asyncio.gather(*(self._probe(w, w.pid) for w in found))

    # ---- reporter -----------------------------------------------------------------------------
    def _start_reporter(self) -> None:
        self.reporter_retry_at = 0.0
        if self.shutting_down or not self.config or not self.config.reports:
            return

        parent, cfg, root = os.getpid(), self.config_path, self.paths.root
        self.reporter_pid = self._fork(lambda: child.reporter_child(root, lambda: reporter_main(cfg, root, parent)))
        log.info("reporter started (pid %d)", self.reporter_pid)

    def _reporter_exited(self, code: int) -> None:
        log.info("reporter (pid %d) ended: %s", self.reporter_pid, describe_exit(max(code, 0) if code >= 0 else None,
                 signal.Signals(-code).name if code < 0 else None))
        self.reporter_pid = 0
        if not self.shutting_down:
            self.reporter_crashes += 1
            self.reporter_retry_at = time.monotonic() + self.policy.delay(min(self.reporter_crashes, 7))

    def restart_reporter(self) -> None:
        """Make the reporter re-read the config (SIGTERM; the tick starts a new one)."""
        if self.reporter_pid:
            os.kill(self.reporter_pid, signal.SIGTERM)
            self.reporter_crashes = 0
        else:
            self._start_reporter()
