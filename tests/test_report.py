"""Report statistics, scheduled report files, and read speed on a big database."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import pytest

from gridctl.config.model import ReportConfig
from gridctl.report import max_drawdown, render, report, write_report_file
from gridctl.store.db import open_database
from gridctl.store.models import Equity, Order
from gridctl.store.read import UnknownStrategy, status
from store_fixture import NOW, populate, realistic

D = Decimal


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    d = open_database(tmp_path_factory.mktemp("state"))
    realistic(d)
    return d


def test_max_drawdown_is_the_largest_fall_from_a_running_peak():
    assert max_drawdown([D(500), D(510), D(505), D(520), D(490), D(515)]) == (D(30), D("5.77"))
    assert max_drawdown([D(1), D(2), D(3)]) == (D(0), D(0))
    assert max_drawdown([]) == (D(0), None)
    assert max_drawdown([D("-1"), D("-3")]) == (D(2), None)  # no % of a non-positive peak


def test_week_report_counts_everything_since_start(db):
    [s] = report(db, ["sol-neutral"], "7d", NOW)["strategies"]
    # Started 2 days ago: the yield per day divides by 2 days, not 7.
    assert (s["days"], s["grid_profit"], s["grid_yield_pct_day"]) == (D("2.0000"), D("0.80"), D("0.0800"))
    assert (s["trades"], s["avg_hold_ms"], s["max_cycle_profit"], s["min_cycle_profit"]) == (
        2, 12_600_000, D("0.4697"), D("0.28182"))
    assert s["total"] == s["realized"] - s["fees"] + s["funding"] + s["unrealized"] == D("1.47526")


def test_one_hour_report_of_a_quiet_hour(db):
    [s] = report(db, ["sol-neutral"], "1h", NOW)["strategies"]
    assert (s["trades"], s["fill_rate_pct"], s["win_rate_pct"], s["avg_cycle_profit"]) == (0, None, None, None)
    assert (s["grid_profit"], s["fees"], s["unrealized"], s["total"]) == (D(0), D(0), D("0.75"), D("0.75"))
    assert s["positions"] == [{"level": 0, "side": "buy", "entry_price": D("150.00"), "held": D("0.5")}]


def test_report_rejects_unknown_names_and_periods(db):
    with pytest.raises(UnknownStrategy, match="'nope'"):
        report(db, ["nope"], "1d", NOW)
    with pytest.raises(ValueError, match="period"):
        report(db, None, "2d", NOW)


@pytest.mark.parametrize("fmt,ext", [("csv", "csv"), ("md", "md"), ("json", "json"), ("table", "txt")])
def test_write_report_file_for_a_scheduled_report(db, tmp_path, fmt, ext):
    cfg = ReportConfig(name="daily", cron="0 7 * * *", period="1d", format=fmt, strategies=("sol-neutral",))
    path = write_report_file(db, cfg, NOW + 7 * 3_600_000 + 30_000, state_dir=tmp_path)
    assert path == tmp_path / "reports" / f"daily-20240803-0700.{ext}"
    text = path.read_text()
    assert text == render(report(db, ["sol-neutral"], "1d", NOW + 7 * 3_600_000 + 30_000), fmt)
    if fmt == "json":
        assert json.loads(text)["strategies"][0]["name"] == "sol-neutral"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_write_report_file_defaults_to_the_sqlite_state_dir_and_all_strategies(db):
    cfg = ReportConfig(name="all", cron="0 * * * *", period="all", format="csv")
    path = write_report_file(db, cfg, NOW)
    assert path.parent.parent == __import__("pathlib").Path(db.database).parent
    assert [l.split(",")[0] for l in path.read_text().splitlines()] == ["strategy", "sol-long", "sol-neutral",
                                                                        "total"]


def _plan(db, sql, params):
    return " ".join(str(r[-1]) for r in db.execute_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall())


def test_status_queries_use_indexes_and_stay_fast_on_a_big_database(tmp_path):
    db = open_database(tmp_path)
    names = [f"grid-{i:02d}" for i in range(20)]
    populate(db, names, events=100_000, fills=10_000)
    q = Equity.select().where(Equity.strategy == "grid-03").order_by(Equity.ts.desc()).limit(1)
    sql, params = q.sql()
    assert "USING INDEX" in _plan(db, sql, params) and "TEMP B-TREE" not in _plan(db, sql, params)
    sql, params = Order.select().where((Order.status == "open") & (Order.strategy == "grid-03")).sql()
    assert "USING" in _plan(db, sql, params) and "SCAN" not in _plan(db, sql, params)
    t = time.perf_counter()
    rows = status(db)
    assert time.perf_counter() - t < 0.5
    assert len(rows) == 20 and rows[0]["open_buys"] == 10 and rows[0]["state"] == "running"


def test_since_start_counts_fills_of_an_earlier_grid(tmp_path):
    """started_ts is the current grid's; a fill before it (an earlier grid) moves the start back."""
    from gridctl.report import report as build
    from gridctl.store.db import open_database
    from gridctl.store.writer import BufferedWriter

    db = open_database(tmp_path)
    w = BufferedWriter(db)
    day = 86_400_000
    w.upsert("strategies", {"name": "s", "config_json": {"symbol": "SOL/USDT:USDT", "investment": "100",
                                                          "leverage": 1}, "status": "running",
                            "started_ts": 10 * day, "updated_ts": 11 * day})
    w.add("fills", {"strategy": "s", "ts": 8 * day, "client_id": "c1", "side": "buy", "price": Decimal("1"),
                    "qty": Decimal("1"), "fee": Decimal("0"), "maker": True, "reduce_only": False,
                    "realized_pnl": Decimal("0")})
    w.close()
    out = build(db, period="all", now_ms=12 * day)
    assert out["strategies"][0]["days"] == Decimal(4)
    db.close()


def test_a_short_window_gives_no_yield_per_day(db):
    [s] = report(db, ["sol-neutral"], "1h", NOW)["strategies"]
    assert s["days"] == D("0.0417") and s["grid_yield_pct_day"] is None  # under a day: not extrapolated
    lines = render(report(db, ["sol-neutral"], "1h", NOW), "table").splitlines()
    assert [ln.split() for ln in lines if ln.startswith("grid yield per day")] == [["grid", "yield", "per", "day",
                                                                                    "-"]]


def test_drawdown_is_of_the_strategys_pnl_and_its_pct_of_the_investment(db):
    [s] = report(db, ["sol-neutral"], "7d", NOW)["strategies"]
    # total PnL fell by 1.02251 from its peak; 1.02251 / 500 invested = 0.2045 %
    assert (s["max_drawdown"], s["investment"], s["max_drawdown_pct"]) == (D("1.022510"), D(500), D("0.20"))


def test_tables_round_money_to_the_quote_and_json_keeps_it_all(db):
    rep = report(db, ["sol-neutral"], "7d", NOW)
    assert rep["strategies"][0]["quote"] == "USDT"
    table = render(rep, "table")
    assert "max drawdown                        1.0225\n" in table and "total PnL                           1.4753\n" in table
    assert json.loads(render(rep, "json"))["strategies"][0]["total"] == "1.475260"
    assert ",1.475260," in render(rep, "csv")
