"""ccxt's request pacing with idle time credited.

ccxt's async Throttler (ccxt/async_support/base/throttler.py) is a leaky bucket that
refills only while requests are queued: its loop restarts with `last_timestamp = now`
each time a request arrives at an empty queue, so a negative balance left by the last
request is never paid back by the time the client sat idle. On binanceusdm an order costs
4 units at 50 ms each: every order waited ~200 ms after the previous request however long
ago that was, so a fill's replacement order (and each of a stop's cancels, 50 ms) waited
on that timer (tests/bench/bench_live.py measured it).

IdleCreditBucket keeps ccxt's parameters exactly (rate, capacity, costs; a request goes
when the balance is >= 0 and then pays its cost), so the sustained rate and the largest
burst are ccxt's; only the time spent idle counts towards the balance, as a leaky bucket
means it to.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, Optional


class IdleCreditBucket:
    """Drop-in for ccxt's Throttler (`await throttler(cost)`), leaky bucket only."""

    def __init__(self, config: dict, clock: Callable[[], float] = time.monotonic) -> None:
        self.refill_per_ms = float(config.get("refillRate", 1.0))
        self.capacity = float(config.get("capacity", 1.0))
        self.default_cost = float(config.get("cost", 1.0))
        self.tokens = float(config.get("tokens", 0.0))
        self.clock = clock
        self.loop: Any = None  # ccxt's open() sets it; unused here
        self._last = clock()
        self._lock = asyncio.Lock()  # FIFO: requests go in the order they asked

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self._last) * 1000 * self.refill_per_ms)
        self._last = now

    async def __call__(self, cost: Optional[float] = None) -> None:
        cost = self.default_cost if cost is None else float(cost)
        async with self._lock:
            self._refill()
            if self.tokens < 0:
                await asyncio.sleep(-self.tokens / self.refill_per_ms / 1000)
                self._refill()
            self.tokens -= cost


def install(client: Any) -> None:
    """Give a ccxt client (async or pro) the idle-crediting bucket, with its own parameters."""
    config = getattr(client, "tokenBucket", None) or {}
    if config.get("algorithm", "leakyBucket") != "leakyBucket":
        return  # rolling-window venues keep ccxt's own throttler
    client.throttler = IdleCreditBucket(config)
