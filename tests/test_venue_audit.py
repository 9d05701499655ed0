"""The local venue's audit records (gridctl/venue/audit.py): facts the soak needs history for,
kept by the venue as they happen and across a restart from its state file."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gridctl.venue.core import Venue
from gridctl.venue.records import VenueReject

SOL = "SOL/USDT:USDT"
D = Decimal


def venue(tmp_path) -> Venue:
    v = Venue("binanceusdm", [SOL], state_path=tmp_path / "v.json")
    v.load()
    v.pin(SOL, D("170"))
    return v


def test_the_largest_position_a_leg_ever_had_is_kept_after_it_shrinks_and_across_a_restart(tmp_path):
    v = venue(tmp_path)
    acc = v.account_for("k")
    v.place_order(acc, SOL, "buy", "market", D("3"))
    v.place_order(acc, SOL, "sell", "market", D("2"), reduce_only=True)
    v.place_order(acc, SOL, "sell", "market", D("1.5"))  # through zero: short 0.5
    assert v.audit.max_position[acc.fingerprint][SOL] == {"both": D("3")}
    v.save()
    again = Venue("binanceusdm", [SOL], state_path=tmp_path / "v.json")
    again.load()
    assert again.audit.max_position[acc.fingerprint][SOL] == {"both": D("3")}


def test_a_placement_with_a_live_orders_client_id_is_counted_and_a_reused_one_too(tmp_path):
    v = venue(tmp_path)
    acc = v.account_for("k")
    v.place_order(acc, SOL, "buy", "limit", D("1"), D("160"), "c1")
    with pytest.raises(VenueReject):
        v.place_order(acc, SOL, "buy", "limit", D("1"), D("161"), "c1")
    v.cancel_order(acc, SOL, client_id="c1")
    v.place_order(acc, SOL, "buy", "limit", D("1"), D("162"), "c1")
    assert v.audit.duplicate_live == {acc.fingerprint: 1} and v.audit.reused == {acc.fingerprint: 1}
    assert [e["kind"] for e in v.audit.examples] == ["duplicate_live", "reused"]


def test_fired_faults_are_counted_by_name(tmp_path):
    v = venue(tmp_path)
    v.faults.configure({"rate_limit": {"count": 2}, "timeout": {"count": 1}})
    fired = [bool(v.faults.take("rate_limit")) for _ in range(3)] + [bool(v.faults.take("timeout", "read"))]
    assert fired == [True, True, False, False]
    assert v.faults.fired == {"rate_limit": 2}
    v.save()
    again = Venue("binanceusdm", [SOL], state_path=tmp_path / "v.json")
    again.load()
    assert again.faults.fired == {"rate_limit": 2}
