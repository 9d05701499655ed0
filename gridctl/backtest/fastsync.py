"""From the integer core's log back to the reference objects, and the per-candle figures.

`replay` hands the state over to the reference engine before a candle the core cannot do:
every placement, cancel, fill and funding payment of the log goes through the simulated
exchange's and the driver's own methods, so the reference continues from exactly the
state it would have reached itself. `account_span` does the close-of-candle accounting
of a span the core played (drawdown, time in position) in one vectorised pass.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import numpy as np

from gridctl.backtest.records import FillRecord
from gridctl.core.engine import Event
from gridctl.core.grid import Side
from gridctl.core.ledger import Lot, Trade
from gridctl.core.orders import Intent
from gridctl.sim.book import SimOrder

SIDE = {1: Side.BUY, -1: Side.SELL}
INTENT = {0: Intent.ENTRY, 1: Intent.EXIT}
SAFE = 2**62


def replay(bt, core) -> None:
    """Apply the core's log to bt's engine, driver and simulated exchange, through their methods."""
    e, sim, st = bt.engine, bt.sim, core.st
    for entry in core.log:
        tag = entry[0]
        if tag == "X":
            _, ts, o, _fee, _tseq, _trade = entry
            so = o.sim
            sim._price = o.price
            sim.book.remove(so)
            sim._unrest_sums(so)
            bt.book_version += 1
            for f in sim._execute(ts, so, o.price, maker=True):
                bt._apply_fill(f)
        elif tag == "P":
            o = entry[1]
            level = st.index[o.pos]
            lv = e.levels[level]
            e.levels[level] = replace(lv, gen=o.gen)
            intent = INTENT[o.intent]
            so = SimOrder(e.client_id(level, intent, o.gen), f"sim-{o.seq}", SIDE[o.side], o.price, o.qty, 0,
                          o.ro, o.po, None, o.ts)
            o.sim = so
            sim._rest(so)
            sim._seq = max(sim._seq, o.seq)
            bt.book_version += 1
        elif tag == "C":
            o = entry[1]
            so = o.sim
            sim._unrest(so)
            so.status = "cancelled"
            bt.book_version += 1
            if o.intent == 0:
                e.on_entry_cancelled(st.index[o.pos])
        elif tag == "M":
            sim.set_mark(entry[1])
        elif tag == "F":
            _, t, i, mark, _net = entry
            if sim._mark is None:  # the mark is the price the walk had reached
                sim._price = mark
            pay = sim.pay_funding(t, st.rates[i])
            if pay is not None:
                bt._apply(pay)
    core.log.clear()
    sim._price, sim._mark = core.resume
    bt.driver._synced = None
    bt.book_version += 1


def account_span(bt, core, end: int) -> None:
    """Close-of-candle accounting of candles core.first..end-1 from the core's segments."""
    st, s = core.st, bt.series
    segs = core.segments
    if not segs or end <= segs[0][0]:
        return
    segs = [g for g in segs if g[0] < end]
    starts = [g[0] for g in segs]
    lengths = np.diff(np.array(starts + [end], dtype=np.int64))
    nets = [g[1] for g in segs]
    base0 = core.base0
    b0q = base0 / st.Qd
    q_ok = b0q == b0q.to_integral_value()
    te = st.ten_e
    bases_q = [int(b0q) - g[2] * te - g[3] + g[4] for g in segs] if q_ok else None
    marks = bt._close_marks()[starts[0]:end]
    x = marks * np.repeat(np.array(nets, dtype=np.int64), lengths)
    tv = bt.engine.rules.tick * bt.engine.rules.step * bt.engine.rules.contract_size
    peak_q = None
    if s.peak is not None and q_ok:
        pq = s.peak / st.Qd
        if pq == pq.to_integral_value():
            peak_q = int(pq)
        else:
            q_ok = False
    big = max(abs(int(x.max())), abs(int(x.min()))) * te + max(abs(b) for b in bases_q) if q_ok else SAFE
    if q_ok and big < SAFE and (peak_q is None or abs(peak_q) < SAFE):
        pnl = np.repeat(np.array(bases_q, dtype=np.int64), lengths) + x * te
        cm = np.maximum.accumulate(pnl)
        if peak_q is not None:
            cm = np.maximum(cm, peak_q)
        dd = Decimal(int((cm - pnl).max())) * st.Qd
        if dd > s.max_drawdown:
            s.max_drawdown = dd
        s.peak = Decimal(int(cm[-1])) * st.Qd
        offs = np.concatenate(([0], np.cumsum(lengths))).tolist()
        qd = st.Qd

        def build() -> list:
            return [(a, Decimal(bases_q[j]) * qd, tv, x[offs[j]:offs[j + 1]]) for j, a in enumerate(starts)]

        s.lazy.append(build)
    else:  # exact Decimals, segment by segment, as Backtest._account does
        offs = np.concatenate(([0], np.cumsum(lengths)))
        for j, g in enumerate(segs):
            base = base0 - st.U * g[2] + (Decimal(g[4]) - Decimal(g[3])) * st.Qd
            xs = x[offs[j]:offs[j + 1]]
            first_peak = s.peak if s.peak is not None else base + tv * int(xs[0])
            runmax = np.maximum.accumulate(xs)
            worst_vs_old = first_peak - (base + tv * int(xs.min()))
            worst_inside = tv * int((runmax - xs).max())
            s.max_drawdown = max(s.max_drawdown, worst_vs_old, worst_inside)
            s.pnl_segments.append((g[0], base, tv, xs))
            s.peak = max(first_peak, base + tv * int(runmax[-1]))
    absn = np.abs(np.array(nets, dtype=np.int64))
    s.sum_abs_position += int((absn * lengths).sum())
    s.candles_in_position += int(lengths[absn > 0].sum())
    s.max_abs_position = max(s.max_abs_position, int(absn.max()))


def finish(bt, core) -> None:
    """The end of a run the core played to the last candle: the reference objects' final
    state from the core's integers (Decimal only here), the simulated account by replaying
    its fills (its average entry price is path-dependent), events and fills from the log."""
    e, sim, st, drv = bt.engine, bt.sim, core.st, bt.driver
    led = e.ledger
    U, Qd = st.U, st.Qd
    for i, level in enumerate(st.index):
        lv = e.levels[level]
        if lv.held != core.held[i] or lv.exiting != core.exiting[i] or lv.gen != core.gen[i]:
            e.levels[level] = replace(lv, held=core.held[i], exiting=core.exiting[i], gen=core.gen[i])
    for i in sorted(core.lot_touched):
        lot = led.lots.setdefault(st.index[i], Lot())
        lot.sign, lot.qty, lot.cost, lot.entry_ts = core.lsign[i], core.held[i], Decimal(core.lcost[i]) * U, core.lts[i]
        lot.entry_fees, lot.exit_fees = core.lefee[i], core.lxfee[i]
        lot.exit_value, lot.exit_qty = Decimal(core.lxval[i]) * U, core.lxqty[i]
        lot.cycle_qty, lot.cycle_cost = core.lcqty[i], Decimal(core.lccost[i]) * U
    if core.nexits:
        led.grid_profit += Decimal(core.gp) * U
    if core.nfills:  # in the venue's fee exponent, as a sum of the fees would be
        led.fees += (Decimal(core.fee_q) * Qd).quantize(next(iter(core.fee_dec.values())))
    led.fills += core.nfills
    conv = _Conv(bt, core)
    acct = sim.account
    records, trades = [], e.trades
    pending = []
    for entry in core.log:
        tag = entry[0]
        if tag == "X":
            _, ts, o, fee, tseq, trade = entry
            side, price, qty = SIDE[o.side], o.price, o.qty
            acct.apply_fill("both", side, price, qty, fee)
            level = st.index[o.pos]
            intent = "entry" if o.intent == 0 else "exit"
            records.append((ts, level, side.value, intent, price, qty, fee, o.ro))
            t = conv.trade(trade) if trade is not None else None
            if t is not None:
                trades.append(t)
            pending.append((ts, o, fee, tseq, t))
        elif tag == "F":
            _, t, i, mark, net = entry
            sim._price, sim._mark = mark, None  # the venue's own method, at that instant's mark
            pay = sim.pay_funding(t, st.rates[i])
            if pay is not None:
                led.add_funding(pay.amount)
                pending.append((t, None, pay.amount, pay.rate, mark))
    if pending:
        bt.add_lazy_events(LazyEvents(e, st, pending))
    if records:
        bt._lazy_fills.append(lambda: [FillRecord(ts, lv, sd, it, conv.price(p), conv.qty(q), fee, ro)
                                       for ts, lv, sd, it, p, q, fee, ro in records])
    # the book: orders filled or cancelled leave it, new ones join it in placement order
    live = {id(o) for o in list(core.bids.values()) + list(core.asks.values())}
    for entry in core.log:
        if entry[0] in ("C", "X"):
            o = entry[2] if entry[0] == "X" else entry[1]
            so = getattr(o, "sim", None)
            if so is not None and so.client_id in sim.book:
                sim._unrest(so)
                so.status = "cancelled" if entry[0] == "C" else "filled"
                if entry[0] == "X":
                    so.filled = so.qty
    for o in sorted(list(core.bids.values()) + list(core.asks.values()), key=lambda o: o.seq):
        if getattr(o, "sim", None) is None and id(o) in live:
            level = st.index[o.pos]
            so = SimOrder(e.client_id(level, INTENT[o.intent], o.gen), f"sim-{o.seq}", SIDE[o.side], o.price,
                          o.qty, 0, o.ro, o.po, None, o.ts)
            o.sim = so
            sim._rest(so)
    core.log.clear()
    sim._seq, sim._trade_seq = core.seq, core.tseq
    # the candles after the last one played stayed inside the band: the walk would have
    # ended at the last close with nothing else changed
    sim._price, sim._mark = int(st.close[-1]), core.fmark
    e.version += 1
    drv._synced = None
    bt.book_version += 1
    bt.series.max_abs_position = max(bt.series.max_abs_position, core.max_abs)


class _Conv:
    """Integers to Decimal as the reference computes them, remembered (a grid has few prices)."""

    def __init__(self, bt, core):
        self.rules, self.st = bt.engine.rules, core.st
        self._p: dict = {}
        self._q: dict = {}
        self._t: dict = {}

    def price(self, t: int) -> Decimal:
        v = self._p.get(t)
        if v is None:
            v = self._p[t] = self.rules.price(t)
        return v

    def qty(self, s: int) -> Decimal:
        v = self._q.get(s)
        if v is None:
            v = self._q[s] = self.rules.qty(s)
        return v

    def trade(self, t: tuple) -> Trade:
        """Ledger.exit's Trade for a completed cycle (pos, sign, entry_ts, exit_ts, cost, value, qty, fees)."""
        i, sign, entry_ts, exit_ts, cost, value, cqty, fees = t
        key = (i, sign, cost, value, cqty, fees)
        v = self._t.get(key)
        if v is None:
            st, rules = self.st, self.rules
            cost_d, value_d = Decimal(cost) * st.U, Decimal(value) * st.U
            q = rules.qty(cqty) * rules.contract_size
            v = self._t[key] = (cost_d / q, value_d / q, rules.qty(cqty), sign * (value_d - cost_d), fees)
        side = Side.BUY if sign > 0 else Side.SELL
        return Trade(self.st.index[i], side, entry_ts, exit_ts, *v)


class LazyEvents:
    """The engine's events for the fills and funding the core played, built when read."""

    def __init__(self, engine, st, pending):
        self.engine, self.st, self.pending = engine, st, pending

    def build(self) -> list:
        e, st = self.engine, self.st
        rules = e.rules
        out = []
        for ts, o, fee, x, y in self.pending:
            if o is None:  # funding: fee is the amount, x the rate
                out.append(Event("info", f"funding {fee:.6f} at rate {x}", None,
                                 {"amount": str(fee), "rate": str(x)}))
                continue
            level = st.index[o.pos]
            intent = INTENT[o.intent]
            side = SIDE[o.side]
            price, qty = rules.price(o.price), rules.qty(o.qty)
            msg = f"{side.value} {qty} @ {price}"
            cid = e.client_id(level, intent, o.gen)
            facts = {"side": side.value, "price": str(price), "qty": str(qty), "fee": str(fee), "maker": True,
                     "order_id": f"sim-{o.seq}", "client_id": str(cid), "trade_id": f"t{x}"}
            out.append(Event("fill", f"level {level} {intent.value} {msg}", level, {"intent": intent.value, **facts}))
            trade = y
            if trade is not None:
                out.append(Event("trade", f"level {level} cycle done: {trade.net_profit:.4f} net", level, {
                    "profit": str(trade.profit), "fees": str(trade.fees), "net_profit": str(trade.net_profit),
                    "side": trade.side.value, "qty": str(trade.qty),
                    "entry_price": str(trade.entry_price.quantize(rules.tick)),
                    "exit_price": str(trade.exit_price.quantize(rules.tick)),
                    "entry_ts": trade.entry_ts, "exit_ts": trade.exit_ts, "hold_ms": trade.hold_ms}))
        return out
