"""Price sources: the real CSVs, tick rounding, mark series, funding, synthetic paths."""

import time
from decimal import Decimal

import numpy as np
import pytest

from gridctl.core.market import MarketRules
from gridctl.sim import DataError, SimExchange, funding_candle_index, load_candles, load_funding, synthetic_candles

from shared_data import needs_data as needs_shared_data, shared_data

DATA = shared_data()
CANDLES = DATA / "candles"
D = Decimal
needs_data = needs_shared_data(CANDLES, DATA / "funding")


def market(tick: str, step: str = "0.1") -> MarketRules:
    return MarketRules(symbol="X/USDT:USDT", base="X", quote="USDT", tick=D(tick), step=D(step),
                       min_qty=D(step), min_notional=D("5"))


@needs_data
def test_btc_1m_loads_fast_and_whole():
    start = time.perf_counter()
    c = load_candles(CANDLES / "nautilus-ftx_BTC-PERP_1m.csv")
    elapsed = time.perf_counter() - start
    assert len(c) == 45031 and elapsed < 0.5
    assert c.ts.dtype == np.int64 and c.ts[0] == 1640991660000 and (np.diff(c.ts) == 60000).all()
    t = c.to_ticks(market("1", "0.001"))
    assert (t.open[:2] == [46319, 46377]).all() and t.volume[0] == pytest.approx(2300413.7295)
    assert (t.low <= np.minimum(t.open, t.close)).all() and (t.high >= np.maximum(t.open, t.close)).all()


@needs_data
def test_xrp_prices_round_to_the_0_0001_tick_like_market_rules():
    path = CANDLES / "freqtrade_XRPUSDT-PERP_5m.csv"
    rules = market("0.0001")
    t = load_candles(path).to_ticks(rules)
    rows = path.read_text().splitlines()[1:]
    expected = [[rules.price_to_ticks(D(x)) for x in r.split(",")[1:5]] for r in rows]
    got = np.stack([t.open, t.high, t.low, t.close], axis=1)
    assert (got == np.array(expected)).all()
    noisy = [i for i, r in enumerate(rows) if "0000000000" in r]  # e.g. 1.0854300000000001
    assert noisy, "the file is known to carry float noise"


@needs_data
def test_mark_file_with_empty_volume_and_mark_at_semantics():
    marks = load_candles(CANDLES / "freqtrade_XRPUSDT-PERP_1h_mark.csv")
    assert np.isnan(marks.volume).all()
    m = marks.to_ticks(market("0.0001"))
    assert m.volume is None
    first = int(m.ts[0])
    assert m.mark_at(first - 1) is None  # before the first mark candle: none (use last price)
    assert m.mark_at(first) == 12143 == m.mark_at(first + 3_599_999)  # close 1.21431 of the first hour
    assert m.mark_at(first + 3_600_000) == int(m.close[1])
    assert list(m.marks_for(np.array([first - 1, first, first + 3_600_000]))) == [-1, 12143, int(m.close[1])]


@needs_data
def test_funding_rates_are_decimals_from_the_text_and_map_to_candles():
    ts, rates = load_funding(DATA / "funding" / "freqtrade_XRPUSDT-PERP_8h.csv")
    assert len(ts) == len(rates) == 91 and ts[0] == 1637193600017
    assert rates[0] == D("0.0001") and D("-0.0021933400000000002") in rates
    assert all(isinstance(r, Decimal) for r in rates)
    candles = load_candles(CANDLES / "freqtrade_XRPUSDT-PERP_5m.csv")
    idx = funding_candle_index(candles.ts, ts)
    # 00:00:00.017 is after the 00:00 candle opens: applied at the 00:05 candle
    assert candles.ts[idx[0]] == 1637193600000 + 300_000
    assert (idx[ts > candles.ts[-1]] == len(candles)).all()


def test_bad_files_say_where(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text("time,o,h,l,c\n1,2,3,1,2\n")
    with pytest.raises(DataError, match="header"):
        load_candles(p)
    p.write_text("timestamp_ms,open,high,low,close,volume\n2,1,1,1,1,1\n1,1,1,1,1,1\n")
    with pytest.raises(DataError, match=r"c.csv:3: timestamps must increase"):
        load_candles(p)
    with pytest.raises(DataError, match="cannot read"):
        load_candles(tmp_path / "missing.csv")
    p.write_text("timestamp_ms,rate\n1,abc\n")
    with pytest.raises(DataError, match=":2:"):
        load_funding(p)


def test_candles_without_volume_column_and_trailing_blank_lines(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text("timestamp_ms,open,high,low,close\n1000,1.5,2.0,1.0,1.75\n2000,1.75,1.8,1.7,1.7\n\n")
    t = load_candles(p).to_ticks(market("0.5"))
    assert list(t.close) == [4, 3] and t.volume is None  # 1.75/0.5 = 3.5 rounds half-even to 4


def test_synthetic_candles_are_seeded_and_consistent():
    rules = market("0.01")
    a = synthetic_candles(7, D("100"), 0.01, 500, 60_000, 1_000_000, rules)
    b = synthetic_candles(7, D("100"), 0.01, 500, 60_000, 1_000_000, rules)
    c = synthetic_candles(8, D("100"), 0.01, 500, 60_000, 1_000_000, rules)
    assert all((getattr(a, f) == getattr(b, f)).all() for f in ("ts", "open", "high", "low", "close"))
    assert not (a.close == c.close).all()
    assert a.open[0] == 10000 and (a.open[1:] == a.close[:-1]).all()
    assert (a.low <= np.minimum(a.open, a.close)).all() and (a.high >= np.maximum(a.open, a.close)).all()
    assert a.ts[1] - a.ts[0] == 60_000 and a.ts.dtype == np.int64


@needs_data
def test_replaying_real_candles_through_the_exchange_keeps_the_book_consistent():
    """A small grid over the SOL 1m file: every fill is at its order's price and inside its candle."""
    t = load_candles(CANDLES / "gridtradingbot_SOLUSDT_1m.csv").to_ticks(market("0.01", "0.01"))
    s = SimExchange(market("0.01", "0.01"), D("10000"), 5, price=int(t.open[0]))
    start = int(t.open[0])
    prices = {}
    for k in range(1, 6):
        for cid, side, px in ((f"b{k}", "buy", start - 50 * k), (f"s{k}", "sell", start + 50 * k)):
            s.place(0, cid, side, 100, px)
            prices[cid] = px
    n = 0
    for i in range(len(t)):
        for target in SimExchange.candle_path(t.open[i], t.high[i], t.low[i], t.close[i]):
            while fills := s.sweep(int(t.ts[i]), int(target)):
                for f in fills:
                    n += 1
                    assert f.price == prices[f.client_id] and t.low[i] <= f.price <= t.high[i]
                    cid = f"{f.client_id}+"  # put a fresh order back one step away on the other side
                    px = f.price + 50 if f.side.value == "buy" else f.price - 50
                    s.place(int(t.ts[i]), cid, f.side.opposite, f.qty, px)
                    prices[cid] = px
                    prices.pop(f.client_id)
            lo, hi = s.band()
            assert lo < s.price < hi
    assert n > 20


# -- synthetic feeds as a paper account configures them (volatility is a Decimal there) --------
@pytest.mark.parametrize("symbol, price", [("SOL/USDT:USDT", D("152.347")), ("BTC/USDT:USDT", D("64123.45"))])
def test_synthetic_candles_with_config_decimals_land_on_the_binance_tick_grid(symbol, price):
    from gridctl.markets import load_snapshot

    rules = load_snapshot("binanceusdm")[symbol]
    a = synthetic_candles(7, price, D("0.0008"), 2000, 60_000, 0, rules)
    b = synthetic_candles(7, price, D("0.0008"), 2000, 60_000, 0, rules)
    for f in ("open", "high", "low", "close"):
        ticks = getattr(a, f)
        assert ticks.dtype == np.int64 and (ticks > 0).all()
        assert (ticks == getattr(b, f)).all()  # deterministic for a seed
        # each tick count is an exact price on the venue's grid
        assert all(rules.is_on_tick(rules.price(int(t))) for t in ticks[:50])
    # the walk starts at the configured price, rounded to the nearest tick
    assert a.open[0] == rules.price_to_ticks(price)
    assert (a.open[1:] == a.close[:-1]).all()
    assert (a.low <= np.minimum(a.open, a.close)).all() and (a.high >= np.maximum(a.open, a.close)).all()


def test_the_paper_candle_feed_of_a_synthetic_account_yields_candles():
    """The worker's path: CandleFeed(account, rules).next() for `feed: {synthetic: {seed, price}}`."""
    from gridctl.config.model import AccountConfig, FeedConfig
    from gridctl.exchange.paper import CandleFeed
    from gridctl.markets import load_snapshot

    rules = load_snapshot("binanceusdm")["SOL/USDT:USDT"]
    acct = AccountConfig(name="p", exchange="paper", like="binanceusdm", balance=D("1000"),
                         feed=FeedConfig(synthetic_seed=3, synthetic_price=D("150.00")))
    feed = CandleFeed(acct, rules)
    assert feed.first_price() == 15000
    seen = [feed.next() for _ in range(5)]
    assert [ts for ts, _ in seen] == [0, 60_000, 120_000, 180_000, 240_000]
    o, h, l, c = seen[0][1]
    assert o == 15000 and l <= min(o, c) and h >= max(o, c)
    assert all(isinstance(x, int) for _, ohlc in seen for x in ohlc)
    # the same seed gives the same path after a restart from saved state
    again = CandleFeed(acct, rules)
    assert [again.next() for _ in range(5)] == seen
