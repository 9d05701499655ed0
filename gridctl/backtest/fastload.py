"""The integer core's view of a run: what never changes (Static), and the state it takes
over from the reference objects (load_state)."""

from __future__ import annotations

from decimal import Decimal
from typing import Optional

import numpy as np

from gridctl.backtest import fastsearch
from gridctl.backtest.fastbase import ENTRY, EXIT, Order
from gridctl.core.engine import RUNNING
from gridctl.core.grid import Side
from gridctl.core.ledger import UNASSIGNED, ZERO
from gridctl.core.orders import Intent
from gridctl.core.risk import price_band


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
        self.kernel = fastsearch.kernel()
        self.close = d.close
        # read one candle at a time: memoryviews give Python ints without numpy scalars; cast from
        # bytes because an array rebuilt by pickle (a Dask worker's data) exports the format '=q',
        # which memoryview cannot index
        self.ts_v, self.open_v, self.high_v, self.low_v, self.close_v = (
            memoryview(np.ascontiguousarray(a, dtype=np.int64).tobytes()).cast("q")
            for a in (d.ts, d.open, d.high, d.low, d.close))
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


def load_state(self) -> bool:
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
