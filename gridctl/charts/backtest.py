"""The chart of a finished backtest (`gridctl backtest --html`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from gridctl.backtest.runner import Backtest
from gridctl.charts import ChartData, render_html


def pnl_curve(bt: Backtest) -> np.ndarray:
    """The total PnL at each candle's close (floats, for drawing), from the runner's segments."""
    n = len(bt.data)
    out = np.zeros(n)
    for first, base, tick_value, x in bt.series.pnl_segments:
        out[first:first + len(x)] = float(base) + float(tick_value) * x.astype(float)
    return out


def level_positions(bt: Backtest) -> tuple[dict[int, float], dict[int, int]]:
    """(the most each level held at any time, signed; fills per level) from the fills."""
    held: dict[int, float] = {}
    most: dict[int, float] = {}
    count: dict[int, int] = {}
    for f in bt.fills:
        if f.level is None:  # a stop's close flattens every level
            held = {k: 0.0 for k in held}
            continue
        q = float(f.qty) * (1 if f.side == "buy" else -1)
        held[f.level] = held.get(f.level, 0.0) + q
        if abs(held[f.level]) > abs(most.get(f.level, 0.0)):
            most[f.level] = held[f.level]
        count[f.level] = count.get(f.level, 0) + 1
    return most, count


def backtest_chart(name: str, symbol: str, bt: Backtest, figures: dict[str, Any]) -> str:
    """One self-contained HTML page: price, grid lines, fills, stop, PnL, drawdown, levels."""
    e, d = bt.engine, bt.data
    rules = e.rules
    tick = float(rules.tick)
    lines = sorted({lv.spec.entry for lv in e.levels.values()} | {lv.spec.exit for lv in e.levels.values()})
    most, count = level_positions(bt)
    specs = sorted((lv for lv in e.levels.values()), key=lambda lv: lv.spec.entry)
    step = float(rules.qty(1))
    sign = {"buy": 1, "sell": -1}
    quote = symbol.split(":")[-1] if ":" in symbol else symbol.split("/")[-1]
    stop = None
    if bt.stop_at is not None:
        stop = (bt.stop_at[0], bt.stop_at[1] * tick, e.stop_reason or "stop")
    title = (f"backtest {name} · {symbol} · {figures.get('start')} → {figures.get('end')} UTC<br>"
             f"total PnL {figures.get('total_pnl')} {quote} · holding {figures.get('hold_pnl')} {quote} · "
             f"max drawdown {figures.get('max_drawdown')} {quote}")
    return render_html(ChartData(
        title=title, ts=d.ts, open=d.open * tick, high=d.high * tick, low=d.low * tick, close=d.close * tick,
        grid_lines=[p * tick for p in lines],
        fill_ts=[f.ts for f in bt.fills], fill_price=[float(f.price) for f in bt.fills],
        fill_side=[f.side for f in bt.fills],
        pnl_ts=d.ts, pnl=pnl_curve(bt),
        level_price=[lv.spec.entry * tick for lv in specs],
        level_held=[sign[lv.spec.side.value] * lv.held * step for lv in specs],
        level_max=[most.get(lv.spec.index, 0.0) for lv in specs],
        level_text=[f"level {lv.spec.index} {lv.spec.side.value}: {count.get(lv.spec.index, 0)} fills"
                    for lv in specs],
        stop=stop, quote=quote))
