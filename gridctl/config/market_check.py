"""Checks that need market rules: symbol, leverage, ticks, sizes, client-id tags."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from pathlib import Path as FsPath
from typing import Optional

from gridctl.config.model import AccountConfig, StrategyConfig
from gridctl.config.reader import Reader, did_you_mean
from gridctl.config.yamlsrc import Path
from gridctl.core import clientid
from gridctl.core.grid import GridError, Mode, grid_lines
from gridctl.core.market import MarketRules
from gridctl.core.plan import SizeError, build_grid
from gridctl.config.strategy import default_start, grid_params, venue_markets
from gridctl.markets import find_market


@dataclass(frozen=True)
class MarketSet:
    """Markets to check an account's strategies against instead of the bundled snapshot
    (`validate --online`: the venue's live rules). `where` names them in messages
    ("binanceusdm at http://127.0.0.1:8080"); a symbol in `leverage_unknown` has no
    published max leverage, so its leverage is not checked here (the venue checks it)."""

    markets: dict[str, MarketRules] = field(hash=False)
    where: str
    leverage_unknown: frozenset[str] = frozenset()


@lru_cache(maxsize=1)
def ccxt_exchange_ids() -> frozenset[str]:
    """ccxt's exchange ids, read from its package folder (importing ccxt costs ~1 s)."""
    spec = importlib.util.find_spec("ccxt")
    if spec is None or spec.origin is None:
        return frozenset()
    folder = FsPath(spec.origin).parent
    return frozenset(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))


def check_exchange_id(r: Reader, path: Path, exchange: str) -> None:
    """The exchange must be 'paper' or a ccxt id."""
    ids = ccxt_exchange_ids()
    if ids and exchange not in ids:
        r.error(path, f"unknown exchange '{exchange}'; use 'paper' or a ccxt id such as binanceusdm, "
                f"bybit, okx, backpack{did_you_mean(exchange, ids)}")


def check_cron(r: Reader, path: Path, cron: str) -> None:
    """A 5-field crontab expression apscheduler accepts."""
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(cron)
    except ValueError as exc:
        r.error(path, f"not a valid crontab expression ({exc})")


def _tick_aligned(r: Reader, path: Path, value: Optional[Decimal], rules: MarketRules) -> bool:
    if value is None or rules.is_on_tick(value):
        return True
    near = rules.price(rules.price_to_ticks(value))
    r.error(path, f"{value} is not a multiple of the tick size {rules.tick} (nearest: {near})")
    return False


def _check_prices_vs_range(r: Reader, path: Path, s: StrategyConfig) -> None:
    """Stop-loss and take-profit prices make sense only outside the range."""
    if s.lower is None or s.upper is None:
        return
    rp = path + ("risk",)
    sl, tp = s.risk.stop_loss_price, s.risk.take_profit_price
    if s.mode is Mode.LONG:
        if sl is not None and sl >= s.lower:
            r.error(rp + ("stop_loss_price",), f"must be below lower ({s.lower}) for a long grid")
        if tp is not None and tp <= s.upper:
            r.error(rp + ("take_profit_price",), f"must be above upper ({s.upper}) for a long grid")
    elif s.mode is Mode.SHORT:
        if sl is not None and sl <= s.upper:
            r.error(rp + ("stop_loss_price",), f"must be above upper ({s.upper}) for a short grid")
        if tp is not None and tp >= s.lower:
            r.error(rp + ("take_profit_price",), f"must be below lower ({s.lower}) for a short grid")
    else:
        for key, v in (("stop_loss_price", sl), ("take_profit_price", tp)):
            if v is not None and s.lower < v < s.upper:
                r.error(rp + (key,), f"must be outside the range {s.lower}..{s.upper}")


def max_grids(params) -> int:
    """The largest grid count whose lines all fall on distinct ticks (binary search)."""
    lo, hi = 1, max(1, params.upper - params.lower)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        try:
            grid_lines(params.lower, params.upper, mid, params.spacing)
            lo = mid
        except GridError:
            hi = mid - 1
    return lo


def _check_grid(r: Reader, path: Path, s: StrategyConfig, rules: MarketRules, account: AccountConfig) -> None:
    start = default_start(rules, s, account)
    if start is None:
        return  # range_pct on a live venue: checked at start, when the price is known
    params = grid_params(rules, s, start)
    try:
        levels = build_grid(rules, params, start)
    except SizeError as exc:
        if s.amount is not None:
            r.error(path + ("amount",), f"{s.amount} {rules.base} per level is below the market minimum "
                    f"of {exc.required} {rules.base} (min qty {rules.min_qty}, min notional {rules.min_notional} "
                    f"{rules.quote})")
        else:
            r.error(path + ("investment",), f"{s.investment} gives {exc.per_level} {rules.base} per level, "
                    f"below the market minimum of {exc.required} {rules.base} (min qty {rules.min_qty}, "
                    f"min notional {rules.min_notional} {rules.quote}); the minimum investment that works "
                    f"is {exc.minimum} {rules.quote}")
        return
    except GridError:
        lo, hi = rules.price(params.lower), rules.price(params.upper)
        r.error(path + ("grids",), f"{s.grids} grids between {lo} and {hi} put lines closer than one tick "
                f"({rules.tick}); use at most {max_grids(params)} grids or a wider range")
        return
    if s.max_position is not None and levels and rules.qty_to_steps(s.max_position) < levels[0].size:
        r.error(path + ("max_position",), f"{s.max_position} is below one level's size "
                f"({rules.qty(levels[0].size)} {rules.base}): no entry could ever be placed")


def _available(markets: dict[str, MarketRules], account: AccountConfig) -> str:
    """'available: A, B, C', or where to see them when a live venue lists too many to name."""
    if len(markets) <= 12:
        return f"available: {', '.join(sorted(markets))}"
    return f"gridctl markets {account.name} lists its {len(markets)} markets"


def _check_strategy(r: Reader, s: StrategyConfig, account: AccountConfig, live: Optional[MarketSet] = None) -> None:
    path = ("strategies", s.name)
    # grid math on fields that already failed would only repeat (or garble) their errors
    broken = {p.path[2] for p in r.problems if p.path[:2] == path and len(p.path) > 2}
    markets = live.markets if live is not None else venue_markets(account)
    if markets is None:
        return  # a live venue without a bundled snapshot: its markets are checked at start
    rules = find_market(markets, s.symbol)
    if rules is None and live is None and not account.is_paper:
        return  # the snapshot bundles a few of a live venue's markets: the others are checked online and at start
    if rules is None:
        r.error(path + ("symbol",), f"no market '{s.symbol}' on {live.where if live else account.venue}; "
                f"{_available(markets, account)}{did_you_mean(s.symbol, markets)}")
        return
    leverage_known = live is None or rules.symbol not in live.leverage_unknown
    if leverage_known and s.leverage > rules.max_leverage:
        r.error(path + ("leverage",), f"{s.leverage}x exceeds the market's maximum leverage "
                f"({rules.max_leverage}x for {rules.symbol})")
    aligned = all([_tick_aligned(r, path + ("lower",), s.lower, rules),
                   _tick_aligned(r, path + ("upper",), s.upper, rules)])
    if s.amount is not None and s.amount % rules.step != 0:
        r.error(path + ("amount",), f"{s.amount} is not a multiple of the lot step {rules.step}")
        return
    if s.max_position is not None and s.max_position % rules.step != 0:
        r.error(path + ("max_position",), f"{s.max_position} is not a multiple of the lot step {rules.step}")
    _check_prices_vs_range(r, path, s)
    if broken & {"grids", "lower", "upper", "range_pct", "investment", "amount", "leverage"}:
        return
    if aligned and (s.range_pct is not None or (s.lower is not None and s.upper is not None and s.lower < s.upper)):
        _check_grid(r, path, s, rules, account)


def _check_tags(r: Reader, accounts: dict[str, AccountConfig], strategies: dict[str, StrategyConfig]) -> None:
    """Two strategies of one account must not share a client-id tag (fills go by tag)."""
    seen: dict[tuple[str, object], str] = {}
    for s in strategies.values():
        acc = accounts.get(s.account)
        if acc is None:
            continue
        tag = clientid.strategy_tag(s.name)
        key = (s.account, clientid.tag_bits(tag) if acc.venue == "backpack" else tag)
        if key in seen:
            r.error(("strategies", s.name), f"its client order id tag collides with strategy "
                    f"'{seen[key]}' on account '{s.account}'; rename one of them")
        seen[key] = s.name


def _check_shared_symbols(r: Reader, accounts: dict[str, AccountConfig],
                          strategies: dict[str, StrategyConfig]) -> None:
    """One-way accounts take one strategy per symbol: the venue nets their positions into one,
    and a reduceOnly exit of one can be rejected because of the other's position. Hedge
    accounts take any number per leg: each keeps its own virtual position, and their sum is
    reconciled against the leg's (gridctl.core.virtual)."""
    seen: dict[tuple[str, str], str] = {}
    for s in strategies.values():
        acc = accounts.get(s.account)
        if acc is None or not s.symbol or acc.position_mode == "hedge":
            continue
        other = seen.setdefault((s.account, s.symbol), s.name)
        if other != s.name:
            r.error(("strategies", s.name), f"it and strategy '{other}' both trade {s.symbol} on account "
                    f"'{s.account}' in one-way mode: the venue nets their positions into one, and a reduceOnly "
                    f"exit of one can be rejected because of the other's position; use position_mode: hedge "
                    f"(any number of strategies per leg, each with its own virtual position) or separate accounts")


def check_strategies(r: Reader, accounts: dict[str, AccountConfig], strategies: dict[str, StrategyConfig],
                     live: Optional[dict[str, MarketSet]] = None) -> None:
    """Every check that needs market rules, for every strategy whose account resolved; against
    `live[account name]` where given, else the bundled snapshot."""
    for s in strategies.values():
        acc = accounts.get(s.account)
        if acc is not None and s.symbol:
            _check_strategy(r, s, acc, (live or {}).get(acc.name))
    _check_tags(r, accounts, strategies)
    _check_shared_symbols(r, accounts, strategies)
