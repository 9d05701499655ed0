"""`gridctl sweep`: --set parsing, candidates validated like the file, figures equal to
`gridctl backtest`'s, ranking, output formats, and the same ranking on any number of processes."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import gridctl.cli.commands  # noqa: F401  (registers the commands)
from gridctl.cli import cli

EXAMPLE = str(Path(__file__).resolve().parent.parent / "strategies.yaml.example")
BASE = ["sweep", "-c", EXAMPLE, "sol-neutral", "--data", "builtin:SOLUSDT_1m"]


def _line_of(strategy: str, key: str) -> int:
    """The example's line of `key` under strategies.<strategy> (what the validator names)."""
    lines = Path(EXAMPLE).read_text().splitlines()
    start = lines.index(f"  {strategy}:")
    return next(i + 1 for i in range(start, len(lines)) if lines[i].startswith(f"    {key}:"))


GRIDS_LINE, MAX_POSITION_LINE = _line_of("sol-neutral", "grids"), _line_of("sol-neutral", "max_position")


def sweep(*args: str):
    return CliRunner().invoke(cli, [*BASE, *args])


def sweep_json(*args: str) -> list[dict]:
    r = sweep(*args, "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


# -- bad --set: a clear error naming it, exit 2, nothing run -------------------------------------
@pytest.mark.parametrize("args, message", [
    (["--set", "grids"], "--set 'grids': expected KEY=V1,V2,... or KEY=FROM:TO:STEP"),
    (["--set", "=5"], "--set '=5': expected KEY=V1,V2,... or KEY=FROM:TO:STEP"),
    (["--set", "gird=5,6"], "--set gird: unknown strategy key 'gird' (did you mean 'grids'?)"),
    (["--set", "stop_loss_pct=1,2"], "--set stop_loss_pct: unknown strategy key 'stop_loss_pct' "
                                     "(did you mean 'risk.stop_loss_pct'?)"),
    (["--set", "symbol=BTC/USDT:USDT"], "--set symbol: cannot be swept: the data is one market's candles"),
    (["--set", "grids=10:20"], "--set 'grids=10:20': a range is FROM:TO:STEP, e.g. grids=10:50:10"),
    (["--set", "grids=10:20:0"], "--set 'grids=10:20:0': STEP must be greater than 0, got 0"),
    (["--set", "grids=20:10:5"], "--set 'grids=20:10:5': TO (10) is below FROM (20)"),
    (["--set", "grids=a:b:1"], "--set 'grids=a:b:1': FROM, TO and STEP must be numbers"),
    (["--set", "grids=8,,9"], "--set 'grids=8,,9': empty value"),
    (["--set", "grids=8,8"], "--set 'grids=8,8': a value is listed twice"),
    (["--set", "grids=8", "--set", "grids=9"], "--set grids: given twice; list all its values in one --set"),
    (["--set", "range_pct=5,6", "--set", "lower=150"],
     "--set range_pct and --set lower: a strategy takes one or the other"),
    ([], "give at least one --set KEY=V1,V2,... (or KEY=FROM:TO:STEP)"),
    (["--set", "grids=8", "--json", "--csv"], "give only one of --json and --csv"),
    (["--set", "grids=8", "--jobs", "2", "--cluster", "tcp://127.0.0.1:8786"],
     "give --jobs or --cluster, not both (the cluster's workers decide how many run at once)"),
])
def test_a_bad_set_is_a_clear_error_naming_it(args, message):
    r = sweep(*args)
    assert r.exit_code == 2 and r.stderr == f"error: {message}\n" and r.stdout == ""


def test_an_unknown_sort_is_a_usage_error():
    r = sweep("--set", "grids=8", "--sort", "luck")
    assert r.exit_code == 2 and "Invalid value for '--sort': 'luck' is not one of 'total_pnl'" in r.stderr


def test_help_has_an_example():
    r = CliRunner().invoke(cli, ["sweep", "--help"])
    assert r.exit_code == 0 and "Example:" in r.output and "--set grids=6:20:2" in r.output


# -- the figures are the backtest's ---------------------------------------------------------------
def _backtest_of(tmp_path: Path, changes: dict) -> dict:
    """`gridctl backtest --json` of the example with sol-neutral's keys changed by hand."""
    cfg = yaml.safe_load(Path(EXAMPLE).read_text())
    s = cfg["strategies"]["sol-neutral"]
    for key, value in changes.items():
        *parents, last = key.split(".")
        node = s
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = CliRunner().invoke(cli, ["backtest", "-c", str(path), "sol-neutral", "--data", "builtin:SOLUSDT_1m",
                                 "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_each_result_is_figure_for_figure_the_backtest_of_that_candidate(tmp_path):
    rows = sweep_json("--set", "grids=6,14", "--set", "risk.stop_loss_pct=2.5,8")
    assert len(rows) == 4 and [r["rank"] for r in rows] == [1, 2, 3, 4]
    for row in rows:
        expected = _backtest_of(tmp_path, {"grids": row["grids"], "risk.stop_loss_pct": float(row["risk.stop_loss_pct"])})
        expected.pop("strategy")
        got = {k: v for k, v in row.items() if k not in ("rank", "grids", "risk.stop_loss_pct")}
        assert got == expected


def test_ranked_by_total_pnl_high_to_low_by_default_and_drawdown_low_to_high():
    rows = sweep_json("--set", "grids=4:20:4", "--set", "leverage=1,2")
    pnl = [float(r["total_pnl"]) for r in rows]
    assert pnl == sorted(pnl, reverse=True) and len(set(pnl)) > 3
    dd = [float(r["max_drawdown"]) for r in sweep_json("--set", "grids=4:20:4", "--set", "leverage=1,2",
                                                         "--sort", "max_drawdown")]
    assert dd == sorted(dd) and sorted(dd) == sorted(float(r["max_drawdown"]) for r in rows)


def test_top_keeps_the_best_k():
    every = sweep_json("--set", "grids=4:20:4")
    top = sweep_json("--set", "grids=4:20:4", "--top", "2")
    assert top == every[:2]


def test_the_table_shows_rank_the_swept_keys_and_the_main_figures():
    r = sweep("--set", "grids=6,12", "--set", "leverage=1,2")
    assert r.exit_code == 0 and r.stderr == ""
    lines = r.stdout.splitlines()
    assert lines[0] == "ranked by total_pnl"
    assert lines[1].split() [:6] == ["rank", "grids", "leverage", "total", "PnL", "return"]
    assert [line.split()[0] for line in lines[3:]] == ["1", "2", "3", "4"]
    best = sweep_json("--set", "grids=6,12", "--set", "leverage=1,2")[0]
    assert lines[3].split()[1:4] == [str(best["grids"]), str(best["leverage"]), best["total_pnl"]]


def test_csv_has_the_same_rows_as_json():
    rows = sweep_json("--set", "grids=6,12")
    r = sweep("--set", "grids=6,12", "--csv")
    assert r.exit_code == 0
    got = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [g["rank"] for g in got] == ["1", "2"]
    for g, j in zip(got, rows):
        assert g["grids"] == str(j["grids"]) and g["total_pnl"] == j["total_pnl"] and g["fills"] == str(j["fills"])


# -- invalid candidates: listed with the validator's reason, not run -----------------------------
def test_an_invalid_candidate_is_listed_with_its_reason_and_not_run():
    r = sweep("--set", "grids=1,8")
    assert r.exit_code == 0
    assert r.stdout.endswith("\nnot run (1):\n"
                             f"  grids=1: strategies.sol-neutral.grids (line {GRIDS_LINE}): must be at least 2, got 1\n")
    rows = sweep_json("--set", "grids=1,8")
    assert [(x["rank"], x["grids"]) for x in rows] == [(1, 8), (None, 1)]
    assert rows[1] == {"rank": None, "grids": 1,
                       "error": f"strategies.sol-neutral.grids (line {GRIDS_LINE}): must be at least 2, got 1"}


def test_a_plan_refused_like_validate_refuses_it_is_not_run():
    rows = sweep_json("--set", "leverage=1,40", "--set", "grids=4")
    refused = [x for x in rows if x["rank"] is None]
    assert [x["leverage"] for x in refused] == [40]
    assert refused[0]["error"] == (f"strategies.sol-neutral.max_position (line {MAX_POSITION_LINE}): 20 is below one level's size "
                                   "(30.53 SOL): no entry could ever be placed")


def test_a_candidate_whose_range_the_data_never_enters_is_run_and_warned_about():
    args = ["sweep", "-c", EXAMPLE, "sol-long", "--data", "builtin:SOLUSDT_1m", "--set", "lower=100,140",
            "--set", "upper=130,174", "--set", "risk.stop_loss_price=90"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0 and "not run (1):\n  lower=140 upper=130 risk.stop_loss_price=90: " in r.stdout
    said = ("the data's prices (140.00 to 172.91 in SOLUSDT_1m.csv) stay above the grid's range (100.00 to 130.00): "
            "no grid order can fill")
    assert r.stderr == f"warning: lower=100 upper=130 risk.stop_loss_price=90: {said}\n"
    rows = json.loads(CliRunner().invoke(cli, [*args, "--json"]).stdout)
    below = [x for x in rows if x["lower"] == 100 and x["upper"] == 130]
    assert below[0]["fills"] == 0 and below[0]["warnings"] == [said]


def test_when_no_candidate_is_valid_it_exits_2():
    r = sweep("--set", "grids=0,1")
    assert r.exit_code == 2 and r.stderr == "error: none of the 2 candidates is valid\n"
    assert r.stdout == ("not run (2):\n"
                        f"  grids=0: strategies.sol-neutral.grids (line {GRIDS_LINE}): must be at least 2, got 0\n"
                        f"  grids=1: strategies.sol-neutral.grids (line {GRIDS_LINE}): must be at least 2, got 1\n")


def test_a_swept_key_named_like_a_figure_is_written_set_key():
    rows = sweep_json("--set", "max_position=20,40")
    assert {x["set.max_position"] for x in rows} == {20, 40}
    assert all("max_position" in x and x["max_position"] != x["set.max_position"] for x in rows)


def test_sweeping_range_pct_replaces_lower_and_upper():
    rows = sweep_json("--set", "range_pct=3,6")
    assert [x["rank"] for x in rows] == [1, 2] and {x["range_pct"] for x in rows} == {3, 6}
    assert rows[0]["total_pnl"] != rows[1]["total_pnl"] and rows[0]["max_drawdown"] != rows[1]["max_drawdown"]


def test_mode_and_spacing_are_swept_as_words():
    rows = sweep_json("--set", "mode=neutral,long,short", "--set", "spacing=arithmetic,geometric")
    assert sorted((x["mode"], x["spacing"]) for x in rows) == sorted(
        (m, s) for m in ("neutral", "long", "short") for s in ("arithmetic", "geometric"))


# -- processes ------------------------------------------------------------------------------------
def test_two_processes_rank_exactly_as_one():
    args = ("--set", "grids=4:16:4", "--set", "risk.stop_loss_pct=1,3,6")
    one = sweep_json(*args, "--jobs", "1")
    two = sweep_json(*args, "--jobs", "2")
    assert len(one) == 12 and one == two


# -- the progress bar: on a terminal's stderr only, never with --json -----------------------------
def _stderr_on_a_terminal(*args: str) -> tuple[str, str]:
    """Run gridctl sweep with stderr on a pseudo-terminal: (stdout, what the terminal showed)."""
    import os
    import pty
    import subprocess
    import sys

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "gridctl", *BASE, *args], stdout=subprocess.PIPE,
                            stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    out = proc.stdout.read().decode()
    assert proc.wait(timeout=60) == 0
    os.close(master)
    return out, shown.decode(errors="replace")


def test_a_progress_bar_on_a_terminal_but_not_with_json():
    out, shown = _stderr_on_a_terminal("--set", "grids=4:12:4")
    assert out.startswith("ranked by total_pnl\n") and "backtests" in shown and "3/3" in shown
    out, shown = _stderr_on_a_terminal("--set", "grids=4:12:4", "--json")
    assert json.loads(out)[0]["rank"] == 1 and shown == ""


def test_no_progress_bar_when_stderr_is_not_a_terminal():
    r = sweep("--set", "grids=4:12:4")
    assert r.exit_code == 0 and r.stderr == ""


def test_a_range_counts_in_exact_decimal_steps_with_to_included():
    from decimal import Decimal as D

    from gridctl.sweep.spec import parse_set

    assert parse_set("risk.stop_loss_pct=0.1:0.5:0.1").values == (D("0.1"), D("0.2"), D("0.3"), D("0.4"), D("0.5"))
    assert parse_set("grids=10:45:10").values == (10, 20, 30, 40)
    assert parse_set("spacing=arithmetic,geometric").values == ("arithmetic", "geometric")
    rows = sweep_json("--set", "risk.stop_loss_pct=0.5:1.5:0.5")
    assert sorted(x["risk.stop_loss_pct"] for x in rows) == ["0.5", "1", "1.5"]  # decimals as text, as money is
