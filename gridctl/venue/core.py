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
    venue.place_trigger(...) / cancel_trigger / get_trigger / open_triggers   # stop-market orders
                                        # (gridctl.venue.triggers; fired by the price walk)
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
    venue.dirty() / venue.flush()       # a change to save soon / save it now (call flush() before
                                        # answering a request that changed something)
    venue.admin_state() -> dict         # GET /_admin/state

Records (gridctl.venue.records): VenueOrder (order_id int, client_id str|int, symbol,
side, type "limit"|"market", qty, price, time_in_force, reduce_only, position_side,
status new|partially_filled|filled|cancelled|expired, filled, cum_quote, avg_price,
created_ms, updated_ms, expiry_reason), VenueFill (trade_id, order_id, client_id, symbol,
side, price, qty, fee (>0 paid), fee_asset, realized, maker, position_side, reduce_only,
ts), FundingIncome (tran_id, symbol, amount (>0 received), asset, rate, mark, position, ts).
Every returned record is a copy; events carry snapshots.

Events (from subscribe(); one loop, in order):
    OrderEvent(account=fingerprint, ts, execution "new"|"trade"|"cancelled"|"expired", order, fill)
        placement publishes "new" first, then a "trade" per fill (a taker fills at once);
        post_only_crossing="expire" records the order and publishes "new" then "expired"
    AccountEvent(account, ts, reason "order"|"funding", symbols, funding)   balance/positions changed
    MarketEvent(symbol, ts)                                                   last/mark moved
A protocol keeps its own per-connection state (who listens to which account) and renders
these; venue.accounts[ev.account] is the account an event belongs to.

Rejects raise gridctl.venue.records.VenueReject(reason) (reasons listed there); a
protocol maps reason -> its error code. Margin is cross over all of an account's markets
(gridctl.venue.account explains how the per-market simulators share the wallet); the
simulator fills at the last price with infinite liquidity, resting orders as maker at
their own price, and liquidates at the mark (= last). Ids are deterministic sequences
(orders from 100000001, trades from 500000001, funding from 900000001). Timestamps of
orders, fills and funding are the wall clock; the feeds drive prices only.

Modules: market.py (Market, FeedSpec), account.py (VenueAccount), booking.py (fills ->
trades and events), views.py (PositionView, BalanceView), state.py (state file + history journal,
admin snapshot), clock.py (the price clock), faults.py, server.py (aiohttp app, admin API,
the Protocol base class a wire protocol subclasses), run.py (VenueOptions, build, serve).
"""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal
from pathlib import Path
from typing import Callable, Optional

from gridctl.core.grid import Side
from gridctl.markets import find_market, load_snapshot
from gridctl.sim import Reject
from gridctl.venue.account import VenueAccount
from gridctl.venue.events import VenueEvents
from gridctl.venue.audit import VenueAudit
from gridctl.venue.faults import Faults
from gridctl.venue.triggers import VenueTriggers
from gridctl.venue.market import FeedSpec, Market
from gridctl.venue.booking import LIQUIDATION_PREFIX, VenueBooking, legs_of as _legs  # noqa: F401 (API)
from gridctl.venue.state import STATE_VERSION, VenueState, VenueStateError  # noqa: F401 (API)
from gridctl.venue.views import BalanceView, PositionView, VenueViews  # noqa: F401 (API)
from gridctl.venue.records import (CANCELLED, EXEC_NEW, EXPIRED,
                                   NEW, AccountEvent, ClientId, Counters,
                                   FundingIncome, MarketEvent, OrderEvent, VenueFill, VenueOrder, VenueReject,
                                   fingerprint)

log = logging.getLogger(__name__)
ZERO = Decimal(0)

SIM_REASONS = {  # gridctl.sim Reject reasons -> venue reasons
    "post_only_would_cross": "post_only_would_cross", "reduce_only_would_increase": "reduce_only_rejected",
    "insufficient_margin": "insufficient_margin", "duplicate_client_id": "duplicate_client_id",
    "qty_below_min": "qty_below_min", "notional_below_min": "notional_below_min",
    "invalid_price": "invalid_price", "position_side_required": "position_side_mismatch",
    "position_side_not_allowed": "position_side_mismatch", "unknown_order": "unknown_order",
    "no_price": "no_price", "post_only_market": "invalid_order",
}


class Venue(VenueTriggers, VenueEvents, VenueBooking, VenueViews, VenueState):
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
        self._partial_fills: dict = {}  # gridctl.venue.booking: parts filled by the partial fault
        self.audit = VenueAudit()
        self.extra_state: dict = {}
        self._journal_tail: list = []
        self._counts: dict = {}
        self._queues: list[asyncio.Queue] = []
        self.triggers: dict = {}  # account -> {trigger id: TriggerOrder} (gridctl.venue.triggers)
        self._tasks: list[asyncio.Task] = []
        self._save_scheduled = False
        self._loaded = False
        self.timing = None  # gridctl.venue.timing.TimingLog when GRIDCTL_VENUE_TIMING is set

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
            self.audit.duplicate(acc.fingerprint, m.symbol, client_id, now)
            raise VenueReject("duplicate_client_id", repr(client_id))
        if (m.symbol, client_id) in acc.latest_ids:
            self.audit.reuse(acc.fingerprint, m.symbol, client_id, now)
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
        return sorted((o.copy() for o in acc.orders.values() if sym is None or o.symbol == sym),
                      key=lambda o: o.order_id)

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

    # -- prices --------------------------------------------------------------------------------
    def move_price(self, symbol: str, ticks: int) -> None:
        """Walk the market's last price to `ticks` now, every account filling what it crosses."""
        m = self.market(symbol)
        ticks = max(1, int(ticks))
        now = self.now_ms()
        for acc in self.accounts.values():
            sim = acc.sims[m.symbol]
            sim.maker_take = self._maker_take  # the partial fault may leave part of an order resting
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
        self.fire_triggers(m.symbol)  # stop orders turn into market orders at the new price
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
            self.journal("income", acc.fingerprint, inc.to_dict())
            acc.updated_ms = now
            out.append(inc)
            self._publish(AccountEvent(acc.fingerprint, now, "funding", (m.symbol,), inc))
        self.dirty()
        return out

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
        self.save(durable=True)
