"""An in-memory exchange on replayed candles with a virtual clock: the worker loop's
test venue. It walks the same path as the backtest (`gridctl.sim.replay.Replay`),
reporting a price at every tick as a live venue's trade stream would, so a worker
on it and a backtest on the same candles must agree fill for fill.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Callable, Iterator, Optional

from gridctl.core.fills import Fill, StreamState
from gridctl.core.market import MarketRules
from gridctl.exchange.base import ExchangeEvent
from gridctl.exchange.simulated import SimulatedVenue
from gridctl.sim import SimExchange
from gridctl.sim.replay import MarketData, Replay


class EndOfData(Exception):
    """The candles are used up."""


class InMemoryExchange(SimulatedVenue):
    """Exchange protocol over a SimExchange and MarketData; `clock()` is the virtual time (s)."""

    def __init__(self, rules: MarketRules, data: MarketData, balance: Decimal, leverage: int,
                 hedge: bool = False, owns: Callable[[object], bool] = lambda cid: True):
        super().__init__(rules, owns)
        self.data = data
        self.sim = SimExchange(rules, balance, leverage, hedge=hedge, price=int(data.open[0]))
        self.replay = Replay(self.sim, data)
        self.trades: list[Fill] = []
        self._k = -1
        self._now = int(data.ts[0])
        self._walk: Optional[Iterator[list]] = None

    def now_ms(self) -> int:
        return self._now

    def clock(self) -> float:
        return self._now / 1000

    def keep_fills(self, fills: list[Fill]) -> None:
        self.trades += fills

    async def connect(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def lose_stream(self, venue_cancels: tuple = ()) -> None:
        """Fault injection: the stream drops; while it is down the venue cancels `venue_cancels`
        (their updates never arrive); it then comes back. The next events() say so."""
        ts = self._now
        for cid in venue_cancels:
            self.sim.cancel(cid)  # the mirror does not hear of it: only a reconcile can
        self._pending += [StreamState(ts, "lost", "connection reset"), StreamState(ts, "restored")]

    async def events(self) -> list[ExchangeEvent]:
        """Fills taken at placement first; otherwise the next stop of the walk (one tick)."""
        if self._pending:
            return self.take_pending()
        while True:
            if self._walk is None:
                self._k += 1
                if self._k >= len(self.data):
                    raise EndOfData()
                self._now = int(self.data.ts[self._k])
                self._walk = self.replay.candle(self._k, lambda p: (p - 1, p + 1))
            batch = next(self._walk, None)
            if batch is None:
                self._walk = None
                continue
            fills = [ev for ev in batch if isinstance(ev, Fill)]
            others = [ev for ev in batch if not isinstance(ev, Fill)]
            return self._happened(fills) + others

    async def fills_since(self, ts: int) -> list[Fill]:
        return [f for f in self.trades if f.ts >= ts]
