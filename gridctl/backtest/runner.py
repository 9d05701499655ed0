"""The backtest driver: the one engine driver against the simulated exchange over candles.

The candles are played by `gridctl.sim.replay.Replay` (the same walk the in-memory
test exchange uses); the strategy is driven by `gridctl.core.driver.Driver` (the
same driver the worker uses). The reference mode handles every candle; the fast
mode handles only candles that can change something — the first candle whose
range leaves the band (lo, hi) of the engine and the simulated book, or that
carries a funding payment or a new mark — and accounts the skipped candles (whose
position is constant) with numpy.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Callable, Optional

import numpy as np

from gridctl.backtest import fastcore, fastsync
from gridctl.backtest.records import FillRecord
from gridctl.core.bands import bucket_band, engine_band
from gridctl.core.driver import Booked, Driver
from gridctl.core.engine import PAUSED, RUNNING, STOPPED, STOPPING, Event, GridEngine
from gridctl.core.fills import Fill, FundingPayment, PriceUpdate
from gridctl.core.orders import Cancel, OpenOrder
from gridctl.core.risk import NEVER_HI, NEVER_LO
from gridctl.sim import Reject, SimExchange
from gridctl.sim.replay import MarketData, Replay

__all__ = ["Backtest", "FillRecord", "MarketData", "Series"]
NO_EVENT = np.iinfo(np.int64).max
MAX_ROUNDS = 8  # reconcile rounds at one price (an exit that fills on placement changes the book again)


@dataclass
class Series:
    """Per-candle accounting (at each candle's close)."""

    peak: Optional[Decimal] = None
    max_drawdown: Decimal = Decimal(0)
    max_abs_position: int = 0
    sum_abs_position: int = 0
    candles_in_position: int = 0
    # the PnL at each candle's close, kept for charts as segments (first candle, base, tick value, x):
    # PnL of candle first+i = base + tick_value * x[i]; spans the integer core played are
    # turned into segments when first read
    segments: list = field(default_factory=list)
    lazy: list = field(default_factory=list)

    @property
    def pnl_segments(self) -> list:
        """(first candle, base, tick value, x) per stretch of constant position, in order."""
        if self.lazy:
            for build in self.lazy:
                self.segments.extend(build())
            self.lazy.clear()
        return self.segments


class Backtest:
    """Runs one engine over one data set."""

    def __init__(self, engine: GridEngine, sim: SimExchange, data: MarketData):
        self.engine, self.sim, self.data = engine, sim, data
        self.driver = Driver(engine)
        self.replay = Replay(sim, data)
        self._fills: list[FillRecord] = []
        self._lazy_fills: list = []
        self._events: list = []
        self._lazy: list = []  # events of the integer core, built when read
        self.series = Series()
        self.book_version = 0  # bumped by every fill, placement and cancel
        self._now = int(data.ts[0]) if len(data) else 0
        self._event_idx = np.append(data.event_candles(), NO_EVENT)
        self.stop_at: Optional[tuple[int, int]] = None  # (candle ts, price in ticks) when the stop began
        # candles walked by the reference engine and by the integer core; spans the core
        # played; spans it ended by handing a candle to the reference
        self.stats = {"reference": 0, "core": 0, "spans": 0, "fallbacks": 0}
        self._core: Optional[fastcore.FastCore] = None

    @property
    def fills(self) -> list[FillRecord]:
        """Every fill booked, in order."""
        if self._lazy_fills:
            for chunk in self._lazy_fills:
                self._fills.extend(chunk())
            self._lazy_fills.clear()
        return self._fills

    @fills.setter
    def fills(self, value: list) -> None:
        self._fills = value

    @property
    def events(self) -> list:
        """Everything the engine and the driver reported, in order."""
        if self._lazy:
            for chunk in self._lazy:
                self._events.extend(chunk.build())
            self._lazy.clear()
        return self._events

    @events.setter
    def events(self, value: list) -> None:
        self._events = value

    def events_of_kind(self, kind: str) -> list:
        """The events of one kind; warnings, errors, risk and status events never come from
        the integer core (it hands such candles to the reference), so reading them does
        not build the core's fill and funding events."""
        source = self._events if kind in ("warn", "error", "risk", "status") else self.events
        return [ev for ev in source if getattr(ev, "kind", None) == kind]

    def add_lazy_events(self, chunk) -> None:
        """Events the integer core logged, appended (built on first read of .events)."""
        self._lazy.append(chunk)

    # -- the candle handler ------------------------------------------------------
    def handle_candle(self, k: int) -> None:
        """Walk candle k through the simulator, the driver reacting at every stop."""
        self._now = int(self.data.ts[k])
        self.stats["reference"] += 1
        for batch in self.replay.candle(k, self._band):
            for ev in batch:
                self._apply(ev)
            self._note_stop()
            self._react()
            self._note_stop()

    def _note_stop(self) -> None:
        """Remember when and at what price the stop began (a stop is seen at the tick that made it)."""
        if self.stop_at is None and self.engine.status in (STOPPING, STOPPED):
            self.stop_at = (self._now, self.sim.price)

    def _band(self, price: int) -> tuple[int, int]:
        lo, hi = engine_band(self.engine, price)
        mlo, mhi = self._margin_band()
        return max(lo, mlo), min(hi, mhi)

    def _apply(self, ev) -> None:
        if isinstance(ev, Fill):
            self._apply_fill(ev)
        elif isinstance(ev, PriceUpdate):
            self.events += self.driver.on_price(ev)
        elif isinstance(ev, FundingPayment):
            self.events += self.driver.on_funding(ev)

    def _apply_fill(self, f: Fill) -> None:
        self.book_version += 1
        booked = self.driver.on_fill(f)
        if booked is None:
            return
        self.events += booked.events
        self.fills.append(record(booked, self.engine))
        pos = abs(self.engine.ledger.position)
        if pos > self.series.max_abs_position:
            self.series.max_abs_position = pos

    def _actual(self) -> list[OpenOrder]:
        return self.driver.own_orders(self.sim.open_orders())

    def _react(self) -> None:
        """Execute what the driver wants until it wants nothing more at this price."""
        d, sim, ts = self.driver, self.sim, self._now
        for _ in range(MAX_ROUNDS):
            actions, events = d.actions(ts, sim.price, self.book_version, self._actual)
            self.events += events
            if not actions:
                return
            fills_before = len(self.fills)
            for a in actions:
                if isinstance(a, Cancel):
                    try:
                        sim.cancel(a.order.client_id)
                    except Reject:
                        pass
                    self.book_version += 1
                    d.on_cancelled(a.order)
                    continue
                r = a.request
                try:
                    _, fills = sim.place(ts, r.client_id, r.side, r.qty, r.price, reduce_only=r.reduce_only,
                                         post_only=r.post_only, position_side=r.position_side)
                except Reject as exc:
                    self.events += d.rejected(r, ts, exc.reason)
                    self.events.append(Event("warn", f"order {r.client_id} rejected: {exc.reason}", None,
                                             {"ts": ts}))
                    continue
                self.book_version += 1
                for f in fills:
                    self._apply_fill(f)
            if len(self.fills) == fills_before:
                d.settled(self.book_version)

    # -- accounting per candle -------------------------------------------------
    def _account(self, a: int, b: int) -> None:
        """Close-of-candle accounting for candles a..b-1, over which the position is constant."""
        if b <= a:
            return
        e, s = self.engine, self.series
        rules = e.rules
        tv = rules.tick * rules.step * rules.contract_size
        net = e.ledger.position
        lots = [lot for lot in e.ledger.lots.values() if lot.qty]
        base = (e.ledger.realized - e.ledger.fees + e.ledger.funding
                - sum((lot.sign * lot.cost for lot in lots), Decimal(0)))
        x = self._marks(a, b).astype(np.int64) * net
        first_peak = s.peak if s.peak is not None else base + tv * int(x[0])
        runmax = np.maximum.accumulate(x)
        seg_peak = base + tv * int(runmax[-1])
        worst_vs_old = first_peak - (base + tv * int(x.min()))
        worst_inside = tv * int((runmax - x).max())
        s.max_drawdown = max(s.max_drawdown, worst_vs_old, worst_inside)
        s.pnl_segments.append((a, base, tv, x))
        s.peak = max(first_peak, seg_peak)
        n = b - a
        s.sum_abs_position += abs(net) * n
        if net:
            s.candles_in_position += n
        s.max_abs_position = max(s.max_abs_position, abs(net))

    def _marks(self, a: int, b: int) -> np.ndarray:
        """Mark price at each candle's close: the mark known during the candle, else the close."""
        d = self.data
        m = d.marks_at(d.ts[a:b])
        return np.where(m >= 0, m, d.close[a:b])

    # -- the loops ---------------------------------------------------------------
    def _close_marks(self) -> np.ndarray:
        """The mark at every candle's close (computed once)."""
        m = self.__dict__.get("_close_marks_cache")
        if m is None:
            m = self.__dict__["_close_marks_cache"] = self._marks(0, len(self.data))
        return m

    def _core_span(self, k: int, progress) -> int:
        """Let the integer core play from candle k while it can; returns where it stopped,
        with the reference objects holding exactly the state at that candle."""
        if not fastcore.eligible(self):
            return k
        if self._core is None:
            self._core = fastcore.FastCore(self, fastcore.Static(self))
        core = self._core
        try:
            if not core.load():
                return k
        except fastcore.Fallback:
            return k
        j = core.run(k, progress)
        self.stats["spans"] += 1
        fastsync.account_span(self, core, j)
        if j >= len(self.data):
            fastsync.finish(self, core)
        else:
            self.stats["fallbacks"] += 1
            fastsync.replay(self, core)
        return j

    def run(self, fast: bool = True, progress: Optional[Callable[[int, int], None]] = None) -> None:
        """Run over every candle (reference) or jump between interesting ones (fast)."""
        # the loops allocate many small objects and create no cycles: the cyclic
        # collector would only rescan them (a quarter of the fast mode's time)
        enabled = gc.isenabled()
        gc.disable()
        try:
            self._run(fast, progress)
        finally:
            if enabled:
                gc.enable()

    def _run(self, fast: bool, progress: Optional[Callable[[int, int], None]]) -> None:
        n = len(self.data)
        k = 0
        while k < n:
            if fast and k > 0:
                k = self._core_span(k, progress)
                if k >= n:
                    break
            self.handle_candle(k)
            self._account(k, k + 1)
            k += 1
            if self.engine.status == STOPPED:
                self._account(k, n)
                k = n
                break
            if fast and not fastcore.eligible(self):
                j = self._next_interesting(k)
                self._account(k, j)
                k = j
            if progress is not None:
                progress(k, n)
        else:
            if fast and n:  # the skipped candles stayed inside the band: the walk ends at the last close
                self.sim._price = int(self.data.close[-1])
        if progress is not None:
            progress(n, n)

    def _margin_band(self) -> tuple[int, int]:
        """Prices (ticks) where the margin ratio crosses one of the engine's thresholds,
        for the position held and a mark that follows the price.

        maintenance = A·p and equity = E0 + N·(p − p0), so ratio = r at
        p* = r·(E0 − N·p0) / (A − r·N): one crossing per threshold.
        """
        e, sim = self.engine, self.sim
        if e.cfg.margin_ratio is None or self.data.mark_ts is not None or e.status not in (RUNNING, PAUSED):
            return NEVER_LO, NEVER_HI
        rules = e.rules
        p0 = rules.price(sim.mark)
        if p0 <= 0:
            return NEVER_LO, NEVER_HI
        a = sim.maintenance_margin() / p0
        if a == 0:
            return NEVER_LO, NEVER_HI
        e0 = sim.equity()
        n = rules.qty(sim.position) * rules.contract_size
        lo, hi = NEVER_LO, NEVER_HI
        for r in e.cfg.margin_ratio:
            den = a - r * n
            if den == 0:
                continue
            p = r * (e0 - n * p0) / den / rules.tick
            if p <= 0:
                continue
            here = Decimal(sim.mark)
            if p < here:
                lo = max(lo, int(p.to_integral_value(rounding=ROUND_FLOOR)))
            elif p > here:
                hi = min(hi, int(p.to_integral_value(rounding=ROUND_CEILING)))
            else:
                return sim.mark, sim.mark
        return lo, hi

    def _next_interesting(self, k: int) -> int:
        """First candle index >= k whose range leaves the band, that brings funding or a
        mark, or at which a rejected order's cooldown ends."""
        n = len(self.data)
        if k >= n:
            return n
        if self.engine.status == STOPPING:  # waiting for a close: every candle counts
            return k
        elo, ehi = self._band(self.sim.price)
        slo, shi = self.sim.band()
        lo, hi = max(elo, slo), min(ehi, shi)
        if self.driver.unmet:  # a rejected order is retried when the market's place among the levels changes
            blo, bhi = bucket_band(self.engine, self.sim.price)
            lo, hi = max(lo, blo), min(hi, bhi)
        d = self.data
        ev = int(self._event_idx[np.searchsorted(self._event_idx, k, side="left")])
        stop = min(n, ev)
        if self.driver.wake_at is not None:
            stop = min(stop, int(np.searchsorted(d.ts, self.driver.wake_at, side="left")))
        size = 512
        start = k
        while start < stop:
            end = min(stop, start + size)
            hit = (d.low[start:end] <= lo) | (d.high[start:end] >= hi)
            i = int(hit.argmax())
            if hit[i]:
                return start + i
            start = end
            size *= 4
        return max(stop, k)


def record(b: Booked, engine: GridEngine) -> FillRecord:
    """The --fills-csv row of a booked fill."""
    f, rules = b.fill, engine.rules
    return FillRecord(f.ts, b.level, f.side.value, b.intent, rules.price(f.price), rules.qty(f.qty), f.fee,
                      f.reduce_only)
