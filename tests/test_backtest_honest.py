"""Honest backtests: the account's feed by default, data that does not fit, rejects, the
stop, holding as a benchmark, and yields only over enough time."""

from __future__ import annotations

import json
from decimal import Decimal
from types import SimpleNamespace

import numpy as np
from click.testing import CliRunner

import gridctl.cli.commands  # noqa: F401  (registers the commands)
from gridctl.backtest.feed import name_warnings, symbol_base
from gridctl.backtest.summary import annualised, hold_pnl, rejects_by_reason
from gridctl.cli import cli
from gridctl.core.engine import Event
from gridctl.core.grid import Mode

D = Decimal
HEAD = """\
version: 1
accounts:
  paper:
    exchange: paper
    like: binanceusdm
    feed: {replay: "builtin:SOLUSDT_1m"}
  syn:
    exchange: paper
    like: binanceusdm
    feed: {synthetic: {seed: 3, price: 160}}
  live:
    exchange: paper
    like: binanceusdm
    feed: {live: binanceusdm}
strategies:
"""
STRATEGY = """\
  {name}:
    account: {account}
    symbol: {symbol}
    mode: {mode}
    spacing: arithmetic
    lower: {lower}
    upper: {upper}
    grids: {grids}
    investment: {investment}
    leverage: {leverage}
"""


def config(tmp_path, **strategies) -> str:
    text = HEAD + "".join(STRATEGY.format(name=n, **kw) for n, kw in strategies.items())
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return str(p)


def sol(mode="neutral", account="paper", lower=150, upper=170, grids=10, investment=500, leverage=1):
    return dict(account=account, symbol="SOL/USDT:USDT", mode=mode, lower=lower, upper=upper, grids=grids,
                investment=investment, leverage=leverage)


def run(cfg: str, *args: str):
    r = CliRunner().invoke(cli, ["backtest", "-c", cfg, *args])
    assert "Traceback" not in r.output, r.output
    return r


def test_the_accounts_replay_feed_is_the_default_data(tmp_path):
    cfg = config(tmp_path, s=sol())
    default = run(cfg, "s", "--json")
    explicit = run(cfg, "s", "--data", "builtin:SOLUSDT_1m", "--json")
    assert default.exit_code == 0 and json.loads(default.stdout) == json.loads(explicit.stdout)
    assert json.loads(default.stdout)["candles"] == 4320


def test_a_synthetic_feed_backtests_the_paper_exchanges_first_candles(tmp_path):
    from gridctl.config.strategy import rules_for
    from gridctl.exchange.paper import CandleFeed
    from gridctl.backtest.feed import account_feed

    cfg = config(tmp_path, s=sol(account="syn"))
    a = run(cfg, "s", "--json")
    assert a.exit_code == 0, a.output
    fig = json.loads(a.stdout)
    assert fig["candles"] == 10_000 and fig["start"] == "1970-01-01 00:00"
    assert json.loads(run(cfg, "s", "--json").stdout) == fig  # deterministic
    # the very candles the paper exchange's feed plays first
    from pathlib import Path
    from gridctl.config.validate import load
    account = load(Path(cfg)).accounts["syn"]
    rules = rules_for(account, "SOL/USDT:USDT")
    paper = CandleFeed(account, rules)
    ours = account_feed(account, rules).synthetic
    assert np.array_equal(paper.o, ours.open) and np.array_equal(paper.c, ours.close)
    assert np.array_equal(paper.h, ours.high) and np.array_equal(paper.l, ours.low)


def test_a_live_feed_says_to_give_data(tmp_path):
    cfg = config(tmp_path, s=sol(account="live"))
    r = run(cfg, "s")
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr == ("error: s: account live has a live feed (binanceusdm), which has no history to replay; "
                        "give --data CANDLES.csv (or builtin:NAME)\n")
    assert run(cfg, "s", "--data", "builtin:SOLUSDT_1m", "--json").exit_code == 0


def test_an_xrp_grid_on_sol_candles_is_warned_about(tmp_path):
    cfg = config(tmp_path, x=dict(sol(lower="0.5", upper="0.6", grids=5, investment=100),
                                  symbol="XRP/USDT:USDT"))
    r = run(cfg, "x")
    assert r.exit_code == 0
    assert r.stderr.splitlines() == [
        "warning: data SOLUSDT_1m.csv looks like SOL candles, but XRP/USDT:USDT trades XRP; check --data "
        "(or the account's feed)",
        "warning: the data's prices (140.0000 to 172.9100 in SOLUSDT_1m.csv) stay above the grid's range "
        "(0.5000 to 0.6000): no grid order can fill; the price level is far from the range: is this data of "
        "another market?",
    ]
    fig = json.loads(run(cfg, "x", "--json").stdout)
    assert fig["fills"] == 0 and len(fig["warnings"]) == 2


def test_a_range_just_missed_is_warned_without_the_other_market_hint(tmp_path):
    cfg = config(tmp_path, s=sol(lower=175, upper=185))
    r = run(cfg, "s")
    assert r.stderr == ("warning: the data's prices (140.00 to 172.91 in SOLUSDT_1m.csv) stay below the grid's "
                        "range (175.00 to 185.00): no grid order can fill\n")


def test_names_of_symbols_in_file_names():
    assert symbol_base("XRP/USDT:USDT") == "XRP" and symbol_base("1000PEPE/USDT:USDT") == "1000PEPE"
    assert name_warnings("SOLUSDT_1m.csv", "SOL/USDT:USDT") == []
    assert name_warnings("sol-usdt-5m.csv", "SOL/USDT:USDT") == []
    assert name_warnings("BTC-PERP_1m.csv", "BTC/USDC:USDC") == []
    assert name_warnings("candles.csv", "XRP/USDT:USDT") == []  # names no coin: nothing to say
    assert name_warnings("ETHUSDT_1h.csv", "XRP/USDT:USDT")[0].startswith("data ETHUSDT_1h.csv looks like ETH")


def write_candles(tmp_path, rows):
    p = tmp_path / "SOLUSDT_test.csv"
    p.write_text("timestamp_ms,open,high,low,close,volume\n"
                 + "".join(f"{i * 3_600_000},{o},{h},{lo},{c},1\n" for i, (o, h, lo, c) in enumerate(rows)))
    return str(p)


def test_hold_pnl_by_hand(tmp_path):
    # 100 → 110 over 3 hours; 100 USDT × 2 = 200 USDT notional = 2 SOL at 100: +20 long, -20 short, 0 neutral
    assert hold_pnl(Mode.LONG, D(100), 2, D(100), D(110)) == D(20)
    assert hold_pnl(Mode.SHORT, D(100), 2, D(100), D(110)) == D(-20)
    assert hold_pnl(Mode.NEUTRAL, D(100), 2, D(100), D(110)) == D(0)
    data = write_candles(tmp_path, [(100, 101, 99, 100), (100, 106, 99, 105), (105, 111, 104, 110)])
    for mode, pnl, pct in (("long", "20.0000", "20.00"), ("short", "-20.0000", "-20.00"),
                           ("neutral", "0.0000", "0.00")):
        cfg = config(tmp_path, s=sol(mode=mode, lower=95, upper=115, grids=4, investment=100, leverage=2))
        fig = json.loads(run(cfg, "s", "--data", data, "--json").stdout)
        assert (fig["hold_pnl"], fig["hold_roi_pct"]) == (pnl, pct), mode
        # three hours are too short to annualise anything
        assert fig["grid_apr_pct"] is None and fig["total_apr_pct"] is None


def test_yields_are_annualised_over_a_week_or_more_only():
    assert annualised(D(10), D(1000), D("6.99")) is None
    assert annualised(D(10), D(1000), D(7)) == D("52.14")  # 1 % in 7 days × 365 / 7
    assert annualised(D(-10), D(1000), D(365)) == D("-1.00")


def test_rejects_are_counted_by_reason_by_hand():
    ev = [Event("warn", "order g1-0-e-1 rejected: insufficient_margin", None, {"ts": 1}),
          Event("warn", "level 0 entry rejected: insufficient_margin; retried when ...", 0),
          Event("warn", "order g1-1-e-1 rejected: post_only_would_cross", None, {"ts": 2}),
          Event("warn", "order g1-0-e-2 rejected: insufficient_margin", None, {"ts": 3}),
          Event("info", "order x rejected: not_a_warning"), SimpleNamespace(kind="warn", message="other")]
    assert rejects_by_reason(ev) == {"insufficient_margin": 2, "post_only_would_cross": 1}


def test_rejects_are_shown_by_reason(tmp_path):
    cfg = config(tmp_path, s=sol(investment=500, leverage=1))
    r = run(cfg, "s", "--balance", "20", "--to", "2024-08-01T06:00")
    assert r.exit_code == 0
    fig = json.loads(run(cfg, "s", "--balance", "20", "--to", "2024-08-01T06:00", "--json").stdout)
    assert fig["rejects"] > 0 and set(fig["rejects_by_reason"]) == {"insufficient_margin"}
    line = next(ln for ln in r.stdout.splitlines() if ln.strip().startswith("rejected orders"))
    assert line.split("  ")[-1].strip() == f"{fig['rejects']} (insufficient_margin {fig['rejects']})"


def test_the_stop_shows_its_time_and_price(tmp_path):
    example = str(__import__("pathlib").Path(__file__).resolve().parent.parent / "strategies.yaml.example")
    r = run(example, "sol-neutral", "--json")
    fig = json.loads(r.stdout)
    assert fig["stop_reason"] == "stop_loss"
    assert (fig["stop_time"], fig["stop_price"]) == ("2024-08-03 15:45", "147.25")
    text = run(example, "sol-neutral").stdout
    assert "  stop time               2024-08-03 15:45\n" in text and "  stop price              147.25" in text
    # three days of data: no APR next to the return
    assert "  grid APR %              -\n" in text and "  total APR %             -\n" in text


def test_html_without_plotly_says_how_to_install_it(tmp_path, monkeypatch):
    import gridctl.charts as charts

    def missing() -> None:
        raise charts.ChartsUnavailable(charts.INSTALL_HINT)

    monkeypatch.setattr(charts, "require_plotly", missing)
    cfg = config(tmp_path, s=sol())
    r = run(cfg, "s", "--html", str(tmp_path / "c.html"))
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr == "error: --html needs plotly: pip install 'gridctl[charts]' (or pip install plotly)\n"
