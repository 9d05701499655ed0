"""Issue 9, the input points: YAML is bounded (size, values with aliases expanded, nesting),
parsed off the supervisor's event loop on reload; report paths stay inside the state dir
unless absolute; no validation error quotes a secret. Exact messages through the CLI."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

import gridctl.cli.commands  # noqa: F401  (registers the commands)
from gridctl.cli import cli
from gridctl.config.model import ReportConfig
from gridctl.report import write_report_file
from gridctl.store.db import open_database
from gridctl.supervisor.commands import reload_config

BASE = """\
version: 1
accounts:
  paper:
    exchange: paper
    like: binanceusdm
    feed: {replay: "builtin:SOLUSDT_1m"}
strategies:
  sol:
    account: paper
    symbol: SOL/USDT:USDT
    mode: long
    lower: 160
    upper: 180
    grids: 10
    investment: 500
"""
CANARY = "CANARY-bounds-7c1d"


def bomb(levels: int = 9) -> str:
    """A billion-laughs document under an unknown top key: 9**levels values from ~1 KB."""
    out = 'lol: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for i in range(1, levels):
        out += f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]\n"
    return out


def validate(tmp_path: Path, text, name: str = "strategies.yaml"):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    r = CliRunner().invoke(cli, ["validate", "-c", str(path)], env={"GRIDCTL_STATE_DIR": str(tmp_path / "st")})
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    assert "Traceback" not in r.output
    return r, str(path)


def problems(tmp_path: Path, text) -> list[str]:
    r, path = validate(tmp_path, text)
    assert r.exit_code == 2, r.output
    lines = r.stderr.splitlines()
    assert lines[0] == f"{path}: {len(lines) - 1} problem(s)"  # the file is named
    return [ln.strip() for ln in lines[1:]]


# -- bounded YAML ---------------------------------------------------------------------------
def test_an_alias_bomb_is_refused_quickly_naming_the_file(tmp_path):
    text = BASE + bomb()
    assert len(text) < 1500
    t = time.monotonic()
    assert problems(tmp_path, text) == [
        "(top level) (line 21): the file holds more than 100,000 values once its aliases (*name) are expanded, "
        "the most gridctl reads (aliases that repeat aliases?)"]
    assert time.monotonic() - t < 10


def test_a_file_larger_than_4_mb_is_refused_unread(tmp_path):
    text = BASE + "# padding\n" * (4 * 1024 * 1024 // 10)
    assert problems(tmp_path, text) == [
        "(top level) (line 0): the file is larger than 4 MB, the most gridctl reads from a YAML file "
        "(is it the right file?)"]


def test_an_alias_inside_its_own_anchor_is_refused(tmp_path):
    assert problems(tmp_path, BASE + "x: &a [*a]\n") == [
        "(top level) (line 16): the file nests mappings and lists deeper than 64 levels, the most gridctl reads "
        "(an alias inside its own anchor?)"]


def test_deep_nesting_is_refused(tmp_path):
    assert problems(tmp_path, BASE + "x: " + "[" * 3000 + "]" * 3000 + "\n") == [
        "(top level) (line 1): the file nests mappings and lists deeper than 64 levels, the most gridctl reads"]


def test_a_file_that_is_not_utf8_is_a_problem(tmp_path):
    assert problems(tmp_path, BASE.encode() + b"# \xff\xfe\n") == [
        "(top level) (line 16): the file is not UTF-8 text (byte 258)"]


def test_reload_parses_the_file_off_the_event_loop_and_names_it(tmp_path):
    path = tmp_path / "strategies.yaml"
    path.write_text(BASE + bomb())
    ticks = 0

    async def main():
        nonlocal ticks

        async def tick():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0)
        try:
            return await reload_config(SimpleNamespace(config_path=path))
        finally:
            ticker.cancel()

    reply = asyncio.run(main())
    assert reply["ok"] is False and reply["config_error"] is True
    assert reply["results"][0]["message"] == (
        f"{path} has 1 problem(s), nothing changed: (top level) (line 21): the file holds more than 100,000 "
        "values once its aliases (*name) are expanded, the most gridctl reads (aliases that repeat aliases?)")
    assert ticks > 0  # the loop went on (heartbeats, status) while the file was parsed


# -- report paths ---------------------------------------------------------------------------
def report_cfg(name: str, dir: str) -> str:
    return BASE + f"reports:\n  {name}:\n    cron: \"0 0 * * *\"\n    dir: {dir}\n"


def test_a_relative_reports_dir_that_leaves_the_state_dir_is_refused(tmp_path):
    assert problems(tmp_path, report_cfg(name="daily", dir="../../etc")) == [
        "reports.daily.dir (line 19): must stay inside the state dir (a relative path without '..'); to write "
        "reports elsewhere give an absolute path (/... or ~/...)"]


@pytest.mark.parametrize("name", ["'../escape'", "'a/b'", "'.hidden'"])
def test_a_report_name_that_is_not_a_plain_file_name_is_refused(tmp_path, name):
    assert problems(tmp_path, report_cfg(name=name, dir="reports")) == [
        f"reports.{name.strip(chr(39))} (line 17): report names may use letters, digits, '-', '_' and '.' "
        "(up to 64, starting with a letter or digit)"]


def test_an_absolute_reports_dir_is_allowed(tmp_path):
    r, _ = validate(tmp_path, report_cfg(name="daily", dir=str(tmp_path / "elsewhere")))
    assert r.exit_code == 0, r.output


def test_write_report_file_refuses_a_path_out_of_the_state_dir(tmp_path):
    db = open_database(tmp_path / "st")
    try:
        for cfg, msg in ((ReportConfig("daily", "0 0 * * *", dir=Path("../out")),
                          "report daily: dir '../out' leaves the state dir"),
                         (ReportConfig("../daily", "0 0 * * *"), "report name '../daily' cannot be a file name")):
            with pytest.raises(ValueError) as exc:
                write_report_file(db, cfg, 1_700_000_000_000, state_dir=tmp_path / "st")
            assert str(exc.value) == msg
    finally:
        db.close()
    assert not (tmp_path / "out").exists() and not list(tmp_path.rglob("daily-*"))


# -- no secret in a message -----------------------------------------------------------------
LIVE = """\
version: 1
accounts:
{accounts}
strategies:
  sol:
    account: main
    symbol: SOL/USDT:USDT
    mode: neutral
    lower: 160
    upper: 180
    grids: 10
    investment: 500
"""


@pytest.mark.parametrize("accounts, first", [
    # an account written as a list (a '-' too many): the whole entry used to be quoted
    (f"  - main:\n      exchange: binanceusdm\n      api_key: {CANARY}\n      secret: x",
     "accounts (line 2): must be a mapping of keys to values, got a list"),
    (f"  main: [exchange: binanceusdm, secret: {CANARY}]",
     "accounts.main (line 3): must be a mapping of keys to values, got a list"),
    # a credential indented one level too little reads as an account named api_key
    (f"  main:\n    exchange: binanceusdm\n    secret: x\n  api_key: {CANARY}",
     "accounts.api_key (line 6): must be a mapping of keys to values, got text"),
])
def test_a_secret_written_in_the_wrong_shape_is_never_quoted(tmp_path, accounts, first):
    r, _ = validate(tmp_path, LIVE.format(accounts=accounts))
    assert r.exit_code == 2
    assert CANARY not in r.output
    assert first in [ln.strip() for ln in r.stderr.splitlines()]
