"""`gridctl markets` and `gridctl validate --online` against a local Binance USD-M emulator.

ccxt's own binanceusdm class loads the markets; the account's `endpoint:` points it at
tests/venue_emulator.py on 127.0.0.1, which serves the real exchangeInfo sample (2022:
BTCUSDT and ETHUSDT with min notional 10, where the bundled snapshot says 5). Nothing
here contacts a real exchange.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

import gridctl.cli.commands  # noqa: F401  (registers the commands)
from gridctl.cli import cli
from gridctl.exchange import markets_online
from gridctl.store.db import open_database
from gridctl.store.models import MarketCache

from shared_data import require
from venue_emulator import EXCHANGE_INFO, VenueEmulator

CONFIG = """\
version: 1
accounts:
  live:
    exchange: binanceusdm
    api_key: k
    secret: s
    endpoint: {endpoint}
  paper:
    exchange: paper
    feed: {{synthetic: {{price: 170}}}}
strategies:
  btc:
    account: live
    symbol: BTC/USDT:USDT
    mode: neutral
    lower: 7000
    upper: 8000
    grids: 10
    amount: 0.001
"""
FETCHED = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"


@pytest.fixture(autouse=True)
def _needs_the_exchange_info_sample():
    require(EXCHANGE_INFO)


@pytest.fixture
def venue():
    with VenueEmulator() as v:
        yield v


def exchange_info(tmp_path: Path, change) -> Path:
    """The real exchangeInfo sample with `change(symbols by name, the list)` applied."""
    data = json.loads(EXCHANGE_INFO.read_text())
    change({s["symbol"]: s for s in data["symbols"]}, data["symbols"])
    path = tmp_path / "exchange_info.json"
    path.write_text(json.dumps(data))
    return path


def set_filter(symbol: dict, kind: str, **values: str) -> None:
    next(f for f in symbol["filters"] if f["filterType"] == kind).update(values)


def write_config(tmp_path: Path, endpoint: str, text: str = CONFIG) -> Path:
    path = tmp_path / "strategies.yaml"
    path.write_text(text.format(endpoint=endpoint))
    return path


def run(tmp_path: Path, *args: str):
    result = CliRunner().invoke(cli, ["--state-dir", str(tmp_path / "state"), *args,
                                      "-c", str(tmp_path / "strategies.yaml")])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def cells(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def market_requests(venue: VenueEmulator) -> int:
    return sum(1 for r in venue.requests if r.startswith("/fapi/v1/exchangeInfo"))


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---- gridctl markets ----------------------------------------------------------------------
def test_markets_lists_the_live_swap_markets_and_marks_what_differs(tmp_path, venue):
    write_config(tmp_path, venue.base)
    result = run(tmp_path, "markets", "live")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert re.fullmatch(rf"account 'live': binanceusdm at {venue.base}, 2 swap markets, live \(fetched {FETCHED}\)",
                        lines[0]), lines[0]
    assert cells(lines[1]) == ["symbol", "id", "tick", "step", "min qty", "min notional", "max leverage",
                               "maker", "taker"]
    # the quarterly BTCUSDT_220325 is not a swap: left out
    assert [cells(ln) for ln in lines[3:5]] == [
        ["BTC/USDT:USDT", "BTCUSDT", "0.1", "0.001", "0.001", "10 USDT*", "150x~", "0.02%", "0.05%"],
        ["ETH/USDT:USDT", "ETHUSDT", "0.01", "0.001", "0.001", "10 USDT*", "150x~", "0.02%", "0.05%"]]
    assert lines[5:] == [
        "* differs from the bundled snapshot (captured 2026-09-29); the live rule applies "
        "(gridctl markets live SYMBOL shows both)",
        "~ not published by the venue: from the bundled snapshot"]
    assert venue.requests == ["/fapi/v1/exchangeInfo"]  # one request: no currencies, no time, no keys


def test_markets_symbol_shows_the_market_and_its_differences(tmp_path, venue):
    write_config(tmp_path, venue.base)
    result = run(tmp_path, "markets", "live", "BTCUSDT")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert re.fullmatch(rf"BTC/USDT:USDT \(BTCUSDT\) on account 'live': binanceusdm at {venue.base}, "
                        rf"live \(fetched {FETCHED}\)", lines[0]), lines[0]
    assert lines[1:] == [
        "  tick                     0.1 USDT",
        "  step                     0.001 BTC",
        "  min qty                  0.001 BTC",
        "  min notional             10 USDT",
        "  contract size            1",
        "  max leverage             150x (not published by the venue: from the bundled snapshot)",
        "  maintenance margin rate  0.004 (not published by the venue: from the bundled snapshot)",
        "  maker fee                0.02%",
        "  taker fee                0.05%",
        "  (fees: the venue's standard rates as ccxt reports them; your account's may be lower)",
        "differs from the bundled snapshot (captured 2026-09-29); the live rules apply:",
        "  min notional: bundled 5, live 10"]


def test_markets_json_lists_rules_origins_and_differences(tmp_path, venue):
    write_config(tmp_path, venue.base)
    result = run(tmp_path, "markets", "live", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {k: data[k] for k in ("account", "exchange", "endpoint", "sandbox", "source", "captured")} == {
        "account": "live", "exchange": "binanceusdm", "endpoint": venue.base, "sandbox": False,
        "source": "live", "captured": "2026-09-29"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", data["fetched"])
    btc = data["markets"][0]
    assert btc == {
        "symbol": "BTC/USDT:USDT", "id": "BTCUSDT", "base": "BTC", "quote": "USDT", "tick": "0.1",
        "step": "0.001", "min_qty": "0.001", "min_notional": "10", "contract_size": "1", "max_leverage": 150,
        "maintenance_margin_rate": "0.004", "maker_fee": "0.0002", "taker_fee": "0.0005",
        "origin": {"tick": "venue", "step": "venue", "min_qty": "venue", "min_notional": "venue",
                   "contract_size": "venue", "max_leverage": "bundled", "maintenance_margin_rate": "bundled",
                   "maker_fee": "venue", "taker_fee": "venue"},
        "differences": [{"field": "min_notional", "bundled": "5", "live": "10"}]}
    one = json.loads(run(tmp_path, "markets", "live", "ETH/USDT:USDT", "--json").stdout)
    assert one["market"]["symbol"] == "ETH/USDT:USDT" and one["source"] == "cache" and "markets" not in one


def test_the_cache_answers_for_24_hours_then_the_venue_again(tmp_path, venue):
    write_config(tmp_path, venue.base)
    assert run(tmp_path, "markets", "live").exit_code == 0
    second = run(tmp_path, "markets", "live", "BTC/USDT:USDT")
    assert market_requests(venue) == 1  # the second command asked nobody
    assert re.search(rf", cached \(fetched {FETCHED}; --refresh fetches now\)$", second.stdout.splitlines()[0])
    assert "  min notional             10 USDT" in second.stdout.splitlines()  # the live rules, from the cache
    db = open_database(tmp_path / "state")
    rows = list(MarketCache.select().order_by(MarketCache.symbol))
    assert [(r.venue, r.endpoint, r.symbol) for r in rows] == [
        ("binanceusdm", venue.base, "BTC/USDT:USDT"), ("binanceusdm", venue.base, "ETH/USDT:USDT")]
    # 23 h 59 min later: still cached
    MarketCache.update(fetched_ts=MarketCache.fetched_ts - (24 * 3600 - 60) * 1000).execute()
    assert run(tmp_path, "markets", "live").exit_code == 0 and market_requests(venue) == 1
    # 24 h: asked again, and the cache holds the new fetch
    MarketCache.update(fetched_ts=MarketCache.fetched_ts - 60 * 1000).execute()
    old = MarketCache.get().fetched_ts
    third = run(tmp_path, "markets", "live")
    assert market_requests(venue) == 2 and ", live (fetched" in third.stdout.splitlines()[0]
    assert MarketCache.get().fetched_ts > old
    db.close()
    # --refresh asks at once
    assert run(tmp_path, "markets", "live", "--refresh").exit_code == 0 and market_requests(venue) == 3


def test_a_changed_venue_shows_each_difference_and_a_market_gridctl_does_not_bundle(tmp_path):
    def change(by_name, symbols):
        btc = by_name["BTCUSDT"]
        set_filter(btc, "PRICE_FILTER", tickSize="0.50")
        set_filter(btc, "LOT_SIZE", stepSize="0.010", minQty="0.020")
        set_filter(btc, "MIN_NOTIONAL", notional="100")
        doge = json.loads(json.dumps(by_name["ETHUSDT"]))
        doge.update(symbol="DOGEUSDT", pair="DOGEUSDT", baseAsset="DOGE")
        set_filter(doge, "PRICE_FILTER", tickSize="0.000010")
        set_filter(doge, "LOT_SIZE", stepSize="1", minQty="1")
        set_filter(doge, "MIN_NOTIONAL", notional="5")
        symbols.append(doge)

    with VenueEmulator(exchange_info(tmp_path, change)) as venue:
        write_config(tmp_path, venue.base)
        listing = run(tmp_path, "markets", "live").stdout.splitlines()
        btc = run(tmp_path, "markets", "live", "BTCUSDT").stdout.splitlines()
        doge = run(tmp_path, "markets", "live", "DOGE/USDT:USDT").stdout.splitlines()
    rows = {cells(ln)[0]: cells(ln) for ln in listing[3:6]}
    assert rows["BTC/USDT:USDT"] == ["BTC/USDT:USDT", "BTCUSDT", "0.5*", "0.01*", "0.02*", "100 USDT*", "150x~",
                                     "0.02%", "0.05%"]
    assert rows["DOGE/USDT:USDT"] == ["DOGE/USDT:USDT", "DOGEUSDT", "0.00001", "1", "1", "5 USDT", "-",
                                      "0.02%", "0.05%"]
    assert btc[-5:] == ["differs from the bundled snapshot (captured 2026-09-29); the live rules apply:",
                        "  tick: bundled 0.1, live 0.5", "  step: bundled 0.001, live 0.01",
                        "  min qty: bundled 0.001, live 0.02", "  min notional: bundled 5, live 100"]
    assert doge[6:8] == ["  max leverage             unknown (not published by the venue: gridctl's default)",
                         "  maintenance margin rate  0.005 (not published by the venue: gridctl's default)"]
    assert doge[-1] == "no bundled snapshot of this market: the live rules are all gridctl knows"


def test_a_paper_account_answers_from_its_bundled_snapshot(tmp_path, venue):
    write_config(tmp_path, venue.base)
    listing = run(tmp_path, "markets", "paper")
    assert listing.exit_code == 0
    lines = listing.stdout.splitlines()
    assert lines[0] == "account 'paper': paper, like binanceusdm, 7 swap markets, bundled snapshot (captured 2026-09-29)"
    assert cells(lines[5]) == ["SOL/USDT:USDT", "SOLUSDT", "0.01", "0.01", "0.01", "5 USDT", "100x", "0.02%", "0.05%"]
    assert "*" not in listing.stdout and "~" not in listing.stdout
    data = json.loads(run(tmp_path, "markets", "paper", "SOLUSDT", "--json").stdout)
    assert data["source"] == "bundled" and data["fetched"] is None and data["market"]["differences"] == []
    assert venue.requests == []


def test_unknown_account_and_symbol_are_usage_errors(tmp_path, venue):
    write_config(tmp_path, venue.base)
    bad = run(tmp_path, "markets", "lvie")
    assert (bad.exit_code, bad.stderr) == (2, "error: no account 'lvie' in " + str(tmp_path / "strategies.yaml")
                                           + " (did you mean 'live'?); accounts: live, paper\n")
    bad = run(tmp_path, "markets", "live", "BTC/USDT:USD")
    assert (bad.exit_code, bad.stderr) == (
        2, f"error: no market 'BTC/USDT:USD' on account 'live' (binanceusdm at {venue.base}) "
           "(did you mean 'BTC/USDT:USDT'?); gridctl markets live lists them\n")


def test_an_unreachable_endpoint_is_a_clear_error(tmp_path):
    endpoint = f"http://127.0.0.1:{closed_port()}"
    write_config(tmp_path, endpoint)
    result = run(tmp_path, "markets", "live")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (f"error: account 'live': cannot load the markets of binanceusdm at {endpoint}: "
                             "connection refused\n")


def test_a_venue_that_does_not_answer_in_time(tmp_path, monkeypatch):
    silent = socket.socket()  # listens, never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    monkeypatch.setattr(markets_online, "TIMEOUT_MS", 300)
    endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
    write_config(tmp_path, endpoint)
    try:
        result = run(tmp_path, "markets", "live")
    finally:
        silent.close()
    assert (result.exit_code, result.stderr) == (
        1, f"error: account 'live': cannot load the markets of binanceusdm at {endpoint}: no answer within 0.3 s\n")


# ---- gridctl validate --online -------------------------------------------------------------
def test_validate_online_fails_a_grid_below_the_live_min_notional(tmp_path, venue):
    # 0.001 BTC at 7000 is 7 USDT: above the bundled minimum (5), below the live one (10)
    path = write_config(tmp_path, venue.base)
    offline = run(tmp_path, "validate")
    assert offline.exit_code == 0, offline.output
    assert venue.requests == []  # without --online nobody is asked
    online = run(tmp_path, "validate", "--online")
    assert online.exit_code == 2
    out = online.stdout.splitlines()
    assert re.fullmatch(rf"online: account 'live' \(binanceusdm at {venue.base}\): 2 swap markets, "
                        rf"live \(fetched {FETCHED}\)", out[0]), out[0]
    assert out[1:] == ["  BTC/USDT:USDT: the live rules differ from the bundled snapshot (captured 2026-09-29) "
                       "and apply: min notional: bundled 5, live 10"]
    assert online.stderr.splitlines() == [
        f"{path}: 1 problem(s)",
        "  strategies.btc.amount (line 19): 0.001 BTC per level is below the market minimum of 0.002 BTC "
        "(min qty 0.001, min notional 10 USDT)"]
    data = json.loads(run(tmp_path, "validate", "--online", "--json").stdout)
    assert data["ok"] is False and [p["path"] for p in data["problems"]] == ["strategies.btc.amount"]
    assert data["online"][0]["source"] == "cache" and data["online"][0]["markets"] == [
        {"symbol": "BTC/USDT:USDT", "bundled": True, "leverage_known": True,
         "differences": [{"field": "min_notional", "bundled": "5", "live": "10"}]}]
    assert market_requests(venue) == 1  # the second validate used the cache


def test_validate_online_passes_a_grid_that_fits_the_live_rules(tmp_path, venue):
    write_config(tmp_path, venue.base, CONFIG.replace("amount: 0.001", "amount: 0.002"))
    result = run(tmp_path, "validate", "--online")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[2:] == [
        "ok  btc: neutral arithmetic BTC/USDT:USDT on live (binanceusdm), 7000..8000, 10 grids, amount 0.002/level, 1x",
        "  note: margin 78.00 USDT not checked against account 'live''s balance on binanceusdm: --online reads "
        "the venue's markets, not yet the balance"]


def test_validate_online_checks_a_market_gridctl_does_not_bundle(tmp_path):
    def add_doge(by_name, symbols):
        doge = json.loads(json.dumps(by_name["ETHUSDT"]))
        doge.update(symbol="DOGEUSDT", pair="DOGEUSDT", baseAsset="DOGE")
        set_filter(doge, "PRICE_FILTER", tickSize="0.00001")
        set_filter(doge, "LOT_SIZE", stepSize="1", minQty="1")
        symbols.append(doge)

    text = CONFIG.replace("BTC/USDT:USDT", "DOGE/USDT:USDT").replace("lower: 7000", "lower: 0.1") \
        .replace("upper: 8000", "upper: 0.2").replace("amount: 0.001", "amount: 10") + "    leverage: 75\n"
    with VenueEmulator(exchange_info(tmp_path, add_doge)) as venue:
        path = write_config(tmp_path, venue.base, text)
        offline = run(tmp_path, "validate")
        result = run(tmp_path, "validate", "--online")
    # offline: the bundled snapshot has a few of Binance's markets; the others are not refused
    assert offline.exit_code == 0, offline.output
    assert offline.stdout.splitlines()[1] == (
        "  note: DOGE/USDT:USDT is not in gridctl's bundled snapshot of binanceusdm: its market rules are "
        "checked by validate --online and at start")
    assert result.exit_code == 2
    assert result.stdout.splitlines()[1:] == [
        "  DOGE/USDT:USDT: no bundled snapshot; checked against the live rules",
        "  DOGE/USDT:USDT: max leverage not published by the venue: not checked here"]
    # 10 DOGE at 0.1 is 1 USDT; the live minimum is 10 USDT (75x is not refused: the venue's cap is unknown)
    assert result.stderr.splitlines() == [
        f"{path}: 1 problem(s)",
        "  strategies.btc.amount (line 19): 10 DOGE per level is below the market minimum of 100 DOGE "
        "(min qty 1, min notional 10 USDT)"]


def test_validate_online_refuses_a_symbol_the_venue_does_not_list(tmp_path, venue):
    path = write_config(tmp_path, venue.base, CONFIG.replace("BTC/USDT:USDT", "SOL/USDT:USDT")
                        .replace("lower: 7000", "lower: 100").replace("upper: 8000", "upper: 200")
                        .replace("amount: 0.001", "amount: 1"))
    assert run(tmp_path, "validate").exit_code == 0  # bundled: SOLUSDT exists
    result = run(tmp_path, "validate", "--online")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"{path}: 1 problem(s)",
        f"  strategies.btc.symbol (line 14): no market 'SOL/USDT:USDT' on binanceusdm at {venue.base} "
        "(live markets); available: BTC/USDT:USDT, ETH/USDT:USDT (did you mean 'ETH/USDT:USDT'?)"]


def test_validate_online_names_the_account_it_cannot_reach(tmp_path):
    endpoint = f"http://127.0.0.1:{closed_port()}"
    write_config(tmp_path, endpoint)
    for args in (["validate", "--online"], ["validate", "--online", "--json"]):
        result = run(tmp_path, *args)
        assert (result.exit_code, result.stdout) == (1, "")
        assert result.stderr == (f"error: account 'live': cannot load the markets of binanceusdm at {endpoint}: "
                                 "connection refused\n")


def test_without_a_usable_database_the_venue_is_asked_and_a_warning_says_why(tmp_path, venue):
    write_config(tmp_path, venue.base)
    (tmp_path / "state" / "gridctl.db").mkdir(parents=True)  # a directory where the database should be
    for _ in range(2):
        result = run(tmp_path, "markets", "live")
        assert result.exit_code == 0, result.output
        assert result.stderr.startswith(f"warning: no market cache (cannot open the gridctl database in "
                                        f"{tmp_path / 'state'}: ")
        assert result.stderr.endswith("); asking the venue\n")
        assert ", live (fetched" in result.stdout.splitlines()[0]
    assert market_requests(venue) == 2
