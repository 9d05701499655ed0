"""The exchange-side safety stop (gridctl.worker.safety_stop) against a recording fake venue:
armed at once for a new position, sized for the whole leg (held + resting entries above the
stop), re-armed once after a burst of fills (place first, then cancel), adopted when right
and replaced when not at start, cancelled when flat and on stop, never armed through the
stop-loss, and its fill stops the grid with reason exchange_stop."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from backtest_helpers import account, strategy, toy_rules
from gridctl.config.strategy import engine_config, grid_params
from gridctl.core.engine import STOPPING, GridEngine
from gridctl.core.fills import Fill
from gridctl.core.grid import Side
from gridctl.core.orders import Intent
from gridctl.core.plan import build_grid
from gridctl.exchange.base import ExchangeOrder, OrderMirror, Rejected
from gridctl.exchange.ccxt_stops import StopOrder
from gridctl.worker import safety_stop as ss
from gridctl.worker.safety_stop import SafetyStop, is_stop_id

D = Decimal
R = toy_rules()
T = 1_700_000_000_000


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


class FakeVenue:
    """What SafetyStop uses of the adapter; records every stop request."""

    def __init__(self, price: int) -> None:
        self.last = price
        self.mirror = OrderMirror()
        self.stops: dict[object, StopOrder] = {}
        self.calls: list[tuple] = []
        self.refuse = False

    def price(self) -> int:
        return self.last

    async def open_stops(self):
        return list(self.stops.values())

    async def place_stop(self, cid, side, qty, trigger, leg=None):
        self.calls.append(("place", cid, side, qty, trigger))
        if self.refuse:
            raise Rejected("binanceusdm: Order would immediately trigger.", "would_trigger")
        self.stops[cid] = StopOrder(cid, str(len(self.calls)), side, qty, trigger, leg)
        return self.stops[cid]

    async def cancel_stop(self, cid):
        self.calls.append(("cancel", cid))
        if self.stops.pop(cid, None) is None:
            raise Rejected("gone", "order_not_found")


class Events:
    def __init__(self) -> None:
        self.rows: list[tuple] = []

    def event(self, ts, kind, message, level=None, order_id=None, data=None):
        self.rows.append((kind, message))


def setup(price: int = 10150):
    """A long grid 100..103 (3 levels of 1.0), stop-loss at 99.00."""
    s = strategy("long", "100", "103", 3, amount="1", stop_loss_price="99", exchange_stop=True)
    params = grid_params(R, s, price)
    e = GridEngine(R, build_grid(R, params, price), engine_config(R, s, account(), params))
    ex, clock, rec = FakeVenue(price), Clock(), Events()
    return e, ex, clock, rec, SafetyStop(e, ex, rec, clock)


def buy(e: GridEngine, level: int, trade: str) -> Fill:
    f = Fill(T, e.client_id(level, Intent.ENTRY, 1), "o", Side.BUY, e.levels[level].spec.entry, 10, D("0.01"),
             trade_id=trade)
    e.on_fill(f)
    return f


def tick(safety: SafetyStop) -> None:
    asyncio.run(safety.tick())


def test_a_new_position_is_armed_at_once_for_the_whole_leg():
    e, ex, clock, rec, safety = setup()
    tick(safety)
    assert ex.calls == []  # flat: nothing to protect
    ex.mirror.put(ExchangeOrder(e.client_id(0, Intent.ENTRY, 1), "9", Side.BUY, 10000, 10, 0))  # resting at 100
    safety.on_fill(buy(e, 1, "t1"))
    tick(safety)
    (call,) = ex.calls
    assert call[0] == "place" and call[2] is Side.SELL and call[4] == 9900
    assert call[3] == 20  # 1.0 held + the 1.0 buy resting above the stop
    assert is_stop_id(e, call[1]) and e.decode(call[1]).intent is Intent.CLOSE
    assert any("exchange stop armed: sell 2.0 if the price reaches 99.00" in m for _, m in rec.rows)
    tick(safety)
    assert len(ex.calls) == 1  # right as it is: nothing sent


def test_a_burst_of_fills_re_arms_once_after_it_ends_new_before_old():
    e, ex, clock, rec, safety = setup()
    safety.on_fill(buy(e, 1, "t1"))
    tick(safety)
    first = ex.calls[0][1]
    safety.on_fill(buy(e, 0, "t2"))
    tick(safety)
    assert len(ex.calls) == 1  # within the debounce: not yet
    clock.t += ss.DEBOUNCE_S + 0.1
    tick(safety)
    assert [c[0] for c in ex.calls[1:]] == ["place", "cancel"] and ex.calls[2][1] == first
    assert ex.calls[1][3] == 20 and list(ex.stops) == [ex.calls[1][1]]


def test_at_start_a_right_stop_is_adopted_and_a_wrong_one_replaced():
    e, ex, clock, rec, safety = setup()
    buy(e, 1, "t1")
    old = e.client_id(ss.STOP_LEVEL, Intent.CLOSE, 7)
    ex.stops[old] = StopOrder(old, "1", Side.SELL, 10, 9900)
    tick(safety)
    assert ex.calls == []  # adopted by client id
    e2, ex2, _, _, safety2 = setup()
    buy(e2, 1, "t1")
    wrong = e2.client_id(ss.STOP_LEVEL, Intent.CLOSE, 7)
    ex2.stops[wrong] = StopOrder(wrong, "1", Side.SELL, 30, 9900)  # sized for an older position
    clock2 = safety2.clock
    clock2.t += 10
    tick(safety2)
    assert [c[0] for c in ex2.calls] == ["place", "cancel"] and ex2.calls[1][1] == wrong


def test_flat_and_stopping_cancel_the_stop():
    e, ex, clock, rec, safety = setup()
    safety.on_fill(buy(e, 1, "t1"))
    tick(safety)
    cid = ex.calls[0][1]
    e.stop("user")
    tick(safety)
    assert ex.calls[-1] == ("cancel", cid) and ex.stops == {}
    assert any("exchange stop cancelled (stopping)" in m for _, m in rec.rows)


def test_a_stop_loss_the_price_is_already_through_is_not_armed():
    e, ex, clock, rec, safety = setup(price=10150)
    buy(e, 1, "t1")
    ex.last = 9850  # below 99.00: the engine's own stop closes at market
    tick(safety)
    assert ex.calls == []
    assert any("already through the stop-loss 99.00" in m for _, m in rec.rows)


def test_a_refused_stop_is_tried_again_later_and_keeps_the_old_one():
    e, ex, clock, rec, safety = setup()
    safety.on_fill(buy(e, 1, "t1"))
    tick(safety)
    first = ex.calls[0][1]
    ex.refuse = True
    safety.on_fill(buy(e, 0, "t2"))
    clock.t += ss.MAX_DELAY_S + 1
    tick(safety)
    assert ex.calls[-1][0] == "place" and first in ex.stops  # the old one still covers part of it
    n = len(ex.calls)
    clock.t += 1
    tick(safety)
    assert len(ex.calls) == n  # waits RETRY_S
    ex.refuse = False
    clock.t += ss.RETRY_S
    tick(safety)
    assert ex.calls[-1] == ("cancel", first) and len(ex.stops) == 1


def test_the_stops_fill_stops_the_grid_with_reason_exchange_stop():
    e, ex, clock, rec, safety = setup()
    safety.on_fill(buy(e, 1, "t1"))
    tick(safety)
    cid = ex.calls[0][1]
    f = Fill(T + 1, cid, "o9", Side.SELL, 9890, 10, D("0.05"), trade_id="t9")
    e.on_fill(f)  # booked as a close by the engine (intent close)
    events = safety.on_fill(f)
    assert e.status == STOPPING and e.stop_reason == "exchange_stop" and e.ledger.position == 0
    assert [ev.message for ev in events][:2] == ["exchange stop filled: sell 1.0 @ 98.90", "stopping: exchange_stop"]


def test_a_venue_outage_is_noted_once_a_minute_and_retried_every_turn():
    from gridctl.exchange.base import Temporary

    e, ex, clock, rec, safety = setup()
    safety.on_fill(buy(e, 1, "t1"))
    calls = []

    async def down():
        calls.append(1)
        raise Temporary("binanceusdm: 503")
    ex.open_stops = down
    for _ in range(5):
        tick(safety)
        clock.t += 1
    assert len(calls) == 5 and ex.calls == []
    assert sum("exchange stop not updated" in m for _, m in rec.rows) == 1


def test_hedge_mode_keeps_one_stop_per_leg():
    from dataclasses import replace

    s = strategy("neutral", "100", "103", 3, amount="1", stop_loss_pct="1", exchange_stop=True)
    params = grid_params(R, s, 10150)
    acc = replace(account(), position_mode="hedge")
    e = GridEngine(R, build_grid(R, params, 10150), engine_config(R, s, acc, params))
    ex, clock, rec = FakeVenue(10150), Clock(), Events()
    safety = SafetyStop(e, ex, rec, clock)
    sides = {lv.spec.side: i for i, lv in e.levels.items()}
    for side, trade in ((Side.BUY, "t1"), (Side.SELL, "t2")):
        i = sides[side]
        f = Fill(T, e.client_id(i, Intent.ENTRY, 1), "o", side, e.levels[i].spec.entry, 10, D("0.01"), trade_id=trade)
        e.on_fill(f)
        safety.on_fill(f)
    tick(safety)
    placed = sorted((c[2].value, c[3], c[4]) for c in ex.calls if c[0] == "place")
    lim = e.cfg.limits
    assert placed == [("buy", 10, lim.stop_above), ("sell", 10, lim.stop_below)]
    assert {st.position_side for st in ex.stops.values()} == {"long", "short"}
