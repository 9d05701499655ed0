"""The account keys the ccxt adapter reads (endpoint, sandbox) and max_slippage_pct."""

from __future__ import annotations

from decimal import Decimal

from gridctl.config import load
from tests.test_config_errors import BASE, LIVE, LIVE_ENV, problems


def write(tmp_path, text):
    p = tmp_path / "strategies.yaml"
    p.write_text(text)
    return p


def live_with(extra: str) -> str:
    return LIVE.replace("    secret: ${GX_TEST_SECRET}\n", "    secret: ${GX_TEST_SECRET}\n" + extra)


def test_endpoint_and_sandbox_are_read_on_a_live_account(tmp_path):
    cfg = load(write(tmp_path, live_with("    endpoint: http://127.0.0.1:18080/\n    sandbox: true\n")), LIVE_ENV)
    acc = cfg.accounts["main"]
    assert acc.endpoint == "http://127.0.0.1:18080" and acc.sandbox is True
    assert cfg.strategies["sol"].max_slippage_pct == Decimal("0.5")  # the default


def test_an_endpoint_with_a_path_or_another_scheme_is_refused(tmp_path):
    for bad in ("ftp://127.0.0.1:1", "http://127.0.0.1:8080/fapi", "127.0.0.1:8080"):
        got = problems(tmp_path, live_with(f"    endpoint: {bad}\n"), LIVE_ENV)
        assert got == [f"accounts.main.endpoint (line 7): must be http://HOST:PORT or https://HOST:PORT "
                       f"(no path), got '{bad}'"], got


def test_endpoint_on_a_paper_account_is_refused(tmp_path):
    text = BASE.replace('    feed: {replay: "builtin:SOLUSDT_1m"}\n',
                        '    feed: {replay: "builtin:SOLUSDT_1m"}\n    endpoint: http://127.0.0.1:1\n')
    assert problems(tmp_path, text) == [
        "accounts.paper.endpoint (line 7): applies to exchange accounts only (a paper account is served by gridctl)"]


def test_max_slippage_pct_is_read_and_bounded(tmp_path):
    text = LIVE.replace("    grids: 10\n", "    grids: 10\n    max_slippage_pct: 0.25\n")
    assert load(write(tmp_path, text), LIVE_ENV).strategies["sol"].max_slippage_pct == Decimal("0.25")
    bad = LIVE.replace("    grids: 10\n", "    grids: 10\n    max_slippage_pct: 150\n")
    got = problems(tmp_path, bad, LIVE_ENV)
    assert any(p.startswith("strategies.sol.max_slippage_pct") and "must be below 100, got 150" in p for p in got), got


def test_two_strategies_on_one_symbol_of_an_exchange_account_need_hedge_mode(tmp_path):
    two = LIVE + """  sol2:
    account: main
    symbol: SOL/USDT:USDT
    mode: long
    lower: 160
    upper: 180
    grids: 10
    investment: 400
"""
    got = problems(tmp_path, two, LIVE_ENV)
    assert [p for p in got if p.startswith("strategies.sol2")] == [
        "strategies.sol2 (line 16): it and strategy 'sol' both trade SOL/USDT:USDT on account 'main' in one-way "
        "mode: the venue nets their positions into one, and a reduceOnly exit of one can be rejected because of the "
        "other's position; use position_mode: hedge (any number of strategies per leg, each with its own virtual "
        "position) or separate accounts"], got
    hedged = two.replace("    secret: ${GX_TEST_SECRET}\n", "    secret: ${GX_TEST_SECRET}\n    position_mode: hedge\n")
    hedged = hedged.replace("    mode: neutral\n", "    mode: short\n", 1)  # one strategy per leg
    assert set(load(write(tmp_path, hedged), LIVE_ENV).strategies) == {"sol", "sol2"}
