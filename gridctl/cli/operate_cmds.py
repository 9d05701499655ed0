"""Operator commands: start, stop, pause, resume, reload, shutdown, emergency-close."""

from __future__ import annotations

import logging
import os
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Callable, Optional

import click

from gridctl.cli.group import cli
from gridctl.cli.common import (
    EXIT_CONFIG, EXIT_RUNTIME, EXIT_USAGE, AppContext, check_names_or_exit, complete_strategy_names,
    config_option, fail, json_option, load_config_or_exit, print_json, remember_state_dir, strategy_or_exit,
)
from gridctl.config import ConfigError, load
from gridctl.control.client import ControlClient, ControlError, NotRunning
from gridctl.process.paths import StatePaths
from gridctl.process.pidfile import lock_owner, pid_alive, read_pid
from gridctl.process.exits import EX_ALREADY_RUNNING

START_TIMEOUT = 30.0   # until a new supervisor's socket answers
LONG = 600.0           # stop and shutdown wait for workers to flatten
SOCKET_WAIT = 5.0      # a live supervisor re-binds a deleted socket within a second; margin for a busy host


def make_arbiter(config_path: Path, state_dir: Path, names: Optional[list[str]], events=None,
                 heartbeat_timeout: Optional[float] = None):
    """The supervisor for state_dir.

    For development and tests: GRIDCTL_WORKER_MAIN ("module:function") replaces the
    worker, GRIDCTL_BACKOFF_BASE (seconds) the first restart delay, and
    GRIDCTL_PRELOAD (comma-separated modules, may be empty) what is imported before forking.
    """
    from gridctl.process.private import owner_only_umask
    from gridctl.supervisor.arbiter import DEFAULT_ENTRY, DEFAULT_PRELOAD, HEARTBEAT_TIMEOUT, Arbiter
    from gridctl.supervisor.states import RestartPolicy

    # everything the supervisor, its workers, venues and reporter write in the state dir is
    # owner-only, --foreground (the shell's umask) as much as the daemon (issue 9)
    owner_only_umask()
    base = float(os.environ.get("GRIDCTL_BACKOFF_BASE", "1"))
    preload = os.environ.get("GRIDCTL_PRELOAD")
    return Arbiter(config_path, state_dir, start=names, policy=RestartPolicy(base=base), events=events,
                   heartbeat_timeout=HEARTBEAT_TIMEOUT if heartbeat_timeout is None else heartbeat_timeout,
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


def supervisor_pid(state_dir: Path) -> int:
    """The PID of the process proven to hold the state dir's supervisor lock, 0 if none
    (supervisor.pid's text alone names whatever process it names)."""
    return lock_owner(StatePaths(state_dir).lock_file) or 0


def _socket_back(client: ControlClient, pid: int) -> bool:
    """Wait (up to SOCKET_WAIT) for the live supervisor pid to answer again on its socket."""
    deadline = time.monotonic() + SOCKET_WAIT
    while time.monotonic() < deadline and pid_alive(pid):
        if client.is_running():
            return True
        time.sleep(0.2)
    return client.is_running()


def _unreachable(state_dir: Path, pid: int) -> str:
    paths = StatePaths(state_dir)
    return (f"a supervisor (pid {pid}) holds the lock of state dir {state_dir} but does not answer on "
            f"{paths.socket} (a running supervisor recreates a deleted socket within a second; this one "
            f"did not within {SOCKET_WAIT:g} s: it may be hung); see {paths.supervisor_log}. To replace it: "
            f"`kill -9 {pid}` (its workers keep trading; the next supervisor adopts them), then `gridctl start`")


def _client_or_exit(state_dir: Path) -> ControlClient:
    client = ControlClient(state_dir)
    if not client.is_running():
        pid = supervisor_pid(state_dir)
        if not pid:
            fail(f"gridctl is not running for state dir {state_dir}; start it with `gridctl start`")
        if not _socket_back(client, pid):
            fail(_unreachable(state_dir, pid))
    return client


def _call(client: ControlClient, cmd: str, timeout: Optional[float] = None, **args) -> dict:
    try:
        return client.call(cmd, timeout=timeout, **args)
    except NotRunning:
        fail(f"gridctl is not running for state dir {client.state_dir}; start it with `gridctl start`")
    except ControlError as exc:
        fail(str(exc))
    raise AssertionError("unreachable")


def _print_results(resp: dict, as_json: bool = False, fields: Optional[dict] = None,
                   extra: Optional[Callable[[dict], bool]] = None) -> None:
    """One line per strategy, after `extra(resp)` (it says whether it went well), or the reply as JSON
    (with `fields`); exit 1 if anything failed, 2 if every failure was an unknown strategy name."""
    results = resp.get("results", [])
    failed = [r for r in results if not r.get("ok")]
    if as_json:
        other_failed = bool(resp.get("events_error"))
        rest = {k: v for k, v in resp.items() if k not in ("ok", "results")}
        print_json({"ok": not failed and not other_failed, "results": results, **rest, **(fields or {})})
    else:
        other_failed = bool(extra and not extra(resp))
        for r in results:
            if r.get("ok"):
                click.echo(r["message"])
            else:
                click.echo(f"error: {r['message']}", err=True)
        if resp.get("message"):
            click.echo(resp["message"])
    if failed or other_failed:
        sys.exit(EXIT_USAGE if failed and not other_failed and all(r.get("unknown") for r in failed)
                 else EXIT_RUNTIME)


def _names_argument(required: bool = False):
    return click.argument("names", nargs=-1, required=required, shell_complete=complete_strategy_names)


def _log_tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def _launch_daemon(config_path: Path, state_dir: Path, events=None, heartbeat_timeout: Optional[float] = None) -> int:
    from gridctl.supervisor.daemon import daemonize

    paths = StatePaths(state_dir)
    paths.make()

    def body() -> int:
        _log_to_stderr()
        return make_arbiter(config_path, state_dir, [], events, heartbeat_timeout).run()

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
@_names_argument()
@click.option("--foreground", is_flag=True,
              help="Run the supervisor in this process and log to stderr (systemd uses this).")
@click.option("--events", "events_listen", metavar="HOST:PORT",
              help="Serve live events to dashboards over WebSocket (loopback only unless the YAML's "
                   "events.allow_remote is true); overrides the YAML's events.listen.")
@click.option("--heartbeat-timeout", type=click.FloatRange(min=0), metavar="SECONDS",
              help="Abort (SIGABRT, then SIGKILL) and restart a worker whose loop has not turned for this "
                   "long; 0 never does. Default 60. Applies when this command starts the supervisor.")
@json_option
@click.pass_obj
def start(app: AppContext, config_path: str, names: tuple[str, ...], foreground: bool,
          events_listen: Optional[str], heartbeat_timeout: Optional[float], as_json: bool) -> None:
    """Start the supervisor (if it is not running) and the named strategies (default: all).

    The supervisor runs in the background, one per state dir, and restarts crashed
    strategies. Its log is <state dir>/logs/supervisor.log; each strategy logs to
    <state dir>/logs/NAME.log. With --events (or `events:` in the YAML) it also serves
    the live event feed; clients present the token in <state dir>/events.token
    (docs/events.md). A state dir set by `state_dir:` in the file is remembered, so
    later commands run without -c find it.

    \b
    Example:
        gridctl start -c strategies.yaml
        gridctl start -c strategies.yaml sol-neutral xrp-short
        gridctl start -c strategies.yaml --events 127.0.0.1:8765
    """
    from gridctl.config.listen import ListenError, resolve

    config = load_config_or_exit(config_path)
    for n in names:
        strategy_or_exit(config, n)
    try:
        events = resolve(events_listen, config.events)
    except ListenError as exc:
        fail(str(exc), EXIT_USAGE)
    state_dir = app.state_dir(config).resolve()
    client = ControlClient(state_dir)
    if foreground:
        pid = supervisor_pid(state_dir)
        if pid or client.is_running():
            fail(f"a supervisor is already running for state dir {state_dir}" + (f" (pid {pid})" if pid else ""))
        _log_to_stderr()
        sys.exit(make_arbiter(config.path, state_dir, list(names) or None, events, heartbeat_timeout).run())
    if not app.state_dir_option and config.state_dir is not None:
        remember_state_dir(state_dir)
    paths = StatePaths(state_dir)
    launched = not client.is_running()
    recreated = False
    if launched and supervisor_pid(state_dir):
        # alive (it holds the lock) but silent: its socket was deleted, or it is hung
        pid = supervisor_pid(state_dir)
        click.echo(f"a supervisor (pid {pid}) is running for state dir {state_dir} but does not answer on "
                   f"{paths.socket}; waiting for it to recreate its socket", err=True)
        if not _socket_back(client, pid):
            fail(_unreachable(state_dir, pid))
        launched, recreated = False, True
    if launched:
        pid = _launch_daemon(config.path.resolve(), state_dir, events, heartbeat_timeout)
        if not as_json:
            click.echo(f"started supervisor (pid {pid}) for state dir {state_dir}")
            click.echo(f"  it runs in the background (daemonised); its log: {paths.supervisor_log}")
    else:
        pid = supervisor_pid(state_dir) or read_pid(paths.pid_file)
        if not as_json:
            click.echo(f"supervisor already running (pid {pid}) for state dir {state_dir}"
                       + ("; it had lost its control socket and recreated it" if recreated else ""))
            if heartbeat_timeout is not None:
                click.echo("  --heartbeat-timeout applies when a supervisor starts; the running one keeps "
                           "its own (`gridctl shutdown`, then start, to change it)")
    spec = None if events is None else {"listen": events.listen, "allow_remote": events.allow_remote}
    resp = _call(client, "start", timeout=LONG, names=list(names), config=str(config.path.resolve()), events=spec)
    supervisor = {"pid": pid, "started": launched, "state_dir": str(state_dir), "log": str(paths.supervisor_log),
                  "worker_logs": str(paths.supervisor_log.parent / "NAME.log")}
    _print_results(resp, as_json, {"supervisor": supervisor}, extra=_feed_line)  # exits on a failure
    if not as_json:
        first = next(iter(names or config.strategies), "NAME")
        click.echo(f"next: `gridctl status` to watch them, `gridctl logs {first} --follow` for events, "
                   f"`gridctl shutdown` to stop everything")


def _feed_line(resp: dict) -> bool:
    """Print where the event feed listens (or why it does not); False when it failed."""
    info, err = resp.get("events"), resp.get("events_error")
    if info:
        click.echo(f"event feed on {info['url']} (token in {info['token_file']})")
    if err:
        click.echo(f"error: {err}", err=True)
    return not err


@cli.command()
@config_option
@_names_argument()
@click.option("--keep-position", is_flag=True, help="Cancel the orders but leave the position open.")
@click.option("--all", "all_", is_flag=True, help="Stop every running strategy.")
@json_option
@click.pass_obj
def stop(app: AppContext, config_path: str, names: tuple[str, ...], keep_position: bool, all_: bool,
         as_json: bool) -> None:
    """Stop strategies: cancel every order, then close the position at market (reduce-only).

    Without --keep-position the strategy's risk.on_stop decides whether the position
    is closed. The supervisor keeps running; `gridctl start NAME` starts it again.

    \b
    Example:
        gridctl stop sol-neutral
        gridctl stop --all --keep-position
    """
    if not names and not all_:
        fail("name the strategies to stop, or pass --all", EXIT_USAGE)
    check_names_or_exit(config_path, names)
    client = _client_or_exit(_state_dir(app, config_path))
    resp = _call(client, "stop", timeout=LONG, names=list(names), all=all_,
                 keep_position=True if keep_position else None)
    _print_results(resp, as_json)


@cli.command()
@config_option
@_names_argument(required=True)
@json_option
@click.pass_obj
def pause(app: AppContext, config_path: str, names: tuple[str, ...], as_json: bool) -> None:
    """Pause strategies: keep their orders and position, place nothing new.

    \b
    Example:
        gridctl pause sol-neutral sol-long
    """
    check_names_or_exit(config_path, names)
    client = _client_or_exit(_state_dir(app, config_path))
    _print_results(_call(client, "pause", timeout=30.0, names=list(names)), as_json)


@cli.command()
@config_option
@_names_argument(required=True)
@json_option
@click.pass_obj
def resume(app: AppContext, config_path: str, names: tuple[str, ...], as_json: bool) -> None:
    """Resume paused strategies without rebuilding their grids.

    \b
    Example:
        gridctl resume sol-neutral
    """
    check_names_or_exit(config_path, names)
    client = _client_or_exit(_state_dir(app, config_path))
    _print_results(_call(client, "resume", timeout=30.0, names=list(names)), as_json)


@cli.command()
@config_option
@json_option
@click.pass_obj
def reload(app: AppContext, config_path: str, as_json: bool) -> None:
    """Re-read the strategies file the supervisor was started with.

    New strategies start. Changed risk keys (stop-loss and take-profit prices and
    percentages, max_loss, take_profit, max_level_loss, on_stop, margin_ratio) and
    max_position apply to a running strategy at once, its grid untouched; a change
    of the grid's shape (range, grids, size, mode, ...) waits until you stop and
    start it, and is listed. An invalid file changes nothing (exit 2). Exit 0 when
    everything that could be applied was; 1 when a worker did not take its change.
    Same as `kill -HUP $(cat <state dir>/supervisor.pid)` or `systemctl reload gridctl`.

    \b
    Example:
        gridctl reload
        gridctl reload --json
    """
    client = _client_or_exit(_state_dir(app, config_path))
    resp = _call(client, "reload", timeout=LONG)
    if resp.get("config_error"):
        if as_json:
            print_json(resp)
        else:
            for r in resp.get("results", []):
                click.echo(f"error: {r['message']}", err=True)
        sys.exit(EXIT_CONFIG)
    _print_results(resp, as_json)


@cli.command()
@config_option
@json_option
@click.pass_obj
def shutdown(app: AppContext, config_path: str, as_json: bool) -> None:
    """Stop every strategy as configured (risk.on_stop), then the supervisor itself.

    \b
    Example:
        gridctl shutdown
    """
    state_dir = _state_dir(app, config_path)
    client = _client_or_exit(state_dir)
    pid = supervisor_pid(state_dir)  # not supervisor.pid's text: it could name any process
    resp = _call(client, "shutdown", timeout=LONG)
    resp.pop("message", None)
    if not as_json:
        for r in resp.get("results", []):
            click.echo(r["message"] if r.get("ok") else f"error: {r['message']}", err=not r.get("ok"))
    deadline = time.monotonic() + 30
    while pid and pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid and pid_alive(pid):
        fail(f"the supervisor (pid {pid}) has not exited yet; see {StatePaths(state_dir).supervisor_log}")
    ok = all(r.get("ok") for r in resp.get("results", []))
    if as_json:
        print_json({"ok": ok, "results": resp.get("results", []), "supervisor": {"pid": pid, "stopped": True}})
    else:
        click.echo(f"supervisor{f' (pid {pid})' if pid else ''} stopped")
    if not ok:
        sys.exit(EXIT_RUNTIME)


@cli.command("emergency-close")
@config_option
@click.argument("name", shell_complete=complete_strategy_names)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@click.pass_obj
def emergency_close(app: AppContext, config_path: str, name: str, yes: bool, as_json: bool) -> None:
    """Cancel every order of a strategy and close its position at market, now.

    The strategy then stops. Asks for confirmation unless --yes is given.

    \b
    Example:
        gridctl emergency-close sol-neutral --yes
    """
    check_names_or_exit(config_path, [name])
    state_dir = _state_dir(app, config_path)
    if not yes and not click.confirm(f"Cancel every order of {name} and close its position at market now?"):
        fail("nothing done")
    client = ControlClient(state_dir)
    if client.is_running():
        resp = _call(client, "emergency_close", timeout=LONG, name=name)
        if not all(r.get("not_running") for r in resp.get("results", [])):
            _print_results(resp, as_json)
            return
    # no worker trades it: close what it left on the exchange from here, under the worker's lock
    _flatten_here(config_path, state_dir, name, as_json)


def _flatten_here(config_path: str, state_dir: Path, name: str, as_json: bool = False) -> None:
    """Cancel a stopped strategy's orders and close the position it left, in this process."""
    from gridctl.worker.main import run_worker

    config = load_config_or_exit(config_path)
    strategy_or_exit(config, name)
    from gridctl.process.paths import StatePaths
    from gridctl.supervisor.venue_keeper import venue_for_this_command

    report: dict = {}
    with venue_for_this_command(StatePaths(state_dir), config, config.strategies[name].account):
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
        message = (f"{name} is not running and holds no position: nothing to close (its open orders, if any, "
                   f"were cancelled)")
    else:
        message = (f"emergency-closed {name}: it was not running; closed its position {held} at market from here "
                   f"(see `gridctl logs {name}`)")
    if as_json:
        print_json({"ok": True, "results": [{"name": name, "ok": True, "message": message, "here": True,
                                             "closed": str(held)}]})
    else:
        click.echo(message)
