"""From a validated strategy to its market rules and grid in integer units.

Shared by validation, `gridctl plan`, backtests and workers so that all of them
build exactly the same grid.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Optional

from gridctl import datasets
from gridctl.config.model import AccountConfig, StrategyConfig
from gridctl.core.market import MarketRules
from gridctl.core.plan import GridParams, bounds_from_pct
from gridctl.markets import bundled_venues, find_market, load_snapshot


def venue_markets(account: AccountConfig) -> Optional[dict[str, MarketRules]]:
    """Bundled rules of the account's venue, or None when gridctl has no snapshot of it."""
    if account.venue not in bundled_venues():
        return None
    return load_snapshot(account.venue)


def rules_for(account: AccountConfig, symbol: str) -> Optional[MarketRules]:
    """The market a strategy trades, from the bundled snapshot."""
    markets = venue_markets(account)
    return find_market(markets, symbol) if markets is not None else None


def feed_start_price(account: AccountConfig) -> Optional[Decimal]:
    """The first price a paper account's feed will show (None for live venues)."""
    feed = account.feed
    if feed.replay is not None:
        return datasets.first_price(feed.replay)
    return feed.synthetic_price


def grid_params(rules: MarketRules, s: StrategyConfig, start: int) -> GridParams:
    """The strategy's grid in ticks and steps; range_pct resolves around `start`."""
    if s.range_pct is not None:
        lower, upper = bounds_from_pct(rules, start, s.range_pct)
    else:
        assert s.lower is not None and s.upper is not None
        lower, upper = rules.price_to_ticks(s.lower, "up"), rules.price_to_ticks(s.upper, "down")
    return GridParams(
        mode=s.mode, spacing=s.spacing, lower=lower, upper=upper, grids=s.grids,
        leverage=s.leverage, investment=s.investment,
        amount=rules.qty_to_steps(s.amount) if s.amount is not None else None,
    )


def default_start(rules: MarketRules, s: StrategyConfig, account: AccountConfig) -> Optional[int]:
    """Start price in ticks when none is given: the paper feed's first price, else mid-range."""
    price = feed_start_price(account)
    if price is None and s.lower is not None and s.upper is not None:
        price = (s.lower + s.upper) / 2
    return rules.price_to_ticks(price) if price is not None else None
