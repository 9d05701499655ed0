"""Two strategies on one account and symbol share the venue's position (one-way: one net
position; hedge: one per leg), so `validate` refuses what would mix them, and says why."""

from __future__ import annotations

from test_config_errors import problems, validate

TWO = """\
version: 1
accounts:
  paper:
    exchange: paper
    like: binanceusdm
    position_mode: {mode}
    feed: {{replay: "builtin:SOLUSDT_1m"}}
strategies:
  first:
    account: paper
    symbol: SOL/USDT:USDT
    mode: {first}
    lower: 160
    upper: 180
    grids: 10
    investment: 500
  second:
    account: paper
    symbol: {symbol}
    mode: {second}
    lower: 160
    upper: 180
    grids: 10
    investment: 500
"""


def test_one_way_refuses_two_strategies_on_one_symbol(tmp_path):
    text = TWO.format(mode="one-way", first="long", second="short", symbol="SOL/USDT:USDT")
    assert problems(tmp_path, text) == [
        "strategies.second (line 17): it and strategy 'first' both trade SOL/USDT:USDT on account 'paper' in "
        "one-way mode: the venue nets their positions into one, and a reduceOnly exit of one can be rejected "
        "because of the other's position; use separate accounts, or position_mode: hedge with one long and one "
        "short strategy"]


def test_hedge_refuses_two_strategies_on_one_leg(tmp_path):
    text = TWO.format(mode="hedge", first="neutral", second="long", symbol="SOL/USDT:USDT")
    assert problems(tmp_path, text) == [
        "strategies.second (line 17): it and strategy 'first' both trade the long leg of SOL/USDT:USDT on "
        "account 'paper': the venue keeps one position per leg, so theirs would mix; give each leg one strategy "
        "(a long and a short one), or use separate accounts"]


def test_hedge_long_and_short_on_one_symbol_and_one_way_on_two_symbols_are_fine(tmp_path):
    hedge = TWO.format(mode="hedge", first="long", second="short", symbol="SOL/USDT:USDT")
    result, _ = validate(tmp_path, hedge)
    assert result.exit_code == 0, result.output
    two_symbols = TWO.format(mode="one-way", first="long", second="long", symbol="ETH/USDT:USDT")
    result, _ = validate(tmp_path, two_symbols)
    assert "both trade" not in result.output
