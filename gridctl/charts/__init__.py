"""Charts: one self-contained HTML file (plotly, its JavaScript inlined) that opens offline.

One layout for `gridctl backtest --html` and `gridctl report --html`:

- top left: the price (candles, or a line when only prices are known) with the grid's
  lines, the fills (buy ▲ green, sell ▼ red) and the stop (✕);
- top right, sharing the price axis: the position held per level;
- middle: the PnL curve; bottom: its drawdown from the running peak.

Money is Decimal everywhere else in gridctl; here values become floats because they are
only drawn. Long series are thinned to at most MAX_POINTS points (candles merged into
wider candles, the PnL sampled at bucket ends, the drawdown kept at each bucket's worst)
so the file stays small and fast; the title says when that happened.

plotly is an optional dependency (`pip install 'gridctl[charts]'`); `require_plotly`
says so when it is missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

MAX_POINTS = 1500  # price bars / curve points drawn
MAX_FILLS = 4000  # fill markers drawn (evenly chosen beyond that)
INSTALL_HINT = "--html needs plotly: pip install 'gridctl[charts]' (or pip install plotly)"


class ChartsUnavailable(RuntimeError):
    """plotly is not installed."""


def require_plotly() -> None:
    """Raise ChartsUnavailable (with the install command) when plotly cannot be imported."""
    try:
        import plotly  # noqa: F401
    except ImportError:
        raise ChartsUnavailable(INSTALL_HINT) from None


@dataclass
class ChartData:
    """Everything one chart draws; timestamps in epoch ms, values as floats."""

    title: str
    ts: np.ndarray  # price timestamps
    close: np.ndarray
    open: Optional[np.ndarray] = None  # with high/low: candles; else a close line
    high: Optional[np.ndarray] = None
    low: Optional[np.ndarray] = None
    grid_lines: Sequence[float] = ()
    fill_ts: Sequence[int] = ()
    fill_price: Sequence[float] = ()
    fill_side: Sequence[str] = ()  # "buy" | "sell"
    pnl_ts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    pnl: np.ndarray = field(default_factory=lambda: np.zeros(0))
    level_price: Sequence[float] = ()
    level_held: Sequence[float] = ()  # at the end; signed: long > 0, short < 0
    level_max: Sequence[float] = ()  # the most each level held at any time (signed), if known
    level_text: Sequence[str] = ()
    stop: Optional[tuple[int, float, str]] = None  # (ts, price, reason)
    quote: str = ""


def _dt(ms: Any) -> np.ndarray:
    return np.asarray(ms, dtype=np.int64).astype("datetime64[ms]")


def buckets(n: int, limit: int = MAX_POINTS) -> np.ndarray:
    """Start indices of at most `limit` equal buckets over n points."""
    size = max(1, -(-n // limit))
    return np.arange(0, n, size)


def thin_candles(c: ChartData) -> tuple[np.ndarray, ...]:
    """(ts, open, high, low, close) merged into at most MAX_POINTS candles."""
    starts = buckets(len(c.ts))
    ends = np.append(starts[1:], len(c.ts)) - 1
    assert c.open is not None and c.high is not None and c.low is not None
    return (c.ts[starts], c.open[starts], np.maximum.reduceat(c.high, starts),
            np.minimum.reduceat(c.low, starts), c.close[ends])


def drawdown(pnl: np.ndarray) -> np.ndarray:
    """The fall from the running peak at each point (≥ 0)."""
    return np.maximum.accumulate(pnl) - pnl if len(pnl) else pnl


def thin_curve(ts: np.ndarray, pnl: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ts, pnl, drawdown) with at most MAX_POINTS points: the PnL at each bucket's end and
    the worst drawdown inside it (so the maximum drawdown survives the thinning)."""
    if not len(pnl):
        return ts, pnl, pnl
    dd = drawdown(pnl)
    starts = buckets(len(pnl))
    ends = np.append(starts[1:], len(pnl)) - 1
    return ts[ends], pnl[ends], np.maximum.reduceat(dd, starts)


def render_html(c: ChartData) -> str:
    """The chart as one HTML page with plotly.js inlined (no network request to open it)."""
    require_plotly()
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=3, cols=2, shared_xaxes=True, column_widths=[0.84, 0.16],
                        row_heights=[0.55, 0.25, 0.2], horizontal_spacing=0.01, vertical_spacing=0.04,
                        specs=[[{}, {}], [{"colspan": 2}, None], [{"colspan": 2}, None]],
                        subplot_titles=("price, grid and fills", "position per level",
                                        f"PnL {c.quote}".strip(), f"drawdown {c.quote}".strip()))
    thinned = len(c.ts) > MAX_POINTS
    if c.open is not None and len(c.ts):
        ts, o, h, lo, cl = thin_candles(c)
        fig.add_trace(go.Candlestick(x=_dt(ts), open=o, high=h, low=lo, close=cl, name="price",
                                     increasing_line_color="#26a69a", decreasing_line_color="#ef5350"), 1, 1)
    elif len(c.ts):
        idx = buckets(len(c.ts))
        fig.add_trace(go.Scatter(x=_dt(c.ts[idx]), y=c.close[idx], mode="lines", name="price",
                                 line={"color": "#455a64", "width": 1.2}), 1, 1)
    if len(c.ts) and len(c.grid_lines):
        t0, t1 = _dt([c.ts[0], c.ts[-1]])
        xs: list = []
        ys: list = []
        for p in c.grid_lines:
            xs += [t0, t1, None]
            ys += [p, p, None]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="grid lines", hoverinfo="skip",
                                 line={"color": "rgba(120,120,160,0.45)", "width": 1, "dash": "dot"}), 1, 1)
    _fills(go, fig, c)
    if c.stop is not None:
        fig.add_trace(go.Scatter(x=_dt([c.stop[0]]), y=[c.stop[1]], mode="markers", name=f"stop ({c.stop[2]})",
                                 marker={"symbol": "x", "size": 14, "color": "black"}), 1, 1)
    if len(c.level_max):
        fig.add_trace(go.Bar(x=list(c.level_max), y=list(c.level_price), orientation="h", name="most held",
                             marker_color="rgba(120,144,156,0.35)", hoverinfo="x+y", showlegend=False), 1, 2)
    if len(c.level_price):
        colors = ["#2e7d32" if h > 0 else "#c62828" for h in c.level_held]
        fig.add_trace(go.Bar(x=list(c.level_held), y=list(c.level_price), orientation="h", name="held at the end",
                             marker_color=colors, hovertext=list(c.level_text) or None, hoverinfo="text+x+y",
                             showlegend=False), 1, 2)
    pts, pnl, dd = thin_curve(c.pnl_ts, c.pnl)
    if len(pnl):
        fig.add_trace(go.Scatter(x=_dt(pts), y=pnl, mode="lines", name="PnL", line={"color": "#1565c0"}), 2, 1)
        fig.add_trace(go.Scatter(x=_dt(pts), y=-dd, mode="lines", name="drawdown", fill="tozeroy",
                                 line={"color": "#c62828", "width": 1}), 3, 1)
    fig.update_yaxes(matches="y", row=1, col=2, showticklabels=False)
    for row in (1, 2, 3):  # one time axis for the three rows, labelled once at the bottom
        fig.update_xaxes(matches="x", row=row, col=1, showticklabels=row == 3)
    note = f"<br><sup>{len(c.ts):,} candles, drawn as at most {MAX_POINTS:,}</sup>" if thinned else ""
    fig.update_layout(title={"text": c.title + note, "font": {"size": 15}},
                      template="plotly_white", height=950, xaxis_rangeslider_visible=False,
                      legend={"orientation": "h", "y": -0.04, "x": 0}, margin={"l": 60, "r": 20, "t": 90, "b": 60},
                      hovermode="closest", bargap=0.15, barmode="overlay")
    return fig.to_html(include_plotlyjs=True, full_html=True, config={"displaylogo": False})


def _fills(go: Any, fig: Any, c: ChartData) -> None:
    n = len(c.fill_ts)
    if not n:
        return
    pick = np.linspace(0, n - 1, MAX_FILLS).astype(int) if n > MAX_FILLS else np.arange(n)
    ts = np.asarray(c.fill_ts, dtype=np.int64)[pick]
    px = np.asarray(c.fill_price, dtype=float)[pick]
    side = np.asarray(c.fill_side)[pick]
    for s, symbol, color in (("buy", "triangle-up", "#2e7d32"), ("sell", "triangle-down", "#c62828")):
        m = side == s
        if m.any():
            fig.add_trace(go.Scatter(x=_dt(ts[m]), y=px[m], mode="markers", name=f"{s} fills",
                                     marker={"symbol": symbol, "size": 8, "color": color,
                                             "line": {"width": 0.5, "color": "white"}}), 1, 1)
