"""`gridctl status` as a dashboard: fitted tables, the detailed view, --json, supervisor states, APR, down rows."""

from __future__ import annotations

import fcntl
import json
import os
from decimal import Decimal

import pytest
from click.testing import CliRunner
from freezegun import freeze_time

import gridctl.control.client as client
from gridctl.cli import cli
from gridctl.store.dashboard import APR_MIN_MS, derive
from gridctl.store.db import open_database
from store_fixture import NOW, T0, realistic

FROZEN = "2024-08-03T00:00:00Z"  # == store_fixture.NOW


@pytest.fixture()
def state(tmp_path, monkeypatch):
    db = open_database(tmp_path)
    realistic(db)
    db.close()
    (tmp_path / "run").mkdir()
    pidfile = tmp_path / "run" / "sol-neutral.pid"
    pidfile.write_text(f"{os.getpid()}\n")  # its worker "runs": this process holds its lock
    fd = os.open(pidfile, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    monkeypatch.setattr(client, "supervisor_status", lambda state_dir, timeout=2.0: None)
    yield tmp_path
    os.close(fd)


def run(state, *args, columns="80", when=FROZEN):
    with freeze_time(when):
        return CliRunner(env={"COLUMNS": columns}).invoke(cli, ["--state-dir", str(state), "status", *args])


def test_table_at_80_columns_keeps_the_most_important_figures(state):
    r = run(state)
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == [
        "   strategy    state    price    position    cycles/24h    total PnL     ROI",
        "-----------  -------  -------  ----------  ------------  -----------  ------",
        "   sol-long  stopped   138.10           0           0/0     -12.7200  -3.18%",
        "sol-neutral  running   151.50         0.5           2/1       1.4753   0.30%",
        "sol-long: stop-loss: price 138.10 left the range by 0.5%",
    ]
    assert all(len(line) <= 80 for line in r.stdout.splitlines()[:4])


def test_table_at_120_columns_adds_entry_liquidation_stop_and_as_of(state):
    lines = run(state, columns="120").stdout.splitlines()
    assert lines[0] == ("   strategy    state    price    position    avg entry    liq. price    cycles/24h    "
                        "total PnL     ROI    stop    as of")
    # the average entry follows from the snapshot (151.50 - 0.75 / 0.5); figures say how old they are
    assert lines[3].split() == ["sol-neutral", "running", "151.50", "0.5", "150.0000", "-", "2/1", "1.4753",
                                "0.30%", "-", "1h", "ago"]
    assert all(len(line) <= 120 for line in lines[:4])


def test_wide_shows_every_column(state):
    lines = run(state, "--wide").stdout.splitlines()
    assert lines[0].split() == ["strategy", "state", "price", "range", "x", "grids", "position", "avg", "entry",
                                "liq.", "price", "margin", "buys", "sells", "cycles/24h", "grid", "profit",
                                "unrealized", "fees", "funding", "total", "PnL", "ROI", "grid", "APR", "APR", "stop",
                                "uptime", "as", "of"]
    # grid APR 0.80/500 over 47 h (start .. the 23:00 snapshot) = 29.82 %/y, total APR 1.47526/500 = 54.99 %/y
    assert lines[3].split() == ["sol-neutral", "running", "151.50", "150.00-154.00", "x4", "0.5", "150.0000", "-",
                                "-", "1", "2", "2/1", "0.8000", "0.7500", "0.0635", "-0.0113", "1.4753", "0.30%",
                                "29.82%", "54.99%", "-", "2d", "00h", "1h", "ago"]


def test_detailed_view_lists_every_figure_and_the_grid(state):
    r = run(state, "sol-neutral")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert "  as of:              2024-08-02T23:00:00.000Z (last snapshot)" in lines
    assert "  cycles:             2 (1 in the last 24h)" in lines
    assert "  ROI:                0.30%" in lines
    assert lines[-6:] == [
        "  line    side    state    entry    exit    qty               open order",
        "------  ------  -------  -------  ------  -----  -----------------------",
        "     0     buy  holding   150.00  151.00    0.5   exit sell 0.5 @ 151.00",
        "     1     buy  waiting   151.00  152.00    0.5   entry buy 0.5 @ 151.00",
        "     2    sell  waiting   153.00  152.00    0.5  entry sell 0.5 @ 153.00",
        "     3    sell     idle   154.00  153.00    0.5                        -",
    ]


def test_json_has_every_figure(state):
    [s] = json.loads(run(state, "sol-neutral", "--json").stdout)
    for key in ("position", "exchange_position", "entry_price", "liquidation_price", "margin_ratio", "lower",
                "upper", "grids", "investment", "cycles", "cycles_24h", "grid_profit", "unrealized", "fees",
                "funding", "total_pnl", "roi_pct", "grid_apr_pct", "total_apr_pct", "nearest_stop",
                "stop_distance_pct", "as_of", "as_of_ts", "stale", "live", "uptime_s", "reason", "restarts"):
        assert key in s, key
    assert (s["entry_price"], s["investment"], s["roi_pct"], s["grid_apr_pct"], s["total_apr_pct"]) == (
        "150.0000", "500", "0.30", "29.82", "54.99")
    assert (s["as_of"], s["stale"], s["live"], s["cycles"], s["cycles_24h"]) == (
        "2024-08-02T23:00:00.000Z", False, False, 2, 1)


def sup(workers):
    return lambda state_dir, timeout=2.0: {"ok": True, "workers": workers}


def test_live_figures_give_liquidation_margin_ratio_and_the_nearest_stop(state, monkeypatch):
    live = {"state": "running", "price": "151.60", "position": "6.0", "exchange_position": "6.0",
            "entry_price": "150", "unrealized": "0.8", "total_pnl": "1.5", "grid_profit": "0.8",
            "maintenance_margin_rate": "0.005", "contract_size": "1", "as_of_ts": NOW, "uptime_s": 100,
            "stops": {"stop_loss_below": "140.00", "take_profit_above": "160.00"}}
    monkeypatch.setattr(client, "supervisor_status", sup([
        {"name": "sol-neutral", "state": "running", "pid": 4242, "restarts": 0, "worker": live}]))
    [s] = json.loads(run(state, "sol-neutral", "--json").stdout)
    # (150·6 − (500 + 1.5 − 0.8)) / (6 · 0.995) = 66.8844; 6·151.60·0.005 / 501.5 = 0.0091; (160−151.6)/151.6
    assert (s["liquidation_price"], s["margin_ratio"], s["nearest_stop"], s["stop_distance_pct"]) == (
        "66.8844", "0.0091", "take_profit_above", "5.54")
    assert s["live"] is True and s["as_of"] == "2024-08-03T00:00:00.000Z"
    lines = run(state, columns="120").stdout.splitlines()
    assert lines[3].split()[-3:] == ["TP", "5.54%", "live"]


def test_fatal_and_backoff_from_the_supervisor_even_before_the_database_has_a_row(state, monkeypatch):
    monkeypatch.setattr(client, "supervisor_status", sup([
        {"name": "eth-short", "state": "fatal", "pid": None, "restarts": 5,
         "reason": "crash loop: 6 quick exits in a row (last: exit 1)", "worker": None},
        {"name": "sol-long", "state": "exited", "pid": None, "reason": "exit 0", "worker": None},
        {"name": "sol-neutral", "state": "backoff", "pid": None, "restarts": 2,
         "reason": "exited with 1; restart in 4 s", "worker": None}]))
    r = run(state)
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert [line.split()[:2] for line in lines[2:5]] == [["eth-short", "fatal"], ["sol-long", "exited"],
                                                         ["sol-neutral", "backoff"]]
    assert lines[5:] == ["eth-short: crash loop: 6 quick exits in a row (last: exit 1)", "sol-long: exit 0",
                         "sol-neutral: exited with 1; restart in 4 s"]
    rows = {s["name"]: s for s in json.loads(run(state, "--json").stdout)}
    assert rows["eth-short"]["reason"] == "crash loop: 6 quick exits in a row (last: exit 1)"
    assert rows["eth-short"]["restarts"] == 5 and rows["sol-neutral"]["uptime_s"] is None
    r = run(state, "eth-short")  # known to the supervisor only
    assert r.exit_code == 0 and "  state:              fatal (crash loop: 6 quick exits in a row (last: exit 1))" \
        in r.stdout.splitlines()


def test_a_pid_file_naming_a_live_process_without_the_lock_is_down(tmp_path, monkeypatch):
    db = open_database(tmp_path)
    realistic(db)
    db.close()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "sol-neutral.pid").write_text(f"{os.getpid()}\n")  # alive, but holds no lock
    monkeypatch.setattr(client, "supervisor_status", lambda state_dir, timeout=2.0: None)
    a = json.loads(run(tmp_path, "sol-neutral", "--json").stdout)[0]
    assert a["state"] == "down" and a["stale"] is True


def test_down_rows_are_stale_and_their_uptime_stops(state):
    new = state / "run" / "sol-neutral.new"
    new.write_text("999999999\n")  # no such process, and a new file nobody has locked
    os.replace(new, state / "run" / "sol-neutral.pid")
    a = json.loads(run(state, "sol-neutral", "--json").stdout)[0]
    b = json.loads(run(state, "sol-neutral", "--json", when="2024-08-04T00:00:00Z").stdout)[0]
    assert a["state"] == b["state"] == "down" and a["stale"] is True
    assert a["uptime_s"] == b["uptime_s"] == 47 * 3600  # start .. its last snapshot, a day later too
    assert b["grid_apr_pct"] == a["grid_apr_pct"]  # no time accrues on stale figures
    assert run(state, columns="120").stdout.splitlines()[3].split()[-2:] == ["stale", "1h"]


def test_apr_needs_a_day_of_history():
    row = {"price": Decimal("100"), "position": Decimal(0), "unrealized": Decimal(0), "grid_profit": Decimal("1"),
           "total_pnl": Decimal("1"), "investment": Decimal("100"), "started_ts": 0, "as_of_ts": APR_MIN_MS - 1}
    derive(row, APR_MIN_MS - 1)
    assert row["grid_apr_pct"] is None and row["total_apr_pct"] is None and row["roi_pct"] == Decimal("1.00")
    row["as_of_ts"] = APR_MIN_MS
    derive(row, APR_MIN_MS)
    assert row["grid_apr_pct"] == row["total_apr_pct"] == Decimal("365.00")  # 1 % in one day


def test_apr_dash_in_the_table_before_a_day(state, monkeypatch):
    live = {"state": "running", "as_of_ts": T0 + APR_MIN_MS - 60_000}
    monkeypatch.setattr(client, "supervisor_status", sup([{"name": "sol-neutral", "state": "running",
                                                           "worker": live}]))
    [s] = json.loads(run(state, "sol-neutral", "--json").stdout)
    assert s["grid_apr_pct"] is None and s["total_apr_pct"] is None
    assert "  grid APR:           -" in run(state, "sol-neutral").stdout.splitlines()


def report(state, *args):
    with freeze_time(FROZEN):
        return CliRunner().invoke(cli, ["--state-dir", str(state), "report", "--by", "day", *args])


def test_report_by_day_splits_pnl_per_utc_day(state):
    # 08-01: cycle A→B (+0.50 gross), fees 0.0151 + 0.0152, funding −0.007525 → 0.462175
    # 08-02: cycle G→I (+0.30), fees 0.0150 + 0.00906 + 0.00912, funding −0.00751 + 0.003775,
    #        unrealized 0 → 0.75 → 1.013085; sol-long's stop-loss close realized −12.90 (other), fee 0.05524
    r = report(state, "--period", "all", "--format", "csv")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == [
        "day,strategy,grid_profit,other_realized,fees,funding,unrealized_change,total,cycles,position,from,to",
        "2024-08-01,sol-long,0,0,0,0,0,0,0,0,2024-08-01T00:00:00.000Z,2024-08-02T00:00:00.000Z",
        "2024-08-01,sol-neutral,0.50,0.00,0.0303,-0.007525,0,0.462175,1,0,"
        "2024-08-01T00:00:00.000Z,2024-08-02T00:00:00.000Z",
        "2024-08-02,sol-long,0,-12.90,0.05524,0,0,-12.95524,0,0,2024-08-02T00:00:00.000Z,2024-08-03T00:00:00.000Z",
        "2024-08-02,sol-neutral,0.30,0.00,0.03318,-0.003735,0.75,1.013085,1,0.5,"
        "2024-08-02T00:00:00.000Z,2024-08-03T00:00:00.000Z",
    ]
    # the days add up to the latest snapshot's total PnL (1.47526)
    days = json.loads(report(state, "sol-neutral", "--period", "all", "--format", "json").stdout)
    assert days["timezone"] == "UTC" and sum(Decimal(d["total"]) for d in days["days"]) == Decimal("1.47526")
    table = report(state, "sol-neutral", "--period", "1d").stdout.splitlines()
    assert table[0] == "gridctl report by day (UTC), period 1d: 2024-08-02T00:00:00.000Z .. 2024-08-03T00:00:00.000Z"
    assert table[4].split() == ["2024-08-02", "sol-neutral", "0.30", "0.00", "0.03318", "-0.003735", "0.75",
                                "1.013085", "1", "0.5"]
    md = report(state, "sol-neutral", "--period", "1d", "--format", "md").stdout
    assert md.startswith("# gridctl report by day (UTC)") and "| 2024-08-02  | sol-neutral |" in md


def test_a_strategy_of_another_host_shows_its_host_and_is_never_judged_here(state, monkeypatch):
    # a shared database: sol-neutral "running" on host beta, whose PID file is not here
    import sqlite3

    con = sqlite3.connect(state / "gridctl.db")
    con.execute("UPDATE strategies SET host = 'beta' WHERE name = 'sol-neutral'")
    con.execute("UPDATE strategies SET host = 'alpha' WHERE name = 'sol-long'")
    con.commit()
    con.close()
    (state / "run" / "sol-neutral.pid").unlink()  # no lock holder here: this host would call it "down"
    monkeypatch.setenv("GRIDCTL_HOST", "alpha")
    r = run(state, columns="200")
    assert r.exit_code == 0, r.output
    head, _, *lines = r.stdout.splitlines()
    assert head.split()[:3] == ["strategy", "host", "state"], r.stdout
    assert lines[0].split()[:3] == ["sol-long", "alpha", "stopped"]
    assert lines[1].split()[:3] == ["sol-neutral", "beta", "running"]  # from the database, not "down"
    rows = {x["name"]: x for x in json.loads(run(state, "--json").stdout)}
    assert (rows["sol-neutral"]["host"], rows["sol-neutral"]["remote"]) == ("beta", True)
    assert (rows["sol-long"]["host"], rows["sol-long"]["remote"]) == ("alpha", False)
