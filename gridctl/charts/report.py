"""The chart of one strategy's recorded history (`gridctl report NAME --html`)."""

from __future__ import annotations

from typing import Optional

import numpy as np
from peewee import Database

from gridctl.charts import ChartData, render_html
from gridctl.report import quote_of
from gridctl.store.models import Equity, FillRow, Level, Strategy


def report_chart(db: Database, name: str, since: Optional[int], until: int, title: str) -> str:
    """One self-contained HTML page from the store: the price and PnL of the equity
    snapshots, the grid's lines, the fills and the position held per level now."""
    s = Strategy.get(Strategy.name == name)
    eq = Equity.select(Equity.ts, Equity.price, Equity.total_pnl).where(Equity.strategy == name)
    fills = FillRow.select(FillRow.ts, FillRow.price, FillRow.side).where(FillRow.strategy == name)
    if since is not None:
        eq, fills = eq.where(Equity.ts >= since), fills.where(FillRow.ts >= since)
    rows = list(eq.where(Equity.ts < until).order_by(Equity.ts, Equity.id).tuples())
    priced = [r for r in rows if r[1] is not None]
    fl = list(fills.where(FillRow.ts < until).order_by(FillRow.ts, FillRow.id).tuples())
    levels = list(Level.select().where(Level.strategy == name).order_by(Level.entry_price))
    lines = sorted({float(lv.entry_price) for lv in levels}
                   | {float(lv.exit_price) for lv in levels if lv.exit_price is not None})
    return render_html(ChartData(
        title=title,
        ts=np.array([r[0] for r in priced], dtype=np.int64),
        close=np.array([float(r[1]) for r in priced]),
        grid_lines=lines,
        fill_ts=[f[0] for f in fl], fill_price=[float(f[1]) for f in fl], fill_side=[f[2] for f in fl],
        pnl_ts=np.array([r[0] for r in rows], dtype=np.int64),
        pnl=np.array([float(r[2] or 0) for r in rows]),
        level_price=[float(lv.entry_price) for lv in levels],
        level_held=[float(lv.held) * (1 if lv.side == "buy" else -1) for lv in levels],
        level_text=[f"level {lv.idx} {lv.side}" for lv in levels],
        quote=quote_of(s)))
