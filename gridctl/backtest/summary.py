"""Backtest figures: what `gridctl backtest` prints, with money as Decimal."""

from __future__ import annotations

import csv
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Optional

from gridctl.backtest.runner import Backtest

DAY_MS = 86_400_000
Q = Decimal("0.0001")


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")


def summarize(bt: Backtest, investment: Decimal, interval_ms: int) -> dict[str, Any]:
    """Every figure of a finished backtest under stable keys."""
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
        "roi_pct": (total / invest * 100).quantize(Decimal("0.01")),
        "grid_yield_annual_pct": (led.grid_profit / invest / days * 365 * 100).quantize(Decimal("0.01")),
        "max_drawdown": s.max_drawdown.quantize(Q),
        "max_position": step_qty * s.max_abs_position,
        "avg_position": (step_qty * s.sum_abs_position / n).quantize(step_qty) if n else Decimal(0),
        "time_in_position_pct": (Decimal(s.candles_in_position) / n * 100).quantize(Decimal("0.1")) if n else Decimal(0),
        "final_position": step_qty * led.position,
        "stop_reason": e.stop_reason,
    }


LABELS = [
    ("candles", "candles"), ("start", "from"), ("end", "to"), ("fills", "fills"),
    ("cycles", "completed cycles"), ("grid_profit", "grid profit"), ("other_realized", "other realized"),
    ("fees", "fees"), ("funding", "funding"), ("unrealized_pnl", "unrealized"), ("total_pnl", "total PnL"),
    ("roi_pct", "return on investment %"), ("grid_yield_annual_pct", "grid yield % / year"),
    ("max_drawdown", "max drawdown"), ("max_position", "max |position|"), ("avg_position", "avg |position|"),
    ("time_in_position_pct", "time in position %"), ("final_position", "final position"),
    ("stop_reason", "stop reason"),
]


def render(name: str, figures: dict[str, Any]) -> str:
    """The figures as an aligned two-column text block."""
    width = max(len(label) for _, label in LABELS)
    lines = [f"backtest {name}"]
    for key, label in LABELS:
        value = figures.get(key)
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
