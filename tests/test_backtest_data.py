"""Backtest data loading on hand-made files: funding cut to the candle window, warnings for mark
and funding series that do not cover the candles, and clear errors for broken mark/funding files."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Sequence

import pytest
from click.testing import CliRunner

import gridctl.cli.commands  # noqa: F401  (registers the commands)
from backtest_helpers import MIN, T0, Recorder, account, checked, strategy, toy_rules
from gridctl.backtest import load_market_data, prepare
from gridctl.cli import cli
from gridctl.sim import DataError

D = Decimal
R = toy_rules()
HOUR = 60 * MIN
EXAMPLE = str(Path(__file__).resolve().parent.parent / "strategies.yaml.example")
CANDLE_HEADER = "timestamp_ms,open,high,low,close,volume\n"


def write_candles(path: Path, rows: Sequence[tuple[str, str, str, str]], start: int = T0,
                  interval: int = MIN) -> Path:
    lines = [f"{start + i * interval},{o},{h},{l},{c},1" for i, (o, h, l, c) in enumerate(rows)]
    path.write_text(CANDLE_HEADER + "\n".join(lines) + "\n")
    return path


def write_funding(path: Path, rows: Sequence[tuple[int, str]]) -> Path:
    path.write_text("timestamp_ms,rate\n" + "".join(f"{t},{r}\n" for t, r in rows))
    return path


FLAT = ("101.50", "101.60", "101.40", "101.50")


# -- A: funding outside the candle window is not paid ------------------------------------
def test_funding_before_from_and_at_or_after_the_window_end_is_dropped(tmp_path):
    c = write_candles(tmp_path / "c.csv", [FLAT] * 10)
    f = write_funding(tmp_path / "f.csv", [
        (T0 + 1 * MIN, "0.01"), (T0 + 3 * MIN + 59_999, "0.02"),  # before the window (candle 4 on)
        (T0 + 4 * MIN, "0.0003"),                                   # at the first kept candle: kept
        (T0 + 7 * MIN + 30_000, "0.0004"),                          # inside the last kept candle: kept
        (T0 + 8 * MIN, "0.05"),                                     # at the window's end: dropped
    ])
    d = load_market_data(R, c, funding=f, start_ms=T0 + 4 * MIN, end_ms=T0 + 8 * MIN)
    assert list(d.ts) == [T0 + k * MIN for k in range(4, 8)]
    assert list(d.funding_ts) == [T0 + 4 * MIN, T0 + 7 * MIN + 30_000]
    assert d.funding_rates == [D("0.0003"), D("0.0004")]
    assert d.warnings == []


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "reference"])
def test_a_backtest_from_a_later_date_pays_no_funding_from_before_it(tmp_path, fast):
    c = write_candles(tmp_path / "c.csv", [FLAT] * 6)
    f = write_funding(tmp_path / "f.csv", [(T0 + MIN, "0.01"), (T0 + 2 * MIN, "0.01"), (T0 + 4 * MIN, "0.0003")])
    d = load_market_data(R, c, funding=f, start_ms=T0 + 3 * MIN)
    # a long that buys L2 (102) at market at the start, so it holds 1.0 from the first candle on
    s = strategy("long", "100", "103", 3, amount="1", initial_position=True)
    bt = checked(prepare(R, s, account(), d, D(10000)).backtest)
    rec = Recorder().attach(bt)
    bt.run(fast=fast)
    # only the 4-minute row is inside the window: -1.0 x 101.50 x 0.0003 = -0.03045
    assert [(p.ts, p.position, p.amount) for p in rec.payments] == [(T0 + 4 * MIN, 10, D("-0.030450"))]
    assert bt.engine.ledger.funding == D("-0.03045")


def test_the_cli_with_from_pays_only_the_funding_inside_the_window(tmp_path):
    day = 86_400_000
    aug1 = 1_722_470_400_000  # 2024-08-01 00:00 UTC, the first bundled SOL candle
    inside = [(aug1 + day + k * 8 * HOUR, "0.0001") for k in range(6)]  # 08-02 00:00 .. 08-03 16:00
    before = [(aug1 - 8 * HOUR, "0.05"), (aug1, "0.05"), (aug1 + 16 * HOUR, "0.05")]
    only = write_funding(tmp_path / "inside.csv", inside)
    full = write_funding(tmp_path / "full.csv", before + inside)
    args = ["backtest", "-c", EXAMPLE, "sol-long", "--data", "builtin:SOLUSDT_1m", "--from", "2024-08-02", "--json"]
    a = CliRunner().invoke(cli, args + ["--funding", str(only)])
    b = CliRunner().invoke(cli, args + ["--funding", str(full)])
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    fa, fb = json.loads(a.stdout), json.loads(b.stdout)
    assert D(fa["funding"]) != 0  # the long holds a position through the in-window fundings
    assert fa == fb  # the 5 % rows before --from change nothing
    assert fb["warnings"] == [] and b.stderr == ""


# -- B: coverage warnings ------------------------------------------------------------------
def test_a_mark_series_that_starts_late_and_ends_early_is_reported(tmp_path):
    c = write_candles(tmp_path / "c.csv", [FLAT] * 240)  # four hours of minutes
    m = write_candles(tmp_path / "late_mark.csv", [FLAT] * 2, start=T0 + HOUR, interval=HOUR)  # 1 h and 2 h
    d = load_market_data(R, c, mark=m)
    assert d.warnings == [
        "mark series late_mark.csv starts 2023-11-14 23:13 UTC, 60 minutes after the candles (2023-11-14 22:13 UTC);"
        " the last price is used as the mark until then"
        " (mark series: 2023-11-14 23:13 to 2023-11-15 00:13 UTC, candles: 2023-11-14 22:13 to 2023-11-15 02:12 UTC)",
        "mark series late_mark.csv ends 2023-11-15 00:13 UTC, 119 minutes before the candles (2023-11-15 02:12 UTC);"
        " the last mark is used from then on"
        " (mark series: 2023-11-14 23:13 to 2023-11-15 00:13 UTC, candles: 2023-11-14 22:13 to 2023-11-15 02:12 UTC)",
    ]


def test_a_mark_series_within_one_interval_of_the_last_candle_is_fine(tmp_path):
    c = write_candles(tmp_path / "c.csv", [FLAT] * 120)
    m = write_candles(tmp_path / "m.csv", [FLAT] * 2, start=T0, interval=HOUR)  # the last mark covers 1:00-2:00
    assert load_market_data(R, c, mark=m).warnings == []


def test_a_funding_series_more_than_one_interval_short_is_reported(tmp_path):
    c = write_candles(tmp_path / "c.csv", [FLAT] * 8, start=T0, interval=8 * HOUR // 2)  # 4 h candles, 32 h
    # 8-hourly with real-data ms jitter; first row 8 h 1 s after the first candle, last 20 h before the last
    f = write_funding(tmp_path / "fund.csv", [(T0 + 8 * HOUR + 1000, "0.0001"), (T0 + 16 * HOUR + 17, "0.0001")])
    d = load_market_data(R, c, funding=f)
    rng = "(funding series: 2023-11-15 06:13 to 2023-11-15 14:13 UTC, candles: 2023-11-14 22:13 to 2023-11-16 02:13 UTC)"
    assert d.warnings == [
        f"funding series fund.csv starts 2023-11-15 06:13 UTC, 8 hours after the candles (2023-11-14 22:13 UTC);"
        f" no funding is paid before then {rng}",
        f"funding series fund.csv ends 2023-11-15 14:13 UTC, 11 hours before the candles (2023-11-16 02:13 UTC);"
        f" no funding is paid after it {rng}",
    ]


def test_a_funding_series_within_one_interval_of_both_ends_is_fine(tmp_path):
    c = write_candles(tmp_path / "c.csv", [FLAT] * 8, start=T0, interval=4 * HOUR)
    f = write_funding(tmp_path / "f.csv", [(T0 + 8 * HOUR, "0.0001"), (T0 + 16 * HOUR, "0.0001"),
                                            (T0 + 24 * HOUR, "0.0001")])
    assert load_market_data(R, c, funding=f).warnings == []


def test_the_cli_prints_each_warning_on_stderr_and_lists_them_in_json(tmp_path):
    aug1 = 1_722_470_400_000
    m = write_candles(tmp_path / "sol_mark.csv", [("150", "151", "149", "150")] * 25, start=aug1, interval=HOUR)
    args = ["backtest", "-c", EXAMPLE, "sol-long", "--data", "builtin:SOLUSDT_1m", "--mark", str(m)]
    expected = ("mark series sol_mark.csv ends 2024-08-02 00:00 UTC, 47 hours before the candles"
                " (2024-08-03 23:59 UTC); the last mark is used from then on"
                " (mark series: 2024-08-01 00:00 to 2024-08-02 00:00 UTC,"
                " candles: 2024-08-01 00:00 to 2024-08-03 23:59 UTC)")
    text = CliRunner().invoke(cli, args)
    assert text.exit_code == 0, text.output
    assert text.stderr == f"warning: {expected}\n"
    assert "warning" not in text.stdout
    js = CliRunner().invoke(cli, args + ["--json"])
    assert js.exit_code == 0 and js.stderr == f"warning: {expected}\n"
    assert json.loads(js.stdout)["warnings"] == [expected]


def test_json_always_has_a_warnings_list():
    r = CliRunner().invoke(cli, ["backtest", "-c", EXAMPLE, "sol-long", "--data", "builtin:SOLUSDT_1m",
                                 "--to", "2024-08-01T01:00", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["warnings"] == [] and r.stderr == ""


# -- D: broken mark and funding files ------------------------------------------------------
@pytest.mark.parametrize("which, text, message", [
    ("mark", CANDLE_HEADER + f"{T0},1,1,1,1,\n{T0},1,1,1,1,\n", f":3: duplicate timestamp {T0} (also on line 2)"),
    ("mark", CANDLE_HEADER + f"{T0 + MIN},1,1,1,1,\n\n{T0},1,1,1,1,\n",
     f":4: timestamps must increase ({T0 + MIN} then {T0})"),
    ("funding", f"timestamp_ms,rate\n{T0},0.0001\n{T0},0.0002\n", f":3: duplicate timestamp {T0} (also on line 2)"),
    ("funding", f"timestamp_ms,rate\n{T0 + MIN},0.0001\n{T0},0.0002\n",
     f":3: timestamps must increase ({T0 + MIN} then {T0})"),
    ("funding", f"timestamp_ms,rate\n{T0},nan\n", ":2: the rate must be a finite number"),
    ("funding", "timestamp_ms,rate\nCANARYx9,s3cret\n",
     ":2: expected timestamp_ms,rate (a whole number and a number), it has 2 fields; its text is not shown"),
    ("funding", "timestamp_ms,rate\n", ": no funding rates"),
])
def test_broken_mark_and_funding_files_are_errors_naming_file_and_line(tmp_path, which, text, message):
    c = write_candles(tmp_path / "c.csv", [FLAT] * 3)
    bad = tmp_path / "bad.csv"
    bad.write_text(text)
    with pytest.raises(DataError) as exc:
        load_market_data(R, c, **{which: bad})
    assert str(exc.value) == f"{bad}{message}"


def test_a_duplicate_candle_is_reported_as_a_duplicate(tmp_path):
    bad = tmp_path / "c.csv"
    bad.write_text(CANDLE_HEADER + f"{T0},1,1,1,1,1\n{T0 + MIN},1,1,1,1,1\n{T0 + MIN},1,1,1,1,1\n")
    with pytest.raises(DataError) as exc:
        load_market_data(R, bad)
    assert str(exc.value) == f"{bad}:4: duplicate timestamp {T0 + MIN} (also on line 3)"


def test_dates_beyond_the_candle_file_are_reported(tmp_path):
    c = write_candles(tmp_path / "c.csv", [FLAT] * 10)  # T0 .. T0 + 10 min
    d = load_market_data(R, c, start_ms=T0 - 3 * HOUR, end_ms=T0 + 15 * MIN)
    assert d.warnings == [
        "candles c.csv start 2023-11-14 22:13 UTC, 3 hours after the requested start (2023-11-14 19:13 UTC);"
        " the backtest begins there",
        "candles c.csv end 2023-11-14 22:23 UTC, 5 minutes before the requested end (2023-11-14 22:28 UTC);"
        " the backtest stops there",
    ]
    # less than one candle short of the dates is just where the candles fall
    assert load_market_data(R, c, start_ms=T0 - 30_000, end_ms=T0 + 10 * MIN + 59_000).warnings == []


def test_the_cli_reports_a_from_date_before_the_data():
    r = CliRunner().invoke(cli, ["backtest", "-c", EXAMPLE, "sol-long", "--data", "builtin:SOLUSDT_1m",
                                 "--from", "2024-07-01", "--to", "2024-08-01T01:00", "--json"])
    expected = ("candles SOLUSDT_1m.csv start 2024-08-01 00:00 UTC, 31 days after the requested start"
                " (2024-07-01 00:00 UTC); the backtest begins there")
    assert r.exit_code == 0 and r.stderr == f"warning: {expected}\n"
    assert json.loads(r.stdout)["warnings"] == [expected] and json.loads(r.stdout)["candles"] == 60


def test_a_cut_keeps_the_mark_in_force_at_the_first_candle_and_none_past_the_end(tmp_path):
    c = write_candles(tmp_path / "c.csv", [FLAT] * 10)
    m = write_candles(tmp_path / "m.csv", [(p, p, p, p) for p in ("90", "91", "92", "93", "94")],
                      start=T0, interval=2 * MIN)  # marks at minutes 0, 2, 4, 6, 8
    d = load_market_data(R, c, mark=m, start_ms=T0 + 3 * MIN, end_ms=T0 + 6 * MIN)
    # minute 2's mark is the one in force when the window opens at minute 3; minute 6 is the window's end
    assert list(d.mark_ts) == [T0 + 2 * MIN, T0 + 4 * MIN] and list(d.mark_close) == [9100, 9200]
    assert d.warnings == []
