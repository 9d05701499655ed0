"""The figures of `gridctl status` beyond the raw snapshot: grid, cycles, ROI, APR, risk.

`grid_facts` reads what the database knows with the supervisor down (range, grid
count, investment, cycles); `derive` computes the figures that follow from a row
(average entry, liquidation estimate, margin ratio, ROI, APR, distance to the
nearest stop), the same way whether the row's numbers are live or a snapshot.
Money stays Decimal; percentages are Decimal rounded to 0.01.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Optional

from peewee import fn

from gridctl.store.models import Level, Strategy, Trade

ZERO = Decimal(0)
DAY_MS = 86_400_000
# APR needs this much elapsed time to mean anything: before, the keys are null.
APR_MIN_MS = DAY_MS
_PCT = Decimal("0.01")
_RATIO = Decimal("0.0001")


def _json(text: Optional[str]) -> dict:
    try:
        data = json.loads(text) if text else None
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def investment_of(s: Strategy) -> Optional[Decimal]:
    """The configured investment (config snapshot, else grid snapshot), else None."""
    for data in (_json(s.config_json), _json(s.grid_json)):
        if data.get("investment") not in (None, ""):
            return Decimal(str(data["investment"]))
    return None


def grid_facts(s: Strategy, now: int) -> dict:
    """Range, grid count, investment, leverage and cycles of one strategy, from the database."""
    cfg = _json(s.config_json)
    levels = list(Level.select(Level.entry_price, Level.exit_price).where(Level.strategy == s.name))
    prices = [p for lv in levels for p in (lv.entry_price, lv.exit_price) if p is not None]
    since = s.started_ts  # cycles of the current grid
    q = Trade.select(fn.COUNT(Trade.id)).where(Trade.strategy == s.name)
    if since is not None:
        q = q.where(Trade.exit_ts >= since)
    total = q.scalar() or 0
    day = (Trade.select(fn.COUNT(Trade.id))
           .where((Trade.strategy == s.name) & (Trade.exit_ts >= max(now - DAY_MS, since or 0))).scalar() or 0)
    grids = cfg.get("grids")
    return {
        "mode": cfg.get("mode"),
        "lower": min(prices) if prices else None,
        "upper": max(prices) if prices else None,
        "grids": int(grids) if isinstance(grids, (int, str)) and str(grids).isdigit() else None,
        "levels": len(levels),
        "investment": investment_of(s),
        "leverage": cfg.get("leverage"),
        "cycles": total,
        "cycles_24h": day,
    }


def _pct(x: Decimal) -> Decimal:
    r = (x * 100).quantize(_PCT)
    return r if r else ZERO


def liquidation_estimate(position: Decimal, entry: Decimal, collateral: Decimal, mmr: Decimal,
                         contract_size: Decimal = Decimal(1)) -> Optional[Decimal]:
    """Isolated-style estimate (as `gridctl plan`): the collateral as margin, the position as held.

    long:  P = (avg·Q − M) / (Q·(1 − mmr));  short: P = (avg·Q + M) / (Q·(1 + mmr)).
    """
    q = abs(position) * contract_size
    if q == 0:
        return None
    if position > 0:
        p = (entry * q - collateral) / (q * (1 - mmr))
    else:
        p = (entry * q + collateral) / (q * (1 + mmr))
    return max(p, ZERO)


def nearest_stop(price: Optional[Decimal], stops: dict[str, Decimal]) -> tuple[Optional[str], Optional[Decimal]]:
    """(which stop, its distance in % of the price) of the price stop nearest the price."""
    if price is None or price <= 0 or not stops:
        return None, None
    name, level = min(stops.items(), key=lambda kv: abs(kv[1] - price))
    return name, _pct(abs(level - price) / price)


def derive(row: dict, now: int) -> None:
    """Fill in the derived figures of a status row, in place (None where unknown).

    `row` has price, position, unrealized, grid_profit, total_pnl, investment,
    started_ts, as_of_ts; optionally entry_price, maintenance_margin_rate,
    contract_size, stops (name -> price). Elapsed time for the APR runs from the
    grid's start to the figures' as-of time (a stale row does not accrue time).
    """
    price, pos = row.get("price"), row.get("position") or ZERO
    cs = row.get("contract_size") or Decimal(1)
    if row.get("entry_price") is None and pos and price is not None:
        # the ledger's unrealized is pos·(price − avg), so the snapshot gives the average back exactly
        row["entry_price"] = (price - row["unrealized"] / (pos * cs)).quantize(Decimal("0.0001"))
    inv = row.get("investment")
    mmr = row.get("maintenance_margin_rate")
    row["liquidation_price"] = row["margin_ratio"] = None
    if inv and mmr is not None and row.get("entry_price") is not None and pos:
        collateral = inv + row["total_pnl"] - row["unrealized"]  # the position's own PnL is in the formula
        liq = liquidation_estimate(pos, row["entry_price"], collateral, mmr, cs)
        row["liquidation_price"] = None if liq is None else liq.quantize(Decimal("0.0001"))
        equity = inv + row["total_pnl"]
        if price is not None:
            mm = abs(pos) * cs * price * mmr
            row["margin_ratio"] = (mm / equity).quantize(_RATIO) if equity > 0 else None
    elif inv and mmr is not None and not pos:
        row["margin_ratio"] = ZERO
    row["roi_pct"] = _pct(row["total_pnl"] / inv) if inv else None
    start, as_of = row.get("started_ts"), row.get("as_of_ts")
    elapsed = as_of - start if start is not None and as_of is not None else None
    row["elapsed_s"] = None if elapsed is None else max(0, elapsed // 1000)
    if inv and elapsed is not None and elapsed >= APR_MIN_MS:
        years = Decimal(elapsed) / (365 * DAY_MS)
        row["grid_apr_pct"] = _pct(row["grid_profit"] / inv / years)
        row["total_apr_pct"] = _pct(row["total_pnl"] / inv / years)
    else:
        row["grid_apr_pct"] = row["total_apr_pct"] = None
    stops = {k: Decimal(str(v)) for k, v in (row.get("stops") or {}).items()}
    row["stops"] = stops or None
    row["nearest_stop"], row["stop_distance_pct"] = nearest_stop(price, stops)


def decimal_or_none(v: Any) -> Optional[Decimal]:
    """A live figure (a decimal string) as Decimal; None stays None."""
    return None if v is None else Decimal(str(v))
