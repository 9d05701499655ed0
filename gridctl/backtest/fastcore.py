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

from bisect import bisect_left, bisect_right

from gridctl.backtest.fastbase import ENTRY, EXIT, REL, Fallback, Order
from gridctl.backtest.fastlimits import update
from gridctl.backtest.fastload import Static, eligible, load_state
from gridctl.backtest.fastsearch import first_reaching, kernel, use_kernel
from gridctl.core.ledger import ZERO
from gridctl.core.risk import NEVER_HI, NEVER_LO
from gridctl.sim.replay import point_at

__all__ = ["ENTRY", "EXIT", "FastCore", "Fallback", "Order", "Static", "eligible", "kernel", "use_kernel"]


class FastCore:
    """The integer state of one running grid and its simulated book, and the candle walk."""

    def __init__(self, bt, st: Static):
        self.bt, self.st = bt, st

    def load(self) -> bool:
        """Take the reference objects' state; False when it is not one the core represents."""
        return load_state(self)

    def limits(self) -> None:
        """Recompute the band the thresholds allow (after a change of position, funds or mark)."""
        update(self)

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
        search = st.kernel or first_reaching
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
            else:
                j = search(low, high, k, stop, lo, hi)
            k = j
            if k >= n:
                break
            mark = len(log)
            self.resume = (self.price, self.fmark)
            try:
                self.candle(k)
            except Fallback:
                del log[mark:]
                self.bt.stats["core"] += done
                return k
            state = (self.lnet, self.cash, self.fee_q, self.fund_q)
            if state != last:
                segments.append((k, *state))
                last = state
            k += 1
            done += 1
            if progress is not None and done % 2048 == 0:
                progress(k, n)
        self.bt.stats["core"] += done
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
            self.exiting[i] = self.exiting[i] or self.held[i] >= st.size[i]  # as GridEngine.on_fill
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


