"""Simulated exchange: PnL, funding, mark price, liquidation, persistence."""

import json
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from gridctl.core.grid import Side
from gridctl.core.market import MarketRules
from gridctl.sim import LIQUIDATION, NO_HIGH, NO_LOW, Account, SimExchange

BUY, SELL = Side.BUY, Side.SELL
D = Decimal


def rules() -> MarketRules:
    return MarketRules(symbol="BTC/USDT:USDT", base="BTC", quote="USDT", tick=D("1"), step=D("0.001"),
                       min_qty=D("0.001"), min_notional=D("5"), max_leverage=125,
                       maintenance_margin_rate=D("0.005"), maker_fee=D("0.0002"), taker_fee=D("0.0005"))


def long_one_btc_at_10000(balance="998.0", leverage=10) -> SimExchange:
    """1 BTC long from a maker buy at 10,000 (fee 2): the wallet is balance - 2."""
    s = SimExchange(rules(), D(balance) + 2, leverage, price=10100)
    s.place(0, "b", BUY, 1000, 10000)
    assert s.sweep(1, 10000)[0].fee == D("2")
    return s


def test_wac_entry_realized_unrealized_and_equity():
    s = SimExchange(rules(), D("100000"), 5, price=10000)
    s.place(0, "a", BUY, 1000, 9900)
    s.place(0, "b", BUY, 3000, 9500)
    while s.sweep(1, 9000):
        pass
    assert s.position == 4000 and s.entry_price == D("9600")  # (9900 + 3*9500) / 4
    assert s.unrealized() == D("-2400")  # 4 BTC x (9000 - 9600)
    _, fills = s.place(2, "c", SELL, 1000)  # taker at 9000
    assert s.realized == D("-600") and s.entry_price == D("9600") and s.position == 3000
    fees = D("9900") * D("0.0002") + D("28500") * D("0.0002") + D("9000") * D("0.0005")
    assert s.fees == fees and s.balance == D("100000") - 600 - fees
    assert s.equity() == s.balance + D("-1800")


def test_one_way_flip_reopens_the_rest_at_the_fill_price():
    s = SimExchange(rules(), D("100000"), 5, price=10000)
    s.place(0, "a", BUY, 1000)
    s.place(0, "b", SELL, 3000, 9000)  # crossing sell of 3 BTC: closes 1, opens 2 short at 10,000
    assert s.position == -2000 and s.entry_price == D("10000")


def test_funding_longs_pay_positive_rates_and_shorts_receive():
    s = SimExchange(rules(), D("100000"), 5, price=20000)
    assert s.pay_funding(0, D("0.0001")) is None  # flat: nothing to settle
    s.place(0, "long", BUY, 2000)  # 2 BTC
    before = s.balance
    p = s.pay_funding(1, D("0.0001"))
    assert p.amount == D("-4") and p.mark == 20000 and p.position == 2000 and s.balance == before - 4
    s.place(2, "flip", SELL, 3000)  # now 1 BTC short
    before = s.balance
    p = s.pay_funding(3, D("0.0001"))
    assert p.amount == D("2") and s.balance == before + 2 and p.position == -1000
    p = s.pay_funding(4, D("-0.0003"))  # negative rate: shorts pay
    assert p.amount == D("-6")
    assert s.funding == D("-4") + 2 - 6


def test_funding_is_settled_at_the_mark_price():
    s = SimExchange(rules(), D("100000"), 5, price=20000)
    s.place(0, "long", BUY, 1000)
    s.set_mark(20100)
    assert s.mark == 20100
    assert s.pay_funding(1, D("0.001")).amount == D("-20.1")


def test_mark_is_the_last_price_until_set_and_then_stays_put():
    s = SimExchange(rules(), D("100000"), 5, price=20000)
    s.sweep(0, 20050)
    assert s.mark == 20050
    s.set_mark(19990)
    s.sweep(0, 21000)
    assert (s.price, s.mark) == (21000, 19990)
    s.place(0, "b", BUY, 1000)
    assert s.unrealized() == D("-1010")  # bought at 21000, valued at the mark
    s.set_mark(None)
    assert s.mark == 21000 and s.unrealized() == 0


def test_long_liquidates_at_the_hand_computed_price():
    # wallet 998 after the fee, 1 BTC at 10,000, mmr 0.5%:
    # 998 + (M - 10000) = 0.005 M  =>  M = 9002 / 0.995 = 9047.24  =>  last tick 9047
    s = long_one_btc_at_10000()
    s.place(1, "exit", SELL, 1000, 11000, reduce_only=True)
    assert s.liquidation_price() == (9047, None)
    assert s.band() == (9047, 11000)
    assert s.sweep(2, 9048) == [] and s.position == 1000  # 998 - 952 = 46 > 45.24: safe
    fills = s.sweep(3, 8000)
    assert s.price == 9047
    assert [(f.client_id, f.side, f.price, f.qty, f.maker) for f in fills] == [(LIQUIDATION, SELL, 9047, 1000, False)]
    assert fills[0].fee == D("9047") * D("0.0005")
    assert s.position == 0 and s.open_orders() == []
    assert s.balance == D("998") - 953 - D("4.5235")
    ev = s.liquidations[-1]
    assert (ev.ts, ev.mark, ev.position) == (3, 9047, 1000)
    assert [o.client_id for o in s.take_expired()] == ["exit"]
    assert s.sweep(4, 8000) == [] and s.price == 8000


def test_short_liquidation_price_and_equity_at_maintenance():
    s = SimExchange(rules(), D("1000"), 20, price=10000)
    s.place(0, "s", SELL, 1000, 10100)
    s.sweep(0, 10100)  # maker fee 2.02, short 1 BTC at 10,100
    lo, hi = s.liquidation_price()
    assert lo is None
    # 997.98 + (10100 - M) = 0.005 M  =>  M = 11097.98 / 1.005 = 11042.77  =>  first tick 11043
    assert hi == 11043
    assert s.sweep(1, 11042) == []
    fills = s.sweep(1, 12000)
    assert fills[0].price == 11043 and fills[0].side is BUY and s.position == 0


def test_liquidation_uses_the_mark_not_the_last_price():
    s = long_one_btc_at_10000()
    s.set_mark(9900)  # a fixed mark (from a mark file): the last price alone cannot liquidate
    assert s.band() == (NO_LOW, NO_HIGH)
    assert s.sweep(2, 9000) == [] and s.position == 1000
    s.set_mark(9047)
    fills = s.sweep(3, 9000)
    assert s.price == 9000 and fills[0].price == 9047  # closed at the mark, on the next look


def test_funding_can_push_an_account_into_liquidation_at_the_next_sweep():
    s = long_one_btc_at_10000()
    s.sweep(1, 9060)  # equity 58 vs maintenance 45.3
    s.pay_funding(2, D("0.002"))  # pays 18.12
    fills = s.sweep(3, 9060)  # same price, but the next look liquidates
    assert fills and fills[0].client_id == LIQUIDATION and fills[0].price == 9060


def test_state_round_trip_through_json_restores_orders_position_and_money():
    s = SimExchange(rules(), D("5000"), 7, hedge=True, slippage_ticks=2, price=10000)
    s.place(0, "L", BUY, 300, position_side="long")
    s.place(0, "S", SELL, 100, position_side="short")
    s.place(1, "b", BUY, 100, 9900, position_side="long")
    s.place(1, "x", SELL, 200, 10300, position_side="long")
    s.set_mark(10010)
    s.pay_funding(2, D("0.0001"))
    snap = json.loads(json.dumps(s.state()))
    t = SimExchange.from_state(rules(), snap)
    assert t.state() == s.state()
    assert (t.long_qty, t.short_qty, t.balance, t.fees, t.funding, t.mark, t.band()) == \
        (s.long_qty, s.short_qty, s.balance, s.fees, s.funding, s.mark, s.band())
    assert [o.to_dict() for o in t.open_orders()] == [o.to_dict() for o in s.open_orders()]
    # both continue identically, order ids included
    assert t.sweep(3, 10400) == s.sweep(3, 10400)
    assert t.place(4, "n", BUY, 100, position_side="long")[1] == s.place(4, "n", BUY, 100, position_side="long")[1]
    assert t.initial_margin() == s.initial_margin()


@settings(max_examples=200, deadline=None)
@given(fills=st.lists(st.tuples(st.booleans(), st.integers(1, 3000), st.integers(8000, 12000)), min_size=1, max_size=5),
       balance=st.integers(1, 5000), hedge=st.booleans(), mark=st.integers(5000, 15000))
def test_liquidation_condition_is_equity_at_or_below_maintenance(fills, balance, hedge, mark):
    acc = Account(rules(), D(balance), hedge)
    for buy, qty, px in fills:
        side = BUY if buy else SELL
        key = ("long" if buy else "short") if hedge else "both"
        acc.apply_fill(key, side, px, qty, D(0))
    expected = acc.net != 0 or any(leg.qty for leg in acc.legs.values())
    expected = expected and acc.equity(mark) <= acc.maintenance(mark)
    assert acc.liquidatable(mark) == expected
