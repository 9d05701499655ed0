"""The fast mode's integer event core: the reference's walk, on integers, for a running grid.

It plays candles exactly as `gridctl.sim.replay.Replay` walks them through the simulated
exchange and `gridctl.core.driver.Driver` reacts, but keeps every level and the book as
integers (ticks, steps, flags; money as scaled integers) and reconciles only the levels a
fill or the market's move can change. Everything it does not do exactly raises `Fallback`
*before* the candle's result is kept: the candle is then handled by the reference engine
(see runner.Backtest.run), which is the guard that cannot be skipped:

- any reject the venue would give (margin, min size, post-only cross, reduce-only),
  a taker execution, a clipped reduce-only fill, an expiring reduce-only order;
- a price within reach of a liquidation, of a margin-ratio threshold, of a price stop or
  of a money stop (max_loss, take_profit, max_level_loss), with a margin of two ticks and
  a relative 1e-9 for the float estimate of where the threshold lies;
- any state the engine is not plainly running in (waiting, stopping, cooldowns, hedge).

Each mutation is logged; `gridctl.backtest.fastsync` turns the log into the reference
objects (exactly, through their own methods, at a fallback) or into the final figures.
"""

from __future__ import annotations

import math
import os
import sys
from bisect import bisect_left, bisect_right
from decimal import Decimal
from typing import Callable, Optional

import numpy as np

from gridctl.core.engine import RUNNING
from gridctl.core.grid import Side
from gridctl.core.ledger import UNASSIGNED, ZERO
from gridctl.core.orders import Intent
from gridctl.core.risk import NEVER_HI, NEVER_LO, price_band
from gridctl.sim.replay import point_at

ENTRY, EXIT = 0, 1
REL = 1e-9  # relative margin of the float estimates of thresholds
SEARCH_CHUNK = 64  # candles looked at first by the skip-ahead search (then 4x more each time)


_KERNEL: list = []  # [the compiled search, or None] once decided


def _say(message: str) -> None:
    sys.stderr.write(f"gridctl: {message}\n")


def kernel(notify: Optional[Callable[[str], None]] = _say) -> Optional[Callable]:
    """The numba-compiled skip-ahead search, or None for the pure-Python core (numpy slices),
    which finds the same candles.

    GRIDCTL_KERNEL=numba uses it (numba installed: ``pip install 'gridctl[fast]'``),
    =python never; by default (auto) only in a process that has imported numba already:
    importing numba costs about a second, more than the kernel saves on a year of candles,
    so it pays in a process that runs many backtests (a sweep), not in one `gridctl backtest`.
    """
    if _KERNEL:
        return _KERNEL[0]
    mode = os.environ.get("GRIDCTL_KERNEL", "auto")
    if mode == "python" or (mode == "auto" and "numba" not in sys.modules):
        return None
    try:
        from gridctl.backtest import fastkernel_numba
    except ImportError:
        _KERNEL.append(None)
        return None
    _KERNEL.append(fastkernel_numba.load(notify))
    return _KERNEL[0]


def use_kernel(enabled: bool) -> Optional[Callable]:
    """Use the compiled search from now on in this process (when numba is installed), or not."""
    _KERNEL.clear()
    if not enabled:
        _KERNEL.append(None)
        return None
    try:
        from gridctl.backtest import fastkernel_numba
    except ImportError:
        _KERNEL.append(None)
        return None
    _KERNEL.append(fastkernel_numba.load(_say))
    return _KERNEL[0]


class Fallback(Exception):
    """The core cannot do this candle exactly: the reference engine does it."""


class Order:
    """A resting own order: level position, intent, side (+1/-1), price, qty, flags, ids."""

    __slots__ = ("pos", "intent", "side", "price", "qty", "ro", "po", "seq", "gen", "ts", "sim")

    def __init__(self, pos, intent, side, price, qty, ro, po, seq, gen, ts):
        self.pos, self.intent, self.side, self.price, self.qty = pos, intent, side, price, qty
        self.ro, self.po, self.seq, self.gen, self.ts = ro, po, seq, gen, ts


def scale_exponent(values) -> int:
    """Decimal places needed so every rate times 10**e is an integer."""
    e = 0
    for v in values:
        exp = Decimal(v).normalize().as_tuple().exponent
        if isinstance(exp, int) and -exp > e:
            e = -exp
    return e


class Static:
    """What does not change during a run: the grid, the rules as integers, the data."""

    def __init__(self, bt):
        e, d = bt.engine, bt.data
        rules = e.rules
        specs = sorted((lv.spec for lv in e.levels.values()), key=lambda s: s.index)
        self.index = [s.index for s in specs]
        self.pos_of = {s.index: i for i, s in enumerate(specs)}
        self.side = [s.side.sign for s in specs]
        self.entry = [s.entry for s in specs]
        self.exit = [s.exit for s in specs]
        self.size = [s.size for s in specs]
        buys = sorted((s.entry, i) for i, s in enumerate(specs) if s.side is Side.BUY)
        sells = sorted((s.entry, i) for i, s in enumerate(specs) if s.side is Side.SELL)
        self.buy_px, self.buy_pos = [p for p, _ in buys], [i for _, i in buys]
        self.sell_px, self.sell_pos = [p for p, _ in sells], [i for _, i in sells]
        self.all_px = sorted((s.entry, i) for i, s in enumerate(specs))
        self.all_px_p = [p for p, _ in self.all_px]
        rates = [rules.maker_fee, rules.taker_fee] + [Decimal(r) for r in d.funding_rates]
        self.e = scale_exponent(rates)
        self.ten_e = 10 ** self.e
        self.U = rules.tick * rules.step * rules.contract_size  # quote per tick·step
        self.Qd = self.U / self.ten_e  # the money quantum
        self.Uf, self.Qf = float(self.U), float(self.Qd)
        self.maker_int = int(rules.maker_fee * self.ten_e)
        self.min_steps = rules.min_steps
        self.min_notional = rules.min_notional / self.U  # in tick·steps
        self.mmr = float(rules.maintenance_margin_rate)
        self.leverage = bt.sim.leverage
        cfg = e.cfg
        self.max_position = cfg.max_position
        self.post_only = cfg.post_only
        self.plo, self.phi = price_band(cfg.limits)
        lim = cfg.limits
        self.max_loss = None if lim.max_loss is None else float(lim.max_loss)
        self.take_profit = None if lim.take_profit is None else float(lim.take_profit)
        self.max_level_loss = None if lim.max_level_loss is None else float(lim.max_level_loss)
        self.margin_ratio = None if cfg.margin_ratio is None else tuple(float(r) for r in cfg.margin_ratio)
        self.n = len(d)
        self.low, self.high = (np.ascontiguousarray(a, dtype=np.int64) for a in (d.low, d.high))  # searched
        self.kernel = kernel()
        self.close = d.close
        # read one candle at a time: memoryviews give Python ints without numpy scalars
        self.ts_v, self.open_v, self.high_v, self.low_v, self.close_v = (
            memoryview(np.ascontiguousarray(a, dtype=np.int64)) for a in (d.ts, d.open, d.high, d.low, d.close))
        self.marks = None
        if d.mark_ts is not None and len(d.mark_ts):
            self.marks = d.marks_at(d.ts).tolist()
        self.events = bt._event_idx.tolist()
        self.funding_by_candle = bt.replay._funding_by_candle
        self.interval = bt.replay.interval
        self.rates = [Decimal(r) for r in d.funding_rates]
        self.rate_int = [int(r * self.ten_e) for r in self.rates]


def eligible(bt) -> bool:
    """Whether the core can take over from the reference objects' present state."""
    e, d, sim = bt.engine, bt.driver, bt.sim
    if e.status != RUNNING or not e.opened or e.cfg.hedge or sim.hedge:
        return False
    if d._cooldown or d.unmet or d.wake_at is not None or d._fresh_rejects or sim._price is None:
        return False
    un = e.ledger.lots.get(UNASSIGNED)
    if un is not None and un.qty:
        return False
    return e.ledger.position == sim.position


class FastCore:
    """The integer state of one running grid and its simulated book, and the candle walk."""

    def __init__(self, bt, st: Static):
        self.bt, self.st = bt, st

    # -- loading ---------------------------------------------------------------------------
    def load(self) -> bool:
        """Take the reference objects' state; False when it is not one the core represents."""
        bt, st = self.bt, self.st
        e, sim = bt.engine, bt.sim
        L = len(st.index)
        self.held = [0] * L
        self.exiting = [False] * L
        self.gen = [0] * L
        for lv in e.levels.values():
            i = st.pos_of[lv.spec.index]
            self.held[i], self.exiting[i], self.gen[i] = lv.held, lv.exiting, lv.gen
        U = st.U
        led = e.ledger
        # per-level lot, as integers (values in tick·steps, fees in money quanta)
        self.lsign, self.lcost, self.lts = [0] * L, [0] * L, [0] * L
        self.lxval, self.lxqty, self.lcqty, self.lccost = ([0] * L for _ in range(4))
        self.lefee, self.lxfee = [ZERO] * L, [ZERO] * L
        self.fee_dec: dict = {}  # (price, qty) -> the maker fee as the venue computes it
        for key, lot in led.lots.items():
            if key == UNASSIGNED:
                continue
            i = st.pos_of.get(key)
            if i is None or lot.qty != self.held[i]:
                return False
            vals = [lot.cost / U, lot.exit_value / U, lot.cycle_cost / U]
            if any(v != v.to_integral_value() for v in vals):
                return False
            self.lsign[i], self.lts[i], self.lxqty[i], self.lcqty[i] = lot.sign, lot.entry_ts, lot.exit_qty, lot.cycle_qty
            self.lcost[i], self.lxval[i], self.lccost[i] = (int(v) for v in vals)
            self.lefee[i], self.lxfee[i] = lot.entry_fees, lot.exit_fees  # Decimal: trades show them as summed
        for i in range(L):
            if self.held[i] and not self.lsign[i]:
                return False
        self.nlong = sum(1 for i in range(L) if self.held[i] and self.lsign[i] > 0)
        self.nshort = sum(1 for i in range(L) if self.held[i] and self.lsign[i] < 0)
        # the book
        self.bids: dict[int, Order] = {}
        self.asks: dict[int, Order] = {}
        self.ent_ord: list[Optional[Order]] = [None] * L
        self.ext_ord: list[Optional[Order]] = [None] * L
        self.B = self.S = 0  # tick·steps of resting orders that can add exposure
        self.ro_buys = self.ro_sells = 0
        for o in sim.book:
            dd = e.decode(o.client_id)
            if dd is None or dd.intent is Intent.CLOSE or o.filled or o.price is None or dd.level not in st.pos_of:
                return False
            i = st.pos_of[dd.level]
            intent = ENTRY if dd.intent is Intent.ENTRY else EXIT
            side = o.side.sign
            seq = int(o.order_id[4:]) if o.order_id.startswith("sim-") else -1
            book = self.bids if side > 0 else self.asks
            slot = self.ent_ord if intent == ENTRY else self.ext_ord
            if o.price in book or slot[i] is not None or o.position_side is not None:
                return False
            od = Order(i, intent, side, o.price, o.qty, o.reduce_only, o.post_only, seq, dd.gen, o.ts)
            od.sim = o  # type: ignore[attr-defined]
            self._add(od)
        self.bid_px = sorted(self.bids)
        self.ask_px = sorted(self.asks)
        # the account (one-way) and the ledger, as changes since now
        self.price = sim.price
        self.fmark = sim._mark
        self.net = sim.position
        self.lnet = led.position
        self.cash = 0  # sum of side·price·qty of fills since load
        self.fee_q = 0
        self.fund_q = 0
        self.gp = 0  # grid profit since load, tick·steps
        self.nfills = self.nexits = 0
        self.seq, self.tseq = sim._seq, sim._trade_seq
        leg = sim.account.legs["both"]
        self.kacct = float(sim.account.balance - leg.entry * leg.qty * e.rules.step * e.rules.contract_size)
        self.base0 = (led.realized - led.fees + led.funding
                      - sum((lot.sign * lot.cost for lot in led.lots.values() if lot.qty), Decimal(0)))
        self.kled = float(self.base0)
        self.margin_level = e.margin_level
        self.m0 = self.price  # the market at the last reaction
        self.rlo = self.rhi = self.price  # react at once
        self.touched: set[int] = set()
        self.log: list = []
        self.segments: list = []  # (first candle, lnet, cash, fee_q, fund_q)
        self.max_abs = abs(self.lnet)
        self.lot_touched: set[int] = set()
        self._eligible_lists()
        self.limits()
        return True

    # -- the book --------------------------------------------------------------------------
    def _add(self, o: Order) -> None:
        if o.side > 0:
            self.bids[o.price] = o
            if o.ro:
                self.ro_buys += 1
            else:
                self.B += o.price * o.qty
        else:
            self.asks[o.price] = o
            if o.ro:
                self.ro_sells += 1
            else:
                self.S += o.price * o.qty
        (self.ent_ord if o.intent == ENTRY else self.ext_ord)[o.pos] = o

    def _remove(self, o: Order) -> None:
        if o.side > 0:
            del self.bids[o.price]
            del self.bid_px[bisect_left(self.bid_px, o.price)]
            if o.ro:
                self.ro_buys -= 1
            else:
                self.B -= o.price * o.qty
        else:
            del self.asks[o.price]
            del self.ask_px[bisect_left(self.ask_px, o.price)]
            if o.ro:
                self.ro_sells -= 1
            else:
                self.S -= o.price * o.qty
        (self.ent_ord if o.intent == ENTRY else self.ext_ord)[o.pos] = None

    # -- thresholds ------------------------------------------------------------------------
    def limits(self) -> None:
        """The prices (dlo, dhi) the walk must stay strictly between, from every threshold
        that depends on the price; thresholds on a fixed mark are checked here."""
        st = self.st
        dlo, dhi = st.plo, st.phi
        Uf, net = st.Uf, self.net
        mark = self.fmark
        cash_f = Uf * self.cash
        money = self.fund_q * st.Qf - self.fee_q * st.Qf
        checks = []  # (a, b): a + b·mark must stay > 0
        if net:
            kc = self.kacct - cash_f + money  # equity = kc + Uf·net·mark
            mm = st.mmr * Uf * abs(net)  # maintenance = mm·mark
            checks.append((kc, Uf * net - mm))  # liquidation: equity - maintenance
            if st.margin_ratio is not None:
                warn, reduce, close = st.margin_ratio
                lvl = self.margin_level
                checks.append((kc, Uf * net))  # equity > 0
                upper = (warn, reduce, close)[lvl]
                checks.append((upper * kc, upper * Uf * net - mm))  # ratio < upper
                if lvl:
                    lower = (warn, reduce)[lvl - 1]
                    checks.append((-lower * kc, mm - lower * Uf * net))  # ratio >= lower
        elif st.margin_ratio is not None and self.margin_level:
            raise Fallback
        if st.max_loss is not None or st.take_profit is not None or st.max_level_loss is not None:
            kl = self.kled - cash_f + money  # total PnL = kl + Uf·lnet·mark
            b = Uf * self.lnet
            if st.max_loss is not None:
                checks.append((kl + st.max_loss, b))
            if st.take_profit is not None:
                checks.append((st.take_profit - kl, -b))
            if st.max_level_loss is not None:
                for i, q in enumerate(self.held):
                    if q:
                        s = self.lsign[i]
                        checks.append((st.max_level_loss - s * Uf * self.lcost[i], s * Uf * q))
        for a, b in checks:
            if mark is not None or b == 0:
                m = mark if mark is not None else self.price
                v = a + b * m
                if v <= REL * (abs(a) + abs(b * m)) + 1e-12:
                    raise Fallback
                continue
            r = -a / b
            pad = 2 + abs(r) * REL
            if b > 0:
                dlo = max(dlo, math.floor(r + pad))
            else:
                dhi = min(dhi, math.ceil(r - pad))
        self.dlo, self.dhi = dlo, dhi
        if not dlo < self.price < dhi:
            raise Fallback

    # -- activation points -----------------------------------------------------------------
    def _eligible_lists(self) -> None:
        """Entry prices of the levels that want (more of) their entry, per side, ascending:
        where the engine's band stops the walk (an entry starts to rest one tick past it)."""
        st = self.st
        ok = [not self.exiting[i] and self.held[i] < st.size[i] for i in range(len(st.index))]
        self.ok = ok
        self.elig_buy = [p for p, i in zip(st.buy_px, st.buy_pos) if ok[i]]
        self.elig_sell = [p for p, i in zip(st.sell_px, st.sell_pos) if ok[i]]

    def _set_ok(self, i: int) -> None:
        """Level i's eligibility may have changed (after a fill)."""
        st = self.st
        now = not self.exiting[i] and self.held[i] < st.size[i]
        if now == self.ok[i]:
            return
        self.ok[i] = now
        lst = self.elig_buy if st.side[i] > 0 else self.elig_sell
        p = st.entry[i]
        if now:
            lst.insert(bisect_left(lst, p), p)
        else:
            del lst[bisect_left(lst, p)]

    def _act_up(self, cur: int) -> int:
        """The price above cur where a buy entry starts to rest (E + 1), or NEVER_HI."""
        px = self.elig_buy
        j = bisect_left(px, cur)
        return px[j] + 1 if j < len(px) else NEVER_HI

    def _act_down(self, cur: int) -> int:
        """The price below cur where a sell entry starts to rest (E - 1), or NEVER_LO."""
        px = self.elig_sell
        j = bisect_right(px, cur) - 1
        return px[j] - 1 if j >= 0 else NEVER_LO

    def band(self) -> tuple[int, int]:
        """While every price of a candle stays strictly inside, nothing can happen."""
        lo = max(self.bid_px[-1] if self.bid_px else NEVER_LO, self._act_down(self.price), self.dlo)
        hi = min(self.ask_px[0] if self.ask_px else NEVER_HI, self._act_up(self.price), self.dhi)
        return lo, hi

    # -- the run ---------------------------------------------------------------------------
    def run(self, k: int, progress=None) -> int:
        """Play candles from k; returns the first candle the reference must play (or n).
        The log then holds exactly what happened before that candle."""
        st = self.st
        n = st.n
        low, high = st.low, st.high
        lowv, highv = st.low_v, st.high_v
        events = st.events
        search = st.kernel
        if not self.segments:
            self.first = k
            self.segments.append((k, self.lnet, 0, 0, 0))
        last = self.segments[-1][1:]
        self.resume = (self.price, self.fmark)
        log, segments = self.log, self.segments
        done = 0
        while k < n:
            lo, hi = self.band()
            stop = events[bisect_left(events, k)]
            if stop > n:
                stop = n
            if k < stop and (lowv[k] <= lo or highv[k] >= hi):
                j = k
            elif search is not None:
                j = search(low, high, k, stop, lo, hi)
            else:
                start, size, j = k, SEARCH_CHUNK, stop
                while start < stop:
                    end = min(stop, start + size)
                    hit = (low[start:end] <= lo) | (high[start:end] >= hi)
                    i = int(hit.argmax())
                    if hit[i]:
                        j = start + i
                        break
                    start = end
                    size *= 4
            k = j
            if k >= n:
                break
            mark = len(log)
            self.resume = (self.price, self.fmark)
            try:
                self.candle(k)
            except Fallback:
                del log[mark:]
                return k
            state = (self.lnet, self.cash, self.fee_q, self.fund_q)
            if state != last:
                segments.append((k, *state))
                last = state
            k += 1
            done += 1
            if progress is not None and done % 2048 == 0:
                progress(k, n)
        return n

    def candle(self, k: int) -> None:
        """Walk candle k as Replay.candle does, reacting at every stop the reference reacts at."""
        st = self.st
        ts = st.ts_v[k]
        if st.marks is not None:
            m = st.marks[k]
            if m >= 0 and m != self.fmark:
                self.fmark = m
                self.log.append(("M", m))
                self.limits()
        o, h, lo, c = st.open_v[k], st.high_v[k], st.low_v[k], st.close_v[k]
        path = (o, lo, h, c) if c >= o else (o, h, lo, c)
        if self.price != o:
            self.gap(ts, o)
        if self.touched or not self.rlo < o < self.rhi:
            self.react(ts)
        due = st.funding_by_candle.get(k)
        if not due:
            walk = self.walk
            walk(ts, path[1])
            walk(ts, path[2])
            walk(ts, path[3])
            return
        fts = self.bt.data.funding_ts
        due = sorted(((int(fts[i]) - ts) / st.interval, i) for i in due)
        for seg in range(3):
            while due and point_at(list(path), due[0][0])[0] == seg:
                _, price = point_at(list(path), due[0][0])
                self.walk(ts, price)
                self.fund(due.pop(0)[1])
            self.walk(ts, path[seg + 1])
        for _, i in due:
            self.fund(i)

    def fund(self, i: int) -> None:
        """Funding row i on the position held now, at the mark of its instant."""
        st, d = self.st, self.bt.data
        t = int(d.funding_ts[i])
        m = d.mark_at(t)
        if m is not None and m != self.fmark:
            self.fmark = m
            self.log.append(("M", m))
        if self.net:
            mark = self.fmark if self.fmark is not None else self.price
            self.fund_q -= mark * self.net * st.rate_int[i]
            self.log.append(("F", t, i, mark, self.net))
        self.limits()

    def gap(self, ts: int, target: int) -> None:
        """From the previous close to the open: resting orders fill at their own price."""
        while self.price != target:
            cur = self.price
            if target < cur:
                if not self.bid_px or self.bid_px[-1] < target:
                    break
                stop = self.bid_px[-1]
                if stop <= self.dlo:
                    raise Fallback
                self.price = stop
                self.fill(ts, self.bids[stop])
            else:
                if not self.ask_px or self.ask_px[0] > target:
                    break
                stop = self.ask_px[0]
                if stop >= self.dhi:
                    raise Fallback
                self.price = stop
                self.fill(ts, self.asks[stop])
            self.react(ts)
        self.price = target
        if not self.dlo < target < self.dhi:
            raise Fallback

    def walk(self, ts: int, target: int) -> None:
        """Move to target, stopping at every fill and where an entry starts to rest; react
        where the reference's reconcile could change something (a fill, an entry line passed)."""
        price = self.price
        while price != target:
            if target < price:
                stop = target
                bp = self.bid_px
                b = bp[-1] if bp else NEVER_LO
                if b > stop:
                    stop = b
                es = self.elig_sell
                if es:
                    j = bisect_right(es, price) - 1
                    if j >= 0 and es[j] - 1 > stop:
                        stop = es[j] - 1
                if stop <= self.dlo:
                    raise Fallback
                self.price = price = stop
                if b == stop:
                    self.fill(ts, self.bids[stop])
            else:
                stop = target
                ap = self.ask_px
                b = ap[0] if ap else NEVER_HI
                if b < stop:
                    stop = b
                eb = self.elig_buy
                if eb:
                    j = bisect_left(eb, price)
                    if j < len(eb) and eb[j] + 1 < stop:
                        stop = eb[j] + 1
                if stop >= self.dhi:
                    raise Fallback
                self.price = price = stop
                if b == stop:
                    self.fill(ts, self.asks[stop])
            if self.touched or not self.rlo < price < self.rhi:
                self.react(ts)

    # -- fills -----------------------------------------------------------------------------
    def fill(self, ts: int, o: Order) -> None:
        """The resting order fills whole at its price as maker (what Exchange._execute does)."""
        st = self.st
        self._remove(o)
        q, p, side, i = o.qty, o.price, o.side, o.pos
        if o.ro and not (self.net * side < 0 and abs(self.net) >= q):
            raise Fallback  # clipped by the position
        fee = p * q * st.maker_int
        fee_d = self.fee_dec.get((p, q))
        if fee_d is None:
            fee_d = self.fee_dec[(p, q)] = self.bt.engine.rules.notional(p, q) * self.bt.engine.rules.maker_fee
        self.net += side * q
        self.lnet += side * q
        self.cash += side * p * q
        self.fee_q += fee
        self.nfills += 1
        self.tseq += 1
        if abs(self.lnet) > self.max_abs:
            self.max_abs = abs(self.lnet)
        trade = None
        if o.intent == ENTRY:
            if self.held[i] == 0:
                if side > 0:
                    self.nlong += 1
                else:
                    self.nshort += 1
                self.lsign[i], self.lts[i] = side, ts
                self.lefee[i] = self.lxfee[i] = ZERO
                self.lxval[i] = self.lccost[i] = self.lxqty[i] = self.lcqty[i] = 0
            self.held[i] += q
            self.lcost[i] += p * q
            self.lcqty[i] += q
            self.lccost[i] += p * q
            self.lefee[i] += fee_d
            self.exiting[i] = self.held[i] >= st.size[i]
        else:
            if q != self.held[i]:
                raise Fallback  # a partial take: the ledger divides
            s = self.lsign[i]
            self.nexits += 1
            if s > 0:
                self.nlong -= 1
            else:
                self.nshort -= 1
            self.gp += s * (p * q - self.lcost[i])
            self.lcost[i] = 0
            self.held[i] = 0
            self.lxfee[i] += fee_d
            self.lxval[i] += p * q
            self.lxqty[i] += q
            self.exiting[i] = False
            trade = (i, s, self.lts[i], ts, self.lccost[i], self.lxval[i], self.lcqty[i],
                     self.lefee[i] + self.lxfee[i])
        self._set_ok(i)
        self.lot_touched.add(i)
        self.log.append(("X", ts, o, fee_d, self.tseq, trade))
        if (self.ro_buys and self.net >= 0) or (self.ro_sells and self.net <= 0):
            raise Fallback  # a reduce-only order would expire
        self.touched.add(i)
        self.limits()

    # -- the reconcile ---------------------------------------------------------------------
    def react(self, ts: int) -> None:
        """What the driver's reconcile does at this market: only for the levels that can change."""
        st = self.st
        m = self.price
        cand = self.touched
        if m != self.m0:
            self._passed(m)
        if not cand and st.max_position is None:
            return
        held, size, ok = self.held, st.size, self.ok
        mixed = self.nlong and self.nshort
        capped = st.max_position is not None
        if capped or mixed:
            cand.update(range(len(held)))
        entries_on = self.margin_level < 2
        want_e = None
        if capped:
            want_e = {}
            for i in cand:
                if entries_on and ok[i]:
                    e = st.entry[i]
                    if self.ent_ord[i] is not None or (e < m if st.side[i] > 0 else e > m):
                        want_e[i] = size[i] - held[i]
            want_e = self._cap(want_e, m)
        ro_of = self._exit_ro() if mixed else None
        places = []
        po = st.post_only
        ent_ord, ext_ord, sides = self.ent_ord, self.ext_ord, st.side
        for i in (sorted(cand) if len(cand) > 1 else cand):
            side = sides[i]
            o = ent_ord[i]
            if want_e is not None:
                q = want_e.get(i)
            elif entries_on and ok[i]:
                e = st.entry[i]
                q = size[i] - held[i] if o is not None or (e < m if side > 0 else e > m) else None
            else:
                q = None
            if o is not None and (q is None or o.qty != q):
                self._cancel(o)
                o = None
            if q is not None and o is None:
                places.append((i, ENTRY, side, st.entry[i], q, False, po))
            o = ext_ord[i]
            h = held[i]
            if h:
                ro = True if ro_of is None else ro_of[i]
                if o is not None and (o.qty != h or o.ro != ro):
                    self._cancel(o)
                    o = None
                if o is None:
                    x = st.exit[i]
                    places.append((i, EXIT, -side, x, h, ro, po and (x > m if side > 0 else x < m)))
            elif o is not None:
                self._cancel(o)
        cand.clear()
        for args in places:
            self.place(ts, *args)

    def _passed(self, m: int) -> None:
        """The market moved from the last reaction's to m: the levels whose entry line lies
        between may start (or stop) wanting their entry; and where the next reaction is due."""
        st, m0 = self.st, self.m0
        px = st.all_px_p
        lo, hi = (m0, m) if m0 < m else (m, m0)
        a, b = bisect_left(px, lo), bisect_right(px, hi)
        if a < b:
            for j in range(a, b):
                self.touched.add(st.all_px[j][1])
        self.m0 = m
        j = bisect_left(px, m)
        if j < len(px) and px[j] == m:
            self.rlo = self.rhi = m
        else:
            self.rhi = px[j] if j < len(px) else NEVER_HI
            self.rlo = px[j - 1] if j > 0 else NEVER_LO

    def _cancel(self, o: Order) -> None:
        if o.intent == ENTRY and self.held[o.pos] and not self.exiting[o.pos]:
            raise Fallback  # a partly filled entry would go to its exit
        self._remove(o)
        self.log.append(("C", o))

    def _exit_ro(self) -> dict[int, bool]:
        """reduceOnly per held level, as orders._exits gives it in one-way mode."""
        st = self.st
        held = [i for i, h in enumerate(self.held) if h]
        net = sum(self.lsign[i] * self.held[i] for i in held)
        room = {-1: max(net, 0), 1: max(-net, 0)}  # by exit side: sell (-1) reduces a long
        out = {}
        for i in sorted(held, key=lambda i: st.exit[i] if st.side[i] > 0 else -st.exit[i]):
            xs = -st.side[i]
            ro = self.held[i] <= room[xs]
            if ro:
                room[xs] -= self.held[i]
            out[i] = ro
        return out

    def _cap(self, want: dict[int, int], m: int) -> dict[int, int]:
        """orders._cap_entries: drop the farthest entries that could pass max_position."""
        st = self.st
        cap = st.max_position
        net = sum(st.side[i] * h for i, h in enumerate(self.held))
        kept = {}
        for side, exposure in ((1, net), (-1, -net)):
            same = sorted((i for i in want if st.side[i] == side), key=lambda i: (abs(st.entry[i] - m), i))
            for i in same:
                if exposure + want[i] <= cap:
                    exposure += want[i]
                    kept[i] = want[i]
        return kept

    def place(self, ts, i, intent, side, price, qty, ro, po) -> None:
        """SimExchange.place for an order that rests; anything else falls back."""
        st = self.st
        if qty < st.min_steps or price <= 0:
            raise Fallback
        cur = self.price
        if (price >= cur) if side > 0 else (price <= cur):
            raise Fallback  # post-only reject or a taker execution
        if ro:
            if not self.net * side < 0:
                raise Fallback  # reduce_only_would_increase
        else:
            if price * qty < st.min_notional:
                raise Fallback
            mark = self.fmark if self.fmark is not None else cur
            pn = self.net * mark
            before = max(abs(pn + self.B), abs(pn - self.S))
            need = max(abs(pn + self.B + (price * qty if side > 0 else 0)),
                       abs(pn - self.S - (price * qty if side < 0 else 0)))
            if need > before:
                equity = self.kacct - st.Uf * self.cash + (self.fund_q - self.fee_q) * st.Qf + st.Uf * pn
                need_f = need * st.Uf / st.leverage
                if need_f >= equity - REL * (abs(equity) + need_f) - 1e-9:
                    raise Fallback  # insufficient margin, or too close to tell
        self.seq += 1
        self.gen[i] += 1
        o = Order(i, intent, side, price, qty, ro, po, self.seq, self.gen[i], ts)
        book = self.bids if side > 0 else self.asks
        if price in book:
            raise Fallback
        self._add(o)
        if side > 0:
            self.bid_px.insert(bisect_left(self.bid_px, price), price)
        else:
            self.ask_px.insert(bisect_left(self.ask_px, price), price)
        self.log.append(("P", o))


def all_candles_marks(data) -> np.ndarray:
    """The mark at each candle's close (the known mark, else the close), for the figures."""
    m = data.marks_at(data.ts)
    return np.where(m >= 0, m, data.close)
