"""Candles played through the simulated exchange: the venue side of every replay.

One walk serves the backtest (which halts at the edges of the engine's band) and
the in-memory test exchange (which halts at every tick, as a live venue's trade
stream would): the same path, the same gaps, the same funding instants and the
same marks, so a worker on replayed candles and a backtest see one market.

- A candle's path is O-L-H-C when it closes at or above its open, else O-H-L-C;
  every price along the path trades.
- The move from the previous close to the next open is a gap: nothing trades
  inside it. Resting orders in the gap fill at their own price (no price
  improvement), but no price is reported until the open, so a stop crossed in a
  gap acts at the open, the first traded price beyond it.
- Funding at instant t settles in the candle that contains t, at the point of the
  path reached at the fraction (t - open time) / interval of the path's length,
  on the position held there, at the mark of that instant.
- The mark at time t is the open of the mark candle that contains t (a mark
  candle's close is known only when it ends): never a look-ahead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Callable, Iterator, Optional

import numpy as np

from gridctl.core.fills import FundingPayment, PriceUpdate
from gridctl.sim.exchange import SimExchange

Band = Callable[[int], tuple[int, int]]
Batch = list  # fills, funding payments and price updates, in the order they happened


@dataclass
class MarketData:
    """Candles (ticks) plus optional mark candles and funding, all by timestamp (epoch ms)."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    mark_ts: Optional[np.ndarray] = None
    mark_close: Optional[np.ndarray] = None
    funding_ts: Optional[np.ndarray] = None
    funding_rates: list = field(default_factory=list)
    mark_open: Optional[np.ndarray] = None
    warnings: list = field(default_factory=list)  # what the data's user should be told (coverage)
    interval_hint: Optional[int] = None  # the candle interval of the whole file, when cut to a window

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def interval_ms(self) -> int:
        """The candle interval (the most common step between timestamps)."""
        if self.interval_hint:
            return self.interval_hint
        if len(self.ts) < 2:
            return 60_000
        values, counts = np.unique(np.diff(self.ts[: min(len(self.ts), 1000)]), return_counts=True)
        return int(values[counts.argmax()])

    def marks_at(self, t: np.ndarray) -> np.ndarray:
        """The mark (ticks) known at each time in `t`; -1 where no mark is known yet."""
        if self.mark_ts is None or not len(self.mark_ts):
            return np.full(len(t), -1, dtype=np.int64)
        i = np.searchsorted(self.mark_ts, t, side="right") - 1
        j = np.maximum(i, 0)
        done = t >= self.mark_ts[j] + self._mark_step()  # the mark candle has ended: its close is known
        if self.mark_open is not None:
            inside = self.mark_open[j]
        else:  # without opens, the previous candle's close is the mark at this one's open
            inside = np.where(i > 0, self.mark_close[np.maximum(i - 1, 0)], -1)
        out = np.where(done, self.mark_close[j], inside)
        return np.where(i >= 0, out, -1).astype(np.int64)

    def _mark_step(self) -> int:
        """The mark candles' interval, computed once per mark series (mark_at runs per candle)."""
        key = (id(self.mark_ts), len(self.mark_ts))  # type: ignore[arg-type]
        cached = self.__dict__.get("_mark_step_cache")
        if cached is None or cached[0] != key:
            assert self.mark_ts is not None
            step = int(np.median(np.diff(self.mark_ts))) if len(self.mark_ts) > 1 else self.interval_ms
            self.__dict__["_mark_step_cache"] = cached = (key, step)
        return cached[1]

    def mark_at(self, t: int) -> Optional[int]:
        m = int(self.marks_at(np.array([t], dtype=np.int64))[0])
        return None if m < 0 else m

    def funding_candles(self) -> np.ndarray:
        """For each funding row, the index of the candle that contains its instant
        (-1 before the first candle, len(self) after the last one ends)."""
        if self.funding_ts is None or not len(self.funding_ts):
            return np.empty(0, dtype=np.int64)
        k = np.searchsorted(self.ts, self.funding_ts, side="right") - 1
        end = int(self.ts[-1]) + self.interval_ms
        return np.where(self.funding_ts >= end, len(self), k).astype(np.int64)

    def event_candles(self) -> np.ndarray:
        """Candles that bring a funding payment or a new mark (ascending, unique)."""
        out = [self.funding_candles()]
        if self.mark_ts is not None and len(self.mark_ts):
            m = self.marks_at(self.ts)
            out.append(np.flatnonzero(np.diff(m, prepend=m[0] - 1) != 0))
        idx = np.unique(np.concatenate(out)) if out else np.empty(0, dtype=np.int64)
        return idx[(idx >= 0) & (idx < len(self))]


def point_at(path: list[int], fraction: float) -> tuple[int, int]:
    """(segment index, price) of the point reached at `fraction` of the path's length."""
    lengths = [abs(b - a) for a, b in zip(path, path[1:])]
    total = sum(lengths)
    if total == 0 or fraction <= 0:
        return 0, path[0]
    goal = min(1.0, fraction) * total
    run = 0
    for i, n in enumerate(lengths):
        if n and run + n >= goal:
            d = int(goal - run)  # whole ticks, toward the segment's start
            a, b = path[i], path[i + 1]
            return i, a + d if b > a else a - d
        run += n
    return len(lengths) - 1, path[-1]


class Replay:
    """Plays MarketData candle by candle through a SimExchange, yielding what happened."""

    def __init__(self, sim: SimExchange, data: MarketData):
        self.sim, self.data = sim, data
        self.interval = data.interval_ms
        fk = data.funding_candles()
        self._funding_by_candle: dict[int, list[int]] = {}
        for i, k in enumerate(fk):
            if 0 <= k < len(data):
                self._funding_by_candle.setdefault(int(k), []).append(i)

    def candle(self, k: int, band: Band) -> Iterator[Batch]:
        """Walk candle k. Yields a batch at every stop: fills as they happen (the price
        at each stop comes after its fills), a price update at every band edge and path
        vertex, and funding at its instant. The consumer reacts between batches; `band`
        is asked again at every stop."""
        d, sim = self.data, self.sim
        ts = int(d.ts[k])
        mark = d.mark_at(ts)
        if mark is not None:
            sim.set_mark(mark)
        path = SimExchange.candle_path(int(d.open[k]), int(d.high[k]), int(d.low[k]), int(d.close[k]))
        while fills := sim.sweep(ts, path[0]):  # the gap since the previous close
            yield fills
        yield [self._price(ts)]
        due = [(self._fraction(k, i), i) for i in self._funding_by_candle.get(k, [])]
        due.sort()
        for seg, (a, b) in enumerate(zip(path, path[1:])):
            while due and point_at(path, due[0][0])[0] == seg:
                _, price = point_at(path, due[0][0])
                yield from self._walk(ts, price, band)
                pay = self._fund(due.pop(0)[1])
                if pay is not None:
                    yield [pay]
            yield from self._walk(ts, b, band)
        for _, i in due:  # a flat path: every payment at the close
            pay = self._fund(i)
            if pay is not None:
                yield [pay]

    def _fraction(self, k: int, i: int) -> float:
        return (int(self.data.funding_ts[i]) - int(self.data.ts[k])) / self.interval

    def _fund(self, i: int) -> Optional[FundingPayment]:
        """Funding row i, on the position held now, at the mark of its instant."""
        t = int(self.data.funding_ts[i])  # type: ignore[index]
        mark = self.data.mark_at(t)
        if mark is not None:
            self.sim.set_mark(mark)
        return self.sim.pay_funding(t, Decimal(self.data.funding_rates[i]))

    def _price(self, ts: int) -> PriceUpdate:
        sim = self.sim
        return PriceUpdate(ts, sim.price, sim.mark, sim.margin_ratio())

    def _walk(self, ts: int, target: int, band: Band) -> Iterator[Batch]:
        """Move the price to target, stopping at every fill and at every edge of the band."""
        sim = self.sim
        while sim.price != target:
            cur = sim.price
            lo, hi = band(cur)
            step = target
            if target < lo < cur:
                step = lo
            elif cur < hi < target:
                step = hi
            fills = sim.sweep(ts, step)
            yield [*fills, self._price(ts)]
