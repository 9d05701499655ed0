"""The supervisor with real processes: fake workers (tests/fake_worker.py) under a real
daemonised supervisor, driven through the CLI in subprocesses, in a temporary state dir."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


import pytest

from gridctl.control.client import ControlClient, supervisor_status
from tests.proc_helpers import wait_until
from gridctl.process.pidfile import lock_holder, pid_alive as alive, read_pid

TESTS = Path(__file__).resolve().parent
CLI = "import gridctl.cli.operate_cmds; from gridctl.cli import main; main()"
STRATEGY = """\
    account: paper-{name}
    symbol: SOL/USDT:USDT
    mode: neutral
    spacing: arithmetic
    lower: {lower}
    upper: 175
    grids: 10
    investment: 500
    leverage: 2
    risk: {{on_stop: {on_stop}}}
"""


def write_config(path: Path, names: dict[str, str], lower: int = 155, reports: bool = False) -> None:
    """names: strategy name -> on_stop. Each strategy gets its own paper account (same feed):
    an account keeps one (one-way) position per symbol."""
    text = "version: 1\naccounts:\n"
    for name in names:
        text += (f"  paper-{name}:\n    exchange: paper\n    like: binanceusdm\n"
                 "    feed: {replay: \"builtin:SOLUSDT_1m\", speed: 60}\n")
    text += "strategies:\n"
    for name, on_stop in names.items():
        text += f"  {name}:\n" + STRATEGY.format(name=name, lower=lower, on_stop=on_stop)
    if reports:
        text += "reports:\n  daily: {cron: \"0 8 * * *\", period: 1d, format: csv, dir: reports}\n"
    path.write_text(text)






class Env:
    def __init__(self, tmp: Path, backoff: float = 0.1):
        self.state = tmp / "st"
        self.config = tmp / "strategies.yaml"
        self.env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
                        GRIDCTL_WORKER_MAIN="fake_worker:run_worker", GRIDCTL_BACKOFF_BASE=str(backoff),
                        GRIDCTL_PRELOAD="",  # the fake worker needs no ccxt; saves ~1 s per supervisor
                        GRIDCTL_STATE_DIR=str(self.state))
        self.env.pop("GRIDCTL_CONFIG", None)

    def gridctl(self, *args: str, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", CLI, *args], env=self.env, input=input, text=True,
                              capture_output=True, timeout=timeout, cwd=self.config.parent)

    def start(self, *names: str) -> subprocess.CompletedProcess:
        return self.gridctl("start", "-c", str(self.config), *names)

    def workers(self) -> dict[str, dict]:
        st = supervisor_status(self.state)
        assert st is not None, "supervisor not answering"
        return {w["name"]: w for w in st["workers"]}

    def ticks(self, name: str) -> list[str]:
        try:
            return (self.state / "ticks" / f"{name}.log").read_text().splitlines()
        except FileNotFoundError:
            return []

    def tick_count(self, name: str) -> int:
        return sum(1 for line in self.ticks(name) if line.startswith("tick "))

    def cleanup(self) -> None:
        if ControlClient(self.state).is_running():
            try:
                ControlClient(self.state, timeout=20).call("shutdown")
            except Exception:
                pass
        pids = [read_pid(self.state / "supervisor.pid")]
        run = self.state / "run"
        if run.exists():
            pids += [lock_holder(p) or 0 for p in run.rglob("*.pid")]  # workers and run/venue/*.pid
        for pid in pids:
            if pid and alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path)
    write_config(e.config, {"alpha": "close", "beta": "keep"})
    yield e
    e.cleanup()


def test_start_status_stop_through_the_cli(env):
    r = env.start()
    assert r.returncode == 0, r.stderr
    assert "started supervisor (pid" in r.stdout
    ws = env.workers()
    assert ws["alpha"]["state"] == ws["beta"]["state"] == "running"
    pa, pb = ws["alpha"]["pid"], ws["beta"]["pid"]
    assert f"started alpha (pid {pa})" in r.stdout and f"started beta (pid {pb})" in r.stdout
    assert alive(pa) and alive(pb)
    wait_until(lambda: env.tick_count("alpha") >= 3, what="alpha ticking")

    r = env.gridctl("stop", "alpha")
    assert r.returncode == 0 and "stopped alpha" in r.stdout, r.stderr
    assert env.workers()["alpha"]["state"] == "stopped"
    wait_until(lambda: not alive(pa), 5, "alpha process gone")
    assert any("stop keep_position=False" in line for line in env.ticks("alpha"))

    r = env.gridctl("stop", "beta", "--keep-position")
    assert r.returncode == 0 and "stopped beta (position kept)" in r.stdout
    assert any("stop keep_position=True" in line for line in env.ticks("beta"))

    # A second start reuses the running supervisor and starts alpha again.
    r = env.start("alpha")
    assert r.returncode == 0 and "started supervisor" not in r.stdout
    assert env.workers()["alpha"]["state"] == "running" and env.workers()["alpha"]["pid"] != pa


def test_sockets_are_owner_only_and_pid_file_names_the_supervisor(env):
    assert env.start("alpha").returncode == 0
    for sock in (env.state / "gridctl.sock", env.state / "run" / "alpha.sock"):
        assert (sock.stat().st_mode & 0o777) == 0o600, sock
    pid = read_pid(env.state / "supervisor.pid")
    assert alive(pid) and supervisor_status(env.state)["supervisor"]["pid"] == pid
    # A second supervisor for the same state dir is refused.
    r = env.gridctl("start", "--foreground", "-c", str(env.config))
    assert r.returncode == 1 and f"already running for state dir {env.state} (pid {pid})" in r.stderr


def test_pause_and_resume_reach_the_worker(env):
    assert env.start("alpha").returncode == 0
    wait_until(lambda: env.tick_count("alpha") >= 2)
    r = env.gridctl("pause", "alpha")
    assert r.returncode == 0 and "paused alpha" in r.stdout
    w = env.workers()["alpha"]
    assert w["state"] == "paused" and w["worker"]["paused"] is True
    n = env.tick_count("alpha")
    time.sleep(0.4)
    assert env.tick_count("alpha") == n  # paused: nothing new is done
    r = env.gridctl("resume", "alpha")
    assert r.returncode == 0 and "resumed alpha" in r.stdout
    wait_until(lambda: env.tick_count("alpha") > n + 2, 5, "ticks after resume")
    assert env.workers()["alpha"]["state"] == "running"
    r = env.gridctl("pause", "beta")  # never started
    assert r.returncode == 1 and "beta is not running" in r.stderr


def test_killed_worker_is_restarted_with_backoff(tmp_path):
    env = Env(tmp_path, backoff=0.6)
    write_config(env.config, {"alpha": "close"})
    try:
        assert env.start().returncode == 0
        pid = env.workers()["alpha"]["pid"]
        os.kill(pid, signal.SIGKILL)
        w = wait_until(lambda: (w := env.workers()["alpha"])["state"] == "backoff" and w, 5, "backoff")
        assert "killed by SIGKILL; restarting in 0.6 s" in w["reason"]
        w = wait_until(lambda: (w := env.workers()["alpha"])["state"] == "running" and w, 5, "restart")
        assert w["pid"] != pid and w["restarts"] == 1 and w["last_exit"] == "killed by SIGKILL"
    finally:
        env.cleanup()


@pytest.mark.slow
def test_killed_supervisor_leaves_workers_trading_and_a_new_start_adopts_them(env):
    write_config(env.config, {"alpha": "close", "beta": "keep"}, reports=True)
    assert env.start().returncode == 0
    before = {n: w["pid"] for n, w in env.workers().items()}
    reporter = supervisor_status(env.state)["supervisor"]["reporter_pid"]
    assert reporter and alive(reporter)
    sup = read_pid(env.state / "supervisor.pid")
    os.kill(sup, signal.SIGKILL)
    wait_until(lambda: not alive(sup), 5)
    # The reporter follows its supervisor (a new one starts its own); workers do not.
    wait_until(lambda: not alive(reporter), 6, "orphaned reporter exits")
    n = env.tick_count("alpha")
    wait_until(lambda: env.tick_count("alpha") > n + 3, 5, "worker still trading without supervisor")
    r = env.gridctl("pause", "alpha")
    assert r.returncode == 1
    assert f"gridctl is not running for state dir {env.state}; start it with `gridctl start`" in r.stderr

    r = env.start()
    assert r.returncode == 0, r.stderr
    assert f"alpha is already running (pid {before['alpha']})" in r.stdout
    ws = env.workers()
    assert {n: w["pid"] for n, w in ws.items()} == before
    assert all(w["state"] == "running" and w["adopted"] for w in ws.values())
    assert alive(supervisor_status(env.state)["supervisor"]["reporter_pid"])
    # Adopted workers are controlled like our own, and their end is noticed.
    assert env.gridctl("pause", "beta").returncode == 0
    assert env.workers()["beta"]["worker"]["paused"] is True
    r = env.gridctl("stop", "alpha")
    assert r.returncode == 0 and "stopped alpha" in r.stdout
    assert not alive(before["alpha"])
    os.kill(before["beta"], signal.SIGKILL)  # an adopted worker crashing is restarted too
    w = wait_until(lambda: (w := env.workers()["beta"])["state"] == "running" and w["pid"] != before["beta"] and w,
                   10, "adopted worker restarted")
    assert not w["adopted"] and w["restarts"] == 1


def test_second_copy_of_a_strategy_is_refused(env):
    assert env.start("alpha").returncode == 0
    pid = env.workers()["alpha"]["pid"]
    other = subprocess.run([sys.executable, str(TESTS / "fake_worker.py"), "alpha", str(env.state)],
                           env=env.env, capture_output=True, text=True, timeout=20)
    assert other.returncode == 75 and f"alpha is already running (pid {pid})" in other.stderr
    # beta started by hand outside the supervisor: the supervisor's copy refuses to run.
    log = open(env.state.parent / "outside-beta.log", "w+")
    outside = subprocess.Popen([sys.executable, str(TESTS / "fake_worker.py"), "beta", str(env.state)], env=env.env,
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: lock_holder(env.state / "run" / "beta.pid") == outside.pid, 10, "outside copy locked")
        r = env.start("beta")
        # either the supervisor's copy was refused by the lock (exit 1), or the supervisor had
        # already adopted the outside copy (it scans PID files); never a second copy
        log.seek(0)
        why = f"start said {r.stdout + r.stderr!r}; outside copy exit {outside.poll()}, output {log.read()!r}"
        assert f"beta is already running (pid {outside.pid})" in r.stdout + r.stderr, why
        if r.returncode == 1:
            assert env.workers()["beta"]["state"] == "exited"
        else:
            assert env.workers()["beta"]["pid"] == outside.pid
        assert outside.poll() is None and lock_holder(env.state / "run" / "beta.pid") == outside.pid
    finally:
        outside.kill()
        outside.wait()
        log.close()


def test_crash_loop_goes_fatal(tmp_path):
    env = Env(tmp_path, backoff=0.05)
    write_config(env.config, {"crashy": "close"})
    try:
        r = env.start()
        assert r.returncode == 1 and "crashy failed to start" in r.stderr
        w = wait_until(lambda: (w := env.workers()["crashy"])["state"] == "fatal" and w, 15, "fatal")
        assert w["reason"].startswith("crash loop: 6 crashes within 60 s of starting; last: exit 1")
        assert "simulated crash" in w["reason"] and w["restarts"] == 5
        time.sleep(0.5)
        assert env.workers()["crashy"]["restarts"] == 5  # no more restarts
    finally:
        env.cleanup()


def test_configuration_and_auth_errors_are_fatal_at_once(tmp_path):
    env = Env(tmp_path)
    write_config(env.config, {"badcfg": "close", "badauth": "close"})
    try:
        r = env.start()
        assert r.returncode == 1
        assert ("badcfg failed to start: configuration error (exit 78): badcfg: grid lower must be below upper"
                in r.stderr)
        assert "badauth failed to start: authentication error (exit 77)" in r.stderr
        time.sleep(0.5)
        ws = env.workers()
        assert ws["badcfg"]["state"] == ws["badauth"]["state"] == "fatal"
        assert ws["badcfg"]["restarts"] == ws["badauth"]["restarts"] == 0
    finally:
        env.cleanup()


def test_shutdown_stops_every_strategy_as_configured_and_removes_the_pid_file(env):
    assert env.start().returncode == 0
    pids = [w["pid"] for w in env.workers().values()]
    sup = read_pid(env.state / "supervisor.pid")
    r = env.gridctl("shutdown")
    assert r.returncode == 0, r.stderr
    assert "stopped alpha" in r.stdout and "stopped beta (position kept)" in r.stdout
    assert f"supervisor (pid {sup}) stopped" in r.stdout
    assert any("stop keep_position=False" in line for line in env.ticks("alpha"))
    assert any("stop keep_position=True" in line for line in env.ticks("beta"))  # beta: on_stop keep
    assert not (env.state / "supervisor.pid").exists() and not (env.state / "gridctl.sock").exists()
    assert not any(alive(p) for p in pids + [sup])
    r = env.gridctl("stop", "--all")
    assert r.returncode == 1 and "gridctl is not running" in r.stderr


@pytest.mark.slow
def test_sigterm_to_a_foreground_supervisor_is_a_clean_shutdown(env):
    env.env.pop("GRIDCTL_PRELOAD")  # the real preload (ccxt, peewee, numpy) before forking
    proc = subprocess.Popen([sys.executable, "-c", CLI, "start", "--foreground", "-c", str(env.config)],
                            env=env.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: ControlClient(env.state).is_running() and
                   all(w["state"] == "running" for w in env.workers().values()), 20, "foreground start")
        pids = [w["pid"] for w in env.workers().values()]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert "SIGTERM: shutting down" in err and "alpha: stopping -> stopped" in err
        assert not any(alive(p) for p in pids)
        assert not (env.state / "supervisor.pid").exists()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_reload_starts_new_strategies_and_refuses_to_change_a_running_grid(env):
    assert env.start().returncode == 0
    write_config(env.config, {"alpha": "close", "beta": "keep", "gamma": "close"}, lower=150)
    r = env.gridctl("reload")
    assert r.returncode == 0, r.stderr  # it did what it could; the grid change waits and is listed
    assert "started gamma (pid" in r.stdout
    assert ("alpha: waits until stopped: lower 155 -> 150 (the running grid is kept; `gridctl stop alpha`, "
            "then `gridctl start alpha`)") in r.stdout
    assert env.workers()["gamma"]["state"] == "running"
    r = env.gridctl("reload", "--json")
    assert r.returncode == 0
    by_name = {x["name"]: x for x in json.loads(r.stdout)["results"]}
    assert by_name["alpha"]["action"] == "waiting" and by_name["alpha"]["waiting"] == ["lower 155 -> 150"]
    env.config.write_text("strategies: [")
    r = env.gridctl("reload")
    assert r.returncode == 2 and "nothing changed" in r.stderr


def test_emergency_close_asks_first_and_events_stream(env):
    assert env.start("alpha").returncode == 0
    events = ControlClient(env.state).stream("events", names=["alpha"], n=3, follow=True)
    got = [next(events) for _ in range(5)]
    assert all(e["strategy"] == "alpha" and e["type"] == "tick" for e in got)
    events.close()

    r = env.gridctl("emergency-close", "alpha", input="n\n")
    assert r.returncode == 1 and env.workers()["alpha"]["state"] == "running"
    r = env.gridctl("emergency-close", "alpha", "--yes")
    assert r.returncode == 0 and "emergency-closed alpha: closed 0 at market" in r.stdout
    assert "emergency_close" in "\n".join(env.ticks("alpha"))
    assert env.workers()["alpha"]["state"] == "stopped"
    # not running: what it left on the exchange is closed from the command itself
    r = env.gridctl("emergency-close", "alpha", "--yes")
    assert r.returncode == 0 and "alpha is not running and holds no position: nothing to close" in r.stdout
