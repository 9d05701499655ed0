"""The backtest driver: the grid engine against the simulated exchange over candles.

Both modes run the same candle handler. The reference mode runs it on every
candle; the fast mode runs it only on candles that can change something — the
first candle whose range leaves the band (lo, hi) of the engine and the
simulated book, or that carries a funding or mark-price change — and accounts
the skipped candles (whose position is constant) with numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Callable, Optional

import numpy as np

from gridctl.core.engine import PAUSED, RUNNING, STOPPED, STOPPING, Event, GridEngine
from gridctl.core.risk import NEVER_HI, NEVER_LO
from gridctl.core.fills import Fill
from gridctl.core.grid import Side
from gridctl.core.orders import Cancel, Intent, OpenOrder, Place
from gridctl.sim import LIQUIDATION, Reject, SimExchange

NO_EVENT = np.iinfo(np.int64).max


@dataclass
class FillRecord:
    """One fill as written to --fills-csv."""

    ts: int
    level: Optional[int]
    side: str
    intent: str
    price: Decimal
    qty: Decimal
    fee: Decimal
    reduce_only: bool


@dataclass
class Series:
    """Per-candle accounting (at each candle's close)."""

    peak: Optional[Decimal] = None
    max_drawdown: Decimal = Decimal(0)
    max_abs_position: int = 0
    sum_abs_position: int = 0
    candles_in_position: int = 0


@dataclass
class MarketData:
    """Candles (ticks) plus optional mark closes and funding, all aligned by timestamp."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    mark_ts: Optional[np.ndarray] = None
    mark_close: Optional[np.ndarray] = None
    funding_ts: Optional[np.ndarray] = None
    funding_rates: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ts)


class Backtest:
    """Runs one engine over one data set."""

    def __init__(self, engine: GridEngine, sim: SimExchange, data: MarketData):
        self.engine, self.sim, self.data = engine, sim, data
        self.fills: list[FillRecord] = []
        self.events: list = []
        self.series = Series()
        self.funding_i = 0
        self.mark_i = -1
        self.started = False
        self._open_cache: dict = {}
        self.book_version = 0  # bumped by every fill, placement and cancel
        self._synced: tuple = ()
        self.unmet = False  # the last sync left a wanted order off the book (rejected)
        # candles whose timestamps bring a funding payment or a new mark price
        self._event_idx = self._event_candles()

    # -- the candle handler ------------------------------------------------------
    def _event_candles(self) -> np.ndarray:
        d = self.data
        marks = np.empty(0, dtype=np.int64)
        for extra in (d.funding_ts, d.mark_ts):
            if extra is not None and len(extra):
                marks = np.concatenate([marks, np.searchsorted(d.ts, extra, side="left")])
        marks = np.unique(marks[marks < len(d.ts)])
        return np.append(marks, NO_EVENT)

    def _mark(self) -> Optional[int]:
        return int(self.data.mark_close[self.mark_i]) if self.mark_i >= 0 else None

    def _advance_mark(self, ts: int) -> None:
        d = self.data
        if d.mark_ts is not None:
            while self.mark_i + 1 < len(d.mark_ts) and d.mark_ts[self.mark_i + 1] <= ts:
                self.mark_i += 1
            if self.mark_i >= 0:
                self.sim.set_mark(int(d.mark_close[self.mark_i]))

    def _settle_funding(self, ts: int) -> None:
        """Funding due by this candle, settled at its open (the mark there)."""
        d = self.data
        if d.funding_ts is None:
            return
        while self.funding_i < len(d.funding_ts) and d.funding_ts[self.funding_i] <= ts:
            pay = self.sim.pay_funding(ts, d.funding_rates[self.funding_i])
            self.funding_i += 1
            if pay is not None:
                self.events += self.engine.on_funding(pay)

    def handle_candle(self, k: int) -> None:
        """Mark, the move to the open, funding, then the intra-candle path with reactions at every fill."""
        d = self.data
        ts = int(d.ts[k])
        self._advance_mark(ts)
        path = SimExchange.candle_path(int(d.open[k]), int(d.high[k]), int(d.low[k]), int(d.close[k]))
        if not self.started:
            self._start(ts, path[0])
        else:
            self._move(ts, path[0])
        self._settle_funding(ts)
        for target in path[1:]:
            self._move(ts, target)
        self._react(ts)

    def _start(self, ts: int, price: int) -> None:
        self.started = True
        self.events += self.engine.on_price(price, self._mark(), self.sim.margin_ratio())
        if self.engine.status not in (STOPPING, STOPPED):
            for mo in self.engine.opening_orders(price):
                self._submit(ts, mo.client_id, mo.side, mo.qty, None, False, False, mo.position_side)
        self._react(ts)

    def _move(self, ts: int, target: int) -> None:
        """Walk the price to target, stopping at every fill and at every edge of the
        engine's band, so a stop or trigger acts at the price where the path crosses it."""
        while True:
            current = self.sim.price
            lo, hi = self.engine.band(current)
            mlo, mhi = self._margin_band()
            lo, hi = max(lo, mlo), min(hi, mhi)
            step = target
            if target < lo < current:
                step = lo
            elif current < hi < target:
                step = hi
            while fills := self.sim.sweep(ts, step):
                self._apply_fills(fills)
                self._react(ts)
            self.events += self.engine.on_price(self.sim.price, self._mark(), self.sim.margin_ratio())
            if self.engine.status == STOPPING:
                self._react(ts)
            if self.sim.price == target:
                return

    def _apply_fills(self, fills: list[Fill]) -> None:
        e, rules = self.engine, self.engine.rules
        self.book_version += 1
        for f in fills:
            self.events += e.on_fill(f)
            if f.client_id == LIQUIDATION:
                self.events += e.on_liquidation()
            dec = e.decode(f.client_id)
            self.fills.append(FillRecord(
                f.ts, dec.level if dec and dec.intent is not Intent.CLOSE else None, f.side.value,
                dec.intent.value if dec else "liquidation", rules.price(f.price), rules.qty(f.qty), f.fee,
                f.reduce_only))
            pos = abs(e.ledger.position)
            if pos > self.series.max_abs_position:
                self.series.max_abs_position = pos

    def _submit(self, ts: int, cid: object, side: Side, qty: int, price: Optional[int],
                reduce_only: bool, post_only: bool, position_side: Optional[str] = None) -> None:
        self.book_version += 1
        try:
            _, fills = self.sim.place(ts, cid, side, qty, price, reduce_only=reduce_only, post_only=post_only,
                                      position_side=position_side)
        except Reject as exc:
            self.events.append(Event("warn", f"order {cid} rejected: {exc.reason}", None, {"ts": ts}))
            self.unmet = True
            return
        if fills:
            self._apply_fills(fills)

    def _actual(self) -> list[OpenOrder]:
        out = []
        cache = self._open_cache
        for o in self.sim.open_orders():
            if o.price is None:
                continue
            key = (o.client_id, o.remaining)
            oo = cache.get(key)
            if oo is None:
                oo = self.engine.open_order(o.client_id, o.order_id, o.side, o.price, o.remaining, o.reduce_only)
                if len(cache) > 10_000:
                    cache.clear()
                cache[key] = oo
            if oo is not None:
                out.append(oo)
        return out

    def _react(self, ts: int, depth: int = 0) -> None:
        """Bring the book in line with the engine (and finish a stop)."""
        e = self.engine
        if e.status == STOPPING:
            self.sim.cancel_all()
            self.book_version += 1
            for mo in e.close_orders():
                self._submit(ts, mo.client_id, mo.side, mo.qty, None, True, False, mo.position_side)
            self.events += e.finish_stop()
            return
        if e.status == STOPPED:
            return
        # nothing the engine desires and nothing on the book changed since the last
        # sync left them in agreement: reconcile would yield no action
        key = (e.version, self.book_version, e.price_bucket(self.sim.price))
        if key == self._synced:
            return
        filled_now = len(self.fills)
        self.unmet = False
        for action in e.sync(self.sim.price, self._actual()):
            if isinstance(action, Cancel):
                try:
                    self.sim.cancel(action.order.client_id)
                except Reject:
                    pass
                self.book_version += 1
                if action.order.intent is Intent.ENTRY:
                    e.on_entry_cancelled(action.order.level)
            elif isinstance(action, Place):
                d = action.order
                self._submit(ts, e.place_id(d), d.side, d.qty, d.price, d.reduce_only, d.post_only,
                             e.position_side(d.level))
        self._synced = (e.version, self.book_version, e.price_bucket(self.sim.price))
        # an order that filled on placement (exit beyond the market) changes the book again
        if len(self.fills) != filled_now and depth < 8:
            self._react(ts, depth + 1)

    # -- accounting per candle -------------------------------------------------
    def _account(self, a: int, b: int) -> None:
        """Close-of-candle accounting for candles a..b-1, over which the position is constant."""
        if b <= a:
            return
        e, s, d = self.engine, self.series, self.data
        rules = e.rules
        tv = rules.tick * rules.step * rules.contract_size
        net = e.ledger.position
        lots = [lot for lot in e.ledger.lots.values() if lot.qty]
        base = (e.ledger.realized - e.ledger.fees + e.ledger.funding
                - sum((lot.sign * lot.cost for lot in lots), Decimal(0)))
        prices = self._marks(a, b)
        x = prices.astype(np.int64) * net
        first_peak = s.peak if s.peak is not None else base + tv * int(x[0])
        runmax = np.maximum.accumulate(x)
        seg_peak = base + tv * int(runmax[-1])
        worst_vs_old = first_peak - (base + tv * int(x.min()))
        worst_inside = tv * int((runmax - x).max())
        s.max_drawdown = max(s.max_drawdown, worst_vs_old, worst_inside)
        s.peak = max(first_peak, seg_peak)
        n = b - a
        s.sum_abs_position += abs(net) * n
        if net:
            s.candles_in_position += n
        s.max_abs_position = max(s.max_abs_position, abs(net))

    def _marks(self, a: int, b: int) -> np.ndarray:
        """Mark price at each candle's close: the mark series where given, else the close."""
        d = self.data
        if d.mark_ts is None or not len(d.mark_ts):
            return d.close[a:b]
        idx = np.searchsorted(d.mark_ts, d.ts[a:b], side="right") - 1
        return np.where(idx >= 0, d.mark_close[np.maximum(idx, 0)], d.close[a:b])

    # -- the loops ---------------------------------------------------------------
    def run(self, fast: bool = True, progress: Optional[Callable[[int, int], None]] = None) -> None:
        """Run over every candle (reference) or jump between interesting ones (fast)."""
        n = len(self.data)
        k = 0
        while k < n:
            self.handle_candle(k)
            self._account(k, k + 1)
            k += 1
            if self.engine.status == STOPPED:
                self._account(k, n)
                k = n
                break
            if fast:
                j = self._next_interesting(k)
                self._account(k, j)
                k = j
            if progress is not None:
                progress(k, n)
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
        """First candle index >= k whose range leaves the band or that brings funding/mark."""
        n = len(self.data)
        if k >= n:
            return n
        elo, ehi = self.engine.band(self.sim.price)
        slo, shi = self.sim.band()
        lo, hi = max(elo, slo), min(ehi, shi)
        mlo, mhi = self._margin_band()
        lo, hi = max(lo, mlo), min(hi, mhi)
        if self.unmet:  # a rejected order is retried when the market's place among the levels changes
            blo, bhi = self.engine.bucket_band(self.sim.price)
            lo, hi = max(lo, blo), min(hi, bhi)
        ev = int(self._event_idx[np.searchsorted(self._event_idx, k, side="left")])
        stop = min(n, ev)
        d = self.data
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
        return stop
