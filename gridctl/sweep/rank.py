"""Ranking a sweep's results and turning them into rows (table, JSON objects, CSV).

Candidates are ranked by one backtest figure: gains high to low (total PnL by default),
costs and risk low to high (max drawdown, fees, rejected orders, position sizes). A
figure that is null (an APR under a week of data) ranks last; ties keep the order of
the product, so the ranking never depends on which process finished first.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Optional

from gridctl.backtest.summary import LABELS
from gridctl.sweep.candidates import Candidate
from gridctl.sweep.run import Outcome

ASCENDING = {"max_drawdown", "fees", "rejects", "max_position", "avg_position", "time_in_position_pct"}
SORT_KEYS = ["total_pnl", "roi_pct", "grid_profit", "grid_apr_pct", "total_apr_pct", "grid_yield",
             "realized_pnl", "unrealized_pnl", "funding", "hold_pnl", "fills", "cycles", "max_drawdown",
             "fees", "rejects", "max_position", "avg_position", "time_in_position_pct"]
ALIASES = {"grid_yield": "grid_apr_pct"}  # the name for the annualised grid yield
# the columns of the text table (JSON and CSV carry every figure)
TABLE = ["total_pnl", "roi_pct", "grid_profit", "fees", "funding", "unrealized_pnl", "max_drawdown",
         "fills", "cycles", "grid_apr_pct", "stop_reason"]
_LABEL = dict(LABELS)


def figure_key(sort: str) -> str:
    """The summary key a --sort name ranks by."""
    return ALIASES.get(sort, sort)


def ranked(outcomes: list[Outcome], sort: str) -> list[Outcome]:
    """The successful outcomes, best first by `sort`."""
    key = figure_key(sort)
    sign = 1 if key in ASCENDING else -1

    def order(o: Outcome) -> tuple:
        v = o.figures.get(key) if o.figures else None
        return (v is None, sign * Decimal(v) if v is not None else 0, o.index)

    return sorted((o for o in outcomes if o.figures is not None), key=order)


def column(key: str) -> str:
    """A swept key's name in JSON and CSV: itself, unless a backtest figure has that name
    (max_position is both a strategy key and a figure): then ``set.KEY``."""
    return f"set.{key}" if key in _LABEL or key in ("rank", "warnings", "error") else key


def row(rank: Optional[int], c: Candidate, o: Optional[Outcome]) -> dict[str, Any]:
    """One result as a flat object: rank, the swept values, the figures (or the error)."""
    out: dict[str, Any] = {"rank": rank}
    out.update({column(k): v for k, v in c.values.items()})
    if o is not None and o.figures is not None:
        out.update(o.figures)
        out["warnings"] = list(o.warnings)
    else:
        out["error"] = c.error if c.error is not None else (o.error if o is not None else None)
    return out


def table_header(keys: list[str]) -> list[str]:
    return ["rank", *keys, *(_LABEL.get(k, k) for k in TABLE)]


def table_row(rank: int, c: Candidate, o: Outcome) -> list[Any]:
    f = o.figures or {}
    return [rank, *c.values.values(), *("-" if f.get(k) is None else f.get(k) for k in TABLE)]
