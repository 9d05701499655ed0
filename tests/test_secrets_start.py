"""A passphrase typed at `gridctl start` (a terminal, no GRIDCTL_PASSPHRASE): the daemonised
supervisor and its workers read `vault:` fields without it, also a worker restarted after
a crash and a reload after `gridctl secrets set` changed an entry."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time

import pytest

from tests.proc_helpers import Paper, wait_until

pytestmark = pytest.mark.slow  # real processes, ~20 s

CONFIG = """\
version: 1
accounts:
  paper:
    exchange: paper
    like: binanceusdm
    feed: {replay: "builtin:SOLUSDT_1m", speed: 600}
    api_key: vault:paper-key
    secret: vault:paper-secret
strategies:
  vaulted:
    account: paper
    symbol: SOL/USDT:USDT
    mode: neutral
    lower: 165
    upper: 178
    grids: 26
    investment: 400
    leverage: 2
"""


def read_until(fd: int, marker: bytes, timeout: float = 30) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        assert time.monotonic() < deadline, f"no {marker!r} on the terminal; got {seen!r}"
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            seen += os.read(fd, 4096)
    return seen


@pytest.fixture
def paper(tmp_path):
    cfg = tmp_path / "vaulted.yaml"
    cfg.write_text(CONFIG)
    p = Paper(tmp_path, cfg)
    p.env.pop("GRIDCTL_PASSPHRASE", None)
    yield p
    p.cleanup()


def test_a_passphrase_typed_at_start_serves_the_daemon_and_every_worker_it_forks(paper):
    p = paper
    for name, value in (("paper-key", "k-1"), ("paper-secret", "s-1")):
        r = subprocess.run([sys.executable, "-m", "gridctl", "secrets", "set", name], input=value, text=True,
                           env=dict(p.env, GRIDCTL_PASSPHRASE="typed"), capture_output=True, cwd=p.root)
        assert r.returncode == 0, r.stderr
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "gridctl", "start", "-c", str(p.config)], env=p.env,
                                cwd=p.root, stdin=slave, stderr=slave, stdout=subprocess.PIPE, text=True)
        read_until(master, b"Passphrase for the vault ")
        os.write(master, b"typed\n")
        out, _ = proc.communicate(timeout=60)
    finally:
        os.close(slave)
        os.close(master)
    assert proc.returncode == 0, out
    assert "started vaulted (pid" in out
    w = wait_until(lambda: (w := p.workers()["vaulted"])["state"] == "running" and w, 30, "the worker running")
    sup = int((p.state / "supervisor.pid").read_text().split()[0])
    for pid in (sup, w["pid"]):
        assert b"GRIDCTL_PASSPHRASE" not in open(f"/proc/{pid}/environ", "rb").read()

    os.kill(w["pid"], signal.SIGKILL)  # the restarted worker loads the config again: the key is inherited
    w2 = wait_until(lambda: (x := p.workers()["vaulted"])["state"] == "running" and x["pid"] != w["pid"] and x,
                    30, "the worker restarted and running")
    assert w2["restarts"] == 1

    r = subprocess.run([sys.executable, "-m", "gridctl", "secrets", "set", "paper-key"], input="k-2", text=True,
                       env=dict(p.env, GRIDCTL_PASSPHRASE="typed"), capture_output=True, cwd=p.root)
    assert r.returncode == 0
    out = p.ok("reload", "-c", str(p.config))  # the supervisor re-reads the vault with the key it holds
    assert out == "nothing changed\n"  # credentials are not grid settings; a worker takes new ones at its start
    p.ok("secrets", "rm", "paper-secret")
    r = p.gridctl("reload", "-c", str(p.config))
    assert r.returncode == 2
    assert r.stderr == (f"error: {p.config} has 1 problem(s), nothing changed: accounts.paper.secret (line 8): "
                        f"vault:paper-secret is not in the vault {p.state}/secrets.vault; add it with "
                        f"`gridctl secrets set paper-secret`\n")
