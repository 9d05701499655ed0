"""Live public market data of a real venue through ccxt: paper trading on today's prices.

No API keys: only public endpoints (markets and the ticker) are called. The feed
polls `fetch_ticker(symbol)` every `poll_ms` and turns what it saw into one candle
per poll: open = the previous last price, high/low = the extremes of the prices
seen since, close = the latest last price, all in ticks
(`MarketRules.price_to_ticks`). The candle is stamped with the venue's ticker
timestamp (the clock when the venue gives none), never going backwards.

ccxt's exceptions are classified once, by gridctl.exchange.ccxt_errors (reads: a
timeout is `Temporary`, so the worker loop backs off and carries on); a ticker
without a usable last price is `Temporary` too. A symbol the venue does not list
is `Rejected` with reason `bad_symbol`.
"""

from __future__ import annotations

import logging
import time
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Optional

import ccxt.async_support as ccxt_async

from gridctl.core.market import MarketRules
from gridctl.exchange.base import ExchangeError, Temporary
from gridctl.exchange.ccxt_errors import classify

log = logging.getLogger(__name__)


def make_client(venue: str, poll_ms: int = 1000, urls: Optional[dict] = None) -> Any:
    """A ccxt async client for public data of `venue` (no keys). `urls` overrides urls['api'] entries."""
    cls = getattr(ccxt_async, venue, None)
    if cls is None:
        raise ExchangeError(f"ccxt has no exchange '{venue}'", "bad_venue")
    client = cls({"enableRateLimit": True, "timeout": min(10_000, max(3_000, 3 * poll_ms))})
    if urls:
        client.urls["api"].update(urls)
    return client


class LiveFeed:
    """One candle per poll of a venue's public ticker."""

    def __init__(self, venue: str, rules: MarketRules, poll_ms: int = 1000, exchange: Any = None,
                 urls: Optional[dict] = None, clock: Callable[[], float] = time.time,
                 state: Optional[dict] = None):
        self.venue = venue
        self.rules = rules
        self.symbol = rules.symbol
        self.interval_ms = int(poll_ms)
        self.clock = clock
        self.client = exchange if exchange is not None else make_client(venue, poll_ms, urls)
        state = state or {}
        self.last: Optional[int] = state.get("last") if state.get("live") == venue else None
        self.ts = 0
        self.seen: list[int] = []  # prices (ticks) since the last candle

    def state(self) -> dict:
        return {"live": self.venue, "last": self.last}

    async def close(self) -> None:
        try:
            await self.client.close()
        except Exception as exc:  # closing must never fail a shutdown
            log.debug("closing the %s client: %s", self.venue, exc)

    # -- prices ----------------------------------------------------------------
    def observe(self, ts: Optional[int], price: Decimal) -> int:
        """Note one price the venue showed; returns it in ticks."""
        ticks = self.rules.price_to_ticks(price)
        if ticks <= 0:
            raise Temporary(f"{self.venue}: {self.symbol} price {price} is not a price")
        self.ts = max(self.ts, int(ts) if ts else int(self.clock() * 1000))
        self.seen.append(ticks)
        return ticks

    def candle(self) -> Optional[tuple[int, tuple[int, int, int, int]]]:
        """(ts, (open, high, low, close)) of the prices seen since the last candle, or None if none."""
        if not self.seen:
            return None
        o = self.last if self.last is not None else self.seen[0]
        c = self.seen[-1]
        h, lo = max(o, *self.seen), min(o, *self.seen)
        self.last, self.seen = c, []
        return self.ts, (o, h, lo, c)

    async def poll(self) -> int:
        """Fetch the ticker once; the last price in ticks. Raises Temporary / RateLimited."""
        try:
            ticker = await self.client.fetch_ticker(self.symbol)
        except Exception as exc:
            err = classify(exc, venue=self.venue, client=self.client)
            if isinstance(err, Temporary):
                log.warning("%s", err)
            raise err from None
        raw = (ticker or {}).get("last")
        try:
            price = Decimal(str(raw))
            if raw is None or not price.is_finite():
                raise InvalidOperation
        except InvalidOperation:
            raise Temporary(f"{self.venue}: ticker for {self.symbol} has no last price") from None
        return self.observe(ticker.get("timestamp"), price)

    async def next(self) -> tuple[int, tuple[int, int, int, int]]:
        """Poll once and return the candle since the previous one."""
        await self.poll()
        out = self.candle()
        assert out is not None
        return out
