"""The local venue's partial fault with `leave`: a resting order that is hit fills only in part
and the rest keeps resting at its price (what a thin book does), so the worker's
partial_fill_timeout can be tried through the real wire protocol."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gridctl.venue.core import Venue
from gridctl.venue.faults import FaultError, Faults, parse_spec

SOL = "SOL/USDT:USDT"
D = Decimal


def venue(tmp_path=None) -> Venue:
    v = Venue("binanceusdm", [SOL], state_path=(tmp_path / "v.json") if tmp_path else None)
    v.load()
    v.pin(SOL, D("170"))
    return v


def test_leave_fills_part_of_a_resting_order_and_rests_the_rest_at_its_price():
    v = venue()
    acc = v.account_for("k")
    v.faults.configure(parse_spec("partial:leave=0.6"))
    v.place_order(acc, SOL, "buy", "limit", D("1"), D("169"), "g")
    v.pin(SOL, D("169"))  # the price reaches the order and stops there
    assert [f.qty for f in v.fills(acc, SOL)] == [D("0.40")]
    (o,) = v.open_orders(acc, SOL)
    assert (o.client_id, o.status, o.filled) == ("g", "partially_filled", D("0.40"))
    v.pin(SOL, D("170"))  # back up: the rest stays
    assert len(v.open_orders(acc, SOL)) == 1 and [p.qty for p in v.positions(acc, SOL)] == [D("0.40")]
    cancelled = v.cancel_order(acc, SOL, client_id="g")
    assert (cancelled.status, cancelled.filled) == ("cancelled", D("0.40"))


def test_the_rest_fills_when_the_price_trades_through_it():
    v = venue()
    acc = v.account_for("k")
    v.faults.configure({"partial": {"leave": 0.5}})
    v.place_order(acc, SOL, "buy", "limit", D("1"), D("169"), "g")
    v.pin(SOL, D("169"))
    v.pin(SOL, D("168.5"))
    assert [f.qty for f in v.fills(acc, SOL)] == [D("0.50"), D("0.50")]
    assert v.open_orders(acc, SOL) == [] and v.get_order(acc, SOL, client_id="g").status == "filled"


def test_a_price_moving_through_at_once_fills_the_whole_order():
    v = venue()
    acc = v.account_for("k")
    v.faults.configure({"partial": {"leave": 0.5, "pieces": 2}})
    v.place_order(acc, SOL, "buy", "limit", D("1"), D("169"), "g")
    v.pin(SOL, D("168"))
    assert [f.qty for f in v.fills(acc, SOL)] == [D("0.25"), D("0.25"), D("0.50")]
    assert v.open_orders(acc, SOL) == []


def test_the_resting_rest_survives_a_venue_restart(tmp_path):
    v = venue(tmp_path)
    acc = v.account_for("k")
    v.faults.configure({"partial": {"leave": 0.7}})
    v.place_order(acc, SOL, "sell", "limit", D("1"), D("171"), "s")
    v.pin(SOL, D("171"))
    v.save()
    w = Venue("binanceusdm", [SOL], state_path=tmp_path / "v.json")
    w.load()
    acc2 = w.account_for("k")
    (o,) = w.open_orders(acc2, SOL)
    assert (o.filled, o.qty) == (D("0.30"), D("1.00"))
    w.pin(SOL, D("172"))
    assert w.open_orders(acc2, SOL) == [] and [p.qty for p in w.positions(acc2, SOL)] == [D("-1.00")]


@pytest.mark.parametrize("leave", [0, 1, 1.5, "x"])
def test_leave_must_be_a_fraction(leave):
    with pytest.raises(FaultError, match="faults: partial: leave must be a fraction between 0 and 1"):
        Faults().configure({"partial": {"leave": leave}})
