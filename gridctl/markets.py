"""Bundled market-rules snapshots of real venues, and symbol lookup.

The paper exchange trades with the rules and fees of the venue it is `like`;
the snapshots live in ``gridctl/data/markets/<venue>.json``.
"""

from __future__ import annotations

import json
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from typing import Optional

from gridctl.core.market import MarketRules


def bundled_venues() -> list[str]:
    """Venues with a bundled snapshot."""
    folder = resources.files("gridctl") / "data" / "markets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


@lru_cache(maxsize=None)
def load_snapshot(venue: str) -> dict[str, MarketRules]:
    """All markets of a bundled venue, keyed by ccxt unified symbol."""
    path = resources.files("gridctl") / "data" / "markets" / f"{venue}.json"
    raw = json.loads(path.read_text())
    return {sym: rules_from_dict(sym, m) for sym, m in raw["markets"].items()}


def rules_from_dict(symbol: str, m: dict) -> MarketRules:
    """MarketRules from the snapshot's (decimal-string) fields."""
    return MarketRules(
        symbol=symbol,
        base=m["base"],
        quote=m["quote"],
        tick=Decimal(m["tick"]),
        step=Decimal(m["step"]),
        min_qty=Decimal(m["min_qty"]),
        min_notional=Decimal(m.get("min_notional", "0")),
        contract_size=Decimal(m.get("contract_size", "1")),
        max_leverage=int(m.get("max_leverage", 20)),
        maintenance_margin_rate=Decimal(m.get("maintenance_margin_rate", "0.005")),
        maker_fee=Decimal(m.get("maker_fee", "0.0002")),
        taker_fee=Decimal(m.get("taker_fee", "0.0005")),
        venue_id=m.get("id", ""),
    )


def find_market(markets: dict[str, MarketRules], symbol: str) -> Optional[MarketRules]:
    """Look a symbol up by unified symbol or venue id (SOL/USDC:USDC, SOLUSDC, SOL_USDC_PERP)."""
    if symbol in markets:
        return markets[symbol]
    want = symbol.upper()
    for rules in markets.values():
        if rules.venue_id.upper() == want:
            return rules
    return None
