"""From a validated strategy to its market rules and grid in integer units.

Shared by validation, `gridctl plan`, backtests and workers so that all of them
build exactly the same grid.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Optional

from gridctl import datasets
from gridctl.config.model import AccountConfig, Config, StrategyConfig
from gridctl.core import clientid
from gridctl.core.engine import EngineConfig
from gridctl.core.market import MarketRules
from gridctl.core.plan import GridParams, bounds_from_pct
from gridctl.core.risk import RiskLimits, price_limits
from gridctl.exchange.venues import quirk
from gridctl.markets import bundled_venues, find_market, load_snapshot


def settings_hash(config: Config, name: str) -> str:
    """A fingerprint of everything that defines strategy `name`: its settings and its account's.

    The one hash of a strategy's settings: the worker stores it in the strategies
    table and the supervisor compares it on reload to refuse changes under a
    running grid, so both must compute it the same way. The account is included
    because its feed, venue and position mode shape the grid too; secrets stay out
    (`Secret.__repr__` masks them).
    """
    s = config.strategies[name]
    return strategy_hash(s, config.accounts.get(s.account))


def strategy_hash(s: StrategyConfig, account: Optional[AccountConfig]) -> str:
    """settings_hash of one strategy's settings and its account's (also of settings changed live)."""
    return hashlib.sha256(repr((s, account)).encode()).hexdigest()[:16]


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
    """The first price a paper account's feed will show (None for live venues and live feeds:
    their start price is the venue's last price when the worker starts)."""
    feed = account.feed
    if feed.live is not None:
        return None
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


def engine_config(rules: MarketRules, s: StrategyConfig, account: AccountConfig,
                  params: GridParams) -> EngineConfig:
    """The engine's configuration for a strategy (prices in ticks)."""
    r = s.risk
    ticks = lambda p: rules.price_to_ticks(p) if p is not None else None  # noqa: E731
    prices = price_limits(s.mode, params.lower, params.upper, r.stop_loss_pct, ticks(r.stop_loss_price),
                          r.take_profit_pct, ticks(r.take_profit_price))
    return EngineConfig(
        mode=s.mode, lower=params.lower, upper=params.upper,
        max_position=rules.qty_to_steps(s.max_position) if s.max_position is not None else None,
        hedge=account.position_mode == "hedge", post_only=s.post_only, on_stop=r.on_stop,
        trigger=ticks(s.trigger_price), initial_position=s.initial_position,
        limits=RiskLimits(**prices, max_loss=r.max_loss, take_profit=r.take_profit,
                          max_level_loss=r.max_level_loss),
        tag=clientid.strategy_tag(s.name), id_format=quirk(account.venue, "client_id"),
        margin_ratio=(r.margin_ratio.warn, r.margin_ratio.reduce, r.margin_ratio.close),
        partial_fill_timeout_ms=s.partial_fill_timeout_ms,
    )
