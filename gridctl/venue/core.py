"""The local venue's protocol-neutral core: markets, accounts, matching, history, events, state.

A protocol module (gridctl/venue/binance.py, gridctl/venue/backpack.py) turns its wire
format into calls on one `Venue` and renders what comes back; nothing here knows a
venue's field names or error codes. Everything runs on one asyncio loop: the calls
are synchronous and never block, events go to subscribers' asyncio queues.

Core API (all prices/quantities Decimal in market units; sides "buy"/"sell";
position_side None in one-way mode, "long"/"short" in hedge mode):

    venue = Venue(like="binanceusdm", symbols=[...], specs={symbol: FeedSpec}, balance=Decimal,
                  api_key=None, seed=0, state_path=None, clock=time.time, secret=None)
    # venue.api_key / venue.secret: with --api-key only that key is accepted; protocols verify
    # signatures with venue.secret (None: the signature's form is checked, not its value)
    venue.load()                       # restore --state (VenueStateError if unreadable); call once
    await venue.start() / await venue.stop()   # the price clock tasks; stop() saves the state
    venue.market(symbol_or_id) -> Market       # VenueReject("bad_symbol"); .rules .last .mark ...
    venue.markets -> dict[symbol, Market]
    venue.account_for(api_key) -> VenueAccount | None   # None: key not accepted (--api-key)
    venue.accounts -> dict[fingerprint, VenueAccount]
    venue.now_ms() -> int
    # settings
    venue.set_position_mode(acc, hedge: bool)         # mode_no_change / mode_open_orders / mode_open_positions
    venue.set_leverage(acc, symbol, n) -> int          # bad_leverage
    venue.set_margin_type(acc, symbol, "cross"|"isolated")   # margin_type_no_change
    # orders
    venue.place_order(acc, symbol, side, type, qty, price=None, client_id=None,
                      time_in_force="GTC"|"IOC"|"FOK"|"PO", reduce_only=False,
                      position_side=None, post_only_crossing="reject"|"expire") -> VenueOrder
    venue.cancel_order(acc, symbol, order_id=None, client_id=None) -> VenueOrder   # unknown_order
    venue.cancel_all(acc, symbol) -> list[VenueOrder]
    venue.get_order(acc, symbol, order_id=None, client_id=None) -> VenueOrder (any status) # unknown_order
    venue.open_orders(acc, symbol=None) / venue.all_orders(acc, symbol=None) -> list[VenueOrder]
    venue.fills(acc, symbol=None, from_id=None, start_ms=None, end_ms=None, limit=None) -> list[VenueFill]
    venue.income(acc, symbol=None, start_ms=None, end_ms=None, limit=None) -> list[FundingIncome]
    # views
    venue.positions(acc, symbol=None) -> list[PositionView]   # one per leg (one-way: "both")
    venue.balance(acc) -> BalanceView
    # prices (admin and the clock)
    venue.move_price(symbol, ticks)    # walk there now, filling what it crosses
    venue.pin(symbol, price: Decimal) / venue.release(symbol)
    venue.settle_funding(symbol, rate: Decimal)
    # events
    q = venue.subscribe(); venue.unsubscribe(q)   # OrderEvent, AccountEvent, MarketEvent
    venue.faults                        # gridctl.venue.faults.Faults (protocols consult it)
    venue.extra_state                   # dict a protocol may keep in the state file (JSON)
    venue.admin_state() -> dict         # GET /_admin/state

Rejects raise gridctl.venue.records.VenueReject(reason). Ids are deterministic
sequences (orders from 100000001, trades from 500000001, funding from 900000001).
Timestamps of orders, fills and funding are the wall clock; the feeds drive prices only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Callable, Optional

from gridctl.core.fills import Fill
from gridctl.core.grid import Side
from gridctl.markets import find_market, load_snapshot
from gridctl.sim import LIQUIDATION, Account, Reject, SimExchange
from gridctl.sim.account import Leg
from gridctl.venue.account import VenueAccount
from gridctl.venue.faults import Faults
from gridctl.venue.market import FeedSpec, Market
from gridctl.venue.records import (CANCELLED, EXEC_CANCELLED, EXEC_EXPIRED, EXEC_NEW, EXEC_TRADE, EXPIRED,
                                   FILLED, NEW, PARTIALLY_FILLED, AccountEvent, ClientId, Counters,
                                   FundingIncome, MarketEvent, OrderEvent, VenueFill, VenueOrder, VenueReject,
                                   fingerprint)

log = logging.getLogger(__name__)
ZERO = Decimal(0)
STATE_VERSION = 1
LIQUIDATION_PREFIX = "autoclose-"  # client ids of the venue's liquidation orders (as Binance names them)

SIM_REASONS = {  # gridctl.sim Reject reasons -> venue reasons
    "post_only_would_cross": "post_only_would_cross", "reduce_only_would_increase": "reduce_only_rejected",
    "insufficient_margin": "insufficient_margin", "duplicate_client_id": "duplicate_client_id",
    "qty_below_min": "qty_below_min", "notional_below_min": "notional_below_min",
    "invalid_price": "invalid_price", "position_side_required": "position_side_mismatch",
    "position_side_not_allowed": "position_side_mismatch", "unknown_order": "unknown_order",
    "no_price": "no_price", "post_only_market": "invalid_order",
}


class VenueStateError(Exception):
    """The state file exists but cannot be used: the venue refuses to start."""


@dataclass(frozen=True)
class PositionView:
    """One position leg as a venue reports it. qty signed (short < 0)."""

    symbol: str
    position_side: str  # "both" | "long" | "short"
    qty: Decimal
    entry: Decimal
    mark: Decimal
    unrealized: Decimal
    liquidation: Decimal  # 0 when none
    notional: Decimal  # signed
    maint_margin: Decimal
    initial_margin: Decimal
    leverage: int
    margin_type: str
    updated_ms: int


@dataclass(frozen=True)
class BalanceView:
    """The account's wallet as a venue reports it (one asset, cross margin)."""

    asset: str
    wallet: Decimal
    unrealized: Decimal
    margin_balance: Decimal  # wallet + unrealized
    initial_margin: Decimal  # positions and open orders
    position_margin: Decimal
    order_margin: Decimal
    maint_margin: Decimal
    available: Decimal  # margin balance - initial margin (>= 0)
    updated_ms: int

    @property
    def margin_ratio(self) -> Decimal:
        return self.maint_margin / self.margin_balance if self.margin_balance > 0 else Decimal(0)


class Venue:
    """Markets, accounts and the price clock of one local venue (see module docs)."""

    def __init__(self, like: str, symbols: list[str], specs: Optional[dict[str, FeedSpec]] = None,
                 balance: Decimal = Decimal(10_000), api_key: Optional[str] = None, seed: int = 0,
                 state_path: Optional[Path] = None, clock: Callable[[], float] = time.time,
                 secret: Optional[str] = None) -> None:
        self.like = like
        snapshot = load_snapshot(like)
        self.markets: dict[str, Market] = {}
        specs = specs or {}
        for i, sym in enumerate(symbols):
            rules = find_market(snapshot, sym)
            if rules is None:
                raise VenueReject("bad_symbol", f"{sym} is not a {like} market")
            spec = specs.get(sym) or specs.get(rules.symbol) or FeedSpec(seed=seed + 7 + i)
            self.markets[rules.symbol] = Market(rules, spec)
        quotes = {m.rules.quote for m in self.markets.values()}
        if len(quotes) > 1:
            raise VenueReject("bad_symbol", f"one wallet per account: markets settle in {sorted(quotes)}")
        self.asset = quotes.pop() if quotes else "USDT"
        self.balance_default = Decimal(balance)
        self.api_key = api_key
        self.secret = secret  # protocols verify signatures with it (None: any signature passes)
        self.clock = clock
        self.state_path = Path(state_path) if state_path else None
        self.accounts: dict[str, VenueAccount] = {}
        self.ids = Counters()
        self.faults = Faults(seed)
        self.extra_state: dict = {}
        self._queues: list[asyncio.Queue] = []
        self._tasks: list[asyncio.Task] = []
        self._save_scheduled = False
        self._loaded = False

    # -- lookup -----------------------------------------------------------------------
    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def market(self, symbol: str) -> Market:
        """A served market by unified symbol or venue id; VenueReject("bad_symbol") otherwise."""
        m = self.markets.get(symbol)
        if m is None:
            want = str(symbol).upper()
            m = next((x for x in self.markets.values() if x.rules.venue_id.upper() == want), None)
        if m is None:
            raise VenueReject("bad_symbol", f"{symbol} is not served")
        return m

    def account_for(self, api_key: str) -> Optional[VenueAccount]:
        """The key's account (created with the default balance on first use); None if refused."""
        if not api_key or (self.api_key is not None and api_key != self.api_key):
            return None
        fp = fingerprint(api_key)
        acc = self.accounts.get(fp)
        if acc is None:
            acc = VenueAccount(fp, self.asset, self.balance_default)
            for m in self.markets.values():
                acc.add_market(m.rules, m.last)
            acc.updated_ms = self.now_ms()
            self.accounts[fp] = acc
            self.dirty()
        return acc

    # -- settings ------------------------------------------------------------------------
    def set_position_mode(self, acc: VenueAccount, hedge: bool) -> None:
        """Account-wide one-way/hedge mode; only with no open orders and no positions."""
        if acc.hedge == bool(hedge):
            raise VenueReject("mode_no_change", "the account is already in that mode")
        if acc.open_orders():
            raise VenueReject("mode_open_orders", "open orders exist")
        if any(s.long_qty or s.short_qty for s in acc.sims.values()):
            raise VenueReject("mode_open_positions", "positions exist")
        acc.rebuild(bool(hedge))
        self.dirty()

    def set_leverage(self, acc: VenueAccount, symbol: str, leverage: int) -> int:
        m = self.market(symbol)
        try:
            n = int(leverage)
        except (TypeError, ValueError):
            raise VenueReject("bad_leverage", f"leverage {leverage!r}") from None
        if not 1 <= n <= m.rules.max_leverage:
            raise VenueReject("bad_leverage", f"leverage {n} is not valid (1..{m.rules.max_leverage})")
        acc.leverage[m.symbol] = n
        acc.sims[m.symbol].leverage = n
        self.dirty()
        return n

    def set_margin_type(self, acc: VenueAccount, symbol: str, margin_type: str) -> None:
        """Record cross/isolated (the simulator margins everything cross)."""
        m = self.market(symbol)
        if margin_type not in ("cross", "isolated"):
            raise VenueReject("bad_margin_type", margin_type)
        if acc.margin_type.get(m.symbol) == margin_type:
            raise VenueReject("margin_type_no_change", "no need to change margin type")
        sim = acc.sims[m.symbol]
        if sim.long_qty or sim.short_qty or acc.open_orders(m.symbol):
            raise VenueReject("margin_type_open_position", "open orders or position exist")
        acc.margin_type[m.symbol] = margin_type
        self.dirty()

    # -- orders --------------------------------------------------------------------------
    def place_order(self, acc: VenueAccount, symbol: str, side: str, type: str, qty: Decimal,
                    price: Optional[Decimal] = None, client_id: Optional[ClientId] = None,
                    time_in_force: str = "GTC", reduce_only: bool = False,
                    position_side: Optional[str] = None, post_only_crossing: str = "reject") -> VenueOrder:
        """Place an order; returns its state after placement (a copy). Raises VenueReject."""
        m = self.market(symbol)
        rules = m.rules
        if m.last is None:
            raise VenueReject("no_price", "the market has no price yet")
        if side not in ("buy", "sell"):
            raise VenueReject("invalid_order", f"side {side!r}")
        qty = Decimal(qty)
        if qty <= 0:
            raise VenueReject("invalid_qty", "quantity less than or equal to zero")
        if qty % rules.step:
            raise VenueReject("qty_precision", f"{qty} is not a multiple of {rules.step}")
        ticks = None
        if type == "limit":
            if price is None or Decimal(price) <= 0:
                raise VenueReject("invalid_price", f"price {price}")
            if Decimal(price) % rules.tick:
                raise VenueReject("price_tick", f"{price} is not a multiple of {rules.tick}")
            ticks = rules.price_to_ticks(Decimal(price))
        elif type != "market":
            raise VenueReject("invalid_order", f"order type {type!r}")
        steps = rules.qty_to_steps(qty)
        if acc.hedge and position_side not in ("long", "short"):
            raise VenueReject("position_side_mismatch", "hedge mode needs a position side")
        if not acc.hedge and position_side not in (None, "both"):
            raise VenueReject("position_side_mismatch", "one-way mode takes no position side")
        ps = position_side if acc.hedge else None
        now = self.now_ms()
        if client_id is None:
            client_id = f"venue-{self.ids.order + 1}"
        if acc.open_order(m.symbol, client_id) is not None:
            raise VenueReject("duplicate_client_id", repr(client_id))
        crosses = ticks is not None and ((ticks >= m.last) if side == "buy" else (ticks <= m.last))
        expiry = None
        if time_in_force == "PO" and crosses:
            if post_only_crossing == "reject":
                raise VenueReject("post_only_would_cross", f"{side} {price} vs last {rules.price(m.last)}")
            expiry = "post_only_would_cross"
        elif time_in_force in ("IOC", "FOK") and ticks is not None and not crosses:
            expiry = "ioc_unfilled"
        if expiry is not None:  # recorded, never rests
            order = VenueOrder(self.ids.next_order(), client_id, m.symbol, side, type, qty,
                               None if price is None else rules.price(ticks), time_in_force, reduce_only, ps,
                               NEW, created_ms=now, updated_ms=now)
            acc.add_order(order)
            self._publish(OrderEvent(acc.fingerprint, now, EXEC_NEW, order.copy()))
            self._end(acc, order, EXPIRED, now, expiry)
            self.dirty()
            return order.copy()
        with acc.cross(m.symbol, maintenance=False) as sim:
            legs = _legs(sim)
            try:
                sim_order, fills = sim.place(now, client_id, Side(side), steps, ticks, reduce_only=reduce_only,
                                             post_only=time_in_force == "PO", position_side=ps)
            except Reject as exc:
                raise VenueReject(SIM_REASONS.get(exc.reason, exc.reason), str(exc)) from None
        order = VenueOrder(self.ids.next_order(), client_id, m.symbol, side, type, qty,
                           None if ticks is None else rules.price(ticks), time_in_force, reduce_only, ps,
                           NEW, created_ms=now, updated_ms=now)
        acc.add_order(order)
        self._publish(OrderEvent(acc.fingerprint, now, EXEC_NEW, order.copy()))
        if fills:
            self._book(acc, m.symbol, sim, legs, fills, now)
        if sim_order.status == "expired" and order.is_open:  # a reduce-only market order's excess
            self._end(acc, order, EXPIRED, now, "reduce_only_nothing_to_reduce")
        self._expired(acc, m.symbol, now)
        self.dirty()
        return order.copy()

    def cancel_order(self, acc: VenueAccount, symbol: str, order_id: Optional[int] = None,
                     client_id: Optional[ClientId] = None) -> VenueOrder:
        """Cancel an open order by venue id or client id; VenueReject("unknown_order") if none is open."""
        m = self.market(symbol)
        order = acc.find(m.symbol, order_id, client_id)
        if order is None or not order.is_open:
            raise VenueReject("unknown_order", "unknown order sent")
        acc.sims[m.symbol].cancel(order.client_id)
        self._end(acc, order, CANCELLED, self.now_ms())
        self.dirty()
        return order.copy()

    def cancel_all(self, acc: VenueAccount, symbol: str) -> list[VenueOrder]:
        """Cancel every open order of the market; returns them."""
        m = self.market(symbol)
        return [self.cancel_order(acc, m.symbol, o.order_id) for o in acc.open_orders(m.symbol)]

    def get_order(self, acc: VenueAccount, symbol: str, order_id: Optional[int] = None,
                  client_id: Optional[ClientId] = None) -> VenueOrder:
        """An order of any status (the newest with that client id)."""
        order = acc.find(self.market(symbol).symbol, order_id, client_id)
        if order is None:
            raise VenueReject("unknown_order", "order does not exist")
        return order.copy()

    def open_orders(self, acc: VenueAccount, symbol: Optional[str] = None) -> list[VenueOrder]:
        sym = None if symbol is None else self.market(symbol).symbol
        return sorted((o.copy() for o in acc.open_orders(sym)), key=lambda o: o.order_id)

    def all_orders(self, acc: VenueAccount, symbol: Optional[str] = None) -> list[VenueOrder]:
        sym = None if symbol is None else self.market(symbol).symbol
        return [o.copy() for o in acc.orders.values() if sym is None or o.symbol == sym]

    def fills(self, acc: VenueAccount, symbol: Optional[str] = None, from_id: Optional[int] = None,
              start_ms: Optional[int] = None, end_ms: Optional[int] = None,
              limit: Optional[int] = None) -> list[VenueFill]:
        """Trades, oldest first: from trade id `from_id` on, or in [start_ms, end_ms]."""
        sym = None if symbol is None else self.market(symbol).symbol
        out = [f for f in acc.fills if (sym is None or f.symbol == sym)
               and (from_id is None or f.trade_id >= from_id)
               and (start_ms is None or f.ts >= start_ms) and (end_ms is None or f.ts <= end_ms)]
        return out[:limit] if limit else out

    def income(self, acc: VenueAccount, symbol: Optional[str] = None, start_ms: Optional[int] = None,
               end_ms: Optional[int] = None, limit: Optional[int] = None) -> list[FundingIncome]:
        sym = None if symbol is None else self.market(symbol).symbol
        out = [i for i in acc.income if (sym is None or i.symbol == sym)
               and (start_ms is None or i.ts >= start_ms) and (end_ms is None or i.ts <= end_ms)]
        return out[:limit] if limit else out

    # -- views -------------------------------------------------------------------------------
    def positions(self, acc: VenueAccount, symbol: Optional[str] = None) -> list[PositionView]:
        """Every leg of every market (flat ones too): one "both" row, or "long" and "short"."""
        out = []
        for sym, sim in acc.sims.items():
            if (symbol is not None and sym != self.market(symbol).symbol) or sim._price is None:
                continue
            rules = sim.rules
            mark = sim.mark
            with acc.cross(sym, maintenance=True):
                lo, hi = sim.liquidation_price()
            for key, leg in sim.account.legs.items():
                unit = rules.step * rules.contract_size
                qty = rules.qty(abs(leg.qty)) * (1 if leg.qty >= 0 else -1)
                upnl = (rules.price(mark) - leg.entry) * leg.qty * unit if leg.qty else ZERO
                liq = lo if leg.qty > 0 else hi if leg.qty < 0 else None
                notional = rules.notional(mark, leg.qty)
                out.append(PositionView(
                    sym, key, qty, leg.entry if leg.qty else ZERO, rules.price(mark), upnl,
                    rules.price(liq) if liq is not None and 0 < liq < 2**61 else ZERO, notional,
                    abs(notional) * rules.maintenance_margin_rate, abs(notional) / sim.leverage,
                    sim.leverage, acc.margin_type.get(sym, "cross"), acc.updated_ms))
        return out

    def balance(self, acc: VenueAccount) -> BalanceView:
        wallet = acc.wallet
        upnl = acc.unrealized()
        im = acc.initial_margin()
        pm = acc.position_margin()
        mb = wallet + upnl
        return BalanceView(acc.asset, wallet, upnl, mb, im, pm, max(im - pm, ZERO), acc.maintenance(),
                           max(mb - im, ZERO), acc.updated_ms)

    # -- prices --------------------------------------------------------------------------------
    def move_price(self, symbol: str, ticks: int) -> None:
        """Walk the market's last price to `ticks` now, every account filling what it crosses."""
        m = self.market(symbol)
        ticks = max(1, int(ticks))
        now = self.now_ms()
        for acc in self.accounts.values():
            sim = acc.sims[m.symbol]
            with acc.cross(m.symbol, maintenance=True):
                while True:
                    legs = _legs(sim)
                    fills = sim.sweep(now, ticks)
                    if not fills:
                        break
                    self._book(acc, m.symbol, sim, legs, fills, now)
            self._expired(acc, m.symbol, now)
        m.last = ticks
        m.observe(now, ticks)
        self._publish(MarketEvent(m.symbol, now))

    def pin(self, symbol: str, price: Decimal) -> None:
        """Move the market's price to `price` now and keep it there (the feed stops driving it)."""
        m = self.market(symbol)
        ticks = m.rules.price_to_ticks(Decimal(price))
        if ticks < 1:
            raise VenueReject("invalid_price", f"price {price}")
        m.pinned = True
        self.move_price(m.symbol, ticks)
        self.dirty()

    def release(self, symbol: str) -> None:
        self.market(symbol).pinned = False
        self.dirty()

    def settle_funding(self, symbol: str, rate: Decimal) -> list[FundingIncome]:
        """Every account with a position in the market pays or receives funding at the mark now."""
        m = self.market(symbol)
        now = self.now_ms()
        m.funding_rate = Decimal(rate)
        out = []
        for acc in self.accounts.values():
            with acc.cross(m.symbol, maintenance=True) as sim:
                pay = sim.pay_funding(now, Decimal(rate))
            if pay is None:
                continue
            inc = FundingIncome(self.ids.next_tran(), m.symbol, pay.amount, acc.asset, pay.rate,
                                m.rules.price(pay.mark), m.rules.qty(abs(pay.position)) * (1 if pay.position > 0 else -1),
                                now)
            acc.income.append(inc)
            acc.updated_ms = now
            out.append(inc)
            self._publish(AccountEvent(acc.fingerprint, now, "funding", (m.symbol,), inc))
        self.dirty()
        return out

    # -- booking -------------------------------------------------------------------------------
    def _book(self, acc: VenueAccount, symbol: str, sim: SimExchange, legs: dict, fills: list[Fill],
              now: int) -> None:
        """Record the simulator's fills as venue trades (split when the partial fault fires)."""
        rules = sim.rules
        scratch = Account(rules, ZERO, sim.hedge)
        scratch.legs = {k: Leg(v.qty, v.entry) for k, v in legs.items()}
        for f in fills:
            if f.client_id == LIQUIDATION:
                key = ("long" if f.side is Side.SELL else "short") if sim.hedge else "both"
                oid = self.ids.next_order()
                order = VenueOrder(oid, f"{LIQUIDATION_PREFIX}{oid}", symbol, f.side.value, "market",
                                   rules.qty(f.qty), None, "IOC", True, key if sim.hedge else None, NEW,
                                   created_ms=now, updated_ms=now)
                acc.add_order(order)
                self._publish(OrderEvent(acc.fingerprint, now, EXEC_NEW, order.copy()))
            else:
                order = acc.open_order(symbol, f.client_id)
                if order is None:  # placed in this very call: not open-indexed yet is impossible
                    log.error("fill for an unknown order %r", f.client_id)
                    continue
                key = order.position_side if sim.hedge else "both"
            realized = scratch.apply_fill(key, f.side, f.price, f.qty, f.fee)
            pieces = 1
            if f.maker and f.qty > 1:
                fault = self.faults.take("partial", "any")
                if fault:
                    pieces = max(1, min(int(fault.get("pieces", 3)), f.qty))
            self._trades(acc, order, f, realized, pieces, now)
        acc.updated_ms = now
        self._publish(AccountEvent(acc.fingerprint, now, "order", (symbol,)))

    def _trades(self, acc: VenueAccount, order: VenueOrder, f: Fill, realized: Decimal, pieces: int,
                now: int) -> None:
        rules = acc.sims[order.symbol].rules
        price = rules.price(f.price)
        base, extra = divmod(f.qty, pieces)
        sizes = [base + (1 if i < extra else 0) for i in range(pieces)]
        fee_left, pnl_left = f.fee, realized
        for i, steps in enumerate(sizes):
            last = i == pieces - 1
            fee = fee_left if last else (f.fee * steps / f.qty)
            pnl = pnl_left if last else (realized * steps / f.qty)
            fee_left -= fee
            pnl_left -= pnl
            qty = rules.qty(steps)
            fill = VenueFill(self.ids.next_trade(), order.order_id, order.client_id, order.symbol, order.side,
                             price, qty, fee, f.fee_asset or acc.asset, pnl, f.maker, order.position_side,
                             order.reduce_only, now)
            acc.fills.append(fill)
            order.filled += qty
            order.cum_quote += price * qty
            order.updated_ms = now
            order.status = FILLED if order.filled >= order.qty else PARTIALLY_FILLED
            if order.status == FILLED:
                acc.closed(order)
            self._publish(OrderEvent(acc.fingerprint, now, EXEC_TRADE, order.copy(), fill))

    def _expired(self, acc: VenueAccount, symbol: str, now: int) -> None:
        """Orders the simulator removed on its own: expired reduce-only, cancelled by a liquidation."""
        for so in acc.sims[symbol].take_expired():
            order = acc.open_order(symbol, so.client_id)
            if order is None:
                continue
            if so.status == "cancelled":
                self._end(acc, order, CANCELLED, now, "liquidation")
            else:
                self._end(acc, order, EXPIRED, now, "reduce_only_nothing_to_reduce")

    def _end(self, acc: VenueAccount, order: VenueOrder, status: str, now: int,
             reason: Optional[str] = None) -> None:
        order.status = status
        order.updated_ms = now
        order.expiry_reason = reason
        acc.closed(order)
        execution = EXEC_CANCELLED if status == CANCELLED else EXEC_EXPIRED
        self._publish(OrderEvent(acc.fingerprint, now, execution, order.copy()))

    # -- events ----------------------------------------------------------------------------------
    def subscribe(self, maxsize: int = 0) -> asyncio.Queue:
        """A queue that receives every event from now on (unsubscribe() when done)."""
        q: asyncio.Queue = asyncio.Queue(maxsize)
        self._queues.append(q)
        return q

    def unsubscribe(self, q: asyncio.Queue) -> None:
        if q in self._queues:
            self._queues.remove(q)

    def _publish(self, event) -> None:
        for q in self._queues:
            try:
                q.put_nowait(event)
            except asyncio.QueueFull:  # a stuck consumer must not stop the venue
                pass

    # -- state ------------------------------------------------------------------------------------
    def state(self) -> dict:
        return {
            "version": STATE_VERSION, "like": self.like,
            "ids": {"order": self.ids.order, "trade": self.ids.trade, "tran": self.ids.tran},
            "markets": {s: m.state() for s, m in self.markets.items()},
            "accounts": {fp: a.to_dict() for fp, a in self.accounts.items()},
            "extra": self.extra_state, "saved_ms": self.now_ms(),
        }

    def load(self) -> None:
        """Restore the state file if it exists; VenueStateError if it cannot be used. Builds the feeds."""
        saved = None
        if self.state_path is not None and self.state_path.exists():
            try:
                saved = json.loads(self.state_path.read_text())
                if not isinstance(saved, dict) or saved.get("version") != STATE_VERSION:
                    raise ValueError("not a gridctl venue state (version %r)" % (
                        saved.get("version") if isinstance(saved, dict) else None))
                if saved.get("like") != self.like:
                    raise ValueError(f"it is the state of a {saved.get('like')} venue, not {self.like}")
                self._restore(saved)
            except (OSError, ValueError, KeyError, TypeError, ArithmeticError) as exc:
                raise VenueStateError(
                    f"cannot read the venue state {self.state_path}: {exc}; refusing to start with a fresh "
                    "balance (move the file away to start afresh)") from None
        for sym, m in self.markets.items():
            fstate = saved["markets"].get(sym, {}).get("feed") if saved else None
            m.make_feed(fstate)
            if m.last is None and hasattr(m.feed, "first_price"):
                m.last = m.feed.first_price()
                m.observe(self.now_ms(), m.last)
        for acc in self.accounts.values():
            for m in self.markets.values():
                if m.symbol not in acc.sims:
                    acc.add_market(m.rules, m.last)
        self._loaded = True

    def _restore(self, d: dict) -> None:
        self.ids.order, self.ids.trade, self.ids.tran = (int(d["ids"][k]) for k in ("order", "trade", "tran"))
        for sym, md in d["markets"].items():
            if sym in self.markets:
                self.markets[sym].restore(md)
        rules = {s: m.rules for s, m in self.markets.items()}
        self.accounts = {fp: VenueAccount.from_dict(ad, rules) for fp, ad in d["accounts"].items()}
        self.extra_state = dict(d.get("extra") or {})

    def save(self) -> None:
        """Atomic write of the whole state (no-op without a state path)."""
        self._save_scheduled = False
        if self.state_path is None or not self._loaded:
            return
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(self.state(), fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.state_path)

    def dirty(self) -> None:
        """Something changed: save at the end of this loop iteration (one write for a burst)."""
        if self._save_scheduled or self.state_path is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.save()
            return
        self._save_scheduled = True
        loop.call_soon(self.save)

    # -- the price clock -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Start one clock task per market (load() first)."""
        if not self._loaded:
            self.load()
        from gridctl.venue.clock import play_market
        self._tasks = [asyncio.create_task(play_market(self, m), name=f"venue-clock-{s}")
                       for s, m in self.markets.items()]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks = []
        for m in self.markets.values():
            close = getattr(m.feed, "close", None)
            if close is not None:
                await close()
        self.save()

    # -- admin -----------------------------------------------------------------------------------------
    def admin_state(self) -> dict:
        """Markets with prices, accounts (by fingerprint) with balance, positions, open orders."""
        markets = {s: {"id": m.rules.venue_id, "last": str(m.price()), "mark": str(m.price()),
                       "pinned": m.pinned, "funding_rate": str(m.funding_rate)} for s, m in self.markets.items()}
        accounts = {}
        for fp, acc in self.accounts.items():
            b = self.balance(acc)
            accounts[fp] = {
                "hedge": acc.hedge, "asset": acc.asset, "balance": str(b.wallet), "equity": str(b.margin_balance),
                "available": str(b.available), "unrealized": str(b.unrealized),
                "positions": {s: {"net": str(sum((p.qty for p in self.positions(acc, s)), ZERO)),
                                  "legs": {p.position_side: {"qty": str(p.qty), "entry": str(p.entry)}
                                           for p in self.positions(acc, s)},
                                  "leverage": acc.leverage.get(s)} for s in acc.sims},
                "open_orders": [{"order_id": o.order_id, "client_id": o.client_id, "symbol": o.symbol,
                                 "side": o.side, "price": None if o.price is None else str(o.price),
                                 "qty": str(o.qty), "filled": str(o.filled), "reduce_only": o.reduce_only,
                                 "position_side": o.position_side} for o in self.open_orders(acc)],
                "fills": len(acc.fills), "orders": len(acc.orders), "funding": len(acc.income),
            }
        return {"like": self.like, "markets": markets, "accounts": accounts, "faults": self.faults.describe()}


def _legs(sim: SimExchange) -> dict:
    return {k: Leg(v.qty, v.entry) for k, v in sim.account.legs.items()}
