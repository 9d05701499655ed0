"""`gridctl plan`, `validate` on the example file, and `--version`, through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import gridctl
import gridctl.cli.commands  # noqa: F401  (registers the commands)
from gridctl.cli import cli

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "strategies.yaml.example"
TICK, STEP = Decimal("0.01"), Decimal("0.01")  # SOL/USDT:USDT on binanceusdm
FEED_START = Decimal("171.70")  # first open of builtin:SOLUSDT_1m
MODES, SPACINGS = ("long", "short", "neutral"), ("arithmetic", "geometric")


def _paper_account(name: str) -> str:
    return f"  {name}:\n    exchange: paper\n    like: binanceusdm\n    feed: {{replay: \"builtin:SOLUSDT_1m\"}}\n"


def _config() -> str:
    # One paper account per SOL strategy (same feed): an account keeps one position per symbol.
    text = """\
version: 1
accounts:
  live:
    exchange: binanceusdm
    api_key: ${GX_PLAN_KEY}
    secret: ${GX_PLAN_SECRET}
"""
    for mode in MODES:
        for spacing in SPACINGS:
            text += _paper_account(f"paper-{mode}-{spacing}")
    text += _paper_account("paper-pct") + "strategies:\n"
    for mode in MODES:
        for spacing in SPACINGS:
            text += (f"  {mode}-{spacing}:\n    account: paper-{mode}-{spacing}\n    symbol: SOL/USDT:USDT\n"
                     f"    mode: {mode}\n"
                     f"    spacing: {spacing}\n    lower: 160\n    upper: 180\n    grids: 10\n"
                     f"    investment: 1000\n    leverage: 2\n")
    text += ("  pct-live:\n    account: live\n    symbol: SOLUSDT\n    mode: neutral\n    range_pct: 5\n"
             "    grids: 6\n    investment: 600\n")
    text += ("  pct-paper:\n    account: paper-pct\n    symbol: SOL/USDT:USDT\n    mode: long\n    range_pct: 5\n"
             "    grids: 6\n    investment: 600\n")
    return text


ENV = {"GX_PLAN_KEY": "k", "GX_PLAN_SECRET": "s"}


@pytest.fixture
def config(tmp_path) -> str:
    path = tmp_path / "strategies.yaml"
    path.write_text(_config())
    return str(path)


def run(*args: str):
    result = CliRunner().invoke(cli, list(args), env=ENV)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    return result


def plan_json(config: str, name: str, *extra: str) -> dict:
    result = run("plan", "-c", config, name, "--json", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _on(value, unit: Decimal) -> bool:
    assert isinstance(value, str), f"{value!r} is not a decimal string"
    return Decimal(value) % unit == 0


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("mode", MODES)
def test_plan_json_for_each_mode_and_spacing(config, mode, spacing):
    data = plan_json(config, f"{mode}-{spacing}")
    assert data["strategy"] == f"{mode}-{spacing}"
    levels = data["levels"]
    assert len(levels) == 10  # N cells → N levels (neutral leaves the line at the start empty)
    for lv in levels:
        assert set(lv) >= {"index", "price", "side", "qty", "notional", "cycle_profit"}
        assert _on(lv["price"], TICK) and _on(lv["exit_price"], TICK) and _on(lv["qty"], STEP)
        assert Decimal("160") <= Decimal(lv["price"]) <= Decimal("180")
        assert Decimal(lv["qty"]) >= Decimal("0.01")
        assert Decimal(lv["notional"]) >= 5  # the venue's min notional
        assert isinstance(lv["cycle_profit"], str) and Decimal(lv["cycle_profit"]) > 0
    prices = [Decimal(lv["price"]) for lv in levels]
    assert prices == sorted(prices) and len(set(prices)) == len(prices)
    sides = [lv["side"] for lv in levels]
    if mode == "long":
        assert set(sides) == {"buy"} and prices[0] == 160
        assert all(Decimal(lv["exit_price"]) > Decimal(lv["price"]) for lv in levels)
    elif mode == "short":
        assert set(sides) == {"sell"} and prices[-1] == 180
        assert all(Decimal(lv["exit_price"]) < Decimal(lv["price"]) for lv in levels)
    else:
        for lv in levels:
            assert (Decimal(lv["price"]) < FEED_START) == (lv["side"] == "buy")
    if spacing == "arithmetic":
        expected = [Decimal(160 + 2 * i) for i in range(11)]
        assert set(prices) <= set(expected)
    else:
        gaps = [b - a for a, b in zip(prices, prices[1:])]
        assert gaps[-1] > gaps[0]  # geometric: wider cells higher up
    assert isinstance(data["margin"], str) and Decimal(data["margin"]) <= 1000
    assert data["liquidation_price"] is None or _on(data["liquidation_price"], TICK)
    assert isinstance(data["warnings"], list)


def test_neutral_split_follows_price(config):
    def buys_sells(*extra):
        levels = plan_json(config, "neutral-arithmetic", *extra)["levels"]
        return ([Decimal(lv["price"]) for lv in levels if lv["side"] == "buy"],
                [Decimal(lv["price"]) for lv in levels if lv["side"] == "sell"])
    buys, sells = buys_sells("--price", "165.10")  # nearest line 166 stays empty
    assert buys == [Decimal(p) for p in (160, 162, 164)]
    assert sells == [Decimal(p) for p in (168, 170, 172, 174, 176, 178, 180)]
    buys2, sells2 = buys_sells("--price", "175")  # tie between 174 and 176: the lower line stays empty
    assert max(buys2) == 172 and min(sells2) == 176 and len(buys2) + len(sells2) == 10
    assert plan_json(config, "neutral-arithmetic", "--price", "175")["start_price"] == "175.00"


def test_plan_table(config):
    result = run("plan", "-c", config, "long-arithmetic")
    assert result.exit_code == 0
    assert "cycle profit (USDT)" in result.stdout and "margin needed:" in result.stdout
    assert "est. liquidation if every buy fills:" in result.stdout


def test_unknown_strategy_is_a_clear_error(config):
    result = run("plan", "-c", config, "neutral-arithmetc")
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: no strategy 'neutral-arithmetc' in {config} (did you mean 'neutral-arithmetic'?); "
        "strategies: long-arithmetic, long-geometric, short-arithmetic, short-geometric, neutral-arithmetic, "
        "neutral-geometric, pct-live, pct-paper\n")


def test_range_pct_on_live_venue_needs_price(config):
    result = run("plan", "-c", config, "pct-live", "--json")
    assert result.exit_code == 2
    assert result.stderr == "error: pct-live sets its range around the start price; pass --price\n"
    data = plan_json(config, "pct-live", "--price", "150")
    prices = [Decimal(lv["price"]) for lv in data["levels"]]
    assert min(prices) >= Decimal("142.50") and max(prices) <= Decimal("157.50")  # 150 ± 5 %
    assert len(prices) == 6


def test_range_pct_on_paper_uses_the_feed_price(config):
    data = plan_json(config, "pct-paper")
    assert data["start_price"] == str(FEED_START)
    prices = [Decimal(lv["price"]) for lv in data["levels"]]
    assert prices[0] == Decimal("163.12")  # 171.70 - 5 % = 163.115, rounded inward


@pytest.mark.parametrize("bad", ["abc", "-5", "0"])
def test_bad_price_is_a_clear_error(config, bad):
    result = run("plan", "-c", config, "long-arithmetic", f"--price={bad}")
    assert result.exit_code == 2
    assert result.stderr == f"error: --price must be a positive number, got '{bad}'\n"


@pytest.mark.parametrize("bad", ["nan", "inf", "1e30"])
def test_non_finite_price_is_a_clear_error(config, bad):
    # regression: nan/inf raised ValueError/OverflowError and 1e30 overflowed MarketRules.price
    result = CliRunner().invoke(cli, ["plan", "-c", config, "long-arithmetic", f"--price={bad}"], env=ENV)
    assert isinstance(result.exception, SystemExit) and result.exit_code == 2
    assert result.stderr == f"error: --price must be a positive number, got '{bad}'\n"


# -- the example file and the entry points -----------------------------------------

def test_validate_example_one_ok_line_per_strategy():
    result = run("validate", "-c", str(EXAMPLE))
    assert result.exit_code == 0, result.output
    names = list(yaml.safe_load(EXAMPLE.read_text())["strategies"])
    lines = result.stdout.splitlines()
    assert len(lines) == len(names) >= 3
    for name, line in zip(names, lines):
        assert line.startswith(f"ok  {name}: ")


def test_example_has_every_mode_and_each_plans():
    strategies = yaml.safe_load(EXAMPLE.read_text())["strategies"]
    assert {s["mode"] for s in strategies.values()} == {"long", "short", "neutral"}
    for name, s in strategies.items():
        data = plan_json(str(EXAMPLE), name)
        assert data["strategy"] == name and len(data["levels"]) == s["grids"]


def test_version():
    result = run("--version")
    assert result.exit_code == 0 and result.output == f"gridctl, version {gridctl.__version__}\n"


def test_python_dash_m_version():
    proc = subprocess.run([sys.executable, "-m", "gridctl", "--version"], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"gridctl, version {gridctl.__version__}\n"


def test_real_cli_prints_no_traceback_on_a_broken_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(_config().replace("grids: 6", "grids: 6\n    grdis: 7", 1))
    proc = subprocess.run([sys.executable, "-m", "gridctl", "validate", "-c", str(bad)], capture_output=True,
                          text=True, timeout=60, env={"PATH": "/usr/bin:/bin", **ENV})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "unknown key 'grdis' (did you mean 'grids'?)" in proc.stderr
