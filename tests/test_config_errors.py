"""`gridctl validate` on broken files: exact messages with path and line, exit 2, no traceback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import gridctl.cli.commands  # noqa: F401  (registers the commands)
from gridctl.cli import cli

# Line numbers below refer to this file; edits keep one key per line.
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
    spacing: arithmetic
    lower: 160
    upper: 180
    grids: 10
    investment: 500
    leverage: 2
"""

LIVE = """\
version: 1
accounts:
  main:
    exchange: binanceusdm
    api_key: ${GX_TEST_KEY}
    secret: ${GX_TEST_SECRET}
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
SECRET = "s3cr3t-Value-9f8e7d"


def cfg(base: str = BASE, **fields: str) -> str:
    """BASE with some strategy fields replaced in place (line numbers unchanged)."""
    for key, value in fields.items():
        base, n = re.subn(rf"^    {key}: .*$", f"    {key}: {value}", base, flags=re.M)
        assert n == 1, key
    return base


def validate(tmp_path: Path, text: str, env: dict | None = None):
    path = tmp_path / "strategies.yaml"
    path.write_text(text)
    result = CliRunner().invoke(cli, ["validate", "-c", str(path)], env=env or {})
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result, str(path)


def problems(tmp_path: Path, text: str, env: dict | None = None) -> list[str]:
    """The problem lines of a failed validate (exit 2), without the summary line."""
    result, path = validate(tmp_path, text, env)
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert lines[0] == f"{path}: {len(lines) - 1} problem(s)"
    assert result.stdout == ""  # nothing claims to be ok
    return [ln.strip() for ln in lines[1:]]


def test_base_is_valid(tmp_path):
    result, _ = validate(tmp_path, BASE)
    assert result.exit_code == 0, result.output
    assert result.output == ("ok  sol: long arithmetic SOL/USDT:USDT on paper (paper), 160..180, "
                             "10 grids, investment 500, 2x\n")


CASES = {
    "unknown key": (
        BASE + "    post_onyl: true\n",
        ["strategies.sol.post_onyl (line 18): unknown key 'post_onyl' (did you mean 'post_only'?)"]),
    "unknown top key": (
        BASE.replace("version: 1", "verison: 1"),
        ["verison (line 1): unknown key 'verison' (did you mean 'version'?)"]),
    "wrong type int": (
        cfg(grids="ten"), ["strategies.sol.grids (line 15): must be a whole number, got 'ten'"]),
    "wrong type number": (
        cfg(lower="abc"), ["strategies.sol.lower (line 13): must be a number, got 'abc'"]),
    "wrong type bool": (
        BASE + "    post_only: 3\n", ["strategies.sol.post_only (line 18): must be true or false, got 3"]),
    "bad enum": (
        cfg(spacing="geometrc"),
        ["strategies.sol.spacing (line 12): must be one of arithmetic, geometric, got 'geometrc' "
         "(did you mean 'geometric'?)"]),
    "lower above upper": (
        cfg(lower="180", upper="160"), ["strategies.sol.upper (line 14): must be greater than lower (180)"]),
    "lower equals upper": (
        cfg(upper="160"), ["strategies.sol.upper (line 14): must be greater than lower (160)"]),
    "grids below 2": (cfg(grids="1"), ["strategies.sol.grids (line 15): must be at least 2, got 1"]),
    "grids too many": (cfg(grids="501"), ["strategies.sol.grids (line 15): must be at most 500, got 501"]),
    "negative investment": (
        cfg(investment="-5"), ["strategies.sol.investment (line 16): must be greater than 0, got -5"]),
    "leverage beyond max": (
        cfg(leverage="125"),
        ["strategies.sol.leverage (line 17): 125x exceeds the market's maximum leverage (100x for SOL/USDT:USDT)"]),
    "lower not on tick": (
        cfg(lower="160.005"),
        ["strategies.sol.lower (line 13): 160.005 is not a multiple of the tick size 0.01 (nearest: 160.00)"]),
    "grids too fine": (
        cfg(upper="160.05"),
        ["strategies.sol.grids (line 15): 10 grids between 160.00 and 160.05 put lines closer than one tick "
         "(0.01); use at most 5 grids or a wider range"]),
    "amount not on step": (
        cfg(investment="500").replace("    investment: 500", "    amount: 0.015"),
        ["strategies.sol.amount (line 16): 0.015 is not a multiple of the lot step 0.01"]),
    "amount below minimum": (
        cfg().replace("    investment: 500", "    amount: 0.02"),
        ["strategies.sol.amount (line 16): 0.02 SOL per level is below the market minimum of 0.04 SOL "
         "(min qty 0.01, min notional 5 USDT)"]),
    "unknown account": (
        cfg(account="papr"),
        ["strategies.sol.account (line 9): no account 'papr' under accounts (did you mean 'paper'?)"]),
    "unknown symbol": (
        cfg(symbol="SOL/USD:USD"),
        ["strategies.sol.symbol (line 10): no market 'SOL/USD:USD' on binanceusdm; available: BTC/USDC:USDC, "
         "BTC/USDT:USDT, ETH/USDC:USDC, ETH/USDT:USDT, SOL/USDC:USDC, SOL/USDT:USDT, XRP/USDT:USDT "
         "(did you mean 'SOL/USDT:USDT'?)"]),
    "unknown venue for paper": (
        BASE.replace("like: binanceusdm", "like: binance"),
        ["accounts.paper.like (line 5): no bundled market rules for 'binance'; choose one of backpack, "
         "binanceusdm (did you mean 'binanceusdm'?)"]),
    "stop loss inside the range": (
        BASE + "    risk:\n      stop_loss_price: 170\n",
        ["strategies.sol.risk.stop_loss_price (line 19): must be below lower (160) for a long grid"]),
    "invalid yaml": (
        BASE.replace("    like: binanceusdm", "   like: binanceusdm"),
        ["(top level) (line 5): not valid YAML: expected <block end>, but found '<block mapping start>'"]),
    "duplicate key": (
        BASE + "    grids: 12\n", ["strategies.sol.grids (line 18): appears twice in the same mapping"]),
    "lower and range_pct": (
        BASE + "    range_pct: 5\n", ["strategies.sol.range_pct (line 18): give either lower or range_pct, not both"]),
    "empty file": (
        "", ["accounts (line 1): is required and must name at least one entry",
             "strategies (line 1): is required and must name at least one entry"]),
}


# regressions: an invalid grids once added a second, wrong "0 grids ... closer than one tick"
# error; an invalid investment/amount once crashed build_grid (AssertionError traceback)
CASES["investment not a number"] = (
    cfg(investment="lots"), ["strategies.sol.investment (line 16): must be a number, got 'lots'"])
CASES["negative amount"] = (
    cfg().replace("    investment: 500", "    amount: -1"),
    ["strategies.sol.amount (line 16): must be greater than 0, got -1"])


@pytest.mark.parametrize("name", list(CASES))
def test_broken_config_gets_exact_message(tmp_path, name):
    text, expected = CASES[name]
    assert problems(tmp_path, text) == expected


def test_venue_id_is_accepted_as_symbol(tmp_path):
    result, _ = validate(tmp_path, cfg(symbol="SOLUSDT"))
    assert result.exit_code == 0, result.output


def test_investment_too_small_names_a_minimum_that_works(tmp_path):
    # 10 long levels 160..178 (sum 1690); min notional 5 at 160 needs 0.04 SOL: 0.04 * 1690 / 2 = 33.80
    assert problems(tmp_path, cfg(investment="10")) == [
        "strategies.sol.investment (line 16): 10 gives 0.01 SOL per level, below the market minimum of "
        "0.04 SOL (min qty 0.01, min notional 5 USDT); the minimum investment that works is 33.80 USDT"]
    assert validate(tmp_path, cfg(investment="33.80"))[0].exit_code == 0
    assert validate(tmp_path, cfg(investment="33.79"))[0].exit_code == 2


@pytest.mark.parametrize("mode,spacing,grids", [("neutral", "geometric", 40), ("short", "arithmetic", 200)])
def test_named_minimum_investment_validates(tmp_path, mode, spacing, grids):
    text = cfg(mode=mode, spacing=spacing, grids=str(grids), investment="1")
    [msg] = problems(tmp_path, text)
    minimum = re.search(r"the minimum investment that works is ([0-9.]+) USDT$", msg).group(1)
    result, _ = validate(tmp_path, cfg(mode=mode, spacing=spacing, grids=str(grids), investment=minimum))
    assert result.exit_code == 0, result.output


def test_suggested_grid_count_validates(tmp_path):
    assert validate(tmp_path, cfg(upper="160.05", grids="5"))[0].exit_code == 0


def test_suggested_geometric_grid_count_validates(tmp_path):
    # regression: the limit used to be upper-lower ticks ('at most 990 grids' while 100 failed)
    text = cfg(spacing="geometric", lower="0.1", upper="10", grids="100", investment="100000")
    # (balance raised so that the margin check does not hide the grid-count message)
    rich = lambda text: text.replace("    like: binanceusdm\n", "    like: binanceusdm\n    balance: 200000\n")  # noqa: E731
    text = rich(text)
    [msg] = problems(tmp_path, text)
    most = re.search(r"use at most (\d+) grids", msg).group(1)
    result, _ = validate(tmp_path, rich(cfg(spacing="geometric", lower="0.1", upper="10", grids=most,
                                            investment="100000")))
    assert result.exit_code == 0, result.output


def test_missing_env_variable_and_secret_never_printed(tmp_path):
    assert problems(tmp_path, LIVE, env={"GX_TEST_KEY": None, "GX_TEST_SECRET": None}) == [
        "accounts.main.api_key (line 5): environment variable GX_TEST_KEY is not set",
        "accounts.main.secret (line 6): environment variable GX_TEST_SECRET is not set"]
    env = {"GX_TEST_KEY": "key-abc", "GX_TEST_SECRET": SECRET}
    result, _ = validate(tmp_path, LIVE, env)
    assert result.exit_code == 0 and SECRET not in result.output
    # with other problems in the file, the secret is still not shown
    broken = LIVE.replace("grids: 10", "grids: 1").replace("lower: 160", "lower: x")
    result, _ = validate(tmp_path, broken, env)
    assert result.exit_code == 2 and SECRET not in result.output and "key-abc" not in result.output
    plan = CliRunner().invoke(cli, ["plan", "-c", str(tmp_path / "strategies.yaml"), "sol", "--json"],
                              env={"GX_TEST_KEY": "key-abc", "GX_TEST_SECRET": SECRET})
    assert SECRET not in plan.output


def test_several_problems_all_reported_sorted_by_line(tmp_path):
    text = cfg(account="papr", mode="neutrall", lower="170", upper="150", grids="1", leverage="ten")
    text = text.replace("    exchange: paper", "    exchange: paper\n    balnce: 10", 1)  # shifts lines by one
    assert problems(tmp_path, text + "    post_onyl: true\n") == [
        "accounts.paper.balnce (line 5): unknown key 'balnce' (did you mean 'balance'?)",
        "strategies.sol.account (line 10): no account 'papr' under accounts (did you mean 'paper'?)",
        "strategies.sol.mode (line 12): must be one of long, short, neutral, got 'neutrall' (did you mean 'neutral'?)",
        "strategies.sol.upper (line 15): must be greater than lower (170)",
        "strategies.sol.grids (line 16): must be at least 2, got 1",
        "strategies.sol.leverage (line 18): must be a whole number, got 'ten'",
        "strategies.sol.post_onyl (line 19): unknown key 'post_onyl' (did you mean 'post_only'?)",
    ]


def test_unreadable_file_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(cli, ["validate", "-c", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "cannot read" in result.output and "No such file or directory" in result.output


def test_absurd_price_is_an_error_not_a_crash(tmp_path):
    # regression: is_on_tick raised decimal.InvalidOperation (DivisionImpossible) past 28 digits
    assert problems(tmp_path, cfg(lower="1.0e+30", upper="2.0e+30")) == [
        "strategies.sol.lower (line 13): must be at most 1,000,000,000,000,000, got 1.0E+30",
        "strategies.sol.upper (line 14): must be at most 1,000,000,000,000,000, got 2.0E+30"]


def test_strategy_name_that_cannot_be_a_file_name_is_refused(tmp_path):
    """Names become PID-file, socket and log names: a slash must not reach the file system."""
    from click.testing import CliRunner

    from gridctl.cli import cli

    text = (Path(__file__).resolve().parents[1] / "strategies.yaml.example").read_text()
    text = text.replace("  sol-long:\n", "  sol/long:\n")
    cfg = tmp_path / "s.yaml"
    cfg.write_text(text)
    result = CliRunner().invoke(cli, ["validate", "-c", str(cfg)])
    assert result.exit_code == 2
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.startswith("  sol/long:"))
    assert (f"strategies.sol/long (line {line}): strategy names may use letters, digits, '-', '_' and '.' "
            f"(up to 64, starting with a letter or digit)") in result.output


# -- reserved keys this version does not implement: refused by name, never silently ignored --
FEED = '    feed: {replay: "builtin:SOLUSDT_1m"}\n'
UNSUPPORTED = {
    "refresh_interval_ms": (
        BASE + "    refresh_interval_ms: 500\n",
        ["strategies.sol.refresh_interval_ms (line 18): is not supported yet: the worker's order refresh "
         "interval is not configurable; remove the field"]),
    "margin_mode isolated": (
        BASE.replace(FEED, FEED + "    margin_mode: isolated\n"),
        ["accounts.paper.margin_mode (line 7): is not supported yet: isolated margin (gridctl simulates "
         "cross margin only); use cross or remove the field"]),
    "feed.mark": (
        BASE.replace(FEED, '    feed:\n      replay: "builtin:SOLUSDT_1m"\n      mark: "builtin:SOLUSDT_1m"\n'),
        ["accounts.paper.feed.mark (line 8): is not supported yet: separate mark-price candles for the paper "
         "exchange (its mark price follows the feed); remove the field"]),
    "feed.loop": (
        BASE.replace(FEED, '    feed:\n      replay: "builtin:SOLUSDT_1m"\n      loop: false\n'),
        ["accounts.paper.feed.loop (line 8): is not supported yet: choosing whether a replay loops (it always "
         "loops, each loop continuing where the last one closed); remove the field"]),
}
LIVE_ENV = {"GX_TEST_KEY": "k", "GX_TEST_SECRET": SECRET}


@pytest.mark.parametrize("name", list(UNSUPPORTED))
def test_reserved_keys_are_refused_with_their_reason(tmp_path, name):
    text, want = UNSUPPORTED[name]
    assert problems(tmp_path, text, LIVE_ENV) == want


def test_the_implemented_values_of_reserved_keys_are_accepted(tmp_path):
    text = BASE.replace(FEED, FEED + "    margin_mode: cross\n    sandbox: false\n")
    result, _ = validate(tmp_path, text)
    assert result.exit_code == 0, result.output
