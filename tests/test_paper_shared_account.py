"""Two strategies on one paper account share its venue: one wallet, one price, one process.

A hedge-mode paper account with a long grid and a short grid on SOL (one leg each), and a
one-way paper account with grids on two symbols: each account is served by one local venue
process (`gridctl venue`), both workers trade through ccxt against it, their orders rest in
the same account on the venue, and they see the same price at the same moment.
"""

from __future__ import annotations

import json
import os
import signal
import urllib.request
from decimal import Decimal
from pathlib import Path

import pytest

from gridctl.core.clientid import decode as decode_cid, same_strategy, strategy_tag
from gridctl.process.pidfile import lock_holder
from gridctl.control.client import supervisor_status
from tests.proc_helpers import Paper, wait_until

pytestmark = pytest.mark.slow

CONFIG = """\
version: 1
accounts:
  shared:
    exchange: paper
    like: binanceusdm
    balance: 10000
    position_mode: hedge
    feed: {replay: "builtin:SOLUSDT_1m", speed: 600}
strategies:
  up:
    account: shared
    symbol: SOL/USDT:USDT
    mode: long
    lower: 160
    upper: 180
    grids: 20
    investment: 300
    leverage: 2
  down:
    account: shared
    symbol: SOL/USDT:USDT
    mode: short
    lower: 160
    upper: 180
    grids: 20
    investment: 300
    leverage: 2
"""


def admin_state(url: str) -> dict:
    with urllib.request.urlopen(url + "/_admin/state", timeout=10) as r:
        return json.loads(r.read())


def by_strategy(orders: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {"up": [], "down": []}
    for o in orders:
        d = decode_cid("binance", o["client_id"])
        for name in out:
            if d is not None and same_strategy("binance", d, strategy_tag(name)):
                out[name].append(o)
    return out


def test_a_long_and_a_short_grid_on_one_hedge_paper_account_share_its_venue(tmp_path: Path):
    cfg = tmp_path / "given.yaml"
    cfg.write_text(CONFIG)
    p = Paper(tmp_path, cfg)
    try:
        out = p.start()
        assert "started up (pid" in out and "started down (pid" in out, out
        url_file = p.state / "run" / "venue" / "shared.url"
        url = wait_until(lambda: url_file.exists() and url_file.read_text().strip(), 20, "the shared venue")
        assert lock_holder(p.state / "run" / "venue" / "shared.pid") is not None  # one process for the account
        venues = supervisor_status(p.state)["supervisor"]["venues"]
        assert [(v["account"], v["state"]) for v in venues] == [("shared", "running")]

        def both_placed():
            st = admin_state(url)
            accounts = [a for a in st["accounts"].values() if a["open_orders"]]
            if len(accounts) != 1:
                return None
            mine = by_strategy(accounts[0]["open_orders"])
            return (accounts[0], mine) if mine["up"] and mine["down"] else None

        account, mine = wait_until(both_placed, 30, "both grids resting in one account on the venue")
        assert account["hedge"] is True
        # each grid works its own leg of the one account
        assert {str(o["position_side"]).lower() for o in mine["up"]} == {"long"}
        assert {str(o["position_side"]).lower() for o in mine["down"]} == {"short"}

        # one price for both: the status of each names the venue's price of the same moment
        wait_until(lambda: all(r.get("price") for r in p.status().values()), 20, "both report a price")
        seen = p.status()
        assert seen["up"]["price"] is not None and seen["down"]["price"] is not None
        prices = [Decimal(str(seen[n]["price"])) for n in ("up", "down")]
        assert abs(prices[0] - prices[1]) <= Decimal("0.5"), prices  # within a candle's move, same feed

        # one wallet: both strategies' fills land in the same venue account
        wait_until(lambda: p.count("fills", "up") + p.count("fills", "down") >= 1, 60, "a fill on the shared account")
        st = admin_state(url)
        assert len([a for a in st["accounts"].values() if a["fills"]]) == 1
        p.ok("stop", "up", "down")
        flat = admin_state(url)["accounts"]
        legs = [leg for a in flat.values() for leg in a["positions"]["SOL/USDT:USDT"]["legs"].values()]
        assert all(Decimal(leg["qty"]) == 0 for leg in legs), legs
        assert all(not a["open_orders"] for a in flat.values())
    finally:
        p.cleanup()


def test_a_killed_paper_venue_is_restarted_on_its_port_and_the_workers_trade_on(tmp_path: Path):
    cfg = tmp_path / "given.yaml"
    cfg.write_text(CONFIG)
    p = Paper(tmp_path, cfg)
    try:
        p.start()
        url_file = p.state / "run" / "venue" / "shared.url"
        url = wait_until(lambda: url_file.exists() and url_file.read_text().strip(), 20, "the shared venue")
        wait_until(lambda: p.count("orders", "up") > 0 and p.count("orders", "down") > 0, 30, "both grids placed")
        pid = lock_holder(p.state / "run" / "venue" / "shared.pid")
        os.kill(pid, signal.SIGKILL)

        def restarted():
            v = supervisor_status(p.state)["supervisor"]["venues"][0]
            return v if v["state"] == "running" and v["pid"] not in (0, pid) else None

        v = wait_until(restarted, 30, "the venue restarted by the supervisor")
        assert v["url"] == url  # the same port: the workers' endpoint stays valid
        fills = p.count("fills", "up") + p.count("fills", "down")
        wait_until(lambda: p.count("fills", "up") + p.count("fills", "down") > fills, 90,
                   "a fill after the venue's restart")
        assert {w["state"] for w in p.workers().values()} == {"running"}
    finally:
        p.cleanup()
