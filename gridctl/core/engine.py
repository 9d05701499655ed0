"""The grid engine: levels + ledger + risk + the stop procedure. Pure and clock-free.

The engine decides; `gridctl.core.driver.Driver` feeds it what the exchange
reported and turns its decisions into typed requests; the shells (worker,
backtest) only execute those. Time is always passed in (epoch ms).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Optional, Sequence

from gridctl.core import clientid
from gridctl.core.fills import DELEVERAGING, LIQUIDATION, Fill, FundingPayment
from gridctl.core.grid import LevelSpec, Mode, Side
from gridctl.core.ledger import Ledger, Trade
from gridctl.core.market import MarketRules
from gridctl.core.opening import opening_requests
from gridctl.core.orders import (
    Action, Cancel, DesiredOrder, Intent, Level, OpenOrder, OrderPolicy, OrderRequest, Submit, desired_orders,
    reconcile,
)
from gridctl.core.partial import DEFAULT_TIMEOUT_MS, PartialEntries, expire
from gridctl.core.risk import RiskLimits, money_stop, price_stop

WAITING, RUNNING, PAUSED, STOPPING, STOPPED = "waiting", "running", "paused", "stopping", "stopped"
CLOSE_TRIES = 3  # a close the venue refuses is sent again this many times in all
CLOSE_ROUNDS = 5  # closes sent in all by one stop (a fill that raced a cancel leaves a remainder)


@dataclass(frozen=True)
class EngineConfig:
    """Everything the engine needs besides the levels, in market units."""

    mode: Mode
    lower: int
    upper: int
    max_position: Optional[int] = None
    hedge: bool = False
    post_only: bool = True
    on_stop: str = "close"  # close | keep
    trigger: Optional[int] = None  # start only once the price crosses this
    initial_position: bool = False
    limits: RiskLimits = field(default_factory=RiskLimits)
    tag: str = "000000"
    id_format: str = "binance"
    # margin ratio (maintenance margin / equity) thresholds: warn, stop new entries, stop and close
    margin_ratio: Optional[tuple[Decimal, Decimal, Decimal]] = None
    close_wait_ms: int = 30_000  # how long a stop waits for its close to fill
    partial_fill_timeout_ms: Optional[int] = DEFAULT_TIMEOUT_MS  # a partly filled entry's rest; None: waits


@dataclass(frozen=True)
class Event:
    """Something the engine decided or saw, for logs, the store and `logs --follow`."""

    kind: str  # fill | trade | status | risk | info | warn | error
    message: str
    level: Optional[int] = None
    data: Optional[dict] = None


class GridEngine:
    """One strategy's grid state machine."""

    def __init__(self, rules: MarketRules, levels: Sequence[LevelSpec], cfg: EngineConfig):
        self.rules = rules
        self.cfg = cfg
        self.levels: dict[int, Level] = {s.index: Level(s) for s in levels}
        self.ledger = Ledger(rules)
        self.version = 0  # bumped whenever what the engine desires may have changed
        self._status = WAITING if cfg.trigger is not None else RUNNING
        self.stop_reason: Optional[str] = None
        self.keep_position = cfg.on_stop == "keep"
        self.trigger_from: Optional[int] = None  # which side of the trigger the price started on
        self.opened = False  # the initial position was sent (or is not wanted)
        self.close_gen = 0
        self.close_sent_at: Optional[int] = None
        self.close_tries = 0
        self.close_rounds = 0
        self.closing: dict[object, int] = {}  # client id of each close sent -> steps still to fill
        self.trades: list[Trade] = []
        self._decoded: dict[object, Optional[clientid.ClientId]] = {}
        self._prices: Optional[list[int]] = None
        self.margin_level = 0  # 0 fine, 1 warned, 2 reducing (no new entries)
        self.partials = PartialEntries()

    @property
    def status(self) -> str:
        """waiting | running | paused | stopping | stopped."""
        return self._status

    @status.setter
    def status(self, value: str) -> None:
        self._status = value
        self.version += 1

    # -- ids -----------------------------------------------------------------
    def client_id(self, level: int, intent: Intent, gen: int) -> object:
        return clientid.encode(self.cfg.id_format, self.cfg.tag, level, intent, gen)

    def decode(self, cid: object) -> Optional[clientid.ClientId]:
        """The id's content when it is one of this strategy's, else None."""
        try:
            return self._decoded[cid]
        except KeyError:
            pass
        d = clientid.decode(self.cfg.id_format, cid)
        if d is not None and not clientid.same_strategy(self.cfg.id_format, d, self.cfg.tag):
            d = None
        if len(self._decoded) > 10_000:  # ids are unique per placement: keep the cache bounded
            self._decoded.clear()
        self._decoded[cid] = d
        return d

    def is_ours(self, cid: object) -> bool:
        return self.decode(cid) is not None

    def open_order(self, cid: object, order_id: str, side: Side, price: Optional[int], remaining: int,
                   reduce_only: bool) -> Optional[OpenOrder]:
        """An exchange order as the reconcile sees it (None if it is not a resting order of ours)."""
        d = self.decode(cid)
        if d is None or d.intent is Intent.CLOSE or price is None:
            return None
        return OpenOrder(d.level, d.intent, side, price, remaining, reduce_only, cid, order_id, d.gen)

    def continue_generations(self, level: int, gen: int) -> None:
        """Make the level's next order id come after `gen` (ids already used by an earlier run)."""
        lv = self.levels.get(level)
        if lv is not None and gen > lv.gen:
            self.levels[level] = replace(lv, gen=gen)

    # -- events in -----------------------------------------------------------
    def on_fill(self, fill: Fill) -> list[Event]:
        """Book one execution of this strategy (or the venue's liquidation of its position)."""
        self.version += 1
        rules = self.rules
        msg = f"{fill.side.value} {rules.qty(fill.qty)} @ {rules.price(fill.price)}"
        # what the fill was, as data (the live event feed reads these fields, never the message)
        facts = {"side": fill.side.value, "price": str(rules.price(fill.price)), "qty": str(rules.qty(fill.qty)),
                 "fee": str(fill.fee), "maker": fill.maker, "order_id": fill.order_id,
                 "client_id": str(fill.client_id), "trade_id": fill.trade_id or None}
        if fill.kind in (LIQUIDATION, DELEVERAGING):
            self._book_close(fill)
            events = [Event("fill", f"{fill.kind} {msg}", None, {"intent": fill.kind, **facts})]
            return events + (self.stop("liquidation") if fill.kind == LIQUIDATION else [])
        d = self.decode(fill.client_id)
        if d is None or d.intent is Intent.CLOSE or d.level not in self.levels:
            if fill.client_id in self.closing:
                self.closing[fill.client_id] = max(0, self.closing[fill.client_id] - fill.qty)
            self._book_close(fill)
            return [Event("fill", f"close {msg}", None, {"intent": "close", **facts})]
        lv = self.levels[d.level]
        events = [Event("fill", f"level {d.level} {d.intent.value} {msg}", d.level,
                        {"intent": d.intent.value, **facts})]
        if d.intent is Intent.ENTRY:
            self.ledger.entry(d.level, fill.side, fill.ts, fill.price, fill.qty, fill.fee)
            held = self.ledger.held(d.level)
            # a level done with its entry stays done: a late fill of a cancelled remainder grows the exit
            self.levels[d.level] = replace(lv, held=held, exiting=lv.exiting or held >= lv.spec.size)
        else:
            trade = self.ledger.exit(d.level, fill.ts, fill.price, fill.qty, fill.fee)
            held = self.ledger.held(d.level)
            self.levels[d.level] = replace(lv, held=held, exiting=held > 0)
            if trade is not None:
                self.trades.append(trade)
                events.append(Event("trade", f"level {d.level} cycle done: {trade.net_profit:.4f} net", d.level, {
                    "profit": str(trade.profit), "fees": str(trade.fees), "net_profit": str(trade.net_profit),
                    "side": trade.side.value, "qty": str(trade.qty),
                    "entry_price": str(trade.entry_price.quantize(rules.tick)),
                    "exit_price": str(trade.exit_price.quantize(rules.tick)),
                    "entry_ts": trade.entry_ts, "exit_ts": trade.exit_ts, "hold_ms": trade.hold_ms}))
        self.partials.book(fill.client_id, fill.qty)
        self.partials.update(self.levels[d.level], fill.ts)
        return events

    def _book_close(self, fill: Fill) -> None:
        self.ledger.close(fill.side, fill.price, fill.qty, fill.fee)
        for i, lv in self.levels.items():
            held = self.ledger.held(i)
            if held != lv.held:
                self.levels[i] = replace(lv, held=held, exiting=held > 0)
                self.partials.end(i)

    def on_entry_cancelled(self, level: int) -> None:
        """An entry left the book unfilled or partly filled: a partial lot goes to its exit."""
        lv = self.levels.get(level)
        if lv is not None and lv.held and not lv.exiting:
            self.levels[level] = replace(lv, exiting=True)
            self.version += 1
        self.partials.end(level)

    def expire_partials(self, now_ms: int) -> list[Event]:
        """Levels whose entry filled partly `partial_fill_timeout` ago give up the rest (core/partial.py)."""
        if self.status in (STOPPING, STOPPED) or not self.partials.since:  # a stop cancels everything anyway
            return []
        done = expire(self.levels, self.partials, now_ms, self.cfg.partial_fill_timeout_ms, self.rules)
        self.version += bool(done)
        return [Event("info", message, i, data) for i, message, data in done]

    def on_funding(self, payment: FundingPayment) -> list[Event]:
        self.ledger.add_funding(payment.amount)
        self.version += 1
        rate = "" if payment.rate is None else f" at rate {payment.rate}"
        return [Event("info", f"funding {payment.amount:.6f}{rate}", None,
                      {"amount": str(payment.amount), "rate": None if payment.rate is None else str(payment.rate)})]

    def on_price(self, last: int, mark: Optional[int] = None,
                 margin_ratio: Optional[Decimal] = None) -> list[Event]:
        """Trigger and risk checks at a new price (and the account's margin ratio, when
        the venue reports one); may start or stop the grid."""
        mark = last if mark is None else mark
        events: list[Event] = []
        if margin_ratio is not None and self.cfg.margin_ratio is not None and self.status in (RUNNING, PAUSED):
            events = self._margin(margin_ratio)
            if self.status == STOPPING:
                return events
        if self.status == WAITING:
            t = self.cfg.trigger
            assert t is not None
            if self.trigger_from is None:
                self.trigger_from = -1 if last < t else 1
            if not (last >= t if self.trigger_from < 0 else last <= t):
                return events
            self.status = RUNNING
            events.append(Event("status", f"trigger {self.rules.price(t)} crossed: grid running"))
        if self.status not in (RUNNING, PAUSED):
            return events
        reason = price_stop(self.cfg.limits, last) or money_stop(
            self.cfg.limits, self.ledger.total_pnl(mark), self._worst_level_pnl(mark))
        return events + (self.stop(reason) if reason else [])

    def _margin(self, ratio: Decimal) -> list[Event]:
        """warn once per crossing; at reduce, no new entries (exits stay); at close, stop."""
        warn, reduce, close = self.cfg.margin_ratio  # type: ignore[misc]
        if ratio >= close:
            return self.stop("margin_ratio")
        level = 2 if ratio >= reduce else 1 if ratio >= warn else 0
        if level == self.margin_level:
            return []
        before, self.margin_level = self.margin_level, level
        if (before == 2) != (level == 2):
            self.version += 1  # entries switch on or off
        pct = f"{ratio * 100:.1f}%"
        if level == 2:
            return [Event("risk", f"margin ratio {pct} >= {reduce * 100:.0f}%: no new entries", None,
                          {"margin_ratio": str(ratio)})]
        if level == 1 and before == 0:
            return [Event("risk", f"margin ratio {pct} >= {warn * 100:.0f}%", None, {"margin_ratio": str(ratio)})]
        return [Event("info", f"margin ratio back to {pct}", None, {"margin_ratio": str(ratio)})]

    def _worst_level_pnl(self, mark: int) -> Decimal:
        if self.cfg.limits.max_level_loss is None:
            return Decimal(0)
        px = self.rules.price(mark) * self.rules.contract_size * self.rules.step
        return min((lot.sign * (px * lot.qty - lot.cost) for lot in self.ledger.lots.values() if lot.qty),
                   default=Decimal(0))

    # -- commands ------------------------------------------------------------
    def stop(self, reason: str, keep: Optional[bool] = None) -> list[Event]:
        """Start the stop procedure: cancel own orders, then close (unless kept), then finish.

        `keep` overrides on_stop (stop --keep-position: True; emergency close: False).
        An emergency close during a stop that keeps the position turns it into a close.
        """
        if self.status == STOPPED:
            return []
        if self.status == STOPPING:
            if keep is False and self.keep_position:
                self.keep_position = False
                self.version += 1
                return [Event("status", f"stopping: {reason} (closing the position)", None, {"stop_reason": reason})]
            return []
        self.keep_position = self.cfg.on_stop == "keep" if keep is None else keep
        self.status, self.stop_reason = STOPPING, reason
        return [Event("risk" if reason not in ("user", "emergency") else "status", f"stopping: {reason}",
                      None, {"stop_reason": reason})]

    def pause(self) -> None:
        if self.status == RUNNING:
            self.status = PAUSED

    def resume(self) -> None:
        if self.status == PAUSED:
            self.status = RUNNING

    def legs(self) -> list[tuple[Side, Optional[str], int]]:
        """(closing side, hedge leg, steps) of each open leg of the strategy's position."""
        if self.cfg.hedge:
            lots = self.ledger.lots.values()
            return [(side, leg, qty) for side, leg, qty in (
                (Side.SELL, "long", sum(lot.qty for lot in lots if lot.sign > 0)),
                (Side.BUY, "short", sum(lot.qty for lot in lots if lot.sign < 0))) if qty]
        pos = self.ledger.position
        return [(Side.SELL if pos > 0 else Side.BUY, None, abs(pos))] if pos else []

    def stop_step(self, now_ms: int, actual: Sequence[OpenOrder]) -> tuple[list, list[Event]]:
        """One step of the stop procedure: (actions, events).

        Cancel every own resting order; once none is left, close each open leg at
        market with reduceOnly (unless the position is kept); wait for the close
        fills up to `close_wait_ms`. A close that filled or ended while a position is
        still open (an entry filled while its cancel was on the way) is followed by a
        close of the remainder, a few rounds in all; then finish.
        """
        if actual:
            return [Cancel(o) for o in actual], []
        legs = [] if self.keep_position else self.legs()
        if not legs:
            return [], self._finish()
        if self.close_sent_at is not None and not any(self.closing.values()) and self.close_rounds < CLOSE_ROUNDS:
            self.close_sent_at = None  # every close sent is done and a position is left: close the rest
        if self.close_sent_at is None:
            self.close_sent_at, self.close_tries = now_ms, self.close_tries + 1
            self.close_rounds += 1
            closes = [self._close(side, leg, qty) for side, leg, qty in legs]
            self.closing = {c.request.client_id: c.request.qty for c in closes}
            return closes, []
        if now_ms - self.close_sent_at < self.cfg.close_wait_ms:
            return [], []  # the close fills arrive with the next events
        left = " ".join(f"{self.rules.qty(q)}" + (f" {leg}" if leg else "") for _, leg, q in legs)
        return [], [Event("error", f"the close did not fill within {self.cfg.close_wait_ms // 1000}s; "
                                   f"position {left} left open")] + self._finish()

    def on_close_ended(self, client_id: object) -> None:
        """The venue took a close off the book unfilled or partly filled (expired, cancelled):
        what it did not fill is closed by the next step."""
        if client_id in self.closing:
            self.closing[client_id] = 0

    def on_close_rejected(self, reason: str) -> list[Event]:
        """The venue refused a close: send it again at the next step, a few times in all."""
        if self.close_tries >= CLOSE_TRIES:
            legs = " ".join(str(self.rules.qty(q)) for _, _, q in self.legs())
            return [Event("error", f"the close was refused {self.close_tries} times ({reason}); "
                                   f"position {legs} left open")] + self._finish()
        self.close_sent_at = None
        return [Event("warn", f"close refused ({reason}); sending it again")]

    def _close(self, side: Side, leg: Optional[str], qty: int) -> Submit:
        self.close_gen += 1
        cid = self.client_id(0, Intent.CLOSE, self.close_gen)
        return Submit(OrderRequest(cid, side, qty, None, reduce_only=True, position_side=leg, intent=Intent.CLOSE))

    def _finish(self) -> list[Event]:
        self.status = STOPPED
        return [Event("status", f"stopped ({self.stop_reason})", None, {"stop_reason": self.stop_reason})]

    def position_side(self, level: int) -> Optional[str]:
        """The hedge-mode leg a level's orders trade (None in one-way mode)."""
        if not self.cfg.hedge:
            return None
        return "long" if self.levels[level].spec.side is Side.BUY else "short"

    def opening_requests(self, market: int) -> list[OrderRequest]:
        """initial_position's market entries, once, when the grid first runs (core/opening.py)."""
        return opening_requests(self, market)

    # -- orders --------------------------------------------------------------
    def policy(self) -> OrderPolicy:
        return OrderPolicy(max_position=self.cfg.max_position, hedge=self.cfg.hedge,
                           post_only=self.cfg.post_only,
                           entries_enabled=self.status == RUNNING and self.margin_level < 2)

    def desired(self, market: int, working_entries: Sequence[int] = ()) -> list[DesiredOrder]:
        """What should rest now; nothing while stopping or stopped."""
        if self.status in (STOPPING, STOPPED):
            return []
        return desired_orders(list(self.levels.values()), market, self.policy(), working_entries)

    def sync(self, market: int, actual: Sequence[OpenOrder]) -> list[Action]:
        """Reconcile desired against actual; paused grids and waiting grids leave orders as they are."""
        if self.status in (PAUSED, WAITING, STOPPING, STOPPED):
            return []
        working = [o.level for o in actual if o.intent is Intent.ENTRY]
        return reconcile(self.desired(market, working), actual)

    def request(self, d: DesiredOrder) -> OrderRequest:
        """The request for a desired order, with the level's next client id."""
        lv = self.levels[d.level]
        self.levels[d.level] = replace(lv, gen=lv.gen + 1)
        return OrderRequest(self.client_id(d.level, d.intent, lv.gen + 1), d.side, d.qty, d.price,
                            d.reduce_only, d.post_only, self.position_side(d.level), d.level, d.intent)

    def price_bucket(self, market: int) -> tuple[int, int]:
        """Where the market sits among the level prices: desired orders depend on
        the market only through this (which entries rest, which exits would cross)."""
        prices = self.level_prices()
        return bisect_left(prices, market), bisect_right(prices, market)

    def level_prices(self) -> list[int]:
        """Every entry and exit price of the grid, ascending."""
        if self._prices is None:
            self._prices = sorted({p for lv in self.levels.values() for p in (lv.spec.entry, lv.spec.exit)})
        return self._prices

    # -- adoption ------------------------------------------------------------
    def adopt(self, ts: int, sign: int, qty: int, entry: Decimal, market: int) -> list[Event]:
        """Take over a position the exchange holds that no fill of this grid explains
        (one kept by an earlier stop): full lots on the levels it fits, at their entry
        lines, nearest the market first; the rest one unpaired lot at the exchange's
        average entry price. Returns what was adopted, for the log."""
        side = Side.BUY if sign > 0 else Side.SELL
        fits = [lv for lv in self.levels.values() if lv.spec.side is side and lv.held == 0 and (
            lv.spec.exit > market if side is Side.BUY else lv.spec.exit < market)]
        held_at_start = (lambda lv: lv.spec.entry >= market) if side is Side.BUY else (lambda lv: lv.spec.entry <= market)
        fits.sort(key=lambda lv: (not held_at_start(lv), abs(lv.spec.entry - market)))
        left, onto = qty, []
        for lv in fits:
            if lv.spec.size > left:
                continue
            self.ledger.adopt_lot(lv.spec.index, sign, ts, lv.spec.entry, lv.spec.size)
            self.levels[lv.spec.index] = replace(lv, held=lv.spec.size, exiting=True)
            left -= lv.spec.size
            onto.append(lv.spec.index)
        if left:
            self.ledger.adopt_unpaired(sign, left, entry)
        self.version += 1
        r = self.rules
        msg = (f"adopted the exchange's position {r.qty(sign * qty)}: levels {', '.join(map(str, onto)) or 'none'}"
               f" at their entry lines" + (f", {r.qty(sign * left)} unpaired at {entry}" if left else ""))
        return [Event("status", msg, None, {"adopted": str(r.qty(sign * qty)), "levels": onto,
                                            "unpaired": str(r.qty(sign * left))})]
