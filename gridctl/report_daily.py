"""`gridctl report --by day`: one row per strategy and UTC day.

Per day [00:00, 24:00) UTC (the last day ends at the report's end): grid profit
(cycles completed that day, gross), other realized (every realized PnL of the
day's fills minus the grid profit: closes, stops, unpaired lots), fees, funding,
the change of the open position's unrealized PnL over the day, and total =
grid profit + other realized - fees + funding + unrealized change, so the days
add up to the change of total PnL; cycles completed; the position at the end of
the day (from the last equity snapshot before it ends). Same conventions as
gridctl/report.py.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone
from decimal import Decimal
from typing import Optional, Sequence

from peewee import Database, fn
from tabulate import tabulate

from gridctl.report import DAY_MS, PERIODS, _csv_value, _json_default
from gridctl.store.models import Equity, FillRow, Funding, Strategy, Trade
from gridctl.store.read import ZERO, check_names, iso, now_ms as wall_ms

# (key, header, kind) in column order
DAY_COLUMNS: list[tuple[str, str, str]] = [
    ("date", "day (UTC)", "text"), ("name", "strategy", "text"), ("grid_profit", "grid profit", "money"),
    ("other_realized", "other realized", "money"), ("fees", "fees", "money"), ("funding", "funding", "money"),
    ("unrealized_change", "unrealized change", "money"), ("total", "total PnL", "money"),
    ("cycles", "cycles", "int"), ("position", "end position", "qty"),
]


def _day_start(ts: int) -> int:
    return ts - ts % DAY_MS


def _first_activity(name: str) -> Optional[int]:
    s = Strategy.get(Strategy.name == name)
    firsts = [s.started_ts,
              FillRow.select(fn.MIN(FillRow.ts)).where(FillRow.strategy == name).scalar(),
              Equity.select(fn.MIN(Equity.ts)).where(Equity.strategy == name).scalar(),
              Trade.select(fn.MIN(Trade.exit_ts)).where(Trade.strategy == name).scalar()]
    known = [x for x in firsts if x is not None]
    return min(known) if known else None


def _snapshot_before(name: str, ts: int) -> Optional[Equity]:
    return (Equity.select(Equity.position, Equity.unrealized).where((Equity.strategy == name) & (Equity.ts < ts))
            .order_by(Equity.ts.desc(), Equity.id.desc()).first())


def strategy_days(name: str, since: Optional[int], until: int) -> list[dict]:
    """The day rows of one strategy over [since, until) (since None: from its first activity)."""
    first = _first_activity(name)
    if first is None:
        return []
    start = _day_start(max(since, first) if since is not None else first)
    if since is not None and since > start:
        start = since  # a period that begins mid-day counts from its own start
    rows = []
    day = start
    prev = _snapshot_before(name, day)
    prev_unrealized = prev.unrealized if prev else ZERO
    while day < until:
        end = min(_day_start(day) + DAY_MS, until)
        trades = list(Trade.select(Trade.profit).where(
            (Trade.strategy == name) & (Trade.exit_ts >= day) & (Trade.exit_ts < end)).tuples())
        fills = list(FillRow.select(FillRow.fee, FillRow.realized_pnl).where(
            (FillRow.strategy == name) & (FillRow.ts >= day) & (FillRow.ts < end)).tuples())
        funding = sum((a for (a,) in Funding.select(Funding.amount).where(
            (Funding.strategy == name) & (Funding.ts >= day) & (Funding.ts < end)).tuples()), ZERO)
        grid = sum((p for (p,) in trades), ZERO)
        realized = sum((r for _, r in fills if r is not None), ZERO)
        fees = sum((f for f, _ in fills if f is not None), ZERO)
        snap = _snapshot_before(name, end)
        unrealized = snap.unrealized if snap else ZERO
        change = unrealized - prev_unrealized
        rows.append({"date": datetime.fromtimestamp(day / 1000, tz=timezone.utc).strftime("%Y-%m-%d"),
                     "from_ts": day, "to_ts": end, "name": name, "grid_profit": grid,
                     "other_realized": realized - grid, "fees": fees, "funding": funding,
                     "unrealized_change": change, "total": realized - fees + funding + change,
                     "cycles": len(trades), "position": snap.position if snap else ZERO})
        prev_unrealized = unrealized
        day = end
    return rows


def daily(db: Database, names: Optional[Sequence[str]] = None, period: str = "7d",
          now_ms: Optional[int] = None) -> dict:
    """The day-by-day report of the named strategies (all when empty) over the period ending at now_ms."""
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}, got {period!r}")
    names = check_names(db, names)
    until = wall_ms() if now_ms is None else now_ms
    length = PERIODS[period]
    since = None if length is None else until - length
    days = [row for n in names for row in strategy_days(n, since, until)]
    days.sort(key=lambda r: (r["from_ts"], r["name"]))
    return {"period": period, "by": "day", "timezone": "UTC", "from_ts": since, "to_ts": until, "days": days}


def _cell(v) -> str:
    if v is None:
        return "-"
    return format(v, "f") if isinstance(v, Decimal) else str(v)


def render_daily(rep: dict, fmt: str) -> str:
    """The day-by-day report as table, csv, json or md text (ends with a newline)."""
    if fmt == "json":
        return json.dumps(rep, default=_json_default, indent=2) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["day", "strategy"] + [k for k, _, _ in DAY_COLUMNS[2:]] + ["from", "to"])
        for r in rep["days"]:
            w.writerow([r["date"], r["name"]] + [_csv_value(r[k]) for k, _, _ in DAY_COLUMNS[2:]]
                       + [iso(r["from_ts"]), iso(r["to_ts"])])
        return buf.getvalue()
    start = iso(rep["from_ts"]) if rep["from_ts"] is not None else "the beginning"
    title = f"gridctl report by day (UTC), period {rep['period']}: {start} .. {iso(rep['to_ts'])}"
    if not rep["days"]:
        body = "no activity in the period"
    else:
        body = tabulate([[_cell(r[k]) for k, _, _ in DAY_COLUMNS] for r in rep["days"]],
                        headers=[h for _, h, _ in DAY_COLUMNS], tablefmt="github" if fmt == "md" else "simple",
                        disable_numparse=True, colalign=["left", "left"] + ["right"] * (len(DAY_COLUMNS) - 2))
    if fmt == "md":
        return f"# {title}\n\n{body}\n"
    if fmt == "table":
        return f"{title}\n\n{body}\n"
    raise ValueError(f"format must be one of table, csv, json, md, got {fmt!r}")
