"""Process-level: a real SQLite database locked by another connection while a busy grid keeps trading."""

from __future__ import annotations

from outage_scenario import run_outage


def test_a_locked_database_loses_no_fill_and_no_order_and_doubles_none(tmp_path):
    r = run_outage(tmp_path, outage_s=3.0, fills=5000, orders=1000, maxsize=200)
    # the outage was real and long enough to need the journal
    assert r["failed_flushes"] >= 3 and r["unavailable_since_ms"] is not None
    assert r["peak_journaled"] > r["maxsize"]
    # every fill exactly once, every order with its last state
    assert r["fills_stored"] == r["distinct_trade_ids"] == 5000
    assert r["orders_stored"] == r["orders_filled"] == 1000
    # events are the ones that may go, and they are counted
    assert r["events_dropped"] > 0
    assert r["pending_after"] == 0 and not r["journal_left"] and r["closed_clean"]
