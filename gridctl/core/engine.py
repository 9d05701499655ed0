"""The grid engine: levels + ledger + risk → desired orders. Pure and clock-free.

The shell (worker, paper exchange, backtest) feeds it fills, funding and prices
and turns `sync()` actions into exchange requests; the same engine runs live,
on paper and in backtests.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Optional, Sequence

from gridctl.core import clientid
from gridctl.core.fills import Fill, FundingPayment
from gridctl.core.grid import LevelSpec, Mode, Side
from gridctl.core.ledger import Ledger, Trade
from gridctl.core.market import MarketRules
from gridctl.core.orders import (
    Action, Cancel, DesiredOrder, Intent, Level, OpenOrder, OrderPolicy, Place, desired_orders, reconcile,
)
from gridctl.core.risk import NEVER_HI, NEVER_LO, RiskLimits, money_stop, pnl_band, price_band, price_stop

WAITING, RUNNING, PAUSED, STOPPING, STOPPED = "waiting", "running", "paused", "stopping", "stopped"


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


@dataclass(frozen=True)
class Event:
    """Something the engine decided or saw, for logs, the store and `logs --follow`."""

    kind: str  # fill | trade | status | risk | info | warn
    message: str
    level: Optional[int] = None
    data: Optional[dict] = None


@dataclass(frozen=True)
class MarketOrder:
    """A market order: the close on stop (reduce-only) or an initial-position entry.

    `position_side` is the hedge-mode leg ("long"/"short"); None in one-way mode.
    """

    side: Side
    qty: int
    client_id: object
    position_side: Optional[str] = None


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
        self.trigger_from: Optional[int] = None  # which side of the trigger the price started on
        self.close_gen = 0
        self.trades: list[Trade] = []
        self._decoded: dict[object, Optional[clientid.ClientId]] = {}
        self._prices: Optional[list[int]] = None
        self.margin_level = 0  # 0 fine, 1 warned, 2 reducing (no new entries)

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

    def open_order(self, cid: object, order_id: str, side: Side, price: int, remaining: int,
                   reduce_only: bool) -> Optional[OpenOrder]:
        """An exchange order as the reconcile sees it (None if it is not ours)."""
        d = self.decode(cid)
        if d is None or d.intent is Intent.CLOSE:
            return None
        return OpenOrder(d.level, d.intent, side, price, remaining, reduce_only, cid, order_id, d.gen)

    # -- events in -----------------------------------------------------------
    def on_fill(self, fill: Fill) -> list[Event]:
        """Apply one execution; returns what happened."""
        self.version += 1
        d = self.decode(fill.client_id)
        rules = self.rules
        msg = f"{fill.side.value} {rules.qty(fill.qty)} @ {rules.price(fill.price)}"
        if d is None or d.intent is Intent.CLOSE or d.level not in self.levels:
            self.ledger.close(fill.side, fill.price, fill.qty, fill.fee)
            self._flatten_levels_if_flat()
            return [Event("fill", f"close {msg}", None, {"intent": "close"})]
        lv = self.levels[d.level]
        events = [Event("fill", f"level {d.level} {d.intent.value} {msg}", d.level, {"intent": d.intent.value})]
        if d.intent is Intent.ENTRY:
            self.ledger.entry(d.level, fill.side, fill.ts, fill.price, fill.qty, fill.fee)
            held = self.ledger.held(d.level)
            self.levels[d.level] = replace(lv, held=held, exiting=held >= lv.spec.size)
        else:
            trade = self.ledger.exit(d.level, fill.ts, fill.price, fill.qty, fill.fee)
            held = self.ledger.held(d.level)
            self.levels[d.level] = replace(lv, held=held, exiting=held > 0)
            if trade is not None:
                self.trades.append(trade)
                events.append(Event("trade", f"level {d.level} cycle done: {trade.net_profit:.4f} net",
                                    d.level, {"profit": str(trade.profit), "fees": str(trade.fees)}))
        return events

    def _flatten_levels_if_flat(self) -> None:
        for i, lv in self.levels.items():
            held = self.ledger.held(i)
            if held != lv.held:
                self.levels[i] = replace(lv, held=held, exiting=held > 0)

    def on_liquidation(self) -> list[Event]:
        """The venue liquidated the position: the grid stops (re-entering on what is
        left of the margin would only feed the next liquidation)."""
        return self.stop("liquidation")

    def on_entry_cancelled(self, level: int) -> None:
        """An entry left the book unfilled or partly filled: a partial lot goes to its exit."""
        lv = self.levels.get(level)
        if lv is not None and lv.held and not lv.exiting:
            self.levels[level] = replace(lv, exiting=True)
            self.version += 1

    def on_funding(self, payment: FundingPayment) -> list[Event]:
        self.ledger.add_funding(payment.amount)
        return [Event("info", f"funding {payment.amount:.6f} at rate {payment.rate}", None,
                      {"amount": str(payment.amount), "rate": str(payment.rate)})]

    def on_price(self, last: int, mark: Optional[int] = None,
                 margin_ratio: Optional[Decimal] = None) -> list[Event]:
        """Trigger and risk checks at a new price (and the account's margin ratio, when
        the venue reports one); may start or stop the grid."""
        mark = last if mark is None else mark
        if margin_ratio is not None and self.cfg.margin_ratio is not None and self.status in (RUNNING, PAUSED):
            events = self._margin(margin_ratio)
            if self.status == STOPPING:
                return events
        else:
            events = []
        if self.status == WAITING:
            if self.trigger_from is None:
                self.trigger_from = -1 if last < self.cfg.trigger else 1  # type: ignore[operator]
            crossed = last >= self.cfg.trigger if self.trigger_from < 0 else last <= self.cfg.trigger  # type: ignore[operator]
            if not crossed:
                return []
            self.status = RUNNING
            return [Event("status", f"trigger {self.rules.price(self.cfg.trigger)} crossed: grid running")]  # type: ignore[arg-type]
        if self.status not in (RUNNING, PAUSED):
            return []
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
    def stop(self, reason: str) -> list[Event]:
        """Stop: cancel everything; the shell then closes the position unless on_stop is keep."""
        if self.status in (STOPPING, STOPPED):
            return []
        self.status, self.stop_reason = STOPPING, reason
        return [Event("risk" if reason not in ("user", "emergency") else "status", f"stopping: {reason}",
                      None, {"stop_reason": reason})]

    def pause(self) -> None:
        if self.status == RUNNING:
            self.status = PAUSED

    def resume(self) -> None:
        if self.status == PAUSED:
            self.status = RUNNING

    def close_orders(self, keep: Optional[bool] = None) -> list[MarketOrder]:
        """The market orders that flatten the position on stop: one for the net
        position in one-way mode, one per leg in hedge mode."""
        keep = self.cfg.on_stop == "keep" if keep is None else keep
        if self.status != STOPPING or keep:
            return []
        if self.cfg.hedge:
            legs = [(Side.SELL, "long", sum(lot.qty for lot in self.ledger.lots.values() if lot.sign > 0)),
                    (Side.BUY, "short", sum(lot.qty for lot in self.ledger.lots.values() if lot.sign < 0))]
        else:
            pos = self.ledger.position
            legs = [(Side.SELL if pos > 0 else Side.BUY, None, abs(pos))]
        out = []
        for side, leg, qty in legs:
            if qty:
                self.close_gen += 1
                out.append(MarketOrder(side, qty, self.client_id(0, Intent.CLOSE, self.close_gen), leg))
        return out

    def position_side(self, level: int) -> Optional[str]:
        """The hedge-mode leg a level's orders trade (None in one-way mode)."""
        if not self.cfg.hedge:
            return None
        return "long" if self.levels[level].spec.side is Side.BUY else "short"

    def finish_stop(self) -> list[Event]:
        self.status = STOPPED
        return [Event("status", f"stopped ({self.stop_reason})", None, {"stop_reason": self.stop_reason})]

    def opening_orders(self, market: int) -> list[MarketOrder]:
        """initial_position: market entries for the levels the mode would hold at start."""
        if not self.cfg.initial_position or self.cfg.mode is Mode.NEUTRAL:
            return []
        out = []
        for lv in self.levels.values():
            s = lv.spec
            crosses = s.entry >= market if s.side is Side.BUY else s.entry <= market
            if crosses and lv.held == 0:
                out.append(MarketOrder(s.side, s.size, self.client_id(s.index, Intent.ENTRY, lv.gen + 1),
                                       self.position_side(s.index)))
                self.levels[s.index] = replace(lv, gen=lv.gen + 1)
        return out

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
        if self.status in (PAUSED, WAITING):
            return []
        working = [o.level for o in actual if o.intent is Intent.ENTRY]
        return reconcile(self.desired(market, working), actual)

    def place_id(self, d: DesiredOrder) -> object:
        """Next client id for a placement (bumps the level's generation)."""
        lv = self.levels[d.level]
        self.levels[d.level] = replace(lv, gen=lv.gen + 1)
        return self.client_id(d.level, d.intent, lv.gen + 1)

    def price_bucket(self, market: int) -> tuple[int, int]:
        """Where the market sits among the level prices: desired orders depend on
        the market only through this (which entries rest, which exits would cross)."""
        prices = self._level_prices()
        return bisect_left(prices, market), bisect_right(prices, market)

    def _level_prices(self) -> list[int]:
        if self._prices is None:
            self._prices = sorted({p for lv in self.levels.values() for p in (lv.spec.entry, lv.spec.exit)})
        return self._prices

    # -- fast-forward support -------------------------------------------------
    def band(self, market: int) -> tuple[int, int]:
        """(lo, hi): while the price stays strictly inside, the engine decides nothing new.

        Covers entries that would start to rest, the trigger, price stops and the
        money stops for the current (fixed) position. Resting orders are the
        exchange's band, not the engine's.
        """
        lo, hi = price_band(self.cfg.limits) if self.status in (RUNNING, PAUSED) else (NEVER_LO, NEVER_HI)
        if self.status == WAITING and self.cfg.trigger is not None:
            t = self.cfg.trigger
            lo, hi = (lo, min(hi, t)) if market < t else (max(lo, t), hi)
        if self.status == RUNNING:
            for lv in self.levels.values():
                if lv.exiting or lv.held >= lv.spec.size:
                    continue
                e = lv.spec.entry
                if lv.spec.side is Side.BUY and e >= market:
                    hi = min(hi, e + 1)
                elif lv.spec.side is Side.SELL and e <= market:
                    lo = max(lo, e - 1)
        if self.status in (RUNNING, PAUSED):
            lo, hi = self._money_band(lo, hi)
        return lo, hi

    def bucket_band(self, market: int) -> tuple[int, int]:
        """(lo, hi): the prices between which price_bucket(market) stays the same."""
        prices = self._level_prices()
        i = bisect_left(prices, market)
        if i < len(prices) and prices[i] == market:
            return market, market
        return (prices[i - 1] if i > 0 else NEVER_LO), (prices[i] if i < len(prices) else NEVER_HI)

    def _money_band(self, lo: int, hi: int) -> tuple[int, int]:
        lim, led = self.cfg.limits, self.ledger
        tv = self.rules.tick * self.rules.step * self.rules.contract_size
        lots = [lot for lot in led.lots.values() if lot.qty]
        if lim.max_loss is not None or lim.take_profit is not None:
            net = sum(lot.sign * lot.qty for lot in lots)
            base = led.realized - led.fees + led.funding - sum((lot.sign * lot.cost for lot in lots), Decimal(0))
            a, b = pnl_band(lim.max_loss, lim.take_profit, base, Decimal(net), tv)
            lo, hi = max(lo, a), min(hi, b)
        if lim.max_level_loss is not None:
            for lot in lots:
                a, b = pnl_band(lim.max_level_loss, None, -lot.sign * lot.cost, Decimal(lot.sign * lot.qty), tv)
                lo, hi = max(lo, a), min(hi, b)
        return lo, hi
