"""A host that protects itself (issue 9, the process points): a PID file naming another
process is not trusted, a deleted control socket comes back, a hung worker is aborted.

Real supervisors with fake workers (tests/fake_worker.py), driven through the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gridctl.control.client import supervisor_status
from gridctl.process.pidfile import lock_holder, lock_owner, pid_alive as alive, read_pid
from tests.proc_helpers import wait_until
from tests.test_supervisor import Env, write_config

HOLD = ("import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
        "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)")


@pytest.fixture
def innocent():
    """A live process that has nothing to do with gridctl."""
    p = subprocess.Popen(["sleep", "120"])
    yield p
    p.kill()
    p.wait()


@pytest.fixture
def holder(tmp_path):
    """A process holding the flock on tmp_path/run/x.pid, as a worker does."""
    path = tmp_path / "run" / "x.pid"
    path.parent.mkdir()
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "locked"
    yield p, path
    p.kill()
    p.wait()


def test_a_pid_file_naming_another_live_process_is_not_trusted(holder, innocent):
    p, path = holder
    path.write_text(f"{innocent.pid}\n")  # the file lies: the lock is held by p
    assert lock_holder(path) == p.pid
    assert lock_owner(path) == p.pid


def test_the_real_holder_is_found_with_a_truthful_or_an_empty_pid_file(holder):
    p, path = holder
    path.write_text(f"{p.pid}\n")
    assert lock_holder(path) == lock_owner(path) == p.pid
    path.write_text("")
    assert lock_holder(path) == p.pid


def test_a_free_lock_has_no_holder_whatever_its_file_says(tmp_path, innocent):
    path = tmp_path / "x.pid"
    path.write_text(f"{innocent.pid}\n")
    assert lock_holder(path) is None and lock_owner(path) is None


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path)
    write_config(e.config, {"alpha": "close"})
    yield e
    e.cleanup()


@pytest.mark.slow
def test_stop_never_signals_the_process_a_lying_pid_file_names(env, innocent):
    assert env.start().returncode == 0
    real = env.workers()["alpha"]["pid"]
    sup = read_pid(env.state / "supervisor.pid")
    os.kill(sup, signal.SIGKILL)
    wait_until(lambda: not alive(sup), 5)
    # the PID file now names an innocent process, and the worker's socket is gone,
    # so `stop` has to fall back to signals
    (env.state / "run" / "alpha.pid").write_text(f"{innocent.pid}\n")
    (env.state / "run" / "alpha.sock").unlink()
    r = env.start()
    assert r.returncode == 0, r.stderr
    assert env.workers()["alpha"]["pid"] == real
    r = env.gridctl("stop", "alpha")
    assert r.returncode == 0, r.stderr
    assert "stopped alpha" in r.stdout and "sent SIGTERM" in r.stdout
    assert innocent.poll() is None, "the innocent process was signalled"
    wait_until(lambda: not alive(real), 5, "the real worker stopped")
    assert env.workers()["alpha"]["state"] == "stopped"


@pytest.mark.slow
def test_a_deleted_control_socket_is_recreated_and_start_says_so(env):
    assert env.start().returncode == 0
    sup = read_pid(env.state / "supervisor.pid")
    sock = env.state / "gridctl.sock"
    sock.unlink()
    r = env.start()  # at once: the supervisor may not have noticed yet
    assert r.returncode == 0, r.stderr
    assert f"supervisor already running (pid {sup}) for state dir {env.state}" in r.stdout
    assert sock.exists() and (sock.stat().st_mode & 0o777) == 0o600
    sock.unlink()
    wait_until(sock.exists, 5, "the supervisor recreated its socket")
    r = env.gridctl("pause", "alpha")
    assert r.returncode == 0 and "paused alpha" in r.stdout, r.stderr
    assert "recreated it" in (env.state / "logs" / "supervisor.log").read_text()


@pytest.mark.slow
def test_a_silent_supervisor_is_named_not_called_not_running(env):
    assert env.start().returncode == 0
    sup = read_pid(env.state / "supervisor.pid")
    os.kill(sup, signal.SIGSTOP)  # hung: it cannot recreate its socket
    try:
        (env.state / "gridctl.sock").unlink()
        expected = (f"error: a supervisor (pid {sup}) holds the lock of state dir {env.state} but does not "
                    f"answer on {env.state / 'gridctl.sock'}")
        r = env.start()
        assert r.returncode == 1
        assert expected in r.stderr and f"`kill -9 {sup}`" in r.stderr
        assert "started supervisor" not in r.stdout
        r = env.gridctl("pause", "alpha")
        assert r.returncode == 1 and expected in r.stderr
    finally:
        os.kill(sup, signal.SIGCONT)
    wait_until(lambda: supervisor_status(env.state) is not None, 5, "the supervisor answers again")


@pytest.mark.slow
def test_a_hung_worker_is_aborted_and_restarted(tmp_path):
    e = Env(tmp_path)
    write_config(e.config, {"hangy": "close"})
    try:
        r = e.gridctl("start", "-c", str(e.config), "--heartbeat-timeout", "2")
        assert r.returncode == 0, r.stderr
        first = e.workers()["hangy"]["pid"]
        wait_until(lambda: any(ln.startswith("hanging") for ln in e.ticks("hangy")), 10, "the worker hangs")
        w = wait_until(lambda: (w := e.workers()["hangy"])["restarts"] >= 1 and w["state"] == "running" and w,
                       15, "a new worker process")
        assert w["pid"] != first and not alive(first)
        assert w["last_exit"].startswith("killed by SIGABRT (no heartbeat for ")
        assert "timeout 2 s" in w["last_exit"]
        log = (e.state / "logs" / "hangy.log").read_text()
        assert "Fatal Python error: Aborted" in log  # faulthandler: where it hung
    finally:
        e.cleanup()


def test_heartbeat_timeout_option_is_validated(tmp_path):
    e = Env(tmp_path)
    write_config(e.config, {"alpha": "close"})
    r = e.gridctl("start", "-c", str(e.config), "--heartbeat-timeout", "-1")
    assert r.returncode == 2 and "--heartbeat-timeout" in r.stderr
    assert not Path(e.state / "supervisor.pid").exists()


class Unreachable:
    """An exchange whose every read fails for a moment (an outage): not a hang."""

    def __init__(self, real):
        self.real = real

    async def events(self):
        from gridctl.exchange.base import Temporary

        raise Temporary("connection reset")

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_the_worker_loop_beats_on_every_turn_even_through_an_exchange_outage(tmp_path):
    import asyncio

    from tests.test_worker_loop import make_loop

    loop, ex, _ = make_loop(tmp_path, "sol-long")
    loop.ex = Unreachable(ex)
    beats: list[float] = []
    loop.beat = lambda: beats.append(time.monotonic())

    async def scenario() -> None:
        task = asyncio.create_task(loop.run())
        await asyncio.sleep(2.5)  # the loop waits 1 s after each failed read
        loop.done.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
    assert len(beats) >= 3


def test_a_heartbeat_touches_its_file_at_most_once_a_second(tmp_path):
    from gridctl.process.heartbeat import Heartbeat, last_beat

    path = tmp_path / "w.heartbeat"
    assert last_beat(path) is None
    h = Heartbeat(path)
    h.beat()
    first = last_beat(path)
    assert first is not None and abs(first - time.monotonic()) < 2  # monotonic, not wall-clock
    os.utime(path, (1000.0, 1000.0))
    h.beat()  # within the second: not touched again
    assert last_beat(path) == 1000.0
