"""Performance reports: statistics from the store, rendered as table, CSV, JSON or Markdown.

PnL follows the ledger's convention (gridctl/core/ledger.py): grid profit and
realized are gross of fees; total = realized - fees + funding + unrealized.
Inside a period, realized/fees/funding/grid profit count what happened in the
period (fills, funding payments and cycles completed in it); unrealized is the
open position's PnL at the end of the period (the latest equity snapshot).
Cycle statistics (win rate, average/max/min cycle profit) use each cycle's net
profit, after the fees of its own fills.

Honest figures: the grid yield per day is given only when the strategy ran for at
least MIN_YIELD_DAYS of the period (per-day figures from minutes are noise); the
drawdown is the largest fall of the strategy's total PnL from its running peak,
and its % is of the investment (not of the wallet, which other strategies share).
Tables (table, md) round money to the settlement currency's precision
(QUOTE_DECIMALS); JSON and CSV keep full precision.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from peewee import Database, fn
from tabulate import tabulate

from gridctl.process.private import private_dir, write_private
from gridctl.store.read import ZERO, check_names, iso, now_ms as wall_ms
from gridctl.store.models import Equity, Event, FillRow, Funding, Level, Order, Strategy, Trade

DAY_MS = 86_400_000
PERIODS: dict[str, Optional[int]] = {"1h": 3_600_000, "1d": DAY_MS, "7d": 7 * DAY_MS, "30d": 30 * DAY_MS,
                                     "all": None}
FORMATS = {"table": "txt", "csv": "csv", "json": "json", "md": "md"}
_MONEY_Q = Decimal("0.00000001")
MIN_YIELD_DAYS = Decimal(1)  # under one day of running, no yield per day (null / "-")
QUOTE_DECIMALS = {"USDT": 4, "USDC": 4, "USD": 4, "BUSD": 4, "FDUSD": 4}  # others: 8 (coin-margined)
_PCT_Q = Decimal("0.01")

# (key, label, kind): the order rows appear in table/md and columns in CSV.
METRICS: list[tuple[str, str, str]] = [
    ("trades", "trades (completed cycles)", "int"), ("entries", "entries filled", "int"),
    ("exits", "exits filled", "int"), ("cancels", "cancels", "int"), ("fill_rate_pct", "fill rate", "pct"),
    ("avg_fill_ms", "average time to fill", "dur"), ("win_rate_pct", "win rate", "pct"),
    ("avg_cycle_profit", "average cycle profit (net)", "money"),
    ("max_cycle_profit", "max cycle profit (net)", "money"),
    ("min_cycle_profit", "min cycle profit (net)", "money"), ("avg_hold_ms", "average hold time", "dur"),
    ("grid_profit", "grid profit", "money"), ("realized", "realized", "money"),
    ("unrealized", "unrealized", "money"), ("fees", "fees", "money"), ("funding", "funding", "money"),
    ("total", "total PnL", "money"), ("investment", "investment", "money"),
    ("grid_yield_pct_day", "grid yield per day", "pct"), ("max_drawdown", "max drawdown", "money"),
    ("max_drawdown_pct", "max drawdown %", "pct"), ("max_position", "max position (absolute)", "qty"),
    ("avg_position", "average position (absolute)", "qty"), ("stop_losses", "stop-losses", "int"),
]
_SUMMED = {"trades", "entries", "exits", "cancels", "grid_profit", "realized", "unrealized", "fees",
           "funding", "total", "investment", "stop_losses"}


def _q(x: Decimal, unit: Decimal) -> Decimal:
    r = x.quantize(unit)
    return r if r else ZERO  # not "0E-8"


def _dec(x: Any) -> Decimal:
    return ZERO if x is None else Decimal(str(x))


def max_drawdown(values: Iterable[Decimal]) -> tuple[Decimal, Optional[Decimal]]:
    """Largest fall from a running peak: (amount, % of that peak; None when the peak is not > 0)."""
    peak: Optional[Decimal] = None
    worst, worst_pct = ZERO, None
    for v in values:
        if peak is None or v > peak:
            peak = v
        if peak - v > worst:
            worst = peak - v
            worst_pct = _q(worst / peak * 100, _PCT_Q) if peak > 0 else None
    if worst == 0:
        return ZERO, (ZERO if peak is not None and peak > 0 else None)
    return worst, worst_pct


def _window(q, field, since: Optional[int], until: int):
    if since is not None:
        q = q.where(field >= since)
    return q.where(field < until)


def quote_of(s: Strategy) -> str:
    """The settlement currency of a strategy's symbol ('USDT' of 'SOL/USDT:USDT'), '' if unknown."""
    try:
        symbol = str((json.loads(s.config_json or "{}") or {}).get("symbol", ""))
    except (ValueError, AttributeError):
        return ""
    return (symbol.split(":")[-1] if ":" in symbol else symbol.split("/")[-1]).upper() if symbol else ""


def _investment(s: Strategy) -> Optional[Decimal]:
    """The strategy's investment from its config snapshot, else its grid snapshot, else levels' notional."""
    for text in (s.config_json, s.grid_json):
        try:
            data = json.loads(text) if text else None
        except ValueError:
            data = None
        if isinstance(data, dict) and data.get("investment") not in (None, ""):
            return Decimal(str(data["investment"]))
    notional = sum((lv.entry_price * lv.size for lv in Level.select().where(Level.strategy == s.name)), ZERO)
    if notional <= 0:
        return None
    try:
        leverage = Decimal(str((json.loads(s.config_json or "{}") or {}).get("leverage", 1)))
    except (ValueError, AttributeError):
        leverage = Decimal(1)
    return _q(notional / leverage, _MONEY_Q) if leverage > 0 else None


def strategy_stats(db: Database, name: str, since: Optional[int], until: int) -> dict:
    """The report figures of one strategy over [since, until) (since None: from the beginning)."""
    s = Strategy.get(Strategy.name == name)
    trades = list(_window(Trade.select(Trade.net_profit, Trade.profit, Trade.hold_ms)
                          .where(Trade.strategy == name), Trade.exit_ts, since, until).tuples())
    nets = [t[0] for t in trades]
    fills = list(_window(FillRow.select(FillRow.fee, FillRow.realized_pnl).where(FillRow.strategy == name),
                         FillRow.ts, since, until).tuples())
    done = list(_window(Order.select(Order.intent, Order.status, Order.created_ts, Order.updated_ts)
                        .where((Order.strategy == name) & Order.status.in_(["filled", "cancelled"])),
                        Order.updated_ts, since, until).tuples())
    filled = [o for o in done if o[1] == "filled"]
    fill_ms = [o[3] - o[2] for o in filled if o[2] is not None and o[3] is not None]
    funding = sum((r[0] for r in _window(Funding.select(Funding.amount).where(Funding.strategy == name),
                                         Funding.ts, since, until).tuples()), ZERO)
    eq = list(_window(Equity.select(Equity.position, Equity.equity, Equity.total_pnl)
                      .where(Equity.strategy == name), Equity.ts, since, until)
              .order_by(Equity.ts, Equity.id).tuples())
    last = (Equity.select(Equity.unrealized).where((Equity.strategy == name) & (Equity.ts < until))
            .order_by(Equity.ts.desc(), Equity.id.desc()).first())
    stops = 0
    for (data,) in _window(Event.select(Event.data_json).where(
            (Event.strategy == name) & (Event.type == "risk") & Event.data_json.contains("stop_reason")),
            Event.ts, since, until).tuples():
        try:
            stops += bool((json.loads(data) or {}).get("stop_reason"))
        except (ValueError, AttributeError):
            pass

    grid_profit = sum((t[1] for t in trades), ZERO)
    realized = sum((_dec(f[1]) for f in fills), ZERO)
    fees = sum((_dec(f[0]) for f in fills), ZERO)
    unrealized = last.unrealized if last else ZERO
    # when the strategy began: its current grid's start, or an earlier fill of a previous
    # grid (started_ts is reset by a new grid), else its first equity snapshot
    first_fill = FillRow.select(fn.MIN(FillRow.ts)).where(FillRow.strategy == name).scalar()
    began = [x for x in (s.started_ts, first_fill) if x is not None]
    first = min(began) if began else Equity.select(fn.MIN(Equity.ts)).where(Equity.strategy == name).scalar()
    starts = [x for x in (since, first) if x is not None]
    start = max(starts) if starts else None
    days = Decimal(until - start) / DAY_MS if start is not None and until > start else None
    positions = [abs(e[0]) for e in eq if e[0] is not None]
    # the strategy's own PnL (the wallet's equity also moves with other strategies and transfers)
    dd, _ = max_drawdown([e[2] for e in eq if e[2] is not None])
    investment = _investment(s)
    dd_pct = _q(dd / investment * 100, _PCT_Q) if investment else None
    levels = [lv for lv in Level.select().where(Level.strategy == name).order_by(Level.idx) if lv.held]
    return {
        "name": name,
        "quote": quote_of(s),
        "trades": len(trades),
        "entries": sum(1 for o in filled if o[0] == "entry"),
        "exits": sum(1 for o in filled if o[0] == "exit"),
        "cancels": sum(1 for o in done if o[1] == "cancelled"),
        "fill_rate_pct": _q(Decimal(len(filled)) / len(done) * 100, _PCT_Q) if done else None,
        "avg_fill_ms": sum(fill_ms) // len(fill_ms) if fill_ms else None,
        "win_rate_pct": _q(Decimal(sum(1 for n in nets if n > 0)) / len(nets) * 100, _PCT_Q) if nets else None,
        "avg_cycle_profit": _q(sum(nets, ZERO) / len(nets), _MONEY_Q) if nets else None,
        "max_cycle_profit": max(nets) if nets else None,
        "min_cycle_profit": min(nets) if nets else None,
        "avg_hold_ms": (sum(t[2] for t in trades if t[2] is not None)
                        // max(1, sum(1 for t in trades if t[2] is not None))) if trades else None,
        "grid_profit": grid_profit,
        "realized": realized,
        "unrealized": unrealized,
        "fees": fees,
        "funding": funding,
        "total": realized - fees + funding + unrealized,
        "investment": investment,
        "days": _q(days, Decimal("0.0001")) if days is not None else None,
        "grid_yield_pct_day": (_q(grid_profit / investment / days * 100, Decimal("0.0001"))
                               if investment and days and days >= MIN_YIELD_DAYS else None),
        "max_drawdown": dd,
        "max_drawdown_pct": dd_pct,
        "max_position": max(positions) if positions else ZERO,
        "avg_position": _q(sum(positions, ZERO) / len(positions), _MONEY_Q) if positions else ZERO,
        "stop_losses": stops,
        "positions": [{"level": lv.idx, "side": lv.side, "entry_price": lv.entry_price, "held": lv.held}
                      for lv in levels],
    }


def report(db: Database, names: Optional[Sequence[str]] = None, period: str = "1d",
           now_ms: Optional[int] = None, since_ms: Optional[int] = None) -> dict:
    """The report of the named strategies (all when empty) over the period ending at `now_ms`.

    `since_ms` (epoch ms) replaces the period's start; the period is then "custom".
    Raises UnknownStrategy for a name the database does not know, ValueError for a bad period.
    """
    if since_ms is None and period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}, got {period!r}")
    names = check_names(db, names)
    until = wall_ms() if now_ms is None else now_ms
    if since_ms is not None:
        since, period = since_ms, "custom"
    else:
        length = PERIODS[period]
        since = None if length is None else until - length
    stats = [strategy_stats(db, n, since, until) for n in names]
    total = None
    if len(stats) > 1:
        total = {k: sum((s[k] for s in stats if s[k] is not None), ZERO if k not in
                        ("trades", "entries", "exits", "cancels", "stop_losses") else 0) for k in _SUMMED}
        total["name"] = "total"
        quotes = {s["quote"] for s in stats}
        total["quote"] = quotes.pop() if len(quotes) == 1 else ""
    return {"period": period, "from_ts": since, "to_ts": until, "strategies": stats, "total": total}


# ---- rendering
def _human_ms(ms: Optional[int]) -> str:
    if ms is None:
        return "-"
    s = ms // 1000
    if s < 60:
        return f"{ms / 1000:.1f}s"
    d, rem = divmod(s, 86400)
    h, rem = divmod(rem, 3600)
    m, sec = divmod(rem, 60)
    return f"{d}d {h:02d}h" if d else (f"{h}h {m:02d}m" if h else f"{m}m {sec:02d}s")


def _cell(value: Any, kind: str, quote: str = "") -> str:
    if value is None:
        return "-"
    if kind == "dur":
        return _human_ms(value)
    if kind == "money" and isinstance(value, Decimal):
        value = _q(value, Decimal(1).scaleb(-QUOTE_DECIMALS.get(quote, 8)))
    text = format(value, "f") if isinstance(value, Decimal) else str(value)
    return text + "%" if kind == "pct" else text


def title(rep: dict) -> str:
    """The report's heading: its period and time window."""
    start = iso(rep["from_ts"]) if rep["from_ts"] is not None else "the beginning"
    return f"gridctl report, period {rep['period']}: {start} .. {iso(rep['to_ts'])}"


def _columns(rep: dict) -> list[dict]:
    return rep["strategies"] + ([rep["total"]] if rep.get("total") else [])


def _tables(rep: dict, tablefmt: str) -> str:
    cols = _columns(rep)
    rows = [[label] + [_cell(c.get(key), kind, c.get("quote", "")) for c in cols] for key, label, kind in METRICS]
    parts = [tabulate(rows, headers=["metric"] + [c["name"] for c in cols], tablefmt=tablefmt,
                      disable_numparse=True, colalign=["left"] + ["right"] * len(cols))]
    for s in rep["strategies"]:
        head = f"positions by level: {s['name']}"
        if not s["positions"]:
            parts.append(f"{head}: none held")
            continue
        prow = [[p["level"], p["side"], format(p["entry_price"], "f"), format(p["held"], "f")]
                for p in s["positions"]]
        parts.append((f"### {head}" if tablefmt == "github" else head) + "\n\n" + tabulate(
            prow, headers=["level", "side", "entry price", "held"], tablefmt=tablefmt, disable_numparse=True,
            stralign="right"))
    return "\n\n".join(parts)


def _json_default(o: Any) -> Any:
    if isinstance(o, Decimal):
        return format(o, "f")
    raise TypeError(f"not serialisable: {type(o).__name__}")


def _csv_value(v: Any) -> str:
    if v is None:
        return ""
    return format(v, "f") if isinstance(v, Decimal) else str(v)


def render(rep: dict, fmt: str) -> str:
    """The report as text in one of FORMATS (table, csv, json, md); ends with a newline."""
    if fmt == "json":
        return json.dumps(rep, default=_json_default, indent=2) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["strategy", "period", "from", "to"] + [k for k, _, _ in METRICS] + ["positions"])
        for c in _columns(rep):
            pos = " ".join(f"{p['level']}:{p['held']:f}" for p in c.get("positions", []))
            w.writerow([c["name"], rep["period"], iso(rep["from_ts"]), iso(rep["to_ts"])]
                       + [_csv_value(c.get(k)) for k, _, _ in METRICS] + [pos])
        return buf.getvalue()
    if fmt == "md":
        return f"# {title(rep)}\n\n" + _tables(rep, "github") + "\n"
    if fmt == "table":
        return title(rep) + "\n\n" + _tables(rep, "simple") + "\n"
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")


# a report's name starts its file name: no '/', no leading '.' (as strategy names, config/validate.py)
REPORT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def write_report_file(db: Database, report_cfg: Any, now_ms: int, state_dir: Optional[Path] = None) -> Path:
    """Write one scheduled report (a config ReportConfig) and return its path.

    The file is `<dir>/<report name>-<UTC yyyymmdd-HHMM>.<ext>`; a relative `dir` is
    under the state dir (default: the SQLite database's directory) and may not leave it
    ('..'); an absolute one (/... or ~/...) is used as written. Written to a temporary
    name first, so a reader never sees half a report; folders 0700, the file 0600.
    """
    fmt = report_cfg.format
    if fmt not in FORMATS:
        raise ValueError(f"report {report_cfg.name}: format must be one of {', '.join(FORMATS)}")
    # validate refuses these already; checked again because the name and dir become a path
    if not REPORT_NAME.fullmatch(report_cfg.name):
        raise ValueError(f"report name {report_cfg.name!r} cannot be a file name")
    directory = Path(report_cfg.dir).expanduser()
    if not directory.is_absolute() and ".." in directory.parts:
        raise ValueError(f"report {report_cfg.name}: dir {str(report_cfg.dir)!r} leaves the state dir")
    if not directory.is_absolute():
        if state_dir is None:
            dbfile = getattr(db, "database", None)
            if not dbfile or not os.path.exists(str(dbfile)):
                raise ValueError("write_report_file needs state_dir when the database is not a SQLite file")
            state_dir = Path(str(dbfile)).parent
        directory = Path(state_dir) / directory
    private_dir(directory)
    rep = report(db, list(report_cfg.strategies) or None, report_cfg.period, now_ms)
    stamp = datetime.fromtimestamp(now_ms / 1000, tz=timezone.utc).strftime("%Y%m%d-%H%M")
    path = directory / f"{report_cfg.name}-{stamp}.{FORMATS[fmt]}"
    write_private(path, render(rep, fmt))
    return path
