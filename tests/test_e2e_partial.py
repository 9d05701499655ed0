"""End to end through ccxt: partial_fill_timeout at work. A real worker (`gridctl start`) trades a
`gridctl venue binanceusdm` process; the venue's partial fault (leave=0.6) fills 0.40 of an entry
of 1.00 and leaves 0.60 resting. The exit for the 0.40 rests at once, the entry's rest keeps its
one order until the (short) timeout, then it is cancelled: its order row ends `cancelled` with
0.40 filled, the exit stays sized 0.40, and after the exit the level's next entry is 1.00 again.
A worker killed while the rest waits counts the timeout from the stored fill when it restarts."""

from __future__ import annotations

import csv
import io
import os
import signal
import time
from decimal import Decimal
from pathlib import Path

import pytest

from tests.proc_helpers import Paper, wait_until
from tests.test_e2e_ccxt import FAST, Venue, own_orders

pytestmark = pytest.mark.slow
TIMEOUT_S = 6


def config(tmp: Path, venue: Venue) -> Path:
    path = tmp / "given.yaml"
    path.write_text(f"""version: 1
accounts:
  main:
    exchange: binanceusdm
    endpoint: {venue.url}
    api_key: "{venue.key}"
    secret: "{venue.secret}"
strategies:
  sol:
    account: main
    symbol: {venue.symbol}
    mode: long
    lower: 166
    upper: 174
    grids: 8
    amount: 1
    partial_fill_timeout: {TIMEOUT_S}s
""")
    return path


@pytest.fixture
def venue(tmp_path):
    v = Venue(tmp_path)
    yield v
    v.stop()


def level_orders(venue: Venue, level: int) -> list[dict]:
    return sorted((o for o in own_orders(venue).values() if o["level"] == level), key=lambda o: o["intent"])


def order_rows(p: Paper) -> list[dict]:
    return list(csv.DictReader(io.StringIO(p.ok("export", "sol", "orders", "-c", str(p.config)))))


def test_a_partly_filled_entry_is_given_up_after_partial_fill_timeout(tmp_path, venue):
    p = Paper(tmp_path, config(tmp_path, venue))
    p.env["GRIDCTL_CCXT_TIMING"] = FAST
    try:
        p.start()
        wait_until(lambda: len(own_orders(venue)) == 4, 30, "the 4 buys below 170 on the venue")
        venue.admin("/_admin/faults", {"partial": {"count": 1, "leave": 0.6}})
        venue.price("169.00")  # touches level 3's BUY 1.00 @ 169: 0.40 fills, 0.60 rests
        filled_at = time.monotonic()
        venue.price("169.50")
        both = wait_until(lambda: len(b := level_orders(venue, 3)) == 2 and b, 20, "the exit of the 0.40 placed")
        entry, exit_ = both
        if time.monotonic() - filled_at < TIMEOUT_S - 2:  # (a loaded machine may already be past it)
            assert (entry["intent"], Decimal(entry["qty"]), Decimal(entry["filled"])) == ("entry", 1, Decimal("0.4"))
        assert (exit_["intent"], exit_["side"], Decimal(exit_["qty"]), exit_["price"]) == (
            "exit", "sell", Decimal("0.4"), "170.00")

        # after the timeout the rest is cancelled; the exit stays, sized to what filled
        (left,) = wait_until(lambda: len(b := level_orders(venue, 3)) == 1 and b[0]["intent"] == "exit" and b,
                             TIMEOUT_S + 30, "the entry's rest cancelled")
        assert Decimal(left["qty"]) == Decimal("0.4") and left["client_id"] == exit_["client_id"]
        assert len(own_orders(venue)) == 4  # 3 other buys + this exit: no second entry at level 3
        assert venue.position() == Decimal("0.4")
        row = wait_until(lambda: next((r for r in order_rows(p) if r["client_id"] == entry["client_id"]
                                       and r["status"] == "cancelled"), None), 20, "the entry's row cancelled")
        assert Decimal(row["filled"]) == Decimal("0.4") and Decimal(row["qty"]) == 1
        st = p.status()["sol"]
        assert Decimal(st["position"]) == Decimal("0.4")
        events = p.ok("logs", "sol", "-c", str(p.config))
        assert f"level 3 entry filled 0.40 of 1.00 in {TIMEOUT_S}s: the rest is cancelled" in events

        # the exit sells the 0.40: one cycle; back below, the level's entry is the full 1.00 again
        venue.price("170.20")
        wait_until(lambda: p.count("trades", "sol") == 1, 20, "the partial lot's cycle")
        venue.price("169.50")
        (again,) = wait_until(lambda: len(b := level_orders(venue, 3)) == 1 and b[0]["intent"] == "entry" and b,
                              20, "level 3's next entry")
        assert Decimal(again["qty"]) == 1 and Decimal(again["filled"]) == 0
        assert [Decimal(str(r[0])) for r in p.sql("SELECT qty FROM trades WHERE strategy = 'sol'")] == [Decimal("0.4")]

        assert "stopped sol" in p.ok("stop", "sol", "-c", str(p.config))
        assert venue.open_orders() == [] and venue.position() == 0
    finally:
        p.cleanup()


def test_a_worker_killed_while_the_rest_waits_gives_it_up_after_its_restart(tmp_path, venue):
    p = Paper(tmp_path, config(tmp_path, venue))
    p.env["GRIDCTL_CCXT_TIMING"] = FAST
    try:
        p.start()
        wait_until(lambda: len(own_orders(venue)) == 4, 30, "the 4 buys below 170 on the venue")
        venue.admin("/_admin/faults", {"partial": {"count": 1, "leave": 0.6}})
        venue.price("169.00")
        venue.price("169.50")
        entry, exit_ = wait_until(lambda: len(b := level_orders(venue, 3)) == 2 and b, 20, "the exit of the 0.40")
        wait_until(lambda: p.count("fills", "sol") == 1, 20, "the fill stored")
        old = p.workers()["sol"]["pid"]
        os.kill(old, signal.SIGKILL)
        wait_until(lambda: (w := p.workers()["sol"])["state"] == "running" and w["pid"] != old, 30, "sol restarted")
        (left,) = wait_until(lambda: len(b := level_orders(venue, 3)) == 1 and b[0]["intent"] == "exit" and b,
                             TIMEOUT_S + 30, "the entry's rest cancelled after the restart")
        assert Decimal(left["qty"]) == Decimal("0.4") and len(own_orders(venue)) == 4
        assert venue.position() == Decimal("0.4")
        row = wait_until(lambda: next((r for r in order_rows(p) if r["client_id"] == entry["client_id"]
                                       and r["status"] == "cancelled"), None), 20, "the entry's row cancelled")
        assert Decimal(row["filled"]) == Decimal("0.4")
        # one entry order at level 3 in all: the rest was never placed again
        assert [r["client_id"] for r in order_rows(p) if r["level"] == "3" and r["intent"] == "entry"] == \
            [entry["client_id"]]
    finally:
        p.cleanup()
