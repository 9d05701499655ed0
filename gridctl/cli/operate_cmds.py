"""Operator commands: start, stop, pause, resume, reload, shutdown, emergency-close."""

from __future__ import annotations

import logging
import os
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Optional

import click

from gridctl.cli.group import cli
from gridctl.cli.common import AppContext, config_option, fail, load_config_or_exit, strategy_or_exit
from gridctl.config import ConfigError, load
from gridctl.control.client import ControlClient, ControlError, NotRunning
from gridctl.process.paths import StatePaths
from gridctl.process.pidfile import pid_alive, read_pid
from gridctl.process.exits import EX_ALREADY_RUNNING

START_TIMEOUT = 30.0   # until a new supervisor's socket answers
LONG = 600.0           # stop and shutdown wait for workers to flatten


def make_arbiter(config_path: Path, state_dir: Path, names: Optional[list[str]]):
    """The supervisor for state_dir.

    For development and tests: GRIDCTL_WORKER_MAIN ("module:function") replaces the
    worker, GRIDCTL_BACKOFF_BASE (seconds) the first restart delay, and
    GRIDCTL_PRELOAD (comma-separated modules, may be empty) what is imported before forking.
    """
    from gridctl.supervisor.arbiter import DEFAULT_ENTRY, DEFAULT_PRELOAD, Arbiter
    from gridctl.supervisor.states import RestartPolicy

    base = float(os.environ.get("GRIDCTL_BACKOFF_BASE", "1"))
    preload = os.environ.get("GRIDCTL_PRELOAD")
    return Arbiter(config_path, state_dir, start=names, policy=RestartPolicy(base=base),
                   entry=os.environ.get("GRIDCTL_WORKER_MAIN", DEFAULT_ENTRY),
                   preload=DEFAULT_PRELOAD if preload is None else [m for m in preload.split(",") if m])


def _log_to_stderr() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _state_dir(app: AppContext, config_path: str) -> Path:
    """--state-dir > GRIDCTL_STATE_DIR > the config's state_dir (if the file loads) > default."""
    config = None
    if not app.state_dir_option and Path(config_path).exists():
        try:
            config = load(Path(config_path), check_markets=False)
        except ConfigError:
            pass  # a broken file must not keep anyone from stopping a running grid
    return app.state_dir(config).resolve()


def _client_or_exit(state_dir: Path) -> ControlClient:
    client = ControlClient(state_dir)
    if not client.is_running():
        fail(f"gridctl is not running for state dir {state_dir}; start it with `gridctl start`")
    return client


def _call(client: ControlClient, cmd: str, timeout: Optional[float] = None, **args) -> dict:
    try:
        return client.call(cmd, timeout=timeout, **args)
    except NotRunning:
        fail(f"gridctl is not running for state dir {client.state_dir}; start it with `gridctl start`")
    except ControlError as exc:
        fail(str(exc))
    raise AssertionError("unreachable")


def _print_results(resp: dict) -> None:
    """One line per strategy; exit 1 if any of them failed."""
    failed = False
    for r in resp.get("results", []):
        if r.get("ok"):
            click.echo(r["message"])
        else:
            failed = True
            click.echo(f"error: {r['message']}", err=True)
    if resp.get("message"):
        click.echo(resp["message"])
    if failed:
        sys.exit(1)


def _log_tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def _launch_daemon(config_path: Path, state_dir: Path) -> int:
    from gridctl.supervisor.daemon import daemonize

    paths = StatePaths(state_dir)
    paths.make()

    def body() -> int:
        _log_to_stderr()
        return make_arbiter(config_path, state_dir, []).run()

    pid = daemonize(body, paths.supervisor_log)
    client = ControlClient(state_dir)
    deadline = time.monotonic() + START_TIMEOUT
    while not client.is_running():
        if not pid_alive(pid) and not client.is_running():
            fail(f"the supervisor (pid {pid}) exited during start-up; the end of {paths.supervisor_log}:\n"
                 f"{_log_tail(paths.supervisor_log)}")
        if time.monotonic() > deadline:
            fail(f"the supervisor (pid {pid}) did not answer on {paths.socket} within {START_TIMEOUT:g} s; "
                 f"see {paths.supervisor_log}")
        time.sleep(0.1)
    return pid


@cli.command()
@config_option
@click.argument("names", nargs=-1)
@click.option("--foreground", is_flag=True,
              help="Run the supervisor in this process and log to stderr (systemd uses this).")
@click.pass_obj
def start(app: AppContext, config_path: str, names: tuple[str, ...], foreground: bool) -> None:
    """Start the supervisor (if it is not running) and the named strategies (default: all).

    The supervisor runs in the background, one per state dir, and restarts crashed
    strategies. Its log is <state dir>/logs/supervisor.log; each strategy logs to
    <state dir>/logs/NAME.log.

    Example:

        gridctl start -c strategies.yaml
        gridctl start -c strategies.yaml sol-neutral xrp-short
    """
    config = load_config_or_exit(config_path)
    for n in names:
        strategy_or_exit(config, n)
    state_dir = app.state_dir(config).resolve()
    client = ControlClient(state_dir)
    if foreground:
        if client.is_running():
            pid = read_pid(StatePaths(state_dir).pid_file)
            fail(f"a supervisor is already running for state dir {state_dir} (pid {pid})")
        _log_to_stderr()
        sys.exit(make_arbiter(config.path, state_dir, list(names) or None).run())
    if not client.is_running():
        pid = _launch_daemon(config.path.resolve(), state_dir)
        click.echo(f"started supervisor (pid {pid}) for state dir {state_dir}")
    resp = _call(client, "start", timeout=LONG, names=list(names), config=str(config.path.resolve()))
    _print_results(resp)


@cli.command()
@config_option
@click.argument("names", nargs=-1)
@click.option("--keep-position", is_flag=True, help="Cancel the orders but leave the position open.")
@click.option("--all", "all_", is_flag=True, help="Stop every running strategy.")
@click.pass_obj
def stop(app: AppContext, config_path: str, names: tuple[str, ...], keep_position: bool, all_: bool) -> None:
    """Stop strategies: cancel every order, then close the position at market (reduce-only).

    Without --keep-position the strategy's risk.on_stop decides whether the position
    is closed. The supervisor keeps running; `gridctl start NAME` starts it again.

    Example:

        gridctl stop sol-neutral
        gridctl stop --all --keep-position
    """
    if not names and not all_:
        fail("name the strategies to stop, or pass --all", 2)
    client = _client_or_exit(_state_dir(app, config_path))
    resp = _call(client, "stop", timeout=LONG, names=list(names), all=all_,
                 keep_position=True if keep_position else None)
    _print_results(resp)


@cli.command()
@config_option
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def pause(app: AppContext, config_path: str, names: tuple[str, ...]) -> None:
    """Pause strategies: keep their orders and position, place nothing new.

    Example:

        gridctl pause sol-neutral sol-long
    """
    client = _client_or_exit(_state_dir(app, config_path))
    _print_results(_call(client, "pause", timeout=30.0, names=list(names)))


@cli.command()
@config_option
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def resume(app: AppContext, config_path: str, names: tuple[str, ...]) -> None:
    """Resume paused strategies without rebuilding their grids.

    Example:

        gridctl resume sol-neutral
    """
    client = _client_or_exit(_state_dir(app, config_path))
    _print_results(_call(client, "resume", timeout=30.0, names=list(names)))


@cli.command()
@config_option
@click.pass_obj
def reload(app: AppContext, config_path: str) -> None:
    """Re-read the strategies file the supervisor was started with.

    New strategies start; a running strategy whose grid changed keeps its running
    grid until you stop and start it; an invalid file changes nothing.
    Same as `kill -HUP $(cat <state dir>/supervisor.pid)` or `systemctl reload gridctl`.

    Example:

        gridctl reload
    """
    client = _client_or_exit(_state_dir(app, config_path))
    _print_results(_call(client, "reload", timeout=LONG))


@cli.command()
@config_option
@click.pass_obj
def shutdown(app: AppContext, config_path: str) -> None:
    """Stop every strategy as configured (risk.on_stop), then the supervisor itself.

    Example:

        gridctl shutdown
    """
    state_dir = _state_dir(app, config_path)
    client = _client_or_exit(state_dir)
    pid = read_pid(StatePaths(state_dir).pid_file)
    resp = _call(client, "shutdown", timeout=LONG)
    resp.pop("message", None)
    for r in resp.get("results", []):
        click.echo(r["message"] if r.get("ok") else f"error: {r['message']}", err=not r.get("ok"))
    deadline = time.monotonic() + 30
    while pid and pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid and pid_alive(pid):
        fail(f"the supervisor (pid {pid}) has not exited yet; see {StatePaths(state_dir).supervisor_log}")
    click.echo(f"supervisor{f' (pid {pid})' if pid else ''} stopped")
    if not all(r.get("ok") for r in resp.get("results", [])):
        sys.exit(1)


@cli.command("emergency-close")
@config_option
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def emergency_close(app: AppContext, config_path: str, name: str, yes: bool) -> None:
    """Cancel every order of a strategy and close its position at market, now.

    The strategy then stops. Asks for confirmation unless --yes is given.

    Example:

        gridctl emergency-close sol-neutral --yes
    """
    state_dir = _state_dir(app, config_path)
    if not yes and not click.confirm(f"Cancel every order of {name} and close its position at market now?"):
        fail("nothing done")
    client = ControlClient(state_dir)
    if client.is_running():
        resp = _call(client, "emergency_close", timeout=LONG, name=name)
        if not all(r.get("not_running") for r in resp.get("results", [])):
            _print_results(resp)
            return
    # no worker trades it: close what it left on the exchange from here, under the worker's lock
    _flatten_here(config_path, state_dir, name)


def _flatten_here(config_path: str, state_dir: Path, name: str) -> None:
    """Cancel a stopped strategy's orders and close the position it left, in this process."""
    from gridctl.worker.main import run_worker

    config = load_config_or_exit(config_path)
    strategy_or_exit(config, name)
    report: dict = {}
    code = run_worker(name, Path(config_path), state_dir, flatten=True, report=report)
    if code == EX_ALREADY_RUNNING:
        fail(f"{name} is running in another process; try again once it has stopped")
    if code != 0:
        fail(f"emergency close of {name} failed (exit {code}); see `gridctl logs {name}`")
    held, left = Decimal(report.get("held", "0")), Decimal(report.get("left", "0"))
    if left:
        fail(f"emergency close of {name}: position {left} is still open after the close; "
             f"see `gridctl logs {name}`")
    if not held:
        click.echo(f"{name} is not running and holds no position: nothing to close (its open orders, if any, "
                   f"were cancelled)")
        return
    click.echo(f"emergency-closed {name}: it was not running; closed its position {held} at market from here "
               f"(see `gridctl logs {name}`)")
