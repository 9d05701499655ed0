"""Virtual positions of several strategies on one account and symbol (gridctl.core.virtual):
the funding split, the leg check and the assignment math, pure."""

from __future__ import annotations

from decimal import Decimal

import pytest

from backtest_helpers import account, strategy, toy_rules
from gridctl.config.strategy import engine_config, grid_params
from gridctl.core import virtual as v
from gridctl.core.driver import Driver
from gridctl.core.engine import GridEngine
from gridctl.core.fills import Fill, FundingPayment
from gridctl.core.grid import Side
from gridctl.core.ledger import Ledger
from gridctl.core.orders import Intent
from gridctl.core.plan import build_grid
from gridctl.exchange.base import PositionReport

D = Decimal
R = toy_rules()  # tick 0.01, step 0.1
T = 1_700_000_000_000


def sibling(name: str, held: int, level: int = 2) -> Driver:
    """A long grid holding `held` steps at one level."""
    s = strategy("long", "100", "103", 3, amount="1", name=name)
    params = grid_params(R, s, 10250)
    d = Driver(GridEngine(R, build_grid(R, params, 10250), engine_config(R, s, account(), params)))
    d.funding_alone = False  # siblings share its symbol (set by the worker from the configuration)
    if held:
        cid = d.e.client_id(level, Intent.ENTRY, 1)
        d.on_fill(Fill(T, cid, "o1", Side.BUY, d.e.levels[level].spec.entry, held, D(0), trade_id=f"{name}-t"))
    return d


def test_funding_on_a_shared_leg_is_split_by_the_virtual_positions_not_booked_whole_by_each():
    # the venue's long leg is 1.0 + 0.5: one payment of -0.15 for the whole position
    a, b = sibling("a", 10), sibling("b", 5)
    paid = FundingPayment(T + 1, D("0.0001"), 10000, 15, D("-0.15"))
    a.on_funding(paid)
    b.on_funding(paid)
    # before: each booked -0.15, the account was charged -0.30 in the strategies' figures
    assert a.e.ledger.funding == D("-0.10") and b.e.ledger.funding == D("-0.05")
    assert a.e.ledger.funding + b.e.ledger.funding == paid.amount
    assert a.last_funding.amount == D("-0.10")  # what the worker stores for the strategy


def test_a_payment_read_after_a_sibling_traded_on_is_split_by_the_positions_at_its_instant():
    # found by the soak: a (1.0) and b (0.5) held the leg at the settlement; a bought 0.5 more
    # before the payment was read, and booked the whole of it (its 1.5 then equalled the net)
    a, b = sibling("a", 10), sibling("b", 5)
    paid = FundingPayment(T + 1, D("0.0001"), 10000, 15, D("-0.15"))  # the venue's net at T + 1
    a.on_fill(Fill(T + 2, a.e.client_id(1, Intent.ENTRY, 1), "o2", Side.BUY, a.e.levels[1].spec.entry, 5, D(0),
                   trade_id="a-t2"))
    assert a.e.ledger.position == 15 and a.position_at(T + 1) == 10
    a.on_funding(paid)
    b.on_funding(paid)
    assert (a.e.ledger.funding, b.e.ledger.funding) == (D("-0.10"), D("-0.05"))


def test_the_position_at_an_instant_counts_the_fills_replayed_from_the_store():
    # a restarted worker reads a payment settled before its fills since: the replayed ones count
    a = sibling("a", 0)
    fill = Fill(T + 5, a.e.client_id(1, Intent.ENTRY, 1), "o2", Side.BUY, a.e.levels[1].spec.entry, 5, D(0),
                trade_id="a-t2")
    a.remember(fill)
    a.e.on_fill(fill)
    assert (a.e.ledger.position, a.position_at(T + 1), a.position_at(T + 5)) == (5, 0, 5)


def test_the_only_holder_books_the_whole_payment_untouched():
    a = sibling("a", 10)
    paid = FundingPayment(T + 1, D("0.0001"), 10012, 10, D("-0.1001234"))
    assert a.on_funding(paid) and a.e.ledger.funding == D("-0.1001234")


def test_a_flat_strategy_books_nothing_of_its_siblings_funding():
    a = sibling("a", 0)
    a.on_funding(FundingPayment(T + 1, D("0.0001"), 10000, 15, D("-0.15")))
    assert a.e.ledger.funding == 0


def test_funding_share_falls_back_to_rate_times_mark_when_the_venue_position_is_unknown():
    p = FundingPayment(T, D("0.0001"), 15000, 0, D("-0.3"))  # 150.00
    assert v.funding_share(p, 10, R) == D("-0.0150")  # -0.0001 x 150 x 1.0
    assert v.funding_share(p, -10, R) == D("0.0150")  # shorts receive a positive rate
    assert v.funding_share(FundingPayment(T, None, None, 0, D("-0.3")), 10, R) == 0


def test_funding_share_is_linear_in_the_signed_net_on_hedge_legs():
    # long leg 5.0, short leg -2.0: the venue's net 3.0 pays -0.3; shares add up to it
    p = FundingPayment(T, D("0.0001"), 10000, 30, D("-0.3"))
    long_share, short_share = v.funding_share(p, 50, R), v.funding_share(p, -20, R)
    assert long_share == D("-0.5") and short_share == D("0.2") and long_share + short_share == p.amount


def test_leg_positions_and_venue_legs():
    led = Ledger(R)
    led.entry(1, Side.BUY, T, 10000, 10, D(0))
    led.entry(2, Side.SELL, T, 10100, 4, D(0))
    assert v.leg_positions(led, hedge=True) == {"long": 10, "short": -4}
    assert v.leg_positions(led, hedge=False) == {"net": 6}
    reports = [PositionReport("long", 25, D(100)), PositionReport("short", 7, D(101))]  # a short leg reported > 0
    assert v.venue_legs(reports, hedge=True) == {"long": 25, "short": -7}
    assert v.venue_legs([PositionReport(None, -3, D(100))], hedge=False) == {"net": -3}
    assert v.legs_of("neutral", True) == ("long", "short") and v.legs_of("short", True) == ("short",)
    assert v.legs_of("long", False) == ("net",)


def test_the_leg_check_sums_siblings_and_the_unassigned_bucket():
    [c] = v.check_legs({"long": 25}, [{"long": 10}, {"long": 5}], {"long": 4}, ["long"])
    assert (c.venue, c.virtual, c.unassigned, c.difference, c.unexplained) == (25, 15, 4, 6, 10)
    assert not c.matched
    [ok] = v.check_legs({"long": 15}, [{"long": 10}, {"long": 5, "short": -3}], {}, ["long"])
    assert ok.matched


def test_assignment_gives_part_of_the_difference_and_the_rest_to_unassigned():
    c = v.LegCheck("long", 25, 15, 0)
    plan = v.plan_assignment(c, {"a": 6}, {"a", "b"})
    assert plan.assigned == {"a": 6} and plan.unassigned == 4
    assert v.plan_assignment(c, {}, {"a"}).unassigned == 10  # nothing named: all of it to UNASSIGNED
    # a short difference: unsigned quantities take its sign
    s = v.LegCheck("short", -12, -10, 0)
    assert v.plan_assignment(s, {"a": 2}, {"a"}).assigned == {"a": -2}


def test_assignment_takes_the_unassigned_bucket_back_too():
    c = v.LegCheck("long", 25, 15, 10)  # matched: the 1.0 unexplained sits in UNASSIGNED
    plan = v.plan_assignment(c, {"a": 10}, {"a"})
    assert plan.assigned == {"a": 10} and plan.unassigned == 0


@pytest.mark.parametrize("requests,message", [
    ({"x": 1}, "strategy 'x' does not trade the long leg here"),
    ({"a": 11}, "11 assigned is more than the long leg's difference 10 (venue 25, strategies 15)"),
    ({"a": 6, "b": 5}, "11 assigned is more than the long leg's difference 10 (venue 25, strategies 15)"),
    ({"a": -2}, "a: -2 has the wrong sign: the difference on the long leg is 10"),
    ({"a": 0}, "a: the quantity to assign is 0"),
])
def test_bad_assignments_are_refused_with_a_reason(requests, message):
    with pytest.raises(v.AssignmentError) as exc:
        v.plan_assignment(v.LegCheck("long", 25, 15, 0), requests, {"a", "b"})
    assert str(exc.value) == message


def test_nothing_to_assign_on_a_matched_leg():
    with pytest.raises(v.AssignmentError, match="has no difference to assign"):
        v.plan_assignment(v.LegCheck("long", 15, 15, 0), {"a": 1}, {"a"})


def test_pick_leg():
    checks = [v.LegCheck("long", 5, 5, 0), v.LegCheck("short", -3, 0, 0)]
    assert v.pick_leg(checks, None).leg == "short"
    assert v.pick_leg(checks, "long").leg == "long"
    with pytest.raises(v.AssignmentError, match="both legs differ"):
        v.pick_leg([v.LegCheck("long", 6, 5, 0), v.LegCheck("short", -3, 0, 0)], None)


def test_an_assigned_quantity_books_at_its_price_and_pnl_continues_from_there():
    led = Ledger(R)
    led.entry(1, Side.BUY, T, 10000, 10, D(0))  # 1.0 @ 100
    v.book_assignment(led, 5, 12000)  # 0.5 assigned at the mark 120
    assert led.position == 15 and led.fills == 1 and led.fees == 0
    assert led.unrealized(12000) == D("20.0")  # the level's 1.0 from 100; the assigned part from 120: 0
    v.book_assignment(led, -5, 12100)  # taken back at 121: +0.5 realized on the assigned lot
    assert led.position == 10 and led.other_realized == D("0.5")
