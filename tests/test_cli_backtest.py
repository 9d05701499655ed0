"""`gridctl backtest` through the real CLI: figures, --json, CSV exports, date cuts and bad input."""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

import gridctl.cli.commands  # noqa: F401  (registers the commands)
from backtest_helpers import XRP_1H_MARK
from shared_data import require
from gridctl.cli import cli

D = Decimal
EXAMPLE = str(Path(__file__).resolve().parent.parent / "strategies.yaml.example")
DATA = {
    "sol-neutral": ["--data", "builtin:SOLUSDT_1m"],
    "sol-long": ["--data", "builtin:SOLUSDT_1m"],
    "xrp-short": ["--data", "builtin:XRPUSDT_5m", "--funding", "builtin:XRPUSDT_8h_funding"],
}
MONEY = ("grid_profit", "realized_pnl", "fees", "funding", "unrealized_pnl", "total_pnl", "max_drawdown")
KEYS = ("candles", "fills", "cycles") + MONEY + ("max_position", "final_position", "stop_reason")
LABELS = ("candles", "fills", "completed cycles", "grid profit", "other realized", "fees", "funding",
          "unrealized", "total PnL", "return on investment %", "max drawdown", "max |position|",
          "final position", "stop reason")


def gx(*args: str):
    result = CliRunner().invoke(cli, ["backtest", "-c", EXAMPLE, *args])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def as_json(name: str, *extra: str) -> dict:
    r = gx(name, *DATA[name], "--json", *extra)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def results():
    """--json of every example strategy on its bundled data."""
    return {name: as_json(name) for name in DATA}


@pytest.mark.parametrize("name", list(DATA))
def test_every_example_strategy_prints_its_figures(name, results):
    r = gx(name, *DATA[name])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0] == f"backtest {name}"
    shown = {}
    for line in lines[1:]:
        label, _, value = line.strip().rpartition("  ")
        shown[label.strip()] = value.strip()
    assert set(LABELS) <= set(shown)
    fig = results[name]
    # the table shows the same numbers as --json
    assert shown["candles"] == str(fig["candles"]) and shown["fills"] == str(fig["fills"])
    assert shown["total PnL"] == fig["total_pnl"] and shown["grid profit"] == fig["grid_profit"]
    assert shown["stop reason"] == (fig["stop_reason"] or "-")


def test_the_examples_trade_on_their_data(results):
    assert results["sol-neutral"]["candles"] == 4320 and results["xrp-short"]["candles"] == 1999
    assert results["sol-neutral"]["stop_reason"] == "stop_loss"  # SOL falls 5 % below 155
    assert results["sol-long"]["cycles"] > 10 and results["xrp-short"]["cycles"] > 10
    assert D(results["xrp-short"]["funding"]) != 0  # the short holds through 8 h fundings
    assert D(results["sol-long"]["final_position"]) > 0  # SOL fell: the long grid holds a bag


@pytest.mark.parametrize("name", list(DATA))
def test_json_has_the_stable_keys_with_money_as_decimal_strings(name, results):
    fig = results[name]
    assert set(KEYS) <= set(fig) and fig["strategy"] == name
    for k in ("candles", "fills", "cycles"):
        assert type(fig[k]) is int
    for k in MONEY + ("max_position", "final_position", "other_realized"):
        assert isinstance(fig[k], str), k
        D(fig[k])  # a decimal, not a float
    for k in MONEY:
        assert D(fig[k]).as_tuple().exponent == -4, (k, fig[k])
    assert fig["stop_reason"] in (None, "stop_loss", "take_profit", "max_loss")
    # the parts add up to what is shown, within the display rounding of each part
    total = D(fig["realized_pnl"]) - D(fig["fees"]) + D(fig["funding"]) + D(fig["unrealized_pnl"])
    assert abs(total - D(fig["total_pnl"])) <= D("0.0002")
    assert abs(D(fig["grid_profit"]) + D(fig["other_realized"]) - D(fig["realized_pnl"])) <= D("0.0001")


def test_reference_mode_prints_the_same_json(results):
    assert as_json("sol-long", "--reference") == results["sol-long"]
    assert as_json("xrp-short", "--reference") == results["xrp-short"]


def test_fills_csv_has_one_row_per_fill(tmp_path, results):
    out = tmp_path / "fills.csv"
    fig = as_json("sol-neutral", "--fills-csv", str(out))
    assert fig == results["sol-neutral"]
    with open(out, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["timestamp", "level", "side", "intent", "price", "qty", "fee", "reduce_only"]
    body = rows[1:]
    assert len(body) == fig["fills"]
    assert {r[2] for r in body} <= {"buy", "sell"} and {r[3] for r in body} <= {"entry", "exit", "close"}
    assert {r[7] for r in body} <= {"true", "false"}
    for ts, level, side, intent, price, qty, fee, ro in body:
        assert ts.startswith("2024-08-0") and ts.endswith("Z")
        assert (level == "") == (intent == "close")
        assert D(price) % D("0.01") == 0 and D(qty) % D("0.01") == 0 and D(qty) > 0
        if intent == "close":
            assert ro == "true"  # a stop's close never opens a position
        if intent == "entry":
            assert ro == "false"
    # signed quantities add up to the final position, fees to the fees
    pos = sum((D(r[5]) if r[2] == "buy" else -D(r[5]) for r in body), D(0))
    assert pos == D(fig["final_position"])
    assert sum((D(r[6]) for r in body), D(0)).quantize(D("0.0001")) == D(fig["fees"])
    # the stop flattened the grid with a reduce-only market close
    assert body[-1][3] == "close" and body[-1][7] == "true"


def test_trades_csv_has_one_row_per_cycle(tmp_path, results):
    out = tmp_path / "trades.csv"
    fig = as_json("xrp-short", "--trades-csv", str(out))
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == fig["cycles"] > 0
    assert set(rows[0]) >= {"level", "side", "entry_time", "exit_time", "entry_price", "exit_price", "qty",
                            "profit", "fees", "net_profit", "hold_minutes"}
    for r in rows:
        assert r["side"] == "sell"  # a short grid's cycles sell first
        assert D(r["entry_price"]) > D(r["exit_price"])
        assert D(r["net_profit"]) == D(r["profit"]) - D(r["fees"])
        assert r["entry_time"] <= r["exit_time"] and int(r["hold_minutes"]) >= 0
    assert sum((D(r["profit"]) for r in rows), D(0)) == D(fig["grid_profit"])


def test_from_and_to_cut_the_data():
    day = as_json("sol-neutral", "--from", "2024-08-02", "--to", "2024-08-03")
    assert day["candles"] == 1440 and day["start"] == "2024-08-02 00:00" and day["end"] == "2024-08-03 00:00"
    tail = as_json("sol-neutral", "--from", "2024-08-03T12:00")
    assert tail["candles"] == 720 and tail["end"] == "2024-08-04 00:00"
    head = as_json("sol-neutral", "--to", "2024-08-01T02:00:00Z")
    assert head["candles"] == 120
    offset = as_json("sol-neutral", "--from", "2024-08-02T02:00+02:00", "--to", "2024-08-02T01:00Z")
    assert offset["candles"] == 60 and offset["start"] == "2024-08-02 00:00"


def test_a_mark_series_changes_the_valuation_not_the_fills(results):
    require(XRP_1H_MARK)
    marked = as_json("xrp-short", "--mark", str(XRP_1H_MARK))
    plain = results["xrp-short"]
    assert marked["candles"] == plain["candles"] and marked["unrealized_pnl"] != plain["unrealized_pnl"]


@pytest.mark.parametrize("args, message", [
    (["--from", "2024-13-01"], "--from must be a date like 2024-08-01"),
    (["--to", "yesterday"], "--to must be a date like 2024-08-01"),
    (["--from", "2024-08-03", "--to", "2024-08-02"], "no candles in"),
    (["--from", "2030-01-01"], "SOLUSDT_1m.csv"),
])
def test_bad_dates_exit_2_with_a_clear_message(args, message):
    r = gx("sol-neutral", "--data", "builtin:SOLUSDT_1m", *args)
    assert r.exit_code == 2
    assert message in r.stderr and r.stdout == ""


@pytest.mark.parametrize("option", ["--data", "--mark", "--funding"])
def test_a_missing_data_file_exits_2_naming_the_file(option, tmp_path):
    missing = str(tmp_path / "nope.csv")
    args = ["--data", "builtin:SOLUSDT_1m"] if option != "--data" else []
    r = gx("sol-neutral", *args, option, missing)
    assert r.exit_code == 2 and missing in r.stderr and "not found" in r.stderr


def test_an_unknown_builtin_exits_2_naming_it():
    r = gx("sol-neutral", "--data", "builtin:NOPE_1m")
    assert r.exit_code == 2 and "builtin:NOPE_1m" in r.stderr


@pytest.mark.parametrize("text, what", [
    ("timestamp_ms,rate\n1,0.1\n", "expected header"),
    ("timestamp_ms,open,high,low,close,volume\n2,1,1,1,1,1\n1,1,1,1,1,1\n", "timestamps must increase"),
])
def test_a_broken_data_file_exits_2_naming_the_file(tmp_path, text, what):
    f = tmp_path / "broken.csv"
    f.write_text(text)
    r = gx("sol-neutral", "--data", str(f))
    assert r.exit_code == 2 and str(f) in r.stderr and what in r.stderr


def test_a_bad_value_in_the_data_is_reported_at_its_file_line(tmp_path):
    f = tmp_path / "bad.csv"
    f.write_text("timestamp_ms,open,high,low,close,volume\n1,1,1,1,1,1\n2,x,1,1,1,1\n")
    r = gx("sol-neutral", "--data", str(f))
    assert r.exit_code == 2 and f"{f}:3" in r.stderr


def test_an_unknown_strategy_exits_2_listing_the_names():
    r = gx("sol-nuetral", "--data", "builtin:SOLUSDT_1m")
    assert r.exit_code == 2 and "sol-neutral" in r.stderr


@pytest.mark.parametrize("option", ["--fills-csv", "--trades-csv"])
def test_an_unwritable_output_path_is_a_clear_error(tmp_path, option):
    target = str(tmp_path / "no-such-dir" / "out.csv")
    result = CliRunner().invoke(cli, ["backtest", "-c", EXAMPLE, "sol-neutral", "--data", "builtin:SOLUSDT_1m",
                                      option, target])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert "no-such-dir" in result.stderr


HEDGE_CONFIG = """\
version: 1
accounts:
  paper:
    exchange: paper
    like: binanceusdm
    balance: 10000
    position_mode: hedge
    feed: {replay: "builtin:SOLUSDT_1m"}
strategies:
  sol-neutral:
    account: paper
    symbol: SOL/USDT:USDT
    mode: neutral
    spacing: arithmetic
    lower: 150
    upper: 175
    grids: 10
    amount: 1
    leverage: 2
"""


def test_a_hedge_mode_account_backtests_or_says_why_not(tmp_path):
    cfg = tmp_path / "hedge.yaml"
    cfg.write_text(HEDGE_CONFIG)
    r = CliRunner().invoke(cli, ["backtest", "-c", str(cfg), "sol-neutral", "--data", "builtin:SOLUSDT_1m",
                                 "--json"])
    assert "Traceback" not in r.output
    if r.exit_code == 0:
        assert json.loads(r.stdout)["fills"] > 0
    else:
        assert r.exit_code == 2 and "hedge" in r.stderr
