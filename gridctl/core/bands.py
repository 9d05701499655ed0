"""Price bands: the prices between which an engine decides nothing new.

The backtest walks the simulated price from band edge to band edge (and the fast
mode skips whole candles that stay inside), so the band must cover every price at
which the engine would act: entries that start to rest, the trigger, price stops
and the money stops for the position held.
"""

from __future__ import annotations

from bisect import bisect_left
from decimal import Decimal

from gridctl.core.engine import PAUSED, RUNNING, WAITING, GridEngine
from gridctl.core.grid import Side
from gridctl.core.risk import NEVER_HI, NEVER_LO, pnl_band, price_band


def engine_band(e: GridEngine, market: int) -> tuple[int, int]:
    """(lo, hi): while the price stays strictly inside, the engine decides nothing new.

    Resting orders are the exchange's band, not the engine's.
    """
    lo, hi = price_band(e.cfg.limits) if e.status in (RUNNING, PAUSED) else (NEVER_LO, NEVER_HI)
    if e.status == WAITING and e.cfg.trigger is not None:
        t = e.cfg.trigger
        lo, hi = (lo, min(hi, t)) if market < t else (max(lo, t), hi)
    if e.status == RUNNING:
        for lv in e.levels.values():
            if lv.exiting or lv.held >= lv.spec.size:
                continue
            entry = lv.spec.entry
            if lv.spec.side is Side.BUY and entry >= market:
                hi = min(hi, entry + 1)
            elif lv.spec.side is Side.SELL and entry <= market:
                lo = max(lo, entry - 1)
    if e.status in (RUNNING, PAUSED):
        lo, hi = money_band(e, lo, hi)
    return lo, hi


def bucket_band(e: GridEngine, market: int) -> tuple[int, int]:
    """(lo, hi): the prices between which e.price_bucket(market) stays the same."""
    prices = e.level_prices()
    i = bisect_left(prices, market)
    if i < len(prices) and prices[i] == market:
        return market, market
    return (prices[i - 1] if i > 0 else NEVER_LO), (prices[i] if i < len(prices) else NEVER_HI)


def money_band(e: GridEngine, lo: int, hi: int) -> tuple[int, int]:
    """Narrow (lo, hi) to where a money stop would fire for the current, fixed position."""
    lim, led = e.cfg.limits, e.ledger
    tv = e.rules.tick * e.rules.step * e.rules.contract_size
    lots = [lot for lot in led.lots.values() if lot.qty]
    if lim.max_loss is not None or lim.take_profit is not None:
        net = sum(lot.sign * lot.qty for lot in lots)
        base = led.realized - led.fees + led.funding - sum((lot.sign * lot.cost for lot in lots), Decimal(0))
        a, b = pnl_band(lim.max_loss, lim.take_profit, base, Decimal(net), tv)
        lo, hi = max(lo, a), min(hi, b)
    if lim.max_level_loss is not None:
        for lot in lots:
            a, b = pnl_band(lim.max_level_loss, None, -lot.sign * lot.cost, Decimal(lot.sign * lot.qty), tv)
            lo, hi = max(lo, a), min(hi, b)
    return lo, hi
