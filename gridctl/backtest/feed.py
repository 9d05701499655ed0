"""Which data a backtest runs on, and does it fit the strategy?

By default a backtest replays the account's own feed: a replay file (`builtin:` or a
CSV) with the account's funding file, or, for a synthetic feed, the same seeded
candles the paper exchange generates first. A live feed, and a real venue's account,
have no history to replay: the user must give `--data`.

The fit checks warn when the candles cannot be the market the strategy trades: their
prices never enter the grid's range (e.g. an XRP grid on SOL candles trades nothing),
or the file's name names another coin.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Optional

from gridctl.config.model import AccountConfig
from gridctl.core.market import MarketRules
from gridctl.sim.sources import TickCandles, synthetic_candles

# The paper exchange's synthetic feed: 1-minute candles, generated 10,000 at a time from
# timestamp 0, chunk k seeded seed + k (gridctl/exchange/paper.py CandleFeed). A backtest
# replays the first chunk: the candles a paper worker on that account trades first.
SYNTHETIC_CANDLES = 10_000
SYNTHETIC_INTERVAL_MS = 60_000
# the data's prices and the grid's range differ by this factor or more: another market
FAR_FACTOR = Decimal(2)
_SYMBOL_IN_NAME = re.compile(r"(?<![A-Z0-9])([A-Z0-9]{2,12}?)[-_]?(?:USDT|USDC|BUSD|USD|PERP)(?![A-Z])")


class NoBacktestFeed(ValueError):
    """The account's feed has no history to replay (a live feed or a real venue)."""


@dataclass
class FeedData:
    """What the account's feed says to replay: a candles file, or generated candles."""

    candles: Optional[Path] = None
    synthetic: Optional[TickCandles] = None
    funding: Optional[Path] = None
    label: str = ""  # how the warnings name the data


def account_feed(account: AccountConfig, rules: MarketRules) -> FeedData:
    """The candles (and funding) an account's paper feed replays; NoBacktestFeed if none."""
    feed = account.feed
    if not account.is_paper:
        raise NoBacktestFeed(f"account {account.name} trades on {account.exchange}, which has no history "
                             f"to replay; give --data CANDLES.csv (or builtin:NAME)")
    if feed.live is not None:
        raise NoBacktestFeed(f"account {account.name} has a live feed ({feed.live}), which has no history "
                             f"to replay; give --data CANDLES.csv (or builtin:NAME)")
    if feed.replay is not None:
        return FeedData(candles=feed.replay, funding=feed.funding, label=feed.replay.name)
    assert feed.synthetic_price is not None
    seed = feed.synthetic_seed or 7  # as the paper exchange: seed 0 means the default, 7
    candles = synthetic_candles(seed, feed.synthetic_price, feed.synthetic_volatility, SYNTHETIC_CANDLES,
                                SYNTHETIC_INTERVAL_MS, 0, rules)
    return FeedData(synthetic=candles, funding=feed.funding, label=f"synthetic(seed {seed})")


def symbol_base(symbol: str) -> str:
    """The base coin of a ccxt symbol: 'XRP' of 'XRP/USDT:USDT' (also of 'XRPUSDT', 'XRP-PERP')."""
    head = symbol.split("/")[0].split(":")[0].upper()
    m = _SYMBOL_IN_NAME.fullmatch(head)
    return m.group(1) if m else head


def name_warnings(file_name: str, symbol: str) -> list[str]:
    """A warning when the data file's name names a coin other than the strategy's."""
    stem = Path(file_name).stem.upper()
    named = {m.group(1) for m in _SYMBOL_IN_NAME.finditer(stem)}
    base = symbol_base(symbol)
    if not named or base in named:
        return []
    other = ", ".join(sorted(named))
    return [f"data {file_name} looks like {other} candles, but {symbol} trades {base}; "
            f"check --data (or the account's feed)"]


def range_warnings(label: str, rules: MarketRules, low: int, high: int, lower: int, upper: int) -> list[str]:
    """A warning when the data's prices (`low`..`high`, ticks) never enter the grid's range
    (`lower`..`upper`, ticks); it says so louder when they are FAR_FACTOR or more apart."""
    if high >= lower and low <= upper:
        return []
    p = rules.price
    lo, hi, glo, ghi = p(low), p(high), p(lower), p(upper)
    where = "above" if low > upper else "below"
    out = (f"the data's prices ({lo} to {hi} in {label}) stay {where} the grid's range ({glo} to {ghi}): "
           f"no grid order can fill")
    far = lo >= ghi * FAR_FACTOR if where == "above" else hi * FAR_FACTOR <= glo
    if far:
        out += "; the price level is far from the range: is this data of another market?"
    return [out]
