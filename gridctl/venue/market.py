"""One market of the local venue: rules, last/mark price, 24 h statistics, funding, its feed.

The feed is the paper exchange's (gridctl.exchange.paper.CandleFeed: a replay of a
CSV that continues its path, or a seeded synthetic walk) or a live public ticker
(gridctl.exchange.live_feed.LiveFeed). The venue's price clock (gridctl.venue.core)
plays it; this module only holds the market's numbers.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Optional

from gridctl.config.model import FeedConfig
from gridctl.core.market import MarketRules

FUNDING_INTERVAL_MS = 8 * 3600 * 1000  # Binance and Backpack settle every 8 h (00, 08, 16 UTC)
DEFAULT_RATE = Decimal("0.0001")  # funding rate when no --funding file drives the market
START_PRICES = {"BTC": "65000", "ETH": "3400", "SOL": "170", "XRP": "0.6", "BNB": "600", "DOGE": "0.15"}
DAY_MS = 86_400_000


@dataclass
class FeedSpec:
    """How a market's prices are made: a replay file, a synthetic walk or a live venue."""

    replay: Optional[Path] = None
    funding: Optional[Path] = None
    start_price: Optional[Decimal] = None
    volatility: Decimal = Decimal("0.0008")
    seed: int = 7
    speed: Decimal = Decimal(1)
    live: Optional[str] = None
    poll_ms: int = 1000

    def feed_config(self, base: str) -> FeedConfig:
        price = self.start_price or Decimal(START_PRICES.get(base, "100"))
        return FeedConfig(replay=self.replay, speed=self.speed, synthetic_seed=self.seed,
                          synthetic_price=price, synthetic_volatility=self.volatility,
                          funding=self.funding, live=self.live, poll_ms=self.poll_ms)


class _AccountLike:
    """What CandleFeed reads of an account: its feed."""

    def __init__(self, feed: FeedConfig) -> None:
        self.feed = feed


class Market:
    """Rules, prices (ticks) and statistics of one market."""

    def __init__(self, rules: MarketRules, spec: FeedSpec) -> None:
        self.rules = rules
        self.symbol = rules.symbol
        self.spec = spec
        self.last: Optional[int] = None
        self.pinned = False
        self.funding_rate = DEFAULT_RATE
        self.next_funding_ms = 0
        self.funding_interval_ms = FUNDING_INTERVAL_MS  # a protocol may set its venue's interval
        self.feed = None  # set by the venue (needs the state)
        self._minutes: "OrderedDict[int, list[int]]" = OrderedDict()  # minute -> [open, high, low, close]

    def make_feed(self, state: Optional[dict]):
        """Build the market's price feed (continuing from `state` when given)."""
        cfg = self.spec.feed_config(self.rules.base)
        if cfg.live is not None:
            from gridctl.exchange.live_feed import LiveFeed
            self.feed = LiveFeed(cfg.live, self.rules, cfg.poll_ms, state=state)
        else:
            from gridctl.exchange.paper import CandleFeed
            self.feed = CandleFeed(_AccountLike(cfg), self.rules, state)  # type: ignore[arg-type]
        return self.feed

    @property
    def mark(self) -> int:
        """The mark price in ticks: the last price (the simulated venue has no separate index)."""
        assert self.last is not None
        return self.last

    def price(self) -> Decimal:
        return self.rules.price(self.last or 0)

    def observe(self, ts: int, ticks: int) -> None:
        """Note a price for the 24 h statistics (per-minute buckets)."""
        minute = ts // 60_000
        bucket = self._minutes.get(minute)
        if bucket is None:
            self._minutes[minute] = [ticks, ticks, ticks, ticks]
            while self._minutes and next(iter(self._minutes)) < minute - 1440:
                self._minutes.popitem(last=False)
        else:
            bucket[1] = max(bucket[1], ticks)
            bucket[2] = min(bucket[2], ticks)
            bucket[3] = ticks

    def day_stats(self) -> tuple[Decimal, Decimal, Decimal]:
        """(open, high, low) over the last 24 h (the last price when nothing was seen)."""
        if not self._minutes:
            p = self.price()
            return p, p, p
        buckets = list(self._minutes.values())
        return (self.rules.price(buckets[0][0]), self.rules.price(max(b[1] for b in buckets)),
                self.rules.price(min(b[2] for b in buckets)))

    def next_funding_after(self, now_ms: int) -> int:
        """The next funding instant on the market's wall-clock schedule (8 h unless set)."""
        return (now_ms // self.funding_interval_ms + 1) * self.funding_interval_ms

    def state(self) -> dict:
        """Prices, funding and the feed position (the 24 h statistics start again after a restart)."""
        return {"last": self.last, "pinned": self.pinned, "funding_rate": str(self.funding_rate),
                "next_funding_ms": self.next_funding_ms,
                "feed": self.feed.state() if self.feed is not None else None}

    def restore(self, d: dict) -> None:
        self.last = d.get("last")
        self.pinned = bool(d.get("pinned"))
        self.funding_rate = Decimal(d.get("funding_rate", str(DEFAULT_RATE)))
        self.next_funding_ms = int(d.get("next_funding_ms", 0))
