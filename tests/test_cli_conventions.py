"""One way of doing things across commands: exit codes, --json, time windows, did-you-mean,
help examples one per line, shell completion of strategy names, the remembered state dir."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import gridctl.cli.commands  # noqa: F401  (registers the commands)
from gridctl.cli import cli, common
from gridctl.cli.common import merge_window, parse_when

NOW = 1_722_643_200_000  # 2024-08-03T00:00:00Z
CONFIG = """\
version: 1
accounts:
  paper: {exchange: paper, feed: {replay: "builtin:SOLUSDT_1m"}}
  paper-long: {exchange: paper, feed: {replay: "builtin:SOLUSDT_1m"}}
strategies:
  sol-neutral: {account: paper, symbol: SOL/USDT:USDT, mode: neutral, lower: 148, upper: 156, grids: 4, investment: 500}
  sol-long: {account: paper-long, symbol: SOL/USDT:USDT, mode: long, lower: 148, upper: 156, grids: 4, investment: 500}
"""


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    p = tmp_path / "strategies.yaml"
    p.write_text(CONFIG)
    return p


def run(*args: str, env: dict | None = None):
    return CliRunner().invoke(cli, list(args), env={"GRIDCTL_CONFIG": None, **(env or {})})


# ---- exit codes ---------------------------------------------------------------------------------
@pytest.mark.parametrize("cmd", ["pause", "resume", "stop", "emergency-close"])
def test_a_misspelled_name_is_unknown_with_a_suggestion_not_not_running(cmd, cfg, tmp_path):
    r = run("--state-dir", str(tmp_path / "st"), cmd, "-c", str(cfg), "sol-nutral", "--yes"
            if cmd == "emergency-close" else "--json")
    assert r.exit_code == 2, r.output
    assert r.stderr == "error: no strategy 'sol-nutral' (did you mean 'sol-neutral'?)\n"


def test_supervisor_down_is_a_runtime_failure(cfg, tmp_path):
    r = run("--state-dir", str(tmp_path / "st"), "pause", "-c", str(cfg), "sol-neutral")
    assert r.exit_code == 1
    assert r.stderr == (f"error: gridctl is not running for state dir {(tmp_path / 'st').resolve()}; "
                        f"start it with `gridctl start`\n")


def test_bad_usage_and_bad_config_exit_2(cfg, tmp_path):
    assert run("stop", "-c", str(cfg)).exit_code == 2  # neither names nor --all
    assert run("logs").exit_code == 2  # click: missing argument
    assert run("export", "x", "fills", "--since", "yesterday").exit_code == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("strategies: [")
    assert run("validate", "-c", str(bad)).exit_code == 2
    assert run("start", "-c", str(bad)).exit_code == 2


def test_ctrl_c_exits_130(cfg, monkeypatch):
    from gridctl.cli import plan_cmds

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(plan_cmds, "load_config_or_exit", interrupted)
    r = run("validate", "-c", str(cfg))
    assert r.exit_code == 130 and r.stderr == "\ninterrupted\n"


# ---- --json -------------------------------------------------------------------------------------
def test_validate_json(cfg, tmp_path):
    r = run("validate", "-c", str(cfg), "--json")
    assert r.exit_code == 0
    out = json.loads(r.stdout)
    assert out["ok"] is True and [s["name"] for s in out["strategies"]] == ["sol-neutral", "sol-long"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(CONFIG.replace("grids: 4, investment: 500}\n  sol-long", "grids: 4, investment: 500, uper: 1}\n"
                                                                             "  sol-long"))
    r = run("validate", "-c", str(bad), "--json")
    assert r.exit_code == 2
    (problem,) = json.loads(r.stdout)["problems"]
    assert problem == {"path": "strategies.sol-neutral.uper", "line": 6,
                       "message": "unknown key 'uper' (did you mean 'upper'?)"}


@pytest.mark.parametrize("cmd", ["validate", "logs", "start", "stop", "pause", "resume", "reload", "shutdown",
                                 "emergency-close", "status", "plan", "backtest", "report"])
def test_every_command_that_prints_results_has_json(cmd):
    r = run(cmd, "--help")
    assert "--json" in r.output


# ---- time windows -------------------------------------------------------------------------------
def test_time_window_parser():
    assert parse_when("2h", NOW) == NOW - 7_200_000
    assert parse_when("7d", NOW) == NOW - 7 * 86_400_000
    assert parse_when("90s", NOW) == NOW - 90_000
    assert parse_when("2024-08-02", NOW) == NOW - 86_400_000
    assert parse_when("2024-08-02T12:00Z", NOW) == NOW - 12 * 3_600_000
    with pytest.raises(click.BadParameter, match="neither a duration like 30m, 2h, 7d nor an ISO date/time"):
        parse_when("last week", NOW)
    assert merge_window(None, None, "1d", "2024-08-02") == ("1d", "2024-08-02")  # the old --from/--to
    with pytest.raises(click.UsageError, match="give only one of --since and --from"):
        merge_window("1d", None, "2d", None)


@pytest.mark.parametrize("cmd", [["logs", "x"], ["export", "x", "fills"], ["backtest", "x", "--data", "d"]])
def test_old_window_names_are_hidden_but_accepted(cmd):
    help_text = run(*cmd[:1], "--help").output
    assert "--since" in help_text and "--until" in help_text
    assert "--from" not in help_text and "--to " not in help_text
    r = run(*cmd, "--since", "1d", "--from", "2d")
    assert r.exit_code == 2 and "give only one of --since and --from" in r.output


def test_report_since_replaces_period():
    help_text = run("report", "--help").output
    assert "--since" in help_text and "--period" not in help_text


# ---- help -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(cli.commands))
def test_help_examples_render_one_per_line(name):
    """Every line under Example: in the docstring shows as its own line in --help (click's \\b)."""
    cmd = cli.commands[name]
    doc = cmd.callback.__doc__ or ""
    examples = [ln.strip() for ln in doc.split("Example:", 1)[1].splitlines() if ln.strip().startswith("gridctl")]
    assert examples, name
    rendered = [ln.strip() for ln in run(name, "--help").output.splitlines()]
    for ex in examples:
        assert ex in rendered, f"{name}: {ex!r} is not a line of its own in --help"


def test_group_help_example_one_per_line():
    assert "gridctl validate -c strategies.yaml" in [ln.strip() for ln in run("--help").output.splitlines()]


# ---- completion ---------------------------------------------------------------------------------
def _complete(words: str, env: dict | None = None) -> list[str]:
    r = CliRunner().invoke(cli, [], prog_name="gridctl", env={
        "_GRIDCTL_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split()) - 1
                                                                                   + words.endswith(" ")),
        **(env or {})})
    return [ln.split(",", 1)[1] for ln in r.output.splitlines() if ln.startswith("plain,")]


def test_strategy_names_complete_from_the_config(cfg, tmp_path, monkeypatch):
    assert _complete(f"gridctl pause -c {cfg} sol-n") == ["sol-neutral"]
    assert _complete(f"gridctl stop -c {cfg} sol-long ") == ["sol-neutral"]  # not twice
    assert _complete("gridctl logs sol", {"GRIDCTL_CONFIG": str(cfg)}) == ["sol-neutral", "sol-long"]
    monkeypatch.chdir(tmp_path)  # ./strategies.yaml by default
    assert _complete("gridctl emergency-close sol-l") == ["sol-long"]
    assert _complete("gridctl export ") == ["sol-neutral", "sol-long"]
    monkeypatch.chdir(tmp_path / "..")
    assert _complete("gridctl pause so") == []  # no config: nothing to offer, no error


# ---- the remembered state dir -------------------------------------------------------------------
def test_state_dir_from_the_config_is_remembered_for_commands_without_c(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "DEFAULT_STATE_DIR", tmp_path / "default")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert common.AppContext().state_dir() == tmp_path / "default"
    common.remember_state_dir(elsewhere)
    assert (tmp_path / "default" / "last-state-dir").read_text() == f"{elsewhere.resolve()}\n"
    assert common.AppContext().state_dir() == elsewhere.resolve()
    assert common.AppContext(state_dir_option=str(tmp_path / "x")).state_dir() == tmp_path / "x"  # option wins
    common.remember_state_dir(tmp_path / "default")  # back to the default: the pointer goes
    assert not (tmp_path / "default" / "last-state-dir").exists()
