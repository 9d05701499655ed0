"""Simulated exchange: order acceptance, rejection, taker fills, fees, margin."""

from decimal import Decimal

import pytest

from gridctl.core.grid import Side
from gridctl.core.market import MarketRules
from gridctl.sim import Reject, SimExchange

BUY, SELL = Side.BUY, Side.SELL
D = Decimal


def rules(**kw) -> MarketRules:
    """BTC-like market with a whole-dollar tick so the expected money is easy to check."""
    base = dict(symbol="BTC/USDT:USDT", base="BTC", quote="USDT", tick=D("1"), step=D("0.001"),
                min_qty=D("0.001"), min_notional=D("5"), max_leverage=125)
    base.update(kw)
    return MarketRules(**base)


def sim(balance="10000", leverage=10, **kw) -> SimExchange:
    kw.setdefault("price", 10000)
    return SimExchange(rules(), D(balance), leverage, **kw)


def reason(fn) -> str:
    with pytest.raises(Reject) as e:
        fn()
    return e.value.reason


def test_limit_order_rests_without_fills():
    s = sim()
    order, fills = s.place(1, "b1", BUY, 100, 9900)
    assert fills == [] and order.status == "open" and order.remaining == 100
    assert [o.client_id for o in s.open_orders()] == ["b1"]
    assert s.position == 0 and s.balance == D("10000")


def test_post_only_that_would_cross_is_rejected():
    s = sim()
    assert reason(lambda: s.place(1, "b", BUY, 10, 10000, post_only=True)) == "post_only_would_cross"
    assert reason(lambda: s.place(1, "s", SELL, 10, 9999, post_only=True)) == "post_only_would_cross"
    s.place(1, "ok", BUY, 10, 9999, post_only=True)
    assert s.open_orders()[0].client_id == "ok"


def test_crossing_limit_fills_as_taker_at_last_price_never_worse_than_limit():
    s = sim(slippage_ticks=5)
    order, fills = s.place(1, "b", BUY, 100, 10002)  # limit only 2 ticks through: slippage capped there
    assert [(f.price, f.qty, f.maker) for f in fills] == [(10002, 100, False)]
    order, fills = s.place(1, "s", SELL, 100, 9000)  # generous limit: last - slippage
    assert fills[0].price == 9995 and order.status == "filled" and s.open_orders() == []


def test_market_order_slippage_goes_against_the_taker():
    s = sim(slippage_ticks=3)
    _, buy = s.place(1, "b", BUY, 100)
    _, sell = s.place(1, "s", SELL, 100)
    assert buy[0].price == 10003 and sell[0].price == 9997
    # 0.1 BTC bought 3 above and sold 3 below: -0.6 realized, taker fees on both legs
    assert s.realized == D("-0.6")
    assert s.fees == D("10003") * D("0.1") * D("0.0005") + D("9997") * D("0.1") * D("0.0005")


def test_maker_and_taker_fees_use_the_market_rates():
    s = sim()
    s.place(1, "b", BUY, 1000, 9900)
    fills = s.sweep(2, 9800)
    assert fills[0].maker and fills[0].fee == D("9900") * D("0.0002")  # 1 BTC at 9900, maker
    _, taker = s.place(3, "m", SELL, 1000)
    assert not taker[0].maker and taker[0].fee == D("9900") * D("0.0005")
    assert s.balance == D("10000") - D("1.98") - D("4.95")
    assert s.fees == D("6.93")


def test_reduce_only_rejected_when_it_would_increase_the_position():
    s = sim()
    assert reason(lambda: s.place(1, "r", SELL, 10, 10100, reduce_only=True)) == "reduce_only_would_increase"
    s.place(1, "m", BUY, 100)  # long 0.1
    assert reason(lambda: s.place(1, "r", BUY, 10, 9900, reduce_only=True)) == "reduce_only_would_increase"
    order, _ = s.place(1, "r", SELL, 10, 10100, reduce_only=True)
    assert order.status == "open"


def test_reduce_only_never_flips_the_position_and_expires_the_excess():
    s = sim()
    s.place(1, "m", BUY, 100)
    s.place(1, "r1", SELL, 80, 10100, reduce_only=True)
    s.place(1, "r2", SELL, 80, 10200, reduce_only=True)
    assert [f.qty for f in s.sweep(2, 10100)] == [80]
    assert [f.qty for f in s.sweep(2, 10300)] == [20]  # only what was left of the long
    assert s.position == 0
    r2 = s.take_expired()
    assert [(o.client_id, o.status, o.filled) for o in r2] == [("r2", "expired", 20)]


def test_reduce_only_orders_expire_when_the_position_closes():
    s = sim()
    s.place(1, "m", BUY, 100)
    s.place(1, "r", SELL, 100, 10200, reduce_only=True)
    s.place(2, "close", SELL, 100)  # market close: the resting reduce-only has nothing left to reduce
    assert s.position == 0 and s.open_orders() == []
    assert [o.client_id for o in s.take_expired()] == ["r"]
    assert s.take_expired() == []


def test_hedge_mode_reduce_applies_to_the_position_side():
    s = sim(hedge=True)
    assert reason(lambda: s.place(1, "x", BUY, 10, 9900)) == "position_side_required"
    s.place(1, "L", BUY, 100, position_side="long")
    s.place(1, "S", SELL, 50, position_side="short")
    assert (s.long_qty, s.short_qty, s.position) == (100, 50, 50)
    # closing the short leg is a BUY on "short": allowed; a reduce-only BUY on "long" would add
    assert reason(lambda: s.place(1, "x", BUY, 10, 9900, reduce_only=True, position_side="long")) \
        == "reduce_only_would_increase"
    s.place(1, "cS", BUY, 50, 9900, position_side="short")
    assert s.sweep(2, 9900)[0].qty == 50
    assert (s.long_qty, s.short_qty) == (100, 0)
    # nothing left on the short leg to close
    assert reason(lambda: s.place(3, "y", BUY, 10, 9800, position_side="short")) == "reduce_only_would_increase"


def test_duplicate_unknown_and_too_small_orders():
    s = sim()
    s.place(1, "a", BUY, 10, 9000)
    assert reason(lambda: s.place(1, "a", BUY, 10, 8000)) == "duplicate_client_id"
    assert reason(lambda: s.place(1, "z", BUY, 0, 8000)) == "qty_below_min"
    assert reason(lambda: s.place(1, "z", BUY, 1, 4000)) == "notional_below_min"  # 0.001 x 4000 = 4 < 5
    assert reason(lambda: s.cancel("nope")) == "unknown_order"
    assert s.cancel("a").status == "cancelled"
    assert reason(lambda: s.cancel("a")) == "unknown_order"
    s.place(2, "a", BUY, 10, 9000)  # the id is free again once the order is gone
    s.place(2, "b", SELL, 10, 11000)
    assert [o.client_id for o in s.cancel_all()] == ["a", "b"] and s.open_orders() == []


def test_margin_check_counts_position_and_resting_orders():
    s = sim(balance="1000", leverage=10)  # 10,000 USDT of exposure allowed
    s.place(1, "b1", BUY, 500, 9000)  # 4,500
    s.place(1, "b2", BUY, 500, 9000)  # 9,000
    assert reason(lambda: s.place(1, "b3", BUY, 200, 9000)) == "insufficient_margin"  # 10,800
    # sells on the other side do not add to the worst case while they are smaller
    s.place(1, "s1", SELL, 800, 11000)
    assert s.initial_margin() == D("900")
    assert reason(lambda: s.place(1, "m", BUY, 200)) == "insufficient_margin"
    s.cancel("b2")
    s.place(1, "m", BUY, 200)  # now fits
    assert s.position == 200


def test_reduce_only_orders_need_no_margin():
    s = sim(balance="200", leverage=50)
    s.place(1, "m", BUY, 900)  # 9,000 of 10,000 allowed
    s.place(1, "r", SELL, 900, 10500, reduce_only=True)
    assert reason(lambda: s.place(1, "b", BUY, 200, 9900)) == "insufficient_margin"
