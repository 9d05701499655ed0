"""One fill of a backtest as the user sees it (--fills-csv, charts)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Optional


@dataclass
class FillRecord:
    """One fill as written to --fills-csv."""

    ts: int
    level: Optional[int]
    side: str
    intent: str
    price: Decimal
    qty: Decimal
    fee: Decimal
    reduce_only: bool
