"""A kept position is the exchange's truth at the next start: adopted, never bought twice, shown
as the exchange holds it, closable by emergency-close while the strategy is stopped.

Real supervisor, real workers and the paper account's local venue, driven through the CLI (see
tests/test_e2e_paper.py; tests/venue_view.py reads the venue's state and trade history and
places a trader's manual order on it).
"""

from __future__ import annotations

import os
import re
import signal
from decimal import Decimal

import pytest

from tests.proc_helpers import wait_until
from tests.test_e2e_paper import Paper

pytestmark = pytest.mark.slow

CONFIG = """
version: 1
accounts:
  paper:
    exchange: paper
    like: binanceusdm
    balance: 10000
    feed: {replay: "builtin:SOLUSDT_1m", speed: 600}
  paper-short:          # an account keeps one (one-way) position per symbol: the short gets its own
    exchange: paper
    like: binanceusdm
    balance: 10000
    feed: {replay: "builtin:SOLUSDT_1m", speed: 600}
strategies:
  long-kept:
    account: paper
    symbol: SOL/USDT:USDT
    mode: long
    lower: 160
    upper: 180
    grids: 20
    investment: 600
    leverage: 2
    initial_position: true
    risk: {on_stop: close}
  short-keep:
    account: paper-short
    symbol: SOL/USDT:USDT
    mode: short
    lower: 160
    upper: 180
    grids: 20
    investment: 600
    leverage: 2
    initial_position: true
    risk: {on_stop: keep}
"""


@pytest.fixture
def paper(tmp_path):
    p = Paper(tmp_path)
    p.config.write_text(CONFIG)
    yield p
    p.cleanup()


def taker_entries(p: Paper, name: str) -> list[dict]:
    """Initial-position buys/sells the venue executed for a strategy (taker entries)."""
    from gridctl.core.clientid import decode

    return [t for t in p.trades(name) if not t["maker"] and (d := decode("binance", t["cid"])) is not None
            and d.intent.value == "entry"]


def market_entries(p: Paper, name: str) -> int:
    return len(taker_entries(p, name))


def adopted_levels(log: str) -> set[int]:
    """The levels of "adopted the exchange's position Q: levels 11, 12, ... at their entry lines"."""
    m = re.search(r"adopted the exchange's position \S+: levels ([0-9, ]+)", log)
    assert m, log
    return {int(x) for x in m.group(1).split(",")}


def live(p: Paper, name: str) -> dict:
    return p.status()[name]


def agrees_with_venue(p: Paper, name: str) -> bool:
    """The ledger's position, the exchange position status shows and the venue's all agree."""
    before = p.venue_position(name)
    st = live(p, name)
    after = p.venue_position(name)
    venue = Decimal(after) / 100
    return before == after and Decimal(st["position"]) == venue and Decimal(st["exchange_position"]) == venue


@pytest.mark.parametrize("name,stop_args", [("long-kept", ("--keep-position",)), ("short-keep", ())],
                         ids=["stop --keep-position", "on_stop: keep"])
def test_a_kept_position_is_adopted_at_the_next_start_and_never_bought_twice(paper, name, stop_args):
    paper.start(name)
    wait_until(lambda: paper.venue_position(name) != 0, 20, "the initial position on the venue")
    assert market_entries(paper, name) >= 1
    out = paper.ok("stop", name, *stop_args)
    assert f"stopped {name} (position kept)" in out
    kept = paper.venue_position(name)
    assert kept != 0 and paper.book(name) == {}
    st = live(paper, name)
    assert st["state"] == "stopped" and Decimal(st["position"]) == Decimal(kept) / 100
    entries = market_entries(paper, name)

    paper.start(name)
    logs = wait_until(lambda: paper.ok("logs", name, "--grep", "adopted the exchange's position"),
                      20, "the adoption logged")  # (not the first start's "0 open orders adopted")
    assert f"adopted the exchange's position {Decimal(kept) / 100}" in logs
    # nothing bought (or sold) at market again: the new grid, laid at today's price, may top up
    # a level the kept position does not cover, never one it adopted, and never the kept amount
    from gridctl.core.clientid import decode

    wait_until(lambda: agrees_with_venue(paper, name), 20, "status equal to the venue")  # top-up booked
    topups = taker_entries(paper, name)[entries:]
    assert all(decode("binance", t["cid"]).level not in adopted_levels(logs) for t in topups), (topups, logs)
    assert sum(t["qty"] for t in topups) < abs(kept)
    wait_until(lambda: agrees_with_venue(paper, name), 20, "status equal to the venue")
    entries = market_entries(paper, name)

    # a crash after the adoption: the restarted worker takes the same position over, once
    old = paper.workers()[name]["pid"]
    os.kill(old, signal.SIGKILL)
    wait_until(lambda: (w := paper.workers()[name])["state"] == "running" and w["pid"] != old, 20, "restart")
    assert market_entries(paper, name) == entries
    wait_until(lambda: agrees_with_venue(paper, name), 20, "status equal to the venue after the restart")

    out = paper.ok("stop", name, "--keep-position")
    assert paper.venue_position(name) != 0
    # stopped with its position open: emergency-close closes it from the command itself
    out = paper.ok("emergency-close", name, "--yes")
    assert f"emergency-closed {name}: it was not running; closed its position" in out
    assert paper.venue_position(name) == 0 and paper.book(name) == {}
    st = live(paper, name)
    assert st["state"] == "stopped" and Decimal(st["position"]) == 0


def test_a_difference_nobody_can_explain_is_shown_not_overwritten(paper):
    name = "long-kept"
    paper.env["GRIDCTL_BACKOFF_BASE"] = "3"  # time to trade by hand before the restart
    paper.start(name)
    wait_until(lambda: paper.venue_position(name) > 0, 20, "the initial position on the venue")
    # the worker dies; meanwhile someone trades on the account: a market buy of 5.00 SOL in the
    # venue's app (the account's keys, a client id that is not gridctl's)
    held = paper.venue_position(name)
    os.kill(paper.workers()[name]["pid"], signal.SIGKILL)
    paper.where(name).manual_order("buy", Decimal("5.00"), "web-manual-buy-1")
    wait_until(lambda: paper.venue_position(name) == held + 500, 10, "the manual buy on the venue")
    assert paper.workers()[name]["state"] != "running", "restarted before the manual trade: raise the backoff"
    wait_until(lambda: paper.workers()[name]["state"] == "running", 20, "restart")
    st = wait_until(lambda: (s := live(paper, name)) and s.get("exchange_position") not in (None, s["position"])
                    and s, 20, "the difference shown")
    assert Decimal(st["exchange_position"]) - Decimal(st["position"]) == Decimal("5.00")
    table = paper.ok("status", "-c", str(paper.config), name)
    # the grid trades on between the two reads: both figures move, the difference stands
    ledger, exchange = re.search(r"position:\s+(\S+) \(exchange (\S+)\)", table).groups()
    assert Decimal(exchange) - Decimal(ledger) == Decimal("5.00"), table
    logs = wait_until(lambda: paper.ok("logs", name, "--grep", "position differs"), 10, "the difference logged")
    assert "position differs: ledger" in logs and "(not changed; see gridctl status)" in logs
