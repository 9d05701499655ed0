"""Two strategies on one hedge leg of one paper account, a trade by hand on the account's
venue, and `gridctl reconcile --assign` (issue 9, point 1), end to end through the CLI."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from tests.proc_helpers import Paper, wait_until

pytestmark = pytest.mark.slow
D = Decimal
SYMBOL = "SOL/USDT:USDT"

CONFIG = """\
version: 1
accounts:
  shared:
    exchange: paper
    like: binanceusdm
    balance: 10000
    position_mode: hedge
    feed: {replay: "builtin:SOLUSDT_1m", speed: 60}
strategies:
  near:
    account: shared
    symbol: SOL/USDT:USDT
    mode: long
    lower: 160
    upper: 180
    grids: 10
    investment: 300
    leverage: 2
  far:
    account: shared
    symbol: SOL/USDT:USDT
    mode: long
    lower: 150
    upper: 180
    grids: 6
    investment: 300
    leverage: 2
"""


def long_leg(p: Paper) -> dict | None:
    rows = p.status()
    legs = [g for g in rows["near"].get("shared_legs") or [] if g["leg"] == "long"]
    return legs[0] if legs else None


def reconcile(p: Paper, *args: str):
    return p.gridctl("reconcile", "-c", str(p.config), "shared", SYMBOL, *args)


def test_a_manual_trade_on_a_shared_leg_is_shown_and_assigned(tmp_path: Path):
    cfg = tmp_path / "given.yaml"
    cfg.write_text(CONFIG)
    p = Paper(tmp_path, cfg)
    p.env["GRIDCTL_RECONCILE_EVERY_S"] = "2"  # the 60 s account check, every 2 s
    try:
        p.start()
        wait_until(lambda: p.count("orders", "near") > 0 and p.count("orders", "far") > 0, 60, "both grids placed")
        matched = wait_until(lambda: (g := long_leg(p)) and g["matched"] and g, 60, "the shared long leg checked")
        assert D(matched["difference"]) == 0

        # a trader buys 0.50 SOL on the long leg in the venue's app: a client id that is not gridctl's
        p.where("near").manual_order("buy", D("0.50"), "web-manual-buy-1", positionSide="LONG")
        leg = wait_until(lambda: (g := long_leg(p)) and not g["matched"] and g, 60, "status showing the mismatch")
        assert D(leg["difference"]) == D("0.50") and D(leg["unassigned"]) == 0
        table = p.ok("status", "-c", str(p.config))
        assert "MISMATCH" in table and f"see gridctl reconcile shared {SYMBOL}" in table, table
        wait_until(lambda: "position mismatch: SOL/USDT:USDT on account 'shared', long leg: venue"
                   in p.ok("logs", "-c", str(p.config), "near"), 30, "the mismatch logged")

        shown = reconcile(p, "--json")
        assert shown.returncode == 0, shown.stderr
        before = {g["leg"]: g for g in json.loads(shown.stdout)["legs"]}
        assert D(before["long"]["difference"]) == D("0.50") and set(before["long"]["strategies"]) == {"near", "far"}
        assert D(before["short"]["difference"]) == 0

        too_much = reconcile(p, "--assign", "near=0.6")
        assert too_much.returncode == 2
        assert too_much.stderr.strip() == ("error: 0.60 assigned is more than the long leg's difference 0.50 "
                                           f"(venue {before['long']['venue']}, strategies {before['long']['virtual']})")
        done = reconcile(p, "--assign", "near=0.30")
        assert done.returncode == 0, done.stderr
        assert "assigned on the long leg at" in done.stdout and "near 0.30; UNASSIGNED 0.20" in done.stdout

        def fixed():
            g = long_leg(p)
            return g if g and g["matched"] and D(g["unassigned"]) == D("0.20") else None
        wait_until(fixed, 60, "status showing the leg matched, 0.20 UNASSIGNED")
        wait_until(lambda: "position assigned by gridctl reconcile: 0.30" in p.ok("logs", "-c", str(p.config), "near"),
                   30, "the worker booking the assignment")
        rows = p.status()
        assert rows["near"]["position_reset"] and D(rows["near"]["position_reset"]["qty"]) == D("0.30")
        assert rows["far"]["position_reset"] is None
        table = p.ok("status", "-c", str(p.config))
        assert "near: position reset by gridctl reconcile at" in table and "MISMATCH" not in table, table
        after = {g["leg"]: g for g in json.loads(reconcile(p, "--json").stdout)["legs"]}
        assert D(after["long"]["difference"]) == 0 and D(after["long"]["unassigned"]) == D("0.20")
    finally:
        p.cleanup()
