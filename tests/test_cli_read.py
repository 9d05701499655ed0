"""status / logs / export / report against a database a worker would have written."""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os

import pytest
from click.testing import CliRunner
from freezegun import freeze_time

import gridctl.cli.read_cmds as read_cmds
from gridctl.cli import cli
from gridctl.store.db import open_database
from store_fixture import NOW, realistic

FROZEN = "2024-08-03T00:00:00Z"  # == store_fixture.NOW


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    d = tmp_path_factory.mktemp("state")
    db = open_database(d)
    realistic(db)
    db.close()
    # sol-neutral's worker "runs": its PID file names a live process (this one) that holds its lock
    (d / "run").mkdir()
    pidfile = d / "run" / "sol-neutral.pid"
    pidfile.write_text(f"{os.getpid()}\n")
    fd = os.open(pidfile, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    yield d
    os.close(fd)


def test_status_shows_down_for_an_active_strategy_whose_worker_is_gone(tmp_path):
    db = open_database(tmp_path)
    realistic(db)
    db.close()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "sol-neutral.pid").write_text("999999999\n")  # no such process
    r = run(tmp_path, "status", "sol-neutral", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)[0]["state"] == "down"


def run(state, *args):
    with freeze_time(FROZEN):
        return CliRunner().invoke(cli, ["--state-dir", str(state), *args])


def test_status_table_shows_what_the_operator_needs(state):
    with freeze_time(FROZEN):
        r = CliRunner().invoke(cli, ["--state-dir", str(state), "status", "--wide"])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    neutral = next(l for l in lines if "sol-neutral" in l).split()
    # money to 4 decimals in the table (0.06348 fees show as 0.0635; --json keeps every digit)
    assert neutral[:6] == ["sol-neutral", "running", "151.50", "150.00-154.00", "x4", "0.5"]
    assert ["0.8000", "0.7500", "0.0635", "-0.0113", "1.4753"] == neutral[12:17]
    assert "sol-long: stop-loss: price 138.10 left the range by 0.5%" in lines  # below the table, never cut


def test_status_json_has_decimals_as_strings(state):
    r = run(state, "status", "sol-neutral", "--json")
    assert r.exit_code == 0
    [s] = json.loads(r.stdout)
    assert {k: s[k] for k in ("name", "state", "price", "position", "open_buys", "open_sells", "grid_profit",
                              "realized", "unrealized", "fees", "funding", "total_pnl", "uptime_s",
                              "last_error")} == {
        "name": "sol-neutral", "state": "running", "price": "151.50", "position": "0.5", "open_buys": 1,
        "open_sells": 2, "grid_profit": "0.80", "realized": "0.80", "unrealized": "0.75", "fees": "0.06348",
        "funding": "-0.01126", "total_pnl": "1.47526", "uptime_s": 172800, "last_error": None}


def test_unknown_strategy_and_missing_database_are_clear_errors(state, tmp_path):
    r = run(state, "status", "sol-nuetral")
    assert r.exit_code == 2 and "no strategy 'sol-nuetral' (did you mean 'sol-neutral'?)" in r.stderr
    assert r.exception is None or isinstance(r.exception, SystemExit)
    for args in (["status"], ["logs", "x"], ["export", "x", "fills"], ["report"]):
        r = run(tmp_path / "nothing", *args)
        assert r.exit_code == 1, args
        assert r.stderr.strip() == f"error: no gridctl database in {tmp_path / 'nothing'}; start a strategy first"


def test_database_found_through_the_config_state_dir(state, tmp_path):
    cfg = tmp_path / "s.yaml"
    cfg.write_text(f"version: 1\nstate_dir: {state}\naccounts:\n  paper: {{exchange: paper, feed: {{replay: 'builtin:SOLUSDT_1m'}}}}\n"
                   "strategies:\n  sol-neutral: {account: paper, symbol: SOL/USDT:USDT, mode: neutral, "
                   "lower: 148, upper: 156, grids: 4, investment: 500}\n")
    with freeze_time(FROZEN):
        r = CliRunner().invoke(cli, ["status", "-c", str(cfg), "sol-neutral", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)[0]["total_pnl"] == "1.47526"


def test_logs_filters_by_time_type_and_text(state):
    r = run(state, "logs", "sol-neutral", "--since", "3h", "--type", "fill,trade")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == [
        "2024-08-02T22:00:00.000Z  fill     L1  sell 0.3 @ 152.00 filled",
        "2024-08-02T22:00:00.001Z  trade    L1  cycle closed: net +0.28182",
    ]
    r = run(state, "logs", "sol-neutral", "--grep", "POST-ONLY")
    assert r.stdout.splitlines() == ["2024-08-02T14:00:00.000Z  warn     L2  order rejected: post-only would "
                                     "cross the book"]
    r = run(state, "logs", "sol-neutral", "-n", "2")
    assert [l.split("  ")[-1] for l in r.stdout.splitlines()] == ["-2+3 is not a number", "@SUM(A1:A9) note"]
    r = run(state, "logs", "sol-neutral", "--since", "2024-08-02T20:30")
    assert len(r.stdout.splitlines()) == 5
    assert run(state, "logs", "sol-neutral", "--type", "bogus").exit_code == 2


def test_logs_follow_prints_new_events_and_stops_on_ctrl_c(state, tmp_path, monkeypatch):
    import shutil
    from gridctl.store.writer import BufferedWriter

    d = tmp_path / "copy"
    shutil.copytree(state, d)
    polls = []

    def fake_sleep(_s):
        polls.append(1)
        if len(polls) == 1:
            db = open_database(d)
            w = BufferedWriter(db)
            w.event("sol-neutral", "fill", "buy 0.5 @ 151.00 filled", ts=NOW + 5, level=1)
            w.event("sol-long", "info", "not mine", ts=NOW + 6)
            w.flush()
        else:
            raise KeyboardInterrupt

    monkeypatch.setattr(read_cmds.time, "sleep", fake_sleep)
    r = run(d, "logs", "sol-neutral", "-n", "1", "--follow")
    assert r.exit_code == 130, r.output  # Ctrl-C ends --follow like every command: 130
    assert r.stdout.splitlines() == ["2024-08-02T23:00:00.000Z  info      -  @SUM(A1:A9) note",
                                     "2024-08-03T00:00:00.005Z  fill     L1  buy 0.5 @ 151.00 filled"]


def test_export_fills_is_exact_csv_with_a_stable_header(state, tmp_path):
    r = run(state, "export", "sol-neutral", "fills", "--since", "1d")
    assert r.exit_code == 0, r.output
    rows = list(csv.reader(io.StringIO(r.stdout)))
    assert rows[0] == ["time", "client_id", "order_id", "level", "intent", "side", "price", "qty", "fee", "maker",
                       "reduce_only", "realized_pnl", "ts"]
    assert rows[1:] == [
        ["2024-08-02T04:30:00.000Z", "gx-abc123-000eC", "967", "0", "entry", "buy", "150.00", "0.5", "0.0150",
         "true", "false", "0", "1722573000000"],
        ["2024-08-02T20:00:00.000Z", "gx-abc123-001eG", "971", "1", "entry", "buy", "151.00", "0.3", "0.00906",
         "true", "false", "0", "1722628800000"],
        ["2024-08-02T22:00:00.000Z", "gx-abc123-001xI", "973", "1", "exit", "sell", "152.00", "0.3", "0.00912",
         "true", "true", "0.30", "1722636000000"]]
    out = tmp_path / "trades.csv"
    r = run(state, "export", "sol-neutral", "trades", "--until", "2024-08-02", "-o", str(out))
    assert r.exit_code == 0 and "wrote 1 trades rows" in r.stderr
    trades = list(csv.DictReader(out.open()))
    assert [(t["exit_time"], t["net_profit"], t["hold_ms"]) for t in trades] == [
        ("2024-08-01T18:00:00.000Z", "0.4697", "18000000")]


def test_export_escapes_formulas_but_keeps_negative_numbers(state):
    r = run(state, "export", "sol-neutral", "events")
    messages = [row["message"] for row in csv.DictReader(io.StringIO(r.stdout))]
    assert "'=HYPERLINK(\"http://x.example\",\"click\") from the venue" in messages
    assert "'-2+3 is not a number" in messages and "'@SUM(A1:A9) note" in messages
    funding = list(csv.DictReader(io.StringIO(run(state, "export", "sol-neutral", "funding").stdout)))
    assert [f["amount"] for f in funding] == ["-0.007525", "-0.00751", "0.003775"]
    assert [f["rate"] for f in funding] == ["0.0001", "0.0001", "-0.00005"]


@pytest.mark.parametrize("value,cell", [
    ("=1+2", "'=1+2"), ("+SUM(A1)", "'+SUM(A1)"), ("-2+3", "'-2+3"), ("@cmd", "'@cmd"), ("\tx", "'\tx"),
    ("\r=1", "'\r=1"), ("-1.5", "-1.5"), ("+2", "+2"), ("-1E-8", "-1E-8"), ("-", "'-"), ("a=b", "a=b"),
    (None, ""), (True, "true")])
def test_escape_cell(value, cell):
    assert read_cmds.escape_cell(value) == cell


def test_report_json_for_one_day(state):
    r = run(state, "report", "sol-neutral", "--period", "1d", "--format", "json")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    [s] = rep["strategies"]
    assert (rep["from_ts"], rep["to_ts"], rep["total"]) == (NOW - 86_400_000, NOW, None)
    assert {k: s[k] for k in ("trades", "entries", "exits", "cancels", "fill_rate_pct", "avg_fill_ms",
                              "win_rate_pct", "avg_cycle_profit", "grid_profit", "realized", "unrealized",
                              "fees", "funding", "total", "grid_yield_pct_day", "max_drawdown",
                              "max_drawdown_pct", "max_position", "stop_losses", "positions")} == {
        "trades": 1, "entries": 2, "exits": 1, "cancels": 1, "fill_rate_pct": "75.00", "avg_fill_ms": 4_200_000,
        "win_rate_pct": "100.00", "avg_cycle_profit": "0.28182000", "grid_profit": "0.30", "realized": "0.30",
        "unrealized": "0.75", "fees": "0.03318", "funding": "-0.003735", "total": "1.013085",
        "grid_yield_pct_day": "0.0600", "max_drawdown": "0.507510", "max_drawdown_pct": "0.10",
        "max_position": "0.5", "stop_losses": 0,
        "positions": [{"level": 0, "side": "buy", "entry_price": "150.00", "held": "0.5"}]}


def test_report_table_all_time_and_total(state):
    r = run(state, "report", "--period", "all")
    assert r.exit_code == 0, r.output
    lines = {l.split("  ")[0]: l.split() for l in r.stdout.splitlines() if "  " in l}
    assert lines["trades (completed cycles)"][-3:] == ["0", "2", "2"]  # sol-long, sol-neutral, total
    assert lines["min cycle profit (net)"][-3:] == ["-", "0.2818", "-"]  # USDT: 4 decimals in tables
    assert lines["max drawdown"][-3:] == ["0", "1.0225", "-"]
    assert lines["stop-losses"][-3:] == ["1", "0", "1"]
    assert lines["total PnL"][-3:] == ["-12.9552", "1.4753", "-11.4800"]
    assert r.stdout.startswith("gridctl report, period all: the beginning .. 2024-08-03T00:00:00.000Z")


def test_report_csv_and_markdown(state, tmp_path):
    out = tmp_path / "r.csv"
    r = run(state, "report", "sol-long", "--format", "csv", "-o", str(out))
    assert r.exit_code == 0
    [row] = list(csv.DictReader(out.open()))
    assert (row["strategy"], row["realized"], row["fees"], row["total"], row["stop_losses"], row["win_rate_pct"]) \
        == ("sol-long", "-12.90", "0.05524", "-12.95524", "1", "")
    md = run(state, "report", "sol-neutral", "--format", "md").stdout
    assert md.startswith("# gridctl report, period 1d") and "| grid profit " in md
    assert "### positions by level: sol-neutral" in md


@pytest.mark.parametrize("command", ["status", "logs", "export", "report"])
def test_every_help_has_an_example(command):
    r = CliRunner().invoke(cli, [command, "--help"])
    assert r.exit_code == 0 and "Example:" in r.output and "gridctl " + command in r.output


def test_parse_when():
    assert read_cmds.parse_when("30m", NOW) == NOW - 1_800_000
    assert read_cmds.parse_when("7d", NOW) == NOW - 7 * 86_400_000
    assert read_cmds.parse_when("2024-08-02", NOW) == NOW - 86_400_000
    assert read_cmds.parse_when("2024-08-02T23:00:00+01:00", NOW) == NOW - 2 * 3_600_000
    with pytest.raises(Exception, match="neither a duration"):
        read_cmds.parse_when("yesterday", NOW)


def test_status_says_since_when_a_running_worker_cannot_reach_the_database(state, monkeypatch):
    from datetime import datetime, timezone

    import gridctl.control.client as client

    since = int(datetime(2024, 8, 2, 23, 57, 30, 250000, tzinfo=timezone.utc).timestamp() * 1000)
    live = {"state": "running", "price": "151.60", "db_unavailable_since": since}
    monkeypatch.setattr(client, "supervisor_status", lambda state_dir, timeout=2.0: {
        "ok": True, "workers": [{"name": "sol-neutral", "state": "running", "worker": live},
                                {"name": "sol-long", "state": "exited", "worker": None}]})
    r = run(state, "status")
    assert r.exit_code == 0, r.output
    assert "sol-neutral: database unavailable since 2024-08-02T23:57:30.250Z" in r.stdout.splitlines()
    assert "sol-long: database" not in r.stdout
    r = run(state, "status", "--json")
    by_name = {s["name"]: s for s in json.loads(r.stdout)}
    assert by_name["sol-neutral"]["db_unavailable_since"] == "2024-08-02T23:57:30.250Z"
    assert by_name["sol-neutral"]["price"] == "151.60"  # the rest of the live overlay still applies
    assert by_name["sol-long"]["db_unavailable_since"] is None
    # the database works again: the worker reports None and the line is gone
    live["db_unavailable_since"] = None
    r = run(state, "status")
    assert "database unavailable" not in r.stdout
    assert json.loads(run(state, "status", "--json").stdout)[0]["db_unavailable_since"] is None
