"""The simulated perpetual-futures exchange: orders, matching along a price path, fees,
margin, funding, mark price and liquidation.

Deterministic and clock-free: every call that can trade takes the timestamp. The
last price only moves through sweep(), which stops at every price where something
happens so the caller can react between fills. See docs/simulation.md.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Callable, Optional

from gridctl.core.fills import LIQUIDATION as LIQUIDATION_KIND, Fill, FundingPayment
from gridctl.core.grid import Side
from gridctl.core.market import MarketRules
from gridctl.sim.account import ZERO, Account, LiquidationEvent
from gridctl.sim.book import Book, Reject, SimOrder

NO_LOW = -(2**62)  # band() sentinel: nothing below
NO_HIGH = 2**62  # band() sentinel: nothing above
LIQUIDATION = "liquidation"  # client_id of liquidation fills


class SimExchange:
    """A one-symbol perpetual futures venue with infinite liquidity at the last price."""

    def __init__(self, rules: MarketRules, balance: Decimal, leverage: int, hedge: bool = False,
                 slippage_ticks: int = 0, price: Optional[int] = None) -> None:
        if not 1 <= int(leverage) <= rules.max_leverage:
            raise ValueError(f"leverage {leverage} outside 1..{rules.max_leverage}")
        if slippage_ticks < 0:
            raise ValueError("slippage_ticks must be >= 0")
        self.rules = rules
        self.leverage = int(leverage)
        self.hedge = hedge
        self.slippage_ticks = int(slippage_ticks)
        self.initial_balance = Decimal(balance)
        self.account = Account(rules, Decimal(balance), hedge)
        self.book = Book()
        self.liquidations: list[LiquidationEvent] = []
        self._price = price
        self._mark: Optional[int] = None  # fixed by set_mark(); None = the mark is the last price
        self._seq = 0
        self._liq_seq = 0
        self._trade_seq = 0  # venue trade ids: every fill has its own
        self._expired: list[SimOrder] = []
        # notional of resting orders that can add exposure, per (leg, side): the margin check
        self._open_notional: dict[tuple[str, Side], Decimal] = {}
        # the local venue's partial fault: steps a resting order fills when the price first reaches
        # it (the rest keeps resting at its price); None: it fills whole (the backtest)
        self.maker_take: Optional[Callable[[SimOrder], int]] = None

    # -- prices ----------------------------------------------------------------
    @property
    def price(self) -> int:
        """The last price in ticks (moves only through sweep())."""
        if self._price is None:
            raise Reject("no_price", "no price yet: call sweep(ts, price) first")
        return self._price

    @property
    def mark(self) -> int:
        """The mark price in ticks: the last price, or the value of the latest set_mark()."""
        return self._mark if self._mark is not None else self.price

    def set_mark(self, mark: Optional[int]) -> None:
        """Fix the mark (ticks) until the next call; None makes it follow the last price again.

        A new mark that puts the account under maintenance is acted on at the next sweep().
        """
        self._mark = None if mark is None else int(mark)

    @staticmethod
    def candle_path(open: int, high: int, low: int, close: int) -> list[int]:
        """The assumed path inside a candle: O-L-H-C if close >= open, else O-H-L-C."""
        return [open, low, high, close] if close >= open else [open, high, low, close]

    # -- account views ------------------------------------------------------------
    @property
    def position(self) -> int:
        """Net signed position in steps (long - short in hedge mode)."""
        return self.account.net

    @property
    def long_qty(self) -> int:
        """Long size in steps (hedge: the long leg; one-way: the position if long)."""
        return self.account.legs["long"].qty if self.hedge else max(self.position, 0)

    @property
    def short_qty(self) -> int:
        """Short size in steps, positive (hedge: the short leg; one-way: -position if short)."""
        return -self.account.legs["short"].qty if self.hedge else max(-self.position, 0)

    @property
    def entry_price(self) -> Decimal:
        """WAC entry of the open position (hedge: of the leg on the net side); 0 when flat."""
        if not self.hedge:
            return self.account.legs["both"].entry
        net = self.position
        return self.account.legs["long" if net > 0 else "short"].entry if net else ZERO

    def leg_entry(self, position_side: str) -> Decimal:
        """Hedge mode: WAC entry of the "long" or "short" leg."""
        return self.account.legs[position_side].entry

    @property
    def balance(self) -> Decimal:
        """Wallet balance: initial + realized - fees + funding."""
        return self.account.balance

    @property
    def realized(self) -> Decimal:
        """Cumulative realized PnL before fees."""
        return self.account.realized

    @property
    def fees(self) -> Decimal:
        """Cumulative fees paid."""
        return self.account.fees

    @property
    def funding(self) -> Decimal:
        """Cumulative funding (received > 0)."""
        return self.account.funding

    def unrealized(self) -> Decimal:
        """Unrealized PnL at the mark."""
        return self.account.unrealized(self.mark)

    def equity(self) -> Decimal:
        """Balance plus unrealized PnL at the mark."""
        return self.account.equity(self.mark)

    def maintenance_margin(self) -> Decimal:
        """Maintenance margin at the mark."""
        return self.account.maintenance(self.mark)

    def margin_ratio(self) -> Decimal:
        """Maintenance margin / equity at the mark (0 when flat; 1 or more means liquidation)."""
        if self.long_qty == 0 and self.short_qty == 0:
            return Decimal(0)
        equity = self.equity()
        return self.maintenance_margin() / equity if equity > 0 else Decimal(999)

    def initial_margin(self) -> Decimal:
        """Initial margin the position and resting orders need at `leverage` (see docs)."""
        return self._required_margin(None)

    def liquidation_price(self) -> tuple[Optional[int], Optional[int]]:
        """(long side, short side) liquidation marks in ticks; None where there is none."""
        return self.account.liquidation_bounds()

    # -- orders --------------------------------------------------------------------
    def open_orders(self) -> list[SimOrder]:
        """Resting orders in placement order."""
        return list(self.book)

    def order(self, client_id: object) -> Optional[SimOrder]:
        """The open order with this client id, or None."""
        return self.book.get(client_id)

    def take_expired(self) -> list[SimOrder]:
        """Orders the venue removed on its own since the last call (expired reduce-only
        orders, orders cancelled by a liquidation), oldest first; clears the list."""
        out, self._expired = self._expired, []
        return out

    def place(self, ts: int, client_id: object, side: Side, qty: int, price: Optional[int] = None,
              reduce_only: bool = False, post_only: bool = False,
              position_side: Optional[str] = None) -> tuple[SimOrder, list[Fill]]:
        """Place a limit (price in ticks) or market (price None) order; see module docs.

        Returns the order and the fills it got at once (taker). Raises Reject.
        """
        side = Side(side)
        cur = self.price
        if client_id in self.book:
            raise Reject("duplicate_client_id", repr(client_id))
        if qty < self.rules.min_steps:
            raise Reject("qty_below_min", f"{qty} < {self.rules.min_steps} steps")
        key = self._leg_key(position_side)
        reducing = reduce_only or (self.hedge and not self.account.opens(key, side))
        if reducing and (self.account.closable(key, side) == 0
                         or (self.hedge and reduce_only and self.account.opens(key, side))):
            raise Reject("reduce_only_would_increase", f"{side.value} vs position {self.position}")
        execute: Optional[int] = None
        slip = self.slippage_ticks * side.sign
        if price is None:
            if post_only:
                raise Reject("post_only_market")
            execute = max(1, cur + slip)
        else:
            price = int(price)
            if price <= 0:
                raise Reject("invalid_price", str(price))
            if (price >= cur) if side is Side.BUY else (price <= cur):
                if post_only:
                    raise Reject("post_only_would_cross", f"{side.value} {price} vs last {cur}")
                execute = min(cur + slip, price) if side is Side.BUY else max(cur + slip, price)
        ref = execute if execute is not None else price
        if not reducing:
            notional = self.rules.notional(ref, qty)  # type: ignore[arg-type]
            if notional < self.rules.min_notional:
                raise Reject("notional_below_min", f"{notional} < {self.rules.min_notional}")
            before = self._required_margin(None)
            need = self._required_margin((key, side, notional))
            if need > before and need > self.equity():
                raise Reject("insufficient_margin", f"needs {need}, equity {self.equity()}")
        self._seq += 1
        order = SimOrder(client_id, f"sim-{self._seq}", side, price, int(qty), 0, bool(reduce_only),
                         bool(post_only), position_side if self.hedge else None, int(ts))
        if execute is None:
            self._rest(order)
            return order, []
        fills = self._execute(ts, order, execute, maker=False)
        return order, fills

    def cancel(self, client_id: object) -> SimOrder:
        """Cancel an open order; Reject("unknown_order") if none is open with that id."""
        order = self.book.get(client_id)
        if order is None:
            raise Reject("unknown_order", repr(client_id))
        self._unrest(order)
        order.status = "cancelled"
        return order

    def cancel_all(self) -> list[SimOrder]:
        """Cancel every open order; returns them in placement order."""
        return [self.cancel(o.client_id) for o in self.book]

    # -- price movement ----------------------------------------------------------------
    def band(self) -> tuple[int, int]:
        """(lo, hi): while the last price stays strictly inside, nothing fills or liquidates."""
        lo = self.book.best(Side.BUY)
        hi = self.book.best(Side.SELL)
        lo = NO_LOW if lo is None else lo
        hi = NO_HIGH if hi is None else hi
        if self._mark is None:  # a fixed mark does not move with the price: no liquidation bound
            liq_lo, liq_hi = self.account.liquidation_bounds()
            if liq_lo is not None:
                lo = max(lo, liq_lo)
            if liq_hi is not None:
                hi = min(hi, liq_hi)
        return lo, hi

    def sweep(self, ts: int, target: int) -> list[Fill]:
        """Move the last price toward `target`, stopping at the first price where something fills.

        Returns the fills at that stop (resting orders at their own price as maker,
        plus any liquidation), or [] once the price is at `target` with nothing to fill.
        Call it in a loop; the caller may place/cancel between calls.
        """
        target = int(target)
        if self._price is None:
            self._price = target
            return []
        fills = self._check_liquidation(ts)
        while not fills:
            cur = self._price
            if target == cur:
                return []
            side = Side.BUY if target < cur else Side.SELL
            lo, hi = self.band()
            stop = lo if side is Side.BUY else hi
            if (stop < target) if side is Side.BUY else (stop > target):
                self._price = target
                return []
            # only the rest of a partly filled order (the venue's partial fault) rests at the price
            if stop == cur and not (self.maker_take is not None and self.book.best(side) == cur):
                raise RuntimeError(f"sweep stuck at {cur}: band {lo, hi}")
            self._price = stop
            for order in self.book.take_level(side, stop):
                self._unrest_sums(order)
                fills += self._execute(ts, order, stop, maker=True)
            fills += self._check_liquidation(ts)
        return fills

    # -- funding --------------------------------------------------------------------
    def pay_funding(self, ts: int, rate: Decimal) -> Optional[FundingPayment]:
        """Settle funding at the mark: amount = -position x mark x contract size x rate.

        Longs pay positive rates. None when flat.
        """
        net = self.position
        if net == 0:
            return None
        rate = Decimal(rate)
        mark = self.mark
        amount = -self.rules.notional(mark, net) * rate
        self.account.apply_funding(amount)
        return FundingPayment(int(ts), rate, mark, net, amount)

    # -- persistence ------------------------------------------------------------------
    def state(self) -> dict:
        """JSON-serialisable snapshot; restore with from_state(rules, d)."""
        return {
            "version": 1, "leverage": self.leverage, "hedge": self.hedge,
            "slippage_ticks": self.slippage_ticks, "price": self._price, "mark": self._mark,
            "initial_balance": str(self.initial_balance), "account": self.account.to_dict(),
            "orders": [o.to_dict() for o in self.book], "seq": self._seq, "liq_seq": self._liq_seq,
            "trade_seq": self._trade_seq,
            "liquidations": [{"ts": e.ts, "mark": e.mark, "position": e.position,
                              "balance": str(e.balance)} for e in self.liquidations],
        }

    @classmethod
    def from_state(cls, rules: MarketRules, d: dict) -> "SimExchange":
        """Rebuild an exchange from state() output (fills of past liquidations are not kept)."""
        sim = cls(rules, Decimal(d["initial_balance"]), d["leverage"], d["hedge"],
                  d["slippage_ticks"], d["price"])
        sim.account = Account.from_dict(rules, d["account"])
        sim._mark = d["mark"]
        sim._seq = int(d["seq"])
        sim._liq_seq = int(d["liq_seq"])
        sim._trade_seq = int(d.get("trade_seq", 0))
        for od in d["orders"]:
            sim._rest(SimOrder.from_dict(od))
        sim.liquidations = [LiquidationEvent(e["ts"], e["mark"], e["position"], Decimal(e["balance"]))
                            for e in d["liquidations"]]
        return sim

    # -- internals ----------------------------------------------------------------------
    def _leg_key(self, position_side: Optional[str]) -> str:
        if self.hedge:
            if position_side not in ("long", "short"):
                raise Reject("position_side_required", "hedge mode needs position_side long|short")
            return position_side
        if position_side not in (None, "both"):
            raise Reject("position_side_not_allowed", "one-way mode takes no position_side")
        return "both"

    def _reduces(self, order: SimOrder) -> bool:
        """True for orders that may only take off a position (never add exposure)."""
        if order.reduce_only:
            return True
        return self.hedge and not self.account.opens(order.position_side or "", order.side)

    def _rest(self, order: SimOrder) -> None:
        self.book.add(order)
        if not self._reduces(order):
            k = (self.account.leg_key(order.side, order.position_side), order.side)
            self._open_notional[k] = self._open_notional.get(k, ZERO) + self._notional(order)

    def _unrest(self, order: SimOrder) -> None:
        self.book.remove(order)
        self._unrest_sums(order)

    def _unrest_sums(self, order: SimOrder) -> None:
        if not self._reduces(order):
            k = (self.account.leg_key(order.side, order.position_side), order.side)
            self._open_notional[k] -= self._notional(order)

    def _notional(self, order: SimOrder) -> Decimal:
        return self.rules.notional(order.price, order.remaining)  # type: ignore[arg-type]

    def _required_margin(self, extra: Optional[tuple[str, Side, Decimal]]) -> Decimal:
        """Initial margin for the position and exposure-adding resting orders, plus `extra`."""
        sums = self._open_notional
        if extra is not None:
            sums = dict(sums)
            sums[extra[:2]] = sums.get(extra[:2], ZERO) + extra[2]  # type: ignore[index]
        return self.account.initial_margin(self.mark, sums, self.leverage)

    def _execute(self, ts: int, order: SimOrder, price: int, maker: bool) -> list[Fill]:
        """Fill what the order can at `price`; reduce-only excess expires. Order is off the book."""
        key = self.account.leg_key(order.side, order.position_side)
        qty = order.remaining
        if self._reduces(order):
            qty = min(qty, self.account.closable(key, order.side))
        # a first touch may fill only part (the price moving on through it fills the rest)
        part = maker and self.maker_take is not None and order.filled == 0 and qty == order.remaining
        if part:
            qty = max(1, min(qty, self.maker_take(order)))  # type: ignore[misc]
        fills = []
        if qty > 0:
            rate = self.rules.maker_fee if maker else self.rules.taker_fee
            fee = self.rules.notional(price, qty) * rate
            self.account.apply_fill(key, order.side, price, qty, fee)
            order.filled += qty
            fills.append(Fill(int(ts), order.client_id, order.order_id, order.side, price, qty, fee,
                              maker, order.reduce_only, self._trade_id(), self.rules.quote))
        if order.remaining and part:
            self._rest(order)
        elif order.remaining:
            order.status = "expired"
            self._expired.append(order)
        else:
            order.status = "filled"
        if fills:
            self._expire_stale_reducers()
        return fills

    def _expire_stale_reducers(self) -> None:
        """Reduce-only orders that can no longer reduce are removed (as Binance does)."""
        for o in self.book:
            if self._reduces(o):
                key = self.account.leg_key(o.side, o.position_side)
                if self.account.closable(key, o.side) == 0:
                    self._unrest(o)
                    o.status = "expired"
                    self._expired.append(o)

    def _trade_id(self) -> str:
        self._trade_seq += 1
        return f"t{self._trade_seq}"

    def _check_liquidation(self, ts: int) -> list[Fill]:
        """Close everything at the mark as a taker when equity <= maintenance margin."""
        mark = self.mark
        if not self.account.liquidatable(mark):
            return []
        before = self.position
        for o in self.book:
            self._unrest(o)
            o.status = "cancelled"
            self._expired.append(o)
        fills = []
        for key, leg in self.account.legs.items():
            if leg.qty:
                side = Side.SELL if leg.qty > 0 else Side.BUY
                qty = abs(leg.qty)
                fee = self.rules.notional(mark, qty) * self.rules.taker_fee
                self.account.apply_fill(key, side, mark, qty, fee)
                self._liq_seq += 1
                fills.append(Fill(int(ts), LIQUIDATION, f"liq-{self._liq_seq}", side, mark, qty, fee,
                                  False, True, self._trade_id(), self.rules.quote, LIQUIDATION_KIND))
        self.liquidations.append(LiquidationEvent(int(ts), mark, before, self.account.balance, fills))
        return fills
