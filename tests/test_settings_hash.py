"""One hash of a strategy's settings: the worker stores it, the supervisor's reload compares it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gridctl.supervisor.arbiter as arbiter
import gridctl.supervisor.commands as commands
import gridctl.supervisor.operations as operations
import gridctl.worker.main as worker_main
from gridctl.config import load
from gridctl.config.strategy import settings_hash

CONFIG = """\
version: 1
accounts:
  paper:                  # hedge: a trades the long leg of SOL, b the short one
    exchange: paper
    like: binanceusdm
    position_mode: hedge
    feed: {replay: "builtin:SOLUSDT_1m"}
strategies:
  a:
    account: paper
    symbol: SOL/USDT:USDT
    mode: long
    lower: 160
    upper: 180
    grids: 10
    investment: 500
  b:
    account: paper
    symbol: SOL/USDT:USDT
    mode: short
    lower: 160
    upper: 180
    grids: 10
    investment: 500
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "strategies.yaml"
    p.write_text(text)
    return p


def test_worker_and_supervisor_use_the_same_function():
    assert worker_main.settings_hash is settings_hash
    assert arbiter.settings_hash is commands.settings_hash is operations.settings_hash is settings_hash


def test_the_worker_process_and_the_supervisor_agree(tmp_path):
    """The worker computes it in its own process (another interpreter here): same value."""
    path = write(tmp_path, CONFIG)
    here = settings_hash(load(path), "a")
    there = subprocess.run([sys.executable, "-c", "import sys; from gridctl.config import load; "
                            "from gridctl.worker.main import settings_hash; "
                            "print(settings_hash(load(sys.argv[1]), 'a'))", str(path)],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert here == there and len(here) == 16


def test_it_changes_with_the_strategy_and_its_account_only(tmp_path):
    base = load(write(tmp_path, CONFIG))
    grid = load(write(tmp_path, CONFIG.replace("    grids: 10\n", "    grids: 12\n", 1)))
    assert settings_hash(grid, "a") != settings_hash(base, "a")
    assert settings_hash(grid, "b") == settings_hash(base, "b")  # b's settings did not change
    feed = load(write(tmp_path, CONFIG.replace("{replay: \"builtin:SOLUSDT_1m\"}",
                                               "{replay: \"builtin:SOLUSDT_1m\", speed: 120}")))
    assert settings_hash(feed, "a") != settings_hash(base, "a")  # the account shapes the run too
