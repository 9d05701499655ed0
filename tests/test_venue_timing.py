"""The venue's opt-in timing log (GRIDCTL_VENUE_TIMING, gridctl/venue/timing.py): what
tests/bench/bench_live.py reads to time a worker in the venue's clock."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

from gridctl.venue.records import fingerprint
from venue_harness import KEY, SECRET, LocalVenue, binance_client

SOL = "SOL/USDT:USDT"


def trade(venue: LocalVenue):
    async def main():
        ex = binance_client(venue.url, pro=False)
        try:
            await ex.load_markets()
            await ex.create_order(SOL, "limit", "buy", 1, 169, {"postOnly": True, "clientOrderId": "t-1"})
            await asyncio.to_thread(venue.price, SOL, "168.9")  # fills it
            await ex.create_order(SOL, "limit", "buy", 1, 100, {"postOnly": True, "clientOrderId": "t-2"})
            await ex.cancel_order(None, SOL, {"clientOrderId": "t-2"})
        finally:
            await ex.close()
    asyncio.run(main())


def test_order_answers_and_price_moves_are_logged_in_order_with_the_account_after_each(tmp_path, monkeypatch):
    log = tmp_path / "timing.jsonl"
    monkeypatch.setenv("GRIDCTL_VENUE_TIMING", str(log))
    with LocalVenue(secret=SECRET, start_price=None) as v:
        v.price(SOL, "170")
        trade(v)
    recs = [json.loads(line) for line in log.read_text().splitlines()]
    mine = [(r["e"], r.get("kind"), r.get("c"), r.get("open"), r.get("pos")) for r in recs
            if r["e"] == "ack" or (r["e"] == "price" and r["price"] != "170")]
    assert mine == [("ack", "place", "t-1", 1, "0.00"), ("price", None, None, None, None),
                    ("ack", "place", "t-2", 1, "1.00"), ("ack", "cancel", "t-2", 0, "1.00")]
    assert all(r["acct"] == fingerprint(KEY) for r in recs if r["e"] == "ack")
    ts = [r["t"] for r in recs]
    assert ts == sorted(ts) and Decimal(ts[-1] - ts[0]) > 0  # one monotonic clock, in ns


def test_nothing_is_logged_without_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("GRIDCTL_VENUE_TIMING", raising=False)
    monkeypatch.chdir(tmp_path)
    with LocalVenue(secret=SECRET, start_price=None) as v:
        v.price(SOL, "170")
        trade(v)
        assert v.venue.timing is None
    assert list(tmp_path.iterdir()) == []
