"""Backtest figures: what `gridctl backtest` prints, with money as Decimal.

Honest figures: yields are annualised over the real elapsed time and only when it is
at least MIN_ANNUALISE_DAYS (a year extrapolated from hours says nothing); rejected
orders are counted by the venue's reason; the stop's time and price are shown; and
the PnL of simply holding is given beside the grid's (see `hold_pnl`).
"""

from __future__ import annotations

import csv
import re
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Optional

from gridctl.backtest.runner import Backtest
from gridctl.core.grid import Mode

DAY_MS = 86_400_000
Q = Decimal("0.0001")
PCT = Decimal("0.01")
MIN_ANNUALISE_DAYS = Decimal(7)  # under a week of data no yield is annualised (null / "-"): ×52 or more is noise
_REJECT = re.compile(r"^order \S+ rejected: (\S+)$")


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")


def rejects_by_reason(events: list) -> dict[str, int]:
    """Orders the simulated venue refused, counted by reason code (from the backtest's
    `order ID rejected: REASON` warnings), most frequent first."""
    counts: dict[str, int] = {}
    for ev in events:
        m = _REJECT.match(getattr(ev, "message", "")) if getattr(ev, "kind", None) == "warn" else None
        if m:
            counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def hold_pnl(mode: Optional[Mode], investment: Decimal, leverage: int, first_open: Decimal,
             last_close: Decimal) -> Decimal:
    """The PnL of holding instead of gridding, over the same candles.

    The benchmark holds the grid's whole notional (investment × leverage) from the first
    open to the last close: long for a long grid, short for a short grid, nothing for a
    neutral grid (which starts flat and is meant to stay near flat). Gross: no fees, no
    funding. quantity = investment × leverage / first open.
    """
    if mode is None or mode is Mode.NEUTRAL or first_open <= 0:
        return Decimal(0)
    qty = investment * leverage / first_open
    sign = 1 if mode is Mode.LONG else -1
    return sign * qty * (last_close - first_open)


def annualised(amount: Decimal, investment: Decimal, days: Decimal) -> Optional[Decimal]:
    """`amount` as a % of the investment per year, or None under MIN_ANNUALISE_DAYS."""
    if days < MIN_ANNUALISE_DAYS or investment <= 0:
        return None
    return (amount / investment / days * 365 * 100).quantize(PCT)


def summarize(bt: Backtest, investment: Decimal, interval_ms: int, mode: Optional[Mode] = None,
              leverage: int = 1) -> dict[str, Any]:
    """Every figure of a finished backtest under stable keys (`mode` and `leverage` for
    the hold benchmark; without a mode it is 0)."""
    e, d, s = bt.engine, bt.data, bt.series
    led, rules = e.ledger, e.rules
    n = len(d)
    last_mark = int(bt._marks(n - 1, n)[0]) if n else bt.sim.price
    unrealized = led.unrealized(last_mark)
    total = led.total_pnl(last_mark)
    start_ms, end_ms = (int(d.ts[0]), int(d.ts[-1]) + interval_ms) if n else (0, 0)
    days = Decimal(max(end_ms - start_ms, 1)) / DAY_MS
    invest = investment if investment > 0 else Decimal(1)
    step_qty = rules.qty(1)
    rejects = rejects_by_reason(bt.events_of_kind("warn"))
    hold = hold_pnl(mode, investment, leverage, rules.price(int(d.open[0])), rules.price(int(d.close[-1]))) \
        if n else Decimal(0)
    stop_ts, stop_price = bt.stop_at if bt.stop_at is not None else (None, None)
    grid_apr = annualised(led.grid_profit, investment, days)
    return {
        "candles": n,
        "start": _iso(start_ms) if n else None,
        "end": _iso(end_ms) if n else None,
        "days": days.quantize(Decimal("0.01")),
        "fills": led.fills,
        "cycles": len(e.trades),
        "grid_profit": led.grid_profit.quantize(Q),
        "other_realized": led.other_realized.quantize(Q),
        "realized_pnl": led.realized.quantize(Q),
        "fees": led.fees.quantize(Q),
        "funding": led.funding.quantize(Q),
        "unrealized_pnl": unrealized.quantize(Q),
        "total_pnl": total.quantize(Q),
        "investment": investment,
        "roi_pct": (total / invest * 100).quantize(PCT),
        "hold_pnl": hold.quantize(Q),
        "hold_roi_pct": (hold / invest * 100).quantize(PCT),
        "grid_apr_pct": grid_apr,
        "total_apr_pct": annualised(total, investment, days),
        "grid_yield_annual_pct": grid_apr,  # the former name of grid_apr_pct
        "rejects": sum(rejects.values()),
        "rejects_by_reason": rejects,
        "max_drawdown": s.max_drawdown.quantize(Q),
        "max_position": step_qty * s.max_abs_position,
        "avg_position": (step_qty * s.sum_abs_position / n).quantize(step_qty) if n else Decimal(0),
        "time_in_position_pct": (Decimal(s.candles_in_position) / n * 100).quantize(Decimal("0.1")) if n else Decimal(0),
        "final_position": step_qty * led.position,
        "stop_reason": e.stop_reason,
        "stop_time": _iso(stop_ts) if stop_ts is not None else None,
        "stop_price": rules.price(stop_price) if stop_price is not None else None,
    }


LABELS = [
    ("candles", "candles"), ("start", "from"), ("end", "to"), ("fills", "fills"),
    ("cycles", "completed cycles"), ("grid_profit", "grid profit"), ("other_realized", "other realized"),
    ("fees", "fees"), ("funding", "funding"), ("unrealized_pnl", "unrealized"), ("total_pnl", "total PnL"),
    ("roi_pct", "return on investment %"), ("hold_pnl", "PnL of holding"),
    ("hold_roi_pct", "holding return %"), ("grid_apr_pct", "grid APR %"), ("total_apr_pct", "total APR %"),
    ("rejects", "rejected orders"),
    ("max_drawdown", "max drawdown"), ("max_position", "max |position|"), ("avg_position", "avg |position|"),
    ("time_in_position_pct", "time in position %"), ("final_position", "final position"),
    ("stop_reason", "stop reason"), ("stop_time", "stop time"), ("stop_price", "stop price"),
]


def render(name: str, figures: dict[str, Any]) -> str:
    """The figures as an aligned two-column text block."""
    width = max(len(label) for _, label in LABELS)
    lines = [f"backtest {name}"]
    for key, label in LABELS:
        value = figures.get(key)
        if key == "rejects" and figures.get("rejects_by_reason"):
            value = f"{value} (" + ", ".join(f"{r} {c}" for r, c in figures["rejects_by_reason"].items()) + ")"
        lines.append(f"  {label:<{width}}  {'-' if value is None else value}")
    return "\n".join(lines)


def write_fills_csv(bt: Backtest, path: Path) -> None:
    """One row per fill."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", "level", "side", "intent", "price", "qty", "fee", "reduce_only"])
        for f in bt.fills:
            w.writerow([_iso_full(f.ts), "" if f.level is None else f.level, f.side, f.intent, f.price, f.qty,
                        f.fee, str(f.reduce_only).lower()])


def write_trades_csv(bt: Backtest, path: Path) -> None:
    """One row per completed level cycle."""
    rules = bt.engine.rules
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["level", "side", "entry_time", "exit_time", "entry_price", "exit_price", "qty",
                    "profit", "fees", "net_profit", "hold_minutes"])
        for t in bt.engine.trades:
            w.writerow([t.level, t.side.value, _iso_full(t.entry_ts), _iso_full(t.exit_ts),
                        t.entry_price.quantize(rules.tick), t.exit_price.quantize(rules.tick), t.qty,
                        t.profit.quantize(Q), t.fees.quantize(Q), t.net_profit.quantize(Q),
                        t.hold_ms // 60000])


def _iso_full(ms: Optional[int]) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
