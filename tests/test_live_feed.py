"""The live public-data feed (`feed: {live: VENUE}`) against a local Binance USD-M emulator.

ccxt's real `binanceusdm` class builds the requests and parses the answers; its
endpoints point at tests/venue_emulator.py on 127.0.0.1, so nothing here ever
contacts a real exchange.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

ccxt = pytest.importorskip("ccxt")
import ccxt.async_support as ccxt_async  # noqa: E402

from gridctl.config import ConfigError, load  # noqa: E402
from gridctl.core.engine import GridEngine  # noqa: E402
from gridctl.core.plan import build_grid  # noqa: E402
from gridctl.exchange.base import ExchangeError, PriceUpdate, RateLimited, Temporary  # noqa: E402
from gridctl.exchange.paper import PaperExchange  # noqa: E402
from gridctl.markets import load_snapshot  # noqa: E402
from gridctl.exchange.ccxt_errors import classify  # noqa: E402
from gridctl.exchange.live_feed import LiveFeed  # noqa: E402
from gridctl.store.db import open_database  # noqa: E402
from gridctl.store.writer import BufferedWriter  # noqa: E402
from gridctl.config.strategy import engine_config, feed_start_price, grid_params, rules_for  # noqa: E402
from gridctl.worker.loop import WorkerLoop  # noqa: E402
from gridctl.worker.recorder import Recorder  # noqa: E402

from venue_emulator import EXCHANGE_INFO, Fault, VenueEmulator  # noqa: E402

from shared_data import require  # noqa: E402


@pytest.fixture(autouse=True)
def _needs_the_exchange_info_sample():
    """Skip without the shared exchangeInfo sample (fail under CI)."""
    require(EXCHANGE_INFO)

BTC = load_snapshot("binanceusdm")["BTC/USDT:USDT"]  # tick 0.1


@pytest.fixture
def venue():
    with VenueEmulator() as v:
        yield v


def client(venue: VenueEmulator):
    """ccxt's own binanceusdm class, every endpoint redirected to the emulator."""
    c = ccxt_async.binanceusdm({"enableRateLimit": False, "timeout": 400})
    venue.point(c)
    return c


def t(price: str) -> int:
    return BTC.price_to_ticks(price)


# -- the feed ------------------------------------------------------------------------
def test_prices_become_candles_on_ticks(venue):
    venue.script("60000.04", "60000.16", "59999.5", "60010.0", "59990.0")
    feed = LiveFeed("binanceusdm", BTC, 200, exchange=client(venue))

    async def run():
        try:
            before = int(time.time() * 1000)
            first = await feed.poll()
            assert feed.candle() == (feed.ts, (first,) * 4)  # the first price opens the first candle
            ts1, c1 = await feed.next()
            ts2, c2 = await feed.next()
            await feed.poll()  # two prices seen before the next candle is taken
            await feed.poll()
            ts3, c3 = feed.candle()
            return before, first, [(ts1, c1), (ts2, c2), (ts3, c3)]
        finally:
            await feed.close()

    before, first, candles = asyncio.run(run())
    assert first == t("60000.0")  # rounded to the tick (0.1)
    assert [c for _, c in candles] == [
        (t("60000.0"), t("60000.2"), t("60000.0"), t("60000.2")),  # open = previous close
        (t("60000.2"), t("60000.2"), t("59999.5"), t("59999.5")),
        (t("59999.5"), t("60010.0"), t("59990.0"), t("59990.0")),  # high/low of everything seen since
    ]
    stamps = [ts for ts, _ in candles]
    assert stamps == sorted(stamps) and before - 1000 <= stamps[0] <= int(time.time() * 1000) + 1000  # venue time
    assert venue.requests[0] == "/fapi/v1/exchangeInfo"
    assert all(r == "/fapi/v1/ticker/24hr?symbol=BTCUSDT" for r in venue.requests[1:])
    assert feed.client.session is None or feed.client.session.closed  # close() closed the ccxt client


def test_venue_faults_become_temporary_and_the_feed_continues(venue):
    venue.script("60000.0", Fault(429, retry_after=2), Fault(503), Fault("malformed"), Fault("hang", hang_s=1.5),
                 "60100.0")
    feed = LiveFeed("binanceusdm", BTC, 200, exchange=client(venue))

    async def run():
        try:
            await feed.poll()
            feed.candle()
            errors = []
            for _ in range(4):
                with pytest.raises(Temporary) as exc:
                    await feed.poll()
                errors.append(exc.value)
            return errors, await feed.next()
        finally:
            await feed.close()

    errors, (_, candle) = asyncio.run(run())
    rate, unavailable, malformed, timeout = errors
    assert isinstance(rate, RateLimited) and rate.retry_after == 2
    assert not isinstance(unavailable, RateLimited) and "binanceusdm" in str(unavailable)
    assert "no last price" in str(malformed)
    assert "RequestTimeout" in str(timeout)
    assert candle == (t("60000.0"), t("60100.0"), t("60000.0"), t("60100.0"))  # open = last good price


@pytest.mark.parametrize("exc, want", [
    (ccxt.NetworkError("x"), Temporary), (ccxt.RequestTimeout("x"), Temporary),
    (ccxt.ExchangeNotAvailable("x"), Temporary), (ccxt.RateLimitExceeded("x"), RateLimited),
    (ccxt.DDoSProtection("x"), RateLimited), (ccxt.BadResponse("x"), Temporary),
])
def test_ccxt_errors_are_translated_once(exc, want):
    assert type(classify(exc)) is want


def test_a_symbol_the_venue_does_not_list_is_not_temporary():
    err = classify(ccxt.BadSymbol("binanceusdm does not have market symbol FOO/USDT:USDT"))
    assert isinstance(err, ExchangeError) and not isinstance(err, Temporary) and err.reason == "bad_symbol"


# -- config ----------------------------------------------------------------------------
CONFIG = """\
version: 1
accounts:
  live:
    exchange: paper
    like: binanceusdm
    balance: 10000
    feed: {FEED}
strategies:
  btc:
    account: live
    symbol: BTC/USDT:USDT
    mode: neutral
    lower: 59000
    upper: 61000
    grids: 10
    investment: 2000
    leverage: 2
"""


def write_config(tmp_path: Path, feed: str) -> Path:
    p = tmp_path / "strategies.yaml"
    p.write_text(CONFIG.replace("{FEED}", feed))
    return p


def problems(tmp_path: Path, feed: str) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load(write_config(tmp_path, feed))
    return [str(p) for p in exc.value.problems]


def test_config_live_feed_ok(tmp_path):
    account = load(write_config(tmp_path, "{live: binanceusdm, poll_ms: 500}")).accounts["live"]
    assert account.feed.live == "binanceusdm" and account.feed.poll_ms == 500 and account.feed.replay is None
    assert load(write_config(tmp_path, "{live: bybit}")).accounts["live"].feed.poll_ms == 1000
    assert feed_start_price(account) is None  # the start price comes from the venue at start


def test_config_live_feed_errors(tmp_path):
    assert problems(tmp_path, "{live: nosuchvenue}") == [
        "accounts.live.feed.live (line 7): unknown venue 'nosuchvenue'; use a ccxt exchange id such as "
        "binanceusdm, bybit, okx"]
    assert problems(tmp_path, "{live: binanceusdn}") == [
        "accounts.live.feed.live (line 7): unknown venue 'binanceusdn'; use a ccxt exchange id such as "
        "binanceusdm, bybit, okx (did you mean 'binanceusdm'?)"]
    both = problems(tmp_path, "{live: binanceusdm, replay: x.csv}")
    assert "accounts.live.feed (line 7): needs exactly one of replay, synthetic or live" in both
    assert problems(tmp_path, "{live: binanceusdm, poll_ms: 50}") == [
        "accounts.live.feed.poll_ms (line 7): must be at least 200, got 50"]


# -- the paper exchange and the worker loop ---------------------------------------------
async def one_poll(ex: PaperExchange) -> list:
    """Every event of the next poll's candle (the exchange reports it stop by stop)."""
    out = await ex.events()
    while ex.playing:
        out += await ex.events()
    return out


def test_paper_exchange_waits_for_polls_and_survives_faults(venue, tmp_path):
    account = load(write_config(tmp_path, "{live: binanceusdm, poll_ms: 200}")).accounts["live"]
    venue.script("60000.0", "60000.5", Fault(429, retry_after=1), "60001.0")

    async def run():
        ex = PaperExchange(BTC, account, 2, tmp_path / "paper.json", live_client=client(venue))
        try:
            await ex.connect()
            assert ex.price() == t("60000.0")
            t0 = time.monotonic()
            first = await one_poll(ex)
            with pytest.raises(RateLimited):
                await ex.events()
            t1 = time.monotonic()
            after = await one_poll(ex)  # waits for the Retry-After, then polls again
            return first, after, t1 - t0, time.monotonic() - t1
        finally:
            await ex.close()

    first, after, polls_s, retry_s = asyncio.run(run())
    # the poll's candle is played vertex by vertex (open, low, high, close): the last is the new price
    assert [e.last for e in first if isinstance(e, PriceUpdate)][-1] == t("60000.5")
    assert [e.last for e in after if isinstance(e, PriceUpdate)][-1] == t("60001.0")
    assert 0.15 <= polls_s < 1.0  # one poll every poll_ms, speed does not apply
    assert retry_s >= 0.8


async def _trade(loop: WorkerLoop, ex: PaperExchange, venue: VenueEmulator) -> int:
    task = asyncio.create_task(loop.run())
    deadline = time.monotonic() + 10
    while len(ex.sim.open_orders()) < 10 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    book = ex.sim.open_orders()
    assert len(book) == 10  # the grid is on the book around the venue's price (60050)
    assert max(o.price for o in book if o.side.value == "buy") == t("59800.0")
    assert min(o.price for o in book if o.side.value == "sell") == t("60200.0")
    # the venue hiccups, then the price falls through the highest buy (59800; 60000 is the start's line)
    venue.script(Fault(429, retry_after=1), Fault(503), "59750.0")
    while loop.e.ledger.position == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await loop.stop(keep_position=True)
    return await asyncio.wait_for(task, 5)


def test_worker_loop_trades_the_live_feed(venue, tmp_path):
    config = load(write_config(tmp_path, "{live: binanceusdm, poll_ms: 200}"))
    s = config.strategies["btc"]
    account = config.accounts[s.account]
    rules = rules_for(account, s.symbol)
    venue.script("60050.0")
    ex = PaperExchange(rules, account, s.leverage, tmp_path / "paper.json", live_client=client(venue))
    writer = BufferedWriter(open_database(tmp_path), strategy="btc")

    async def run():
        try:
            await ex.connect()
            start = ex.price()
            params = grid_params(rules, s, start)
            engine = GridEngine(rules, build_grid(rules, params, start), engine_config(rules, s, account, params))
            loop = WorkerLoop("btc", engine, ex, Recorder(writer, engine, "btc"), account.balance)
            return loop, start, await _trade(loop, ex, venue)
        finally:
            await ex.close()

    loop, start, code = asyncio.run(run())
    writer.flush(force=True)
    assert start == t("60050.0") and code == 0
    fills = asyncio.run(ex.fills_since(0))  # the paper venue's trade history
    assert [(f.side.value, f.price) for f in fills] == [("buy", t("59800.0"))]  # filled at its own price
    assert loop.e.ledger.position == ex.sim.position == fills[0].qty > 0
    assert loop.last_error is not None and "binanceusdm" in loop.last_error  # the faults were seen, not fatal
    assert ex.sim.price == t("59750.0")


def test_a_restart_moves_the_saved_book_to_the_venues_price(venue, tmp_path):
    from gridctl.core.grid import Side
    from gridctl.core.orders import OrderRequest

    account = load(write_config(tmp_path, "{live: binanceusdm, poll_ms: 200}")).accounts["live"]
    venue.script("60000.0")

    async def first_run():
        ex = PaperExchange(BTC, account, 2, tmp_path / "paper.json", live_client=client(venue))
        await ex.connect()
        await ex.place(OrderRequest("b1", Side.BUY, 10, t("59900.0")))
        await ex.close()

    async def second_run():
        ex = PaperExchange(BTC, account, 2, tmp_path / "paper.json", live_client=client(venue))
        try:
            await ex.connect()  # the market fell through the buy while the worker was away
            return ex.price(), await ex.events()
        finally:
            await ex.close()

    asyncio.run(first_run())
    venue.script("59850.0")
    price, events = asyncio.run(second_run())
    assert price == t("59850.0")
    assert [(e.client_id, e.price, e.qty) for e in events if hasattr(e, "client_id")] == [("b1", t("59900.0"), 10)]
