"""gridctl.exchange.markets_online below the commands: pointing ccxt, the sandbox, ccxt markets
to rules, Backpack's one request, the cache's 24 h on an injected clock, the worker's lookup.

Every server is on 127.0.0.1; nothing here contacts a real exchange.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import ccxt
import ccxt.pro as ccxtpro
import pytest
from click.testing import CliRunner

import gridctl.cli.commands  # noqa: F401  (registers the commands)
from gridctl.cli import cli
from gridctl.config.model import AccountConfig
from gridctl.exchange import markets_online as mo
from gridctl.store.db import open_database
from gridctl.store.models import MarketCache

from shared_data import require
from venue_emulator import EXCHANGE_INFO, VenueEmulator

D = Decimal


def live(endpoint: str, exchange: str = "binanceusdm", **kw) -> AccountConfig:
    return AccountConfig(name="main", exchange=exchange, endpoint=endpoint, **kw)


# ---- pointing and sandbox ---------------------------------------------------------------------
def test_an_endpoint_replaces_scheme_and_host_of_every_rest_and_websocket_url():
    client = ccxtpro.binanceusdm()
    mo.point_client(client, "http://127.0.0.1:8123")
    api = client.urls["api"]
    assert api["fapiPublic"] == "http://127.0.0.1:8123/fapi/v1"
    assert api["fapiPrivateV3"] == "http://127.0.0.1:8123/fapi/v3"
    assert api["ws"]["linear"] == "ws://127.0.0.1:8123/ws"
    assert api["ws"]["spot"] == "ws://127.0.0.1:8123/ws"  # the :9443 of the real host goes too
    assert api["ws"]["ws-api"]["linear"] == "ws://127.0.0.1:8123/ws-fapi/v1"
    strings = []

    def walk(node):
        for v in node.values():
            walk(v) if isinstance(v, dict) else strings.append(v)
    walk(api)
    assert all(s.startswith(("http://127.0.0.1:8123", "ws://127.0.0.1:8123")) for s in strings)


def test_an_https_endpoint_gives_wss_and_templated_hosts_are_replaced():
    bybit = ccxtpro.bybit()
    mo.point_client(bybit, "https://venue.test:9443")
    assert bybit.urls["api"]["public"] == "https://venue.test:9443"
    assert bybit.urls["api"]["ws"]["public"]["linear"] == "wss://venue.test:9443/v5/public/linear"
    backpack = ccxtpro.backpack()
    mo.point_client(backpack, "http://127.0.0.1:7000")
    assert backpack.urls["api"]["ws"] == {"public": "ws://127.0.0.1:7000", "private": "ws://127.0.0.1:7000"}


def test_sandbox_uses_ccxts_test_network_and_a_venue_without_one_says_so():
    client = mo.markets_client(AccountConfig(name="main", exchange="binanceusdm", sandbox=True))
    assert client.urls["api"]["fapiPublic"] == "https://testnet.binancefuture.com/fapi/v1"
    with pytest.raises(mo.MarketsUnavailable) as err:
        mo.markets_client(AccountConfig(name="bp", exchange="backpack", sandbox=True))
    assert str(err.value) == ("account 'bp': ccxt has no sandbox (test network) for backpack; remove sandbox: "
                              "or use endpoint: URL")
    both = mo.markets_client(AccountConfig(name="main", exchange="binanceusdm", sandbox=True,
                                           endpoint="http://127.0.0.1:8123"))
    assert both.urls["api"]["fapiPublic"] == "http://127.0.0.1:8123/fapi/v1"  # the endpoint wins, path kept
    assert mo.cache_endpoint(AccountConfig(name="m", exchange="binanceusdm", sandbox=True)) == "sandbox"
    assert mo.where(AccountConfig(name="m", exchange="binanceusdm", sandbox=True)) == "binanceusdm (sandbox)"


# ---- ccxt markets to rules --------------------------------------------------------------------
SWAP = {"symbol": "X/USDT:USDT", "id": "XUSDT", "base": "X", "quote": "USDT", "settle": "USDT", "swap": True,
        "linear": True, "inverse": False, "active": True, "contractSize": 0.01, "maker": 0.0002, "taker": 0.0005,
        "precision": {"price": 0.1, "amount": 1}, "info": {},
        "limits": {"amount": {"min": 1}, "cost": {"min": None}, "leverage": {"max": 75.0}}}


def test_a_ccxt_market_becomes_exact_decimal_rules():
    raw = mo.parse_market(SWAP, ccxt.TICK_SIZE)
    assert raw == {"symbol": "X/USDT:USDT", "id": "XUSDT", "base": "X", "quote": "USDT", "tick": "0.1",
                   "step": "1", "min_qty": "1", "min_notional": "0", "contract_size": "0.01",
                   "max_leverage": "75", "maintenance_margin_rate": None, "maker_fee": "0.0002",
                   "taker_fee": "0.0005"}
    m = mo.live_market(raw, None)
    assert (m.rules.tick, m.rules.contract_size, m.rules.max_leverage) == (D("0.1"), D("0.01"), 75)
    assert m.origin["maintenance_margin_rate"] == "default" and m.rules.maintenance_margin_rate == D("0.005")
    assert m.leverage_known and m.differences() == []  # nothing bundled to differ from


def test_decimal_places_precision_and_what_is_left_out():
    places = mo.parse_market({**SWAP, "precision": {"price": 4, "amount": 2}}, ccxt.DECIMAL_PLACES)
    assert (places["tick"], places["step"], places["min_qty"]) == ("0.0001", "0.01", "1")
    assert mo.parse_market(SWAP, ccxt.SIGNIFICANT_DIGITS) is None
    for other in ({"swap": False, "future": True}, {"inverse": True, "linear": False}, {"active": False},
                  {"precision": {"price": None, "amount": 1}}):
        assert mo.parse_market({**SWAP, **other}, ccxt.TICK_SIZE) is None, other


# ---- Backpack: one request, PERP markets only -------------------------------------------------
# The raw GET /api/v1/markets entries kept as a sample in ccxt 4.5.90's backpack.py parse_market
BACKPACK_MARKETS = [
    {"baseSymbol": "SOL", "createdAt": "2025-01-21T06:34:54.691858",
     "filters": {"price": {"maxPrice": None, "minPrice": "0.01", "tickSize": "0.01"},
                 "quantity": {"maxQuantity": None, "minQuantity": "0.01", "stepSize": "0.01"}},
     "fundingInterval": 28800000, "imfFunction": None, "marketType": "SPOT", "mmfFunction": None,
     "openInterestLimit": "0", "orderBookState": "Open", "quoteSymbol": "USDC", "symbol": "SOL_USDC"},
    {"baseSymbol": "SOL", "createdAt": "2025-01-21T06:34:54.691858",
     "filters": {"price": {"maxPrice": "1000", "minPrice": "0.01", "tickSize": "0.01"},
                 "quantity": {"maxQuantity": None, "minQuantity": "0.01", "stepSize": "0.01"}},
     "fundingInterval": "28800000", "fundingRateLowerBound": "-100", "fundingRateUpperBound": "100",
     "imfFunction": {"base": "0.02", "factor": "0.0001275", "type": "sqrt"}, "marketType": "PERP",
     "mmfFunction": {"base": "0.0125", "factor": "0.0000765", "type": "sqrt"},
     "openInterestLimit": "4000000", "orderBookState": "Open", "quoteSymbol": "USDC", "symbol": "SOL_USDC_PERP"},
]


BROKEN: dict = {}  # status and body the server answers every request with, while set


@pytest.fixture
def backpack():
    """A 127.0.0.1 server answering GET /api/v1/markets with BACKPACK_MARKETS; logs every request."""
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            requests.append(self.path)
            found = self.path.startswith("/api/v1/markets")
            status = BROKEN.get("status", 200 if found else 404)
            body = json.dumps(BROKEN.get("body", BACKPACK_MARKETS if found else {"code": "NOT_FOUND"})).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()
    server.server_close()


def test_backpack_markets_in_one_request_with_margin_from_its_imf_and_mmf(backpack):
    endpoint, requests = backpack
    found = mo.load_account_markets(live(endpoint, "backpack"))
    assert requests == ["/api/v1/markets?marketType=PERP"]  # no /assets, no /securities
    assert list(found.markets) == ["SOL/USDC:USDC"]  # the spot market is not traded
    sol = found.markets["SOL/USDC:USDC"]
    r = sol.rules
    assert (r.tick, r.step, r.min_qty, r.min_notional, r.venue_id) == (D("0.01"), D("0.01"), D("0.01"), D(0),
                                                                      "SOL_USDC_PERP")
    assert (r.max_leverage, r.maintenance_margin_rate) == (50, D("0.0125"))  # 1 / imf base, mmf base
    assert (sol.origin["max_leverage"], sol.origin["maker_fee"]) == ("venue", "bundled")  # no fees in /markets
    assert sol.differences() == []  # the bundled snapshot was taken from this very sample


# ---- the cache on an injected clock -----------------------------------------------------------
@pytest.fixture
def venue():
    require(EXCHANGE_INFO)
    with VenueEmulator() as v:
        yield v


def count(venue) -> int:
    return sum(1 for r in venue.requests if r.startswith("/fapi/v1/exchangeInfo"))


def test_the_cache_expires_exactly_24_hours_after_the_fetch(tmp_path, venue):
    db = open_database(tmp_path)
    account = live(venue.base)
    t0 = 1_800_000_000.0
    answers = [mo.load_account_markets(account, db, clock=lambda t=t: t).source
               for t in (t0, t0 + 86_399.999, t0 + 86_400, t0 + 86_400 + 1)]
    assert answers == ["live", "cache", "live", "cache"] and count(venue) == 2
    # another endpoint of the same venue is another cache entry
    other = AccountConfig(name="main", exchange="binanceusdm", endpoint=venue.base.replace("127.0.0.1", "localhost"))
    assert mo.load_account_markets(other, db, clock=lambda: t0 + 86_401).source == "live" and count(venue) == 3
    assert mo.load_account_markets(account, db, refresh=True, clock=lambda: t0 + 86_402).source == "live"
    assert count(venue) == 4
    db.close()


def test_an_unreadable_cache_row_means_asking_the_venue(tmp_path, venue):
    db = open_database(tmp_path)
    account = live(venue.base)
    assert mo.load_account_markets(account, db).source == "live"
    MarketCache.update(rules_json="{not json").execute()
    found = mo.load_account_markets(account, db)
    assert found.source == "live" and count(venue) == 2
    assert found.markets["BTC/USDT:USDT"].rules.min_notional == D(10)
    db.close()


def test_the_worker_gets_the_live_rules_and_a_logged_difference(tmp_path, venue, caplog):
    db = open_database(tmp_path)
    account = live(venue.base)
    with caplog.at_level(logging.WARNING, logger="gridctl.exchange.markets_online"):
        rules = asyncio.run(mo.market_rules(account, "BTCUSDT", db))
    assert (rules.symbol, rules.min_notional, rules.tick) == ("BTC/USDT:USDT", D(10), D("0.1"))
    assert [r.getMessage() for r in caplog.records] == [
        f"BTC/USDT:USDT on binanceusdm at {venue.base}: min notional: bundled 5, live 10 (the live rules apply)"]
    with pytest.raises(mo.MarketsUnavailable) as err:
        asyncio.run(mo.market_rules(account, "SOL/USDT:USDT", db))
    assert str(err.value) == f"account 'main': no market 'SOL/USDT:USDT' on binanceusdm at {venue.base}"
    assert count(venue) == 1  # the second lookup came from the cache
    db.close()


def test_an_adapter_that_loaded_markets_itself_fills_the_cache(tmp_path, venue):
    db = open_database(tmp_path)
    account = live(venue.base)

    async def adapter_connect():
        client = mo.markets_client(account)
        try:
            await client.load_markets()
            found = mo.remember_loaded(account, db, client)
            one = mo.rules_from_ccxt(client.markets["BTC/USDT:USDT"], client.precisionMode, found.markets[
                "BTC/USDT:USDT"].bundled)
            return found, one
        finally:
            await client.close()

    found, one = asyncio.run(adapter_connect())
    assert one is not None and one.rules == found.markets["BTC/USDT:USDT"].rules
    assert mo.load_account_markets(account, db).source == "cache" and count(venue) == 1
    db.close()


def test_a_server_that_is_not_the_venue_is_a_clear_error(backpack):
    endpoint, _ = backpack  # a Backpack server answers 404 to Binance's paths
    with pytest.raises(mo.MarketsUnavailable) as err:
        mo.load_account_markets(live(endpoint))
    assert str(err.value).startswith(f"account 'main': cannot load the markets of binanceusdm at {endpoint}: ")
    assert str(err.value).endswith(": its answer could not be read (ValueError: invalid literal for int() with base "
                                   "10: 'NOT_FOUND')")  # ccxt's binance trips over Backpack's string code


def test_a_200_that_is_not_json_is_no_markets(tmp_path):
    emulator = VenueEmulator(EXCHANGE_INFO)
    emulator.exchange_info = b"<html>upstream gateway glitch</html>"
    with emulator:
        with pytest.raises(mo.MarketsUnavailable) as err:
            mo.load_account_markets(live(emulator.base))
    assert str(err.value) == f"account 'main': binanceusdm at {emulator.base} lists no linear swap markets"


def test_a_venue_error_shows_its_status_and_body(backpack):
    endpoint, _ = backpack
    BROKEN.update(status=503, body={"code": -1001, "msg": "Service unavailable."})
    try:
        with pytest.raises(mo.MarketsUnavailable) as err:
            mo.load_account_markets(live(endpoint))
    finally:
        BROKEN.clear()
    assert str(err.value) == (f"account 'main': cannot load the markets of binanceusdm at {endpoint}: "
                              '{"code": -1001, "msg": "Service unavailable."}')  # the venue's own words


def test_an_old_database_gets_the_market_cache_table(tmp_path):
    from peewee import SqliteDatabase

    from gridctl.store.db import bind
    from gridctl.store.migrations import LATEST, current_version
    from gridctl.store.models import MODELS, SchemaVersion

    old = SqliteDatabase(str(tmp_path / "gridctl.db"))
    bind(old)
    old.create_tables([m for m in MODELS if m is not MarketCache])
    SchemaVersion.insert_many([{"version": v, "applied_ts": 1} for v in (1, 2, 3)]).execute()
    old.close()
    db = open_database(tmp_path)
    assert current_version(db) == LATEST >= 4 and "market_cache" in db.get_tables()
    db.close()


def test_bybit_and_okx_load_only_their_linear_swaps_without_currencies():
    bybit = mo.markets_client(AccountConfig(name="b", exchange="bybit"))
    okx = mo.markets_client(AccountConfig(name="o", exchange="okx"))
    assert bybit.options["fetchMarkets"]["types"] == ["linear"] and okx.options["fetchMarkets"]["types"] == ["swap"]
    assert not bybit.has["fetchCurrencies"] and not okx.has["fetchCurrencies"]
    assert not (bybit.apiKey or okx.apiKey)  # public calls only: no keys, nothing signed


def test_gridctl_markets_on_a_backpack_account(tmp_path, backpack):
    endpoint, requests = backpack
    import base64

    from nacl.signing import SigningKey

    seed = SigningKey.generate()  # validate checks a Backpack key pair offline
    key, secret = (base64.b64encode(bytes(k)).decode() for k in (seed.verify_key, seed))
    (tmp_path / "s.yaml").write_text(f"""\
version: 1
accounts:
  bp: {{exchange: backpack, api_key: "{key}", secret: "{secret}", endpoint: "{endpoint}"}}
strategies:
  sol: {{account: bp, symbol: SOL/USDC:USDC, mode: neutral, lower: 100, upper: 200, grids: 10, amount: 1}}
""")
    result = CliRunner().invoke(cli, ["--state-dir", str(tmp_path / "state"), "markets", "bp", "-c",
                                      str(tmp_path / "s.yaml")])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"account 'bp': backpack at {endpoint}, 1 swap markets, live (fetched ")
    assert re.split(r"\s{2,}", lines[3]) == ["SOL/USDC:USDC", "SOL_USDC_PERP", "0.01", "0.01", "0.01", "0 USDC",
                                             "50x", "0.02%~", "0.05%~"]
    assert lines[4:] == ["~ not published by the venue: from the bundled snapshot"]
    assert requests == ["/api/v1/markets?marketType=PERP"]
