"""Simulated exchange: price movement, stops at fills, candle paths, the quiet band."""

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from gridctl.core.grid import Side
from gridctl.core.market import MarketRules
from gridctl.sim import NO_HIGH, NO_LOW, SimExchange

BUY, SELL = Side.BUY, Side.SELL
D = Decimal


def rules() -> MarketRules:
    return MarketRules(symbol="BTC/USDT:USDT", base="BTC", quote="USDT", tick=D("1"), step=D("0.001"),
                       min_qty=D("0.001"), min_notional=D("0"), max_leverage=125)


def sim(**kw) -> SimExchange:
    kw.setdefault("price", 10000)
    return SimExchange(rules(), D("1000000"), 10, **kw)


def run(s: SimExchange, ts: int, target: int) -> list[list[tuple]]:
    """Sweep to target, collecting the fills of each stop as (client_id, price, qty)."""
    stops = []
    while fills := s.sweep(ts, target):
        stops.append([(f.client_id, f.price, f.qty) for f in fills])
    return stops


def test_sweep_stops_at_each_fill_price_in_path_order_and_fills_at_the_order_price():
    s = sim()
    for cid, price in [("b9800", 9800), ("b9900", 9900), ("b9700", 9700)]:
        s.place(0, cid, BUY, 10, price)
    s.place(0, "s10100", SELL, 10, 10100)
    seen = []
    while fills := s.sweep(1, 9750):
        seen.append((s.price, [(f.client_id, f.price, f.maker) for f in fills]))
    assert seen == [(9900, [("b9900", 9900, True)]), (9800, [("b9800", 9800, True)])]
    assert s.price == 9750 and s.position == 20
    # back up: the sell fills; the buy at 9700 was never reached
    assert run(s, 2, 10200) == [[("s10100", 10100, 10)]]
    assert [o.client_id for o in s.open_orders()] == ["b9700"]


def test_caller_can_react_between_stops():
    """An exit placed after a stop's fill is itself reached later on the same path."""
    s = sim()
    s.place(0, "b", BUY, 10, 9900)
    s.place(0, "b2", BUY, 10, 9800)
    path_fills = []
    for target in SimExchange.candle_path(10000, 10050, 9750, 10000):  # close == open: low first
        while fills := s.sweep(1, target):
            for f in fills:
                path_fills.append((f.client_id, f.price))
                if f.side is BUY:
                    s.place(1, f"exit-{f.price}", SELL, f.qty, f.price + 100, reduce_only=True)
    assert path_fills == [("b", 9900), ("b2", 9800), ("exit-9800", 9900), ("exit-9900", 10000)]
    assert s.position == 0 and s.realized == D("2")  # two round trips of 0.01 BTC, 100 each


def test_orders_at_the_same_price_fill_together_in_placement_order():
    s = sim()
    s.place(0, "first", BUY, 10, 9900)
    s.place(0, "second", BUY, 25, 9900)
    s.place(0, "deeper", BUY, 10, 9800)
    assert run(s, 1, 9850) == [[("first", 9900, 10), ("second", 9900, 25)]]
    assert s.price == 9850 and [o.client_id for o in s.open_orders()] == ["deeper"]


def test_sweep_to_an_order_price_fills_it_and_a_gap_fills_at_the_order_price():
    s = sim()
    s.place(0, "b", BUY, 10, 9900)
    s.place(0, "s", SELL, 10, 10100)
    assert run(s, 1, 9900) == [[("b", 9900, 10)]]
    assert run(s, 2, 12000) == [[("s", 10100, 10)]]  # a jump far through the sell: maker at its price
    assert s.price == 12000


def test_candle_path_order():
    assert SimExchange.candle_path(100, 110, 95, 105) == [100, 95, 110, 105]  # rising: low first
    assert SimExchange.candle_path(100, 110, 95, 100) == [100, 95, 110, 100]  # flat counts as rising
    assert SimExchange.candle_path(100, 110, 95, 98) == [100, 110, 95, 98]  # falling: high first


def test_rising_and_falling_candles_fill_in_different_order():
    def fills_for(o, h, l, c):
        s = sim(price=o)
        s.place(0, "b", BUY, 10, 9900)
        s.place(0, "s", SELL, 10, 10100)
        out = []
        for target in SimExchange.candle_path(o, h, l, c):
            out += [stop[0][0] for stop in run(s, 1, target)]
        return out

    assert fills_for(10000, 10200, 9800, 10050) == ["b", "s"]
    assert fills_for(10000, 10200, 9800, 9950) == ["s", "b"]


def test_band_without_orders_is_open_and_with_orders_is_the_nearest_prices():
    s = sim()
    assert s.band() == (NO_LOW, NO_HIGH)
    s.place(0, "b1", BUY, 10, 9900)
    s.place(0, "b2", BUY, 10, 9950)
    s.place(0, "s1", SELL, 10, 10300)
    assert s.band() == (9950, 10300)


def test_first_sweep_without_a_price_just_sets_it():
    s = SimExchange(rules(), D("1000"), 5)
    assert s.sweep(0, 12345) == [] and s.price == 12345 and s.mark == 12345


@settings(max_examples=200, deadline=None)
@given(
    buys=st.lists(st.integers(1, 400), max_size=6),
    sells=st.lists(st.integers(1, 400), max_size=6),
    pos=st.integers(-6000, 6000),
    frac=st.floats(0.0, 1.0),
    mark=st.one_of(st.none(), st.integers(9000, 11000)),
)
def test_band_is_exactly_the_quiet_zone(buys, sells, pos, frac, mark):
    """Inside (lo, hi) a sweep fills nothing; at lo or hi it always does something."""
    s = SimExchange(rules(), D("5000"), 100, price=10000)
    if pos:
        s.place(0, "p", BUY if pos > 0 else SELL, abs(pos))
    for i, d in enumerate(buys):
        s.place(0, f"b{i}", BUY, 5, 10000 - d)
    for i, d in enumerate(sells):
        s.place(0, f"s{i}", SELL, 5, 10000 + d)
    s.set_mark(mark)
    if s.sweep(0, 10000):  # the mark alone may liquidate at once
        return
    lo, hi = s.band()
    assert lo < s.price < hi
    lo_in, hi_in = max(lo + 1, 1), min(hi - 1, 20000)
    target = lo_in + int(frac * (hi_in - lo_in))
    snapshot = s.state()
    assert s.sweep(1, target) == [] and s.price == target
    assert s.state()["orders"] == snapshot["orders"] and s.position == pos
    for edge in (lo, hi):
        if 1 <= edge <= 20000:
            t = SimExchange.from_state(rules(), snapshot)
            assert t.sweep(1, edge), f"nothing happened at band edge {edge}"
