"""The one engine driver: what the exchange reported in, typed requests out.

The worker loop (live and paper) and the backtest (both modes) drive a strategy
through this class only, so a behaviour is written once. It deduplicates fills by
the venue's trade id, keeps fills that are not this strategy's out of its ledger,
holds per-level cooldowns after rejections, skips a reconcile that cannot change
anything, and steps the stop procedure. Pure: time is passed in (epoch ms).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Callable, Iterable, Optional, Protocol, Sequence, Union

from gridctl.core.engine import RUNNING, STOPPED, STOPPING, Event, GridEngine
from gridctl.core.fills import FILLED, FOREIGN, GONE, OWN, Fill, FundingPayment, OrderUpdate, PriceUpdate
from gridctl.core.grid import Side
from gridctl.core.ledger import Trade
from gridctl.core.orders import Cancel, Intent, OpenOrder, OrderRequest, Place, Submit
from gridctl.core.virtual import funding_share

DriverAction = Union[Submit, Cancel]


class VenueOrder(Protocol):
    """What the driver reads of an order the venue holds (ExchangeOrder, SimOrder)."""

    client_id: object
    order_id: str
    side: Side
    price: Optional[int]
    qty: int
    reduce_only: bool

    @property
    def remaining(self) -> int: ...
REJECT_COOLDOWN_MS = 30_000
SEEN_KEPT = 200_000  # trade ids remembered for deduplication
MOVES_KEPT = 20_000  # own fills remembered for the position at a funding payment read late


@dataclass
class Booked:
    """A fill as the driver booked it: for the store and the figures."""

    fill: Fill
    level: Optional[int]  # None for closes, liquidations and fills that are not ours
    intent: str  # entry | exit | close | liquidation | deleveraging | foreign
    realized: Decimal
    trades: list[Trade] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    @property
    def ours(self) -> bool:
        return self.intent != FOREIGN


class Driver:
    """Feeds one GridEngine and turns its decisions into requests."""

    def __init__(self, engine: GridEngine, reject_cooldown_ms: int = REJECT_COOLDOWN_MS):
        self.e = engine
        self.reject_cooldown_ms = reject_cooldown_ms
        self._seen: set[str] = set()
        self._seen_order: deque[str] = deque()
        self.foreign: deque[Fill] = deque(maxlen=1000)  # for the account-level reconcile
        self.foreign_count = 0
        # level -> (retry not before, the state the rejection happened in)
        self._cooldown: dict[int, tuple[int, Optional[tuple]]] = {}
        self._fresh_rejects: list[int] = []
        self.wake_at: Optional[int] = None  # a cooled-down level may be retried from then
        self.unmet = False  # the last reconcile left a wanted order off the book
        self._synced: Optional[tuple] = None
        self._open_cache: dict[tuple, Optional[OpenOrder]] = {}
        self.last_funding: Optional[FundingPayment] = None  # this strategy's share of the last payment
        # alone on its account's symbol: every payment is wholly its own, even one read late
        # (after a restart) when the position has changed since the payment's instant
        self.funding_alone = True
        # own fills (venue time, signed steps), newest last: the position held at a payment's instant
        self._moves: deque[tuple[int, int]] = deque(maxlen=MOVES_KEPT)

    # -- events in ---------------------------------------------------------------
    def remember(self, fill: Fill) -> None:
        """A fill already booked (replayed from the store): never book it again."""
        self._mark_seen(fill.key)
        self._moved(fill)

    def _moved(self, fill: Fill) -> None:
        self._moves.append((fill.ts, fill.qty if fill.side is Side.BUY else -fill.qty))

    def position_at(self, ts: int) -> int:
        """The ledger's position at `ts` (venue time): now, less the own fills booked after it."""
        return self.e.ledger.position - sum(q for t, q in self._moves if t > ts)

    def seen(self, fill: Fill) -> bool:
        return fill.key in self._seen

    def _mark_seen(self, key: str) -> None:
        self._seen.add(key)
        self._seen_order.append(key)
        if len(self._seen_order) > SEEN_KEPT:
            self._seen.discard(self._seen_order.popleft())

    def on_fill(self, fill: Fill) -> Optional[Booked]:
        """Book one execution once; None for a duplicate. A fill of another order on the
        account is never booked to this ledger (it is kept in `foreign`)."""
        if fill.key in self._seen:
            return None
        self._mark_seen(fill.key)
        e = self.e
        if fill.kind == FOREIGN or (fill.kind == OWN and not e.is_ours(fill.client_id)):
            self.foreign.append(fill)
            self.foreign_count += 1
            return Booked(fill, None, FOREIGN, Decimal(0))
        realized, trades = e.ledger.realized, len(e.trades)
        events = e.on_fill(fill)
        self._moved(fill)
        d = e.decode(fill.client_id)
        if fill.kind != OWN:
            intent, level = fill.kind, None
        else:
            assert d is not None
            intent = d.intent.value
            level = d.level if d.intent is not Intent.CLOSE and d.level in e.levels else None
        return Booked(fill, level, intent, e.ledger.realized - realized, e.trades[trades:], events)

    def on_order_update(self, u: OrderUpdate) -> list[Event]:
        """An own entry the venue removed (cancelled, expired, rejected) sends a partial lot to its exit."""
        d = self.e.decode(u.client_id)
        if d is None or u.status not in GONE:
            return []
        if d.intent is Intent.ENTRY:
            self.e.on_entry_cancelled(d.level)
        elif d.intent is Intent.CLOSE and u.status != FILLED:  # a fill counts by its quantity, not its report
            self.e.on_close_ended(u.client_id)
        if u.status in ("expired", "rejected"):
            why = f" ({u.reason})" if u.reason else ""
            return [Event("info", f"level {d.level} {d.intent.value} {u.status} by the venue{why}", d.level)]
        return []

    def on_cancelled(self, order: OpenOrder) -> None:
        """An own order this driver asked to cancel is off the book."""
        if order.intent is Intent.ENTRY:
            self.e.on_entry_cancelled(order.level)

    def on_price(self, u: PriceUpdate) -> list[Event]:
        return self.e.on_price(u.last, u.mark, u.margin_ratio) + self.e.expire_partials(u.ts)

    def on_funding(self, p: FundingPayment) -> list[Event]:
        """Book this strategy's share of a payment on the account's position (siblings on the
        symbol hold the rest: gridctl.core.virtual.funding_share); the share booked is kept
        in `last_funding`, for the store."""
        share = p.amount if self.funding_alone else funding_share(p, self.position_at(p.ts), self.e.rules)
        self.last_funding = replace(p, amount=share)
        return self.e.on_funding(self.last_funding)

    def own_orders(self, venue_orders: Iterable[VenueOrder]) -> list[OpenOrder]:
        """The strategy's resting orders among the venue's, as the reconcile sees them
        (decoded from their client ids; cached, since most syncs see the same book)."""
        out, cache, partials = [], self._open_cache, self.e.partials
        for o in venue_orders:
            # what is left as the ledger sees it (a fill reported before its trade is booked)
            left = partials.remaining(o.client_id, o.qty, o.remaining) if o.client_id in partials.booked \
                else o.qty
            key = (o.client_id, left)
            oo = cache.get(key)
            if oo is None:
                oo = self.e.open_order(o.client_id, o.order_id, o.side, o.price, left, o.reduce_only)
                if len(cache) > 10_000:
                    cache.clear()
                cache[key] = oo
            if oo is not None:
                out.append(oo)
        return out

    # -- actions out -------------------------------------------------------------
    def actions(self, now_ms: int, market: int, book_version: int,
                orders: Callable[[], Sequence[OpenOrder]]) -> tuple[list[DriverAction], list[Event]]:
        """What to send now, given the market and the own open orders (asked for lazily:
        a reconcile that cannot change anything is skipped by its key).

        Running it again after its actions took effect yields nothing.
        """
        e = self.e
        if e.status == STOPPING:
            self._synced = None
            return e.stop_step(now_ms, orders())
        if e.status == STOPPED:
            return [], []
        events = e.expire_partials(now_ms)  # before the skip: it changes what is desired
        if e.status == RUNNING and not e.opened:
            opening = e.opening_requests(market)
            if opening:
                return [Submit(r) for r in opening], []
        base = (e.version, book_version, e.price_bucket(market))
        for level in self._fresh_rejects:
            until, _ = self._cooldown.get(level, (0, None))
            self._cooldown[level] = (until, base)  # retried once something changes, not sooner than `until`
        self._fresh_rejects.clear()
        key = (base, self.wake_at is not None and now_ms >= self.wake_at)
        if key == self._synced:
            return [], events
        self._synced = key
        out: list[DriverAction] = []
        self.unmet, self.wake_at = False, None
        for action in e.sync(market, orders()):
            if isinstance(action, Place):
                level = action.order.level
                if level in self._cooldown:
                    until, at = self._cooldown[level]
                    if at == base or now_ms < until:
                        self.unmet = True
                        if at != base:
                            self.wake_at = until if self.wake_at is None else min(self.wake_at, until)
                        continue
                    del self._cooldown[level]
                out.append(Submit(e.request(action.order)))
            else:
                out.append(action)
        # a partly filled entry's rest is given up then: the backtest stops at that candle
        deadline = e.partials.deadline(e.cfg.partial_fill_timeout_ms)
        if deadline is not None:
            self.wake_at = deadline if self.wake_at is None else min(self.wake_at, deadline)
        return out, events

    def settled(self, book_version: int) -> None:
        """The last actions all took effect and nothing else happened (no fill, no reject):
        the book is now what the engine desires, so the reconcile at this new book version
        is known to yield nothing and is skipped (a pure saving: reconcile is idempotent)."""
        if self._synced is None:
            return
        (version, _, bucket), wake = self._synced
        if version == self.e.version and not self._fresh_rejects:
            self._synced = ((version, book_version, bucket), wake)

    def rejected(self, request: OrderRequest, now_ms: int, reason: str) -> list[Event]:
        """The venue refused a request: a close is sent again a few times; a level waits."""
        if request.intent is Intent.CLOSE:
            return self.e.on_close_rejected(reason)
        what = f"level {request.level} {request.intent.value}"
        if request.price is None:  # an initial-position entry: not retried
            return [Event("warn", f"{what} at market rejected: {reason}", request.level)]
        assert request.level is not None
        self._cooldown[request.level] = (now_ms + self.reject_cooldown_ms, None)
        self._fresh_rejects.append(request.level)
        self.unmet = True
        return [Event("warn", f"{what} rejected: {reason}; retried when the market or the book changes, "
                              f"not within {self.reject_cooldown_ms // 1000}s", request.level)]
