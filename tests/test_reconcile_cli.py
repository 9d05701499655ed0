"""`gridctl reconcile` through CliRunner: what it prints, what it stores, what it refuses (the
venue's answer is stubbed; the real one is in test_reconcile_e2e.py)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

import gridctl.cli.reconcile_cmd as reconcile_cmd
from gridctl.cli import cli
from gridctl.config import load
from gridctl.config.strategy import rules_for
from gridctl.exchange.base import PositionReport
from gridctl.exchange.position_read import PositionRead
from gridctl.store.db import open_database
from gridctl.store.models import PositionAssignment, UnassignedPosition, VirtualPosition, Event

D = Decimal
SYMBOL = "SOL/USDT:USDT"
CONFIG = """\
version: 1
accounts:
  shared:
    exchange: paper
    like: binanceusdm
    position_mode: hedge
    feed: {replay: "builtin:SOLUSDT_1m"}
  solo:
    exchange: paper
    like: binanceusdm
    feed: {replay: "builtin:SOLUSDT_1m"}
strategies:
  near:
    account: shared
    symbol: SOL/USDT:USDT
    mode: long
    lower: 160
    upper: 180
    grids: 10
    investment: 300
  far:
    account: shared
    symbol: SOL/USDT:USDT
    mode: long
    lower: 150
    upper: 180
    grids: 6
    investment: 300
  other:
    account: solo
    symbol: SOL/USDT:USDT
    mode: long
    lower: 160
    upper: 180
    grids: 10
    investment: 300
"""


@pytest.fixture
def setup(tmp_path: Path, monkeypatch):
    cfg = tmp_path / "strategies.yaml"
    cfg.write_text(CONFIG)
    state = tmp_path / "state"
    open_database(state)
    config = load(cfg, check_markets=False)
    rules = rules_for(config.accounts["shared"], SYMBOL)
    for name, qty in (("near", "0.10"), ("far", "0.05")):
        VirtualPosition.create(strategy=name, account="shared", symbol=SYMBOL, long_qty=D(qty), short_qty=D(0),
                               hedge=True, ts=1)
    venue = {"long": 25, "short": 0}  # 0.25 on the long leg: 0.10 more than the strategies hold

    async def fake_read(acc, symbol, rules_, state_dir):
        return PositionRead([PositionReport("long", venue["long"], D("170")), PositionReport("short", venue["short"],
                                                                                            D(0))], 17250, rules)

    monkeypatch.setattr(reconcile_cmd, "_read", fake_read)

    def run(*args: str):
        return CliRunner().invoke(cli, ["--state-dir", str(state), "reconcile", "-c", str(cfg), *args])
    return run, cfg, venue


def test_it_shows_the_difference_per_leg(setup):
    run, _, _ = setup
    r = run("shared", SYMBOL)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0] == "SOL/USDT:USDT on account 'shared' (mark 172.50)"
    assert lines[3].split() == ["long", "0.25", "0.15", "far", "0.05,", "near", "0.10", "0.00", "0.10", "MISMATCH"]
    assert lines[4].split() == ["short", "0.00", "0.00", "far", "0.00,", "near", "0.00", "0.00", "0.00", "matched"]
    assert lines[5] == ("assign it: gridctl reconcile shared SOL/USDT:USDT --assign NAME=QTY (the rest goes to "
                        "UNASSIGNED)")
    data = json.loads(run("shared", SYMBOL, "--json").output)
    assert data["legs"][0] == {"leg": "long", "venue": "0.25", "strategies": {"far": "0.05", "near": "0.10"},
                               "virtual": "0.15", "unassigned": "0.00", "difference": "0.10", "matched": False}


def test_assign_gives_part_to_a_strategy_at_the_mark_and_the_rest_to_unassigned(setup):
    run, _, _ = setup
    r = run("shared", SYMBOL, "--assign", "near=0.04", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["assigned"]["strategies"] == {"near": "0.04"} and data["assigned"]["unassigned"] == "0.06"
    assert data["assigned"]["price"] == "172.50"
    assert data["legs"][0]["difference"] == "0.00" and data["legs"][0]["unassigned"] == "0.06"
    [a] = PositionAssignment.select()
    assert (a.strategy, a.leg, a.qty, a.price) == ("near", "long", D("0.04"), D("172.50"))
    [u] = UnassignedPosition.select()
    assert (u.leg, u.qty) == ("long", D("0.06"))
    near = VirtualPosition.get(VirtualPosition.strategy == "near")
    assert near.long_qty == D("0.14") and near.reset_ts == a.ts
    [ev] = Event.select().where(Event.strategy == "near")
    assert ev.message == ("gridctl reconcile assigned 0.04 of SOL/USDT:USDT (long leg) at 172.50: PnL of it counts "
                          "from there (reset); the worker books it on its next check")
    # the bucket is part of what can be assigned later: all of it now to far
    r = run("shared", SYMBOL, "--assign", "far=0.06")
    assert r.exit_code == 0, r.output
    assert "assigned on the long leg at 172.50: far 0.06; UNASSIGNED 0.00" in r.output
    assert UnassignedPosition.get().qty == 0


def test_unassigned_puts_all_of_it_in_the_bucket(setup):
    run, _, _ = setup
    r = run("shared", SYMBOL, "--unassigned")
    assert r.exit_code == 0, r.output
    assert "assigned on the long leg at 172.50: no strategy; UNASSIGNED 0.10" in r.output
    assert "MISMATCH" not in r.output


@pytest.mark.parametrize("args,message", [
    (["nope", SYMBOL], "error: no account 'nope' in {cfg}; accounts: shared, solo"),
    (["shared", "ETH/USDT:USDT"], "error: no strategy of {cfg} trades ETH/USDT:USDT on account 'shared'"),
    (["shared", SYMBOL, "--assign", "near"], "error: --assign near: expected NAME=QTY (e.g. --assign sol-dip=0.5)"),
    (["shared", SYMBOL, "--assign", "near=abc"], "error: --assign near=abc: 'abc' is not a quantity"),
    (["shared", SYMBOL, "--assign", "ghost=0.01"], "error: --assign ghost=0.01: no strategy 'ghost' in {cfg}"),
    (["shared", SYMBOL, "--assign", "other=0.01"],
     "error: --assign other=0.01: strategy 'other' trades SOL/USDT:USDT on account 'solo', not SOL/USDT:USDT on "
     "'shared'"),
    (["shared", SYMBOL, "--assign", "near=0.005"], "error: --assign near=0.005: not a multiple of SOL/USDT:USDT's "
                                                   "step 0.01"),
    (["shared", SYMBOL, "--assign", "near=0.06", "--assign", "far=0.05"],
     "error: 0.11 assigned is more than the long leg's difference 0.10 (venue 0.25, strategies 0.15)"),
    (["shared", SYMBOL, "--assign", "near=-0.01"], "error: near: -0.01 has the wrong sign: the difference on the "
                                                   "long leg is 0.10"),
    (["shared", SYMBOL, "--assign", "near=0.01", "--leg", "short"],
     "error: strategy 'near' does not trade the short leg here"),
    (["shared", SYMBOL, "--assign", "near=0.01", "--unassigned"],
     "error: --unassigned puts the whole difference in UNASSIGNED: give it without --assign"),
])
def test_bad_input_is_refused_with_a_clear_message_and_nothing_stored(setup, args, message):
    run, cfg, _ = setup
    r = run(*args)
    assert r.exit_code == 2, r.output
    assert r.output.strip() == message.format(cfg=cfg)
    assert "Traceback" not in r.output
    assert PositionAssignment.select().count() == 0 and UnassignedPosition.select().count() == 0


def test_a_matched_leg_has_nothing_to_assign(setup):
    run, _, venue = setup
    venue["long"] = 15
    r = run("shared", SYMBOL, "--assign", "near=0.01")
    assert r.exit_code == 2
    assert r.output.strip() == ("error: the long leg has no difference to assign (the venue's position equals the "
                                "strategies' sum)")


def test_help_has_an_example():
    r = CliRunner().invoke(cli, ["reconcile", "--help"])
    assert r.exit_code == 0 and "Example:" in r.output and "--assign NAME=QTY" in r.output
