"""Control sockets, PID-file locks and the restart policy, in-process and with small subprocesses."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from gridctl.control.client import ControlClient, ControlError, NotRunning, worker_call
from gridctl.control.protocol import encode, request
from gridctl.control.worker_server import serve_worker
from gridctl.process.paths import StatePaths
from gridctl.process.pidfile import AlreadyRunning, SupervisorLock, acquire_worker_lock, lock_holder, read_pid
from gridctl.process.exits import describe_exit
from gridctl.supervisor.states import RestartPolicy

sys.path.insert(0, str(Path(__file__).parent))
from fake_worker import FakeHandler  # noqa: E402


def run(coro, timeout: float = 10.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def test_worker_socket_is_owner_only_and_serves_the_handler(tmp_path):
    sock = tmp_path / "w.sock"

    async def scenario():
        h = FakeHandler("alpha", tmp_path / "ticks.log")
        server = await serve_worker(sock, h)
        assert (sock.stat().st_mode & 0o777) == 0o600
        assert (await worker_call(sock, "status"))["status"] == {"paused": False, "ticks": 0}
        assert (await worker_call(sock, "pause"))["message"] == "orders kept"
        assert (await worker_call(sock, "status"))["status"]["paused"] is True
        await worker_call(sock, "resume")
        with pytest.raises(ControlError, match="unknown command 'dance'"):
            await worker_call(sock, "dance")
        reply = await worker_call(sock, "stop", keep_position=True)
        assert reply == {"ok": True, "message": "position kept"}
        await asyncio.wait_for(h.done.wait(), 2)  # the worker's cue to exit

        # events: the recent ones first, then live ones, until the client hangs up
        for i in range(3):
            h.emit({"type": "tick", "n": i})
        reader, writer = await asyncio.open_unix_connection(str(sock))
        writer.write(encode(request("events", n=2, follow=True)))
        assert b'"stream":true' in await reader.readline()
        assert [(await reader.readline()).count(b'"n":1'), (await reader.readline()).count(b'"n":2')] == [1, 1]
        await asyncio.sleep(0.05)
        h.emit({"type": "fill", "n": 9})
        assert b'"type":"fill"' in await reader.readline()
        writer.close()
        await asyncio.sleep(0.1)
        assert not h.queues  # unsubscribed when the client left
        server.close()

    run(scenario())


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to connect as another user")
def test_peer_of_another_uid_is_refused():
    """The 0600 mode keeps other users out; if it were loosened, SO_PEERCRED still does."""
    import shutil
    import tempfile

    tmp_path = Path(tempfile.mkdtemp(prefix="gridctl-peer-"))  # pytest's tmp tree is not traversable by others
    sock = tmp_path / "w.sock"
    probe = ("import socket,os,sys; os.setgid(65534); os.setuid(65534); s=socket.socket(socket.AF_UNIX);\n"
             "try:\n s.connect(sys.argv[1])\nexcept PermissionError:\n print('EACCES'); sys.exit()\n"
             "print(s.makefile().readline())")
    os.chmod(tmp_path, 0o755)

    async def scenario():
        server = await serve_worker(sock, FakeHandler("alpha", tmp_path / "t.log"))
        outs = []
        for mode in (0o600, 0o666):
            os.chmod(sock, mode)
            p = await asyncio.create_subprocess_exec(sys.executable, "-c", probe, str(sock),
                                                     stdout=asyncio.subprocess.PIPE)
            outs.append((await p.communicate())[0].decode())
        server.close()
        return outs

    try:
        refused_by_mode, refused_by_uid = run(scenario())
    finally:
        shutil.rmtree(tmp_path)
    assert "EACCES" in refused_by_mode
    assert '"ok":false' in refused_by_uid and "permission denied" in refused_by_uid


def test_client_reports_no_supervisor(tmp_path):
    client = ControlClient(tmp_path)
    assert not client.is_running()
    with pytest.raises(NotRunning):
        client.call("status")
    (tmp_path / "gridctl.sock").touch()  # a leftover file with nobody listening
    with pytest.raises(NotRunning):
        client.call("status")


def test_worker_lock_allows_one_holder_and_frees_with_the_process(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c",
                               "import sys,time; from gridctl.process.pidfile import acquire_worker_lock as a;"
                               f"a({str(tmp_path)!r}, 'alpha'); print('locked', flush=True); time.sleep(30)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        pidfile = StatePaths(tmp_path).worker_pid("alpha")
        assert read_pid(pidfile) == holder.pid
        assert lock_holder(pidfile) == holder.pid
        with pytest.raises(AlreadyRunning, match=f"alpha is already running \\(pid {holder.pid}\\)"):
            acquire_worker_lock(tmp_path, "alpha")
    finally:
        holder.kill()
        holder.wait()
    assert lock_holder(pidfile) is None  # the kernel dropped the lock with the process


def test_supervisor_lock_replaces_a_stale_pid_file_and_removes_its_own(tmp_path):
    paths = StatePaths(tmp_path)
    paths.make()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    paths.pid_file.write_text(dead.stdout)
    lock = SupervisorLock(paths)
    lock.acquire()
    assert lock.stale_pid == int(dead.stdout) and read_pid(paths.pid_file) == os.getpid()
    second = subprocess.run([sys.executable, "-c",
                             "import sys; from pathlib import Path; from gridctl.process.paths import StatePaths;"
                             "from gridctl.process.pidfile import SupervisorLock, AlreadyRunning\n"
                             f"try: SupervisorLock(StatePaths(Path({str(tmp_path)!r}))).acquire()\n"
                             "except AlreadyRunning as e: print(e)"], capture_output=True, text=True)
    assert f"is already running (pid {os.getpid()})" in second.stdout
    lock.release()
    assert not paths.pid_file.exists()


def test_restart_policy_backs_off_and_detects_crash_loops():
    p = RestartPolicy(base=1, cap=60, window=60, max_crashes=5)
    assert [p.delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    count = 0
    for _ in range(5):
        count = p.next_count(count, run_seconds=3)
    assert count == 5 and not p.is_loop(count)
    assert p.is_loop(p.next_count(count, 3))
    assert p.next_count(count, run_seconds=600) == 1  # a long healthy run forgives earlier crashes
    assert describe_exit(78, None) == "exit 78 (configuration error)"
    assert describe_exit(None, "SIGKILL") == "killed by SIGKILL"


def test_every_operator_command_has_an_example_and_states_when_not_running(tmp_path):
    from gridctl.cli import cli
    from gridctl.cli import operate_cmds  # noqa: F401

    runner = CliRunner()
    for cmd in ("start", "stop", "pause", "resume", "reload", "shutdown", "emergency-close"):
        res = runner.invoke(cli, [cmd, "--help"])
        assert res.exit_code == 0 and "Example:" in res.output, cmd
    t0 = time.monotonic()
    res = runner.invoke(cli, ["--state-dir", str(tmp_path), "pause", "alpha"])
    assert res.exit_code == 1
    assert f"gridctl is not running for state dir {tmp_path}; start it with `gridctl start`" in res.output
    assert time.monotonic() - t0 < 5
    res = runner.invoke(cli, ["--state-dir", str(tmp_path), "stop"])
    assert res.exit_code == 2 and "name the strategies to stop, or pass --all" in res.output
