"""Pre-trade checks in `gridctl validate` and `gridctl plan`: exact messages, hand-checked numbers.

The grid of BASE: long 160..180, 10 cells of 2.00, entries 160..178 (sum 1690), start 171.70
(the first open of builtin:SOLUSDT_1m), SOL/USDT:USDT on binanceusdm (tick and step 0.01,
maker 0.02 %, taker 0.05 %, maintenance 0.5 %).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import gridctl.cli.commands  # noqa: F401  (registers the commands)
from gridctl.cli import cli

EXAMPLE = Path(__file__).resolve().parents[1] / "strategies.yaml.example"
BASE = """\
version: 1
accounts:
  paper:
    exchange: paper
    like: binanceusdm
    feed: {replay: "builtin:SOLUSDT_1m"}
strategies:
  sol:
    account: paper
    symbol: SOL/USDT:USDT
    mode: long
    spacing: arithmetic
    lower: 160
    upper: 180
    grids: 10
    investment: 500
    leverage: 2
"""
LIVE = BASE.replace("""    exchange: paper
    like: binanceusdm
    feed: {replay: "builtin:SOLUSDT_1m"}
""", """    exchange: binanceusdm
    api_key: k
    secret: s
""")
SYNTH_150 = BASE.replace('feed: {replay: "builtin:SOLUSDT_1m"}', "feed: {synthetic: {seed: 1, price: 150}}")


def cfg(base: str = BASE, extra: str = "", **fields: str) -> str:
    for key, value in fields.items():
        base, n = re.subn(rf"^    {key}: .*$", f"    {key}: {value}", base, flags=re.M)
        assert n == 1, key
    return base + extra


def invoke(tmp_path: Path, text: str, *args: str):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    result = CliRunner().invoke(cli, [args[0], "-c", str(path), *args[1:]])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result, str(path)


def refused(tmp_path: Path, text: str, *extra: str) -> list[str]:
    """validate's stderr lines after the summary; asserts exit 2 and nothing on stdout."""
    result, path = invoke(tmp_path, text, "validate", *extra)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert re.fullmatch(rf"{re.escape(path)}: \d+ problem\(s\)", lines[0])
    return [ln.strip() for ln in lines[1:]]


def accepted(tmp_path: Path, text: str, *extra: str) -> list[str]:
    """validate's stdout lines; asserts exit 0."""
    result, _ = invoke(tmp_path, text, "validate", *extra)
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def plan(tmp_path: Path, text: str, *extra: str, name: str = "sol") -> dict:
    result, _ = invoke(tmp_path, text, "plan", name, "--json", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def plan_text(tmp_path: Path, text: str, *extra: str, name: str = "sol") -> str:
    result, _ = invoke(tmp_path, text, "plan", name, *extra)
    assert result.exit_code == 0, result.output
    return result.stdout


# -- 1. margin against the balance ---------------------------------------------------

def test_margin_above_the_balance_is_a_problem(tmp_path):
    # 50000 x 2 over 1690 of entries: 59.17 SOL per level; margin 59.17 * 1690 / 2 = 49998.65
    msg = ("strategies.sol.investment (line 16): the grid needs 49998.65 USDT of margin, more than account "
           "'paper''s balance of 10000 USDT: orders past the balance would be rejected for insufficient "
           "margin; lower investment or raise accounts.paper.balance")
    assert refused(tmp_path, cfg(investment="50000")) == [msg]
    data = plan(tmp_path, cfg(investment="50000"))
    assert data["margin"] == "49998.65" and data["balance"] == "10000" and data["account"] == "paper"
    assert data["warnings"] == [msg.split(": ", 1)[1]]
    assert f"warning: {msg.split(': ', 1)[1]}" in plan_text(tmp_path, cfg(investment="50000"))


def test_little_headroom_is_a_warning(tmp_path):
    # 8500 x 2 / 1690 = 10.05 SOL per level; margin 10.05 * 1690 / 2 = 8492.25, 85 % of 10000
    lines = accepted(tmp_path, cfg(investment="8500"))
    assert lines[1:] == [
        "  warning: strategies.sol.investment (line 16): the grid needs 8492.25 USDT of margin, 85 % of "
        "account 'paper''s balance of 10000 USDT: little is left for fees, funding and losses before orders "
        "are rejected for insufficient margin"]
    assert accepted(tmp_path, cfg(investment="7900"))[1:] == []  # 7892.30: 79 %, no warning


def test_opening_fees_count_against_the_balance(tmp_path):
    # investment 1000 x 2 / 1690 = 1.18 SOL, margin 997.10, under the balance of 997.20; but
    # initial_position buys the levels 172..178 at 171.70: 4 x 1.18 x 171.70 = 4 x 202.606 notional,
    # taker fee 4 x 0.1013 = 0.4052, and 997.5052 is more than the balance
    text = cfg(investment="1000", extra="    initial_position: true\n").replace(
        "    like: binanceusdm\n", "    like: binanceusdm\n    balance: 997.20\n")
    assert refused(tmp_path, text) == [
        "strategies.sol.investment (line 17): the grid needs 997.10 USDT of margin and 0.4052 USDT of "
        "opening fees, more than account 'paper''s balance of 997.20 USDT: orders past the balance would be "
        "rejected for insufficient margin; lower investment or raise accounts.paper.balance"]


def test_live_account_balance_check_skipped_or_refused_by_plan_online(tmp_path):
    note = ("  note: margin 498.55 USDT not checked against account 'paper''s balance: it is on binanceusdm "
            "(--online would ask the venue; live venues are not supported yet in this version)")
    assert accepted(tmp_path, LIVE)[1:] == [note]
    # validate --online asks the venue for its markets (tests/test_markets_online.py, against a local venue)
    result, _ = invoke(tmp_path, LIVE, "plan", "sol", "--online")
    assert result.exit_code == 2
    assert result.stderr == ("error: --online cannot read the balance of account 'paper' (binanceusdm): live "
                             "venues are not supported yet in this version\n")
    data = plan(tmp_path, LIVE)
    assert data["balance"] is None and data["notes"] == [note.strip()[len("note: "):]]
    assert "(account 'paper' balance on binanceusdm: not checked)" in plan_text(tmp_path, LIVE)
    assert accepted(tmp_path, BASE, "--online")[1:] == []  # paper: the balance is in the file


def test_grids_sharing_an_account_that_do_not_fit_together(tmp_path):
    # One hedge account, a long and a short grid on its two legs of SOL (one strategy per leg).
    # long: 6000 x 2 / 1690 = 7.10 SOL per level, margin 7.10 * 1690 / 2 = 5999.50;
    # short: entries 162..180 (sum 1710), 6000 x 2 / 1710 = 7.01 SOL, margin 7.01 * 1710 / 2 = 5993.55:
    # each fits alone, together 11993.05
    second = BASE.split("strategies:\n")[1].replace("  sol:", "  sol2:").replace("mode: long", "mode: short")
    hedge = BASE.replace("    like: binanceusdm\n", "    like: binanceusdm\n    position_mode: hedge\n")
    text = cfg(hedge, investment="6000") + second.replace("investment: 500", "investment: 6000")
    lines = accepted(tmp_path, text)
    assert ("  warning: accounts.paper.balance (line 3): the grids on account 'paper' (sol, sol2) need 11993.05 USDT "
            "of margin together, more than its balance of 10000 USDT: run together, some of their orders "
            "would be rejected for insufficient margin") in lines


# -- 2. liquidation against the stops -----------------------------------------------

def test_liquidation_before_the_stop_warns_with_both_prices(tmp_path):
    # the example's sol-neutral at 20x: 500 x 20 over 1644 of entries = 6.08 SOL per level; 8 buys
    # 155..169 (Q 48.64, cost 7879.68): (7879.68 - 500) / (48.64 * 0.995) = 152.48; stop 155 * 0.95
    text = EXAMPLE.read_text().replace("leverage: 2\n    max_position", "leverage: 20\n    max_position")
    msg = ("estimated liquidation 152.48 if every buy fills comes before the stop-loss 147.25: a falling "
           "price liquidates the grid before the stop can close it; lower the leverage")
    data = plan(tmp_path, text, name="sol-neutral")
    assert data["liquidation_price_down"] == "152.48" and data["stop_loss_below"] == "147.25"
    assert msg in data["warnings"]
    assert f"warning: {msg}" in plan_text(tmp_path, text, name="sol-neutral")
    line = text.splitlines().index("    leverage: 20") + 1
    assert f"  warning: strategies.sol-neutral.leverage (line {line}): {msg}" in accepted(tmp_path, text)
    assert not any("liquidat" in w for w in plan(tmp_path, EXAMPLE.read_text(), name="sol-neutral")["warnings"])


def test_short_liquidation_before_the_stop(tmp_path):
    # short 160..180 at 20x: 500 x 20 / (162 + ... + 180 = 1710) = 5.84 SOL; Q 58.4, cost 9986.40
    # (9986.40 + 500) / (58.4 * 1.005) = 178.67, below the stop 180 * 1.01 = 181.80
    text = cfg(mode="short", leverage="20", extra="    risk:\n      stop_loss_pct: 1\n")
    data = plan(tmp_path, text)
    assert data["liquidation_price_up"] == "178.67" and data["stop_loss_above"] == "181.80"
    assert ("estimated liquidation 178.67 if every sell fills comes before the stop-loss 181.80: a rising "
            "price liquidates the grid before the stop can close it; lower the leverage") in data["warnings"]


# -- 3. start price and trigger against the stops ---------------------------------------

def test_start_already_past_the_stop(tmp_path):
    text = cfg(SYNTH_150, extra="    risk:\n      stop_loss_price: 155\n")
    assert refused(tmp_path, text) == [
        "strategies.sol.risk (line 18): the start price 150.00 is already at or below the stop-loss 155.00: "
        "the grid would stop at once",
        "warning: strategies.sol (line 8): the start price is outside the range: part of the grid cannot work "
        "until price returns"]
    data = plan(tmp_path, cfg(extra="    risk:\n      stop_loss_price: 155\n"), "--price", "150")
    assert "the start price 150.00 is already at or below the stop-loss 155.00: the grid would stop at once" \
        in data["warnings"]


def test_start_already_past_the_take_profit(tmp_path):
    data = plan(tmp_path, cfg(extra="    risk:\n      take_profit_price: 185\n"), "--price", "190")
    assert ("the start price 190.00 is already at or above the take-profit 185.00: the grid would stop at once"
            in data["warnings"])


def test_trigger_at_the_start_price_and_past_the_stop(tmp_path):
    assert accepted(tmp_path, cfg(extra="    trigger_price: 171.70\n"))[1:] == [
        "  warning: strategies.sol.trigger_price (line 18): trigger_price 171.70 is the start price: it is "
        "already reached and the grid starts at once, as without a trigger"]
    text = cfg(extra="    trigger_price: 150\n    risk:\n      stop_loss_price: 155\n")
    assert refused(tmp_path, text) == [
        "strategies.sol.trigger_price (line 18): trigger_price 150.00 is at or below the stop-loss 155.00: "
        "the grid would stop as soon as the trigger starts it"]
    out = plan_text(tmp_path, cfg(extra="    trigger_price: 165\n"))
    assert "trigger: waits until the price falls to 165.00 (from 171.70)" in out


# -- 4. meaningless combinations ------------------------------------------------------

def test_neutral_with_initial_position_is_refused(tmp_path):
    assert refused(tmp_path, cfg(mode="neutral", extra="    initial_position: true\n")) == [
        "strategies.sol.initial_position (line 18): has no effect on a neutral grid: it holds no position at "
        "start (buys below the start price, sells above); remove it, or use mode long or short"]


@pytest.mark.parametrize("key,value", [("stop_loss_pct", "5"), ("stop_loss_price", "150"),
                                       ("take_profit_pct", "5"), ("take_profit_price", "190"),
                                       ("max_loss", "50"), ("take_profit", "50"), ("max_level_loss", "5"),
                                       ("on_stop", "keep"), ("margin_ratio", "{warn: 0.5}")])
def test_risk_key_at_the_strategy_level_points_to_risk(tmp_path, key, value):
    assert refused(tmp_path, cfg(extra=f"    {key}: {value}\n")) == [
        f"strategies.sol.{key} (line 18): unknown key '{key}' (it belongs under risk:)"]


def test_strategy_key_under_risk_points_back(tmp_path):
    assert refused(tmp_path, cfg(extra="    risk:\n      max_position: 5\n")) == [
        "strategies.sol.risk.max_position (line 19): unknown key 'max_position' (it belongs under "
        "strategies.sol, not risk:)"]


# -- 5. no liquidation is "none" / null ------------------------------------------------

def test_no_liquidation_is_none_not_zero(tmp_path):
    # 1x: the investment covers every buy, (cost - 500) / ... <= 0: no liquidation
    text = cfg(leverage="1")
    data = plan(tmp_path, text)
    assert data["liquidation_price"] is None and data["liquidation_price_down"] is None
    out = plan_text(tmp_path, text)
    assert "est. liquidation if every buy fills: none" in out and "0.00\n" not in out
    assert "every sell fills" not in out  # a long grid has no sells to liquidate


# -- 6. what starting costs, the stops, fees, profit per grid ---------------------------

def test_plan_shows_opening_orders_capped_by_max_position(tmp_path):
    # 0.59 SOL per level; the levels held at 171.70 are 172, 174, 176, 178, nearest first; max_position
    # 1.2 fits two (1.18): each 0.59 x 171.70 = 101.3030 notional, taker fee 0.05 % = 0.0507
    text = cfg(extra="    initial_position: true\n    max_position: 1.2\n"
                     "    risk:\n      stop_loss_pct: 5\n      take_profit_price: 185\n      max_loss: 40\n")
    data = plan(tmp_path, text)
    assert data["initial_position"] == {
        "price": "171.70",
        "orders": [{"level": 6, "side": "buy", "qty": "0.59", "level_price": "172.00", "notional": "101.3030",
                    "taker_fee": "0.0507"},
                   {"level": 7, "side": "buy", "qty": "0.59", "level_price": "174.00", "notional": "101.3030",
                    "taker_fee": "0.0507"}],
        "qty": "1.18", "notional": "202.6060", "taker_fee": "0.1014", "left_out_by_max_position": 2}
    assert data["orders_at_start"] == 8  # six resting buys 160..170 and the exits of the two bought
    assert (data["stop_loss_below"], data["stop_loss_above"]) == ("152.00", None)  # 160 * 0.95
    assert (data["take_profit_below"], data["take_profit_above"]) == (None, "185.00")
    assert (data["max_loss"], data["take_profit"], data["max_level_loss"]) == ("40", None, None)
    assert (data["maker_fee"], data["taker_fee"]) == ("0.0002", "0.0005")
    # per grid: 2/160 - 0.0002 * 322/160 = 1.20975 %; 2/178 - 0.0002 * 358/178 = 1.0834 %
    assert data["profit_per_grid_pct"] == {"min": "1.08", "max": "1.21"}
    out = plan_text(tmp_path, text)
    for line in ["profit per grid: 1.08 %–1.21 % after fees",
                 "fees used: maker 0.02 %, taker 0.05 %",
                 "initial position: 2 market buy(s) at about 171.70 (the start price): 1.18 SOL, notional "
                 "202.6060 USDT, taker fee 0.1014 USDT",
                 "  level 6: buy 0.59 SOL at market (level price 172.00), notional 101.3030 USDT, taker fee "
                 "0.0507 USDT",
                 "  2 more level(s) left out: they would exceed max_position 1.2",
                 "margin needed: 498.55 USDT (account 'paper' balance 10000 USDT)",
                 "stop-loss: at or below 152.00", "take-profit: at or above 185.00",
                 "money stops: max_loss 40 USDT"]:
        assert line in out.splitlines(), line


def test_opening_orders_go_at_the_trigger_price(tmp_path):
    data = plan(tmp_path, cfg(extra="    initial_position: true\n    trigger_price: 175\n"))
    op = data["initial_position"]
    assert op["price"] == "175.00" and [o["level_price"] for o in op["orders"]] == ["176.00", "178.00"]


def test_without_initial_position_there_are_no_opening_orders(tmp_path):
    data = plan(tmp_path, BASE)
    assert data["initial_position"] is None and data["trigger_price"] is None
    assert "initial position" not in plan_text(tmp_path, BASE)
