"""Issue 9: everything under the state dir is owner-only (files 0600, folders 0700) whatever
the umask of the shell that started gridctl: a real `gridctl start --foreground` under umask
022 on the paper exchange, and the writers a CLI command or a hand-started venue use."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gridctl.config.model import ReportConfig
from gridctl.process.private import private_dir
from gridctl.report import write_report_file
from gridctl.store.db import open_database
from tests.proc_helpers import shut_down_everything, wait_until

CONFIG = """\
version: 1
accounts:
  paper-a:
    exchange: paper
    like: binanceusdm
    balance: 10000
    feed: {replay: "builtin:SOLUSDT_1m", speed: 600}
strategies:
  sol:
    account: paper-a
    symbol: SOL/USDT:USDT
    mode: neutral
    lower: 165
    upper: 178
    grids: 26
    investment: 400
    leverage: 2
"""


def loose(root: Path) -> list[str]:
    """Every file or folder under root (root included) that group or others can use, with its mode."""
    out = []
    for p in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(p.lstat().st_mode)
        want = 0o700 if p.is_dir() else 0o600
        if mode & 0o077 or (mode & want) != want:
            out.append(f"{oct(mode)} {p.relative_to(root.parent)}")
    return sorted(out)


@pytest.fixture
def umask022():
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.slow
def test_foreground_supervisor_under_umask_022_leaves_only_owner_only_files(tmp_path):
    state = tmp_path / "st"
    cfg = tmp_path / "strategies.yaml"
    cfg.write_text(CONFIG)
    env = dict(os.environ, GRIDCTL_STATE_DIR=str(state), GRIDCTL_BACKOFF_BASE="0.3")
    for k in ("GRIDCTL_WORKER_MAIN", "GRIDCTL_PRELOAD", "GRIDCTL_CONFIG"):
        env.pop(k, None)
    proc = subprocess.Popen([sys.executable, "-m", "gridctl", "start", "--foreground", "-c", str(cfg)],
                            env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=lambda: os.umask(0o022))
    try:
        # the database with its WAL, the venue's state and history, the venue's URL, the logs
        wanted = ["gridctl.db", "gridctl.db-wal", "gridctl.db-shm", "venue/paper-a.json",
                  "venue/paper-a.history.jsonl", "run/venue/paper-a.url", "run/sol.pid", "logs/sol.log"]
        wait_until(lambda: all((state / w).exists() for w in wanted), timeout=60,
                   what=f"{wanted} under the state dir")
        assert loose(state) == []
    finally:
        shut_down_everything(state, set())
        proc.wait(timeout=30)
    assert loose(state) == []


def test_database_is_created_owner_only_under_umask_022(tmp_path, umask022):
    db = open_database(tmp_path / "st")
    db.execute_sql("CREATE TABLE IF NOT EXISTS t (x)")
    db.execute_sql("INSERT INTO t VALUES (1)")
    try:
        assert (tmp_path / "st" / "gridctl.db-wal").exists()
        assert loose(tmp_path / "st") == []
    finally:
        db.close()


def test_database_of_an_older_looser_gridctl_is_tightened_on_open(tmp_path):
    open_database(tmp_path).close()
    os.chmod(tmp_path / "gridctl.db", 0o644)
    open_database(tmp_path, create=False).close()
    assert stat.S_IMODE((tmp_path / "gridctl.db").stat().st_mode) == 0o600


def test_scheduled_report_and_its_folders_are_owner_only_under_umask_022(tmp_path, umask022):
    db = open_database(tmp_path / "st")
    try:
        cfg = ReportConfig(name="daily", cron="0 0 * * *", dir=Path("reports/daily"))
        path = write_report_file(db, cfg, 1_700_000_000_000, state_dir=tmp_path / "st")
    finally:
        db.close()
    assert path.parent == tmp_path / "st" / "reports" / "daily" and path.is_file()
    assert loose(tmp_path / "st") == []


def test_venue_state_files_are_owner_only_under_umask_022(tmp_path, umask022):
    from gridctl.venue.run import write_port_file

    private_dir(tmp_path / "st" / "run" / "venue")
    write_port_file(tmp_path / "st" / "run" / "venue" / "a.url", "http://127.0.0.1:1")
    assert loose(tmp_path / "st") == []


def test_the_remembered_state_dir_pointer_and_the_default_state_dir_are_owner_only(tmp_path, monkeypatch, umask022):
    from gridctl.cli import common

    monkeypatch.setattr(common, "DEFAULT_STATE_DIR", tmp_path / "default")
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    common.remember_state_dir(tmp_path / "elsewhere")  # `start` with `state_dir:` in the YAML
    assert (tmp_path / "default" / "last-state-dir").is_file()
    assert loose(tmp_path / "default") == []
