"""What a freshly forked child does before it runs a worker or the reporter.

The child inherits the supervisor's memory (the heavy imports, shared copy-on-write)
but must drop everything else it inherited: the supervisor's signal handlers and
wake-up fd, its asyncio loop, its sockets and its lock. A worker that kept the
supervisor's listening socket or lock open would make a dead supervisor look alive.
"""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Callable, NoReturn

from gridctl.process.heartbeat import Heartbeat
from gridctl.process.paths import StatePaths
from gridctl.process.pidfile import AlreadyRunning, acquire_process_lock, acquire_worker_lock, write_atomic
from gridctl.process.exits import EX_ALREADY_RUNNING, EX_SOFTWARE

WorkerMain = Callable[[str, Path, Path], int]
VENUE_MODULE, VENUE_COMMAND = "gridctl.cli.venue_cmd", "venue_cmd"


def set_title(title: str) -> None:
    """Set the process title if setproctitle is installed (never put secrets in it)."""
    try:
        import setproctitle  # type: ignore[import-not-found]
    except ImportError:
        return
    setproctitle.setproctitle(title)


def close_inherited_fds() -> None:
    """Close every fd above 2 (the process keeps only stdin, stdout and stderr)."""
    try:
        fds = [int(f) for f in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 4096))
    for fd in fds:
        if fd > 2:
            try:
                os.close(fd)
            except OSError:
                pass


def reset_process(log_path: Path, new_session: bool) -> None:
    """Make a forked child independent of the supervisor (see the module docstring)."""
    if new_session:
        # Own session: ^C in the supervisor's terminal or a killed process group
        # does not reach a trading worker.
        os.setsid()
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    for sig in (signal.SIGTERM, signal.SIGCHLD, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    asyncio.events._set_running_loop(None)  # Python < 3.12 keeps the parent's running loop after fork
    asyncio.set_event_loop(None)
    close_inherited_fds()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    out = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(out, 1)
    os.dup2(out, 2)
    for fd in (null, out):
        if fd > 2:
            os.close(fd)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    # The parent's handlers point at closed files; log to our stderr (the log file) instead.
    root = logging.getLogger()
    root.handlers = [logging.StreamHandler(sys.stderr)]
    root.handlers[0].setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))


def worker_child(name: str, config_path: Path, state_dir: Path, worker_main: WorkerMain) -> NoReturn:
    """Body of a forked worker: reset, lock `run/<name>.pid`, run worker_main, record the exit."""
    paths = StatePaths(state_dir)
    code = EX_SOFTWARE
    try:
        reset_process(paths.worker_log(name), new_session=True)
        try:
            acquire_worker_lock(state_dir, name)
        except AlreadyRunning as exc:
            print(f"{exc}; not starting a second copy", file=sys.stderr, flush=True)
            os._exit(EX_ALREADY_RUNNING)  # no exit file: that belongs to the running copy
        # The supervisor aborts a hung worker with SIGABRT: its stacks then land in the log.
        faulthandler.enable(file=sys.stderr, all_threads=True)
        Heartbeat(paths.worker_heartbeat(name)).beat()  # the clock of the heartbeat timeout starts now
        set_title(f"gridctl worker {name}")
        logging.getLogger("gridctl.supervisor").info("worker %s starting (pid %d)", name, os.getpid())
        code = worker_main(name, config_path, state_dir)
        code = int(code or 0)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = EX_SOFTWARE
    finally:
        try:
            # Still holding the lock: an adopting supervisor reads why we ended.
            write_atomic(paths.worker_exit(name), f"{os.getpid()} {code}\n", 0o600)
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    raise AssertionError("unreachable")


def reporter_child(state_dir: Path, body: Callable[[], int]) -> NoReturn:
    """Body of the forked reporter: reset, then run body (the scheduler) until it returns."""
    code = EX_SOFTWARE
    try:
        reset_process(StatePaths(state_dir).logs_dir / "reporter.log", new_session=True)
        set_title("gridctl reporter")
        code = int(body() or 0)
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stderr.flush()
        finally:
            os._exit(code)
    raise AssertionError("unreachable")


def venue_child(state_dir: Path, account: str, argv: list[str]) -> NoReturn:
    """Body of a forked local venue (a paper account's): reset, lock `run/venue/<account>.pid`,
    run `gridctl venue ARGV` in this process (never exec'd, so its API secret stays out of
    every command line)."""
    paths = StatePaths(state_dir)
    code = EX_SOFTWARE
    try:
        reset_process(paths.venue_log(account), new_session=True)
        try:
            acquire_process_lock(paths.venue_pid(account), f"the venue of account {account}")
        except AlreadyRunning as exc:
            print(f"{exc}; not starting a second copy", file=sys.stderr, flush=True)
            os._exit(EX_ALREADY_RUNNING)
        set_title(f"gridctl venue {account}")
        import importlib

        import click

        # the command, named like the worker entry point (the CLI layer sits above this one)
        command = getattr(importlib.import_module(VENUE_MODULE), VENUE_COMMAND)
        try:
            code = int(command.main(argv, prog_name="gridctl venue", standalone_mode=False) or 0)
        except click.ClickException as exc:  # bad arguments or state: said in the venue's log
            exc.show()
            code = exc.exit_code
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = EX_SOFTWARE
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    raise AssertionError("unreachable")
