"""Two strategies on one account and symbol: one-way mode nets them into one position (a
reduceOnly exit of one can be rejected by the other's), so `validate` refuses it and says why;
hedge mode takes any number per leg (virtual positions, reconciled by `gridctl reconcile`)."""

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
        "because of the other's position; use position_mode: hedge (any number of strategies per leg, each "
        "with its own virtual position) or separate accounts"]


def test_one_way_names_every_extra_strategy_on_the_symbol(tmp_path):
    text = TWO.format(mode="one-way", first="long", second="long", symbol="SOL/USDT:USDT")
    text += text[text.index("  second:"):].replace("second:", "third:")
    found = problems(tmp_path, text)
    assert [p.split(":")[0] for p in found] == ["strategies.second (line 17)", "strategies.third (line 25)"]
    assert all("strategy 'first' both trade" in p for p in found)


def test_hedge_takes_several_strategies_on_one_leg(tmp_path):
    for first, second in (("neutral", "long"), ("long", "long"), ("short", "short"), ("long", "short")):
        text = TWO.format(mode="hedge", first=first, second=second, symbol="SOL/USDT:USDT")
        result, _ = validate(tmp_path, text)
        assert result.exit_code == 0, (first, second, result.output)
        assert "both trade" not in result.output


def test_one_way_on_two_symbols_is_fine(tmp_path):
    two_symbols = TWO.format(mode="one-way", first="long", second="long", symbol="ETH/USDT:USDT")
    result, _ = validate(tmp_path, two_symbols)
    assert "both trade" not in result.output
