"""The one-pass candle loader (load_tick_candles) and its binary copy beside the file.

It must give the ticks load_candles(...).to_ticks() gives, fail with exactly its messages,
hold at most 100 bytes a candle, and treat the cached copy as a hint: used only while the
CSV is unchanged, rebuilt when it changes, never required.
"""

from __future__ import annotations

import os
import tracemalloc
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from gridctl.core.market import MarketRules
from gridctl.sim import DataError, candle_cache, load_candles, load_tick_candles
from gridctl.sim import sources

from shared_data import needs_data, shared_data

D = Decimal
CANDLES = shared_data() / "candles"
BUNDLED = Path(__file__).resolve().parent.parent / "gridctl" / "data" / "candles"
HEADER = "timestamp_ms,open,high,low,close,volume\n"
COLS = ("ts", "open", "high", "low", "close")


def market(tick: str) -> MarketRules:
    return MarketRules(symbol="X/USDT:USDT", base="X", quote="USDT", tick=D(tick), step=D("0.001"),
                       min_qty=D("0.001"), min_notional=D("5"))


def same(a, b) -> bool:
    return all(getattr(a, c).dtype == np.int64 and np.array_equal(getattr(a, c), getattr(b, c)) for c in COLS)


def rows(n: int, t0: int = 1_700_000_000_000, step: int = 60_000) -> str:
    """n plausible candles around 100 with 2-decimal prices."""
    rng = np.random.default_rng(3)
    p = 100 + np.cumsum(rng.normal(0, 0.05, n))
    return "".join(f"{t0 + i * step},{p[i]:.2f},{p[i] + 0.07:.2f},{p[i] - 0.06:.2f},{p[i] + 0.01:.2f},{i % 7}.5\n"
                   for i in range(n))


@needs_data(CANDLES)
@pytest.mark.parametrize("name, tick", [
    ("nautilus-ftx_BTC-PERP_1m.csv", "1"), ("freqtrade_XRPUSDT-PERP_5m.csv", "0.0001"),
    ("freqtrade_XRPUSDT-PERP_1h_mark.csv", "0.0001"), ("freqtrade_XRPUSDT-PERP_8h_mark.csv", "0.0001"),
    ("gridtradingbot_SOLUSDT_1m.csv", "0.01"), ("backtestingpy_SOLUSDT_1h.csv", "0.01"),
    ("freqtrade_XRPUSDT-PERP_1h.csv", "0.0001"),
])
def test_the_real_files_load_to_the_same_ticks_as_the_careful_reader(name, tick, monkeypatch):
    monkeypatch.setattr(sources, "load_candles", _no_fallback)  # the fast path itself, no hand-over
    got = load_tick_candles(CANDLES / name, market(tick), cache=False)
    assert same(got, load_candles(CANDLES / name).to_ticks(market(tick))) and len(got) > 40


@pytest.mark.parametrize("name, tick", [("SOLUSDT_1m.csv", "0.01"), ("SOLUSDT_1h.csv", "0.01"),
                                        ("XRPUSDT_5m.csv", "0.0001")])
def test_the_bundled_files_load_to_the_same_ticks(name, tick):
    assert same(load_tick_candles(BUNDLED / name, market(tick)), load_candles(BUNDLED / name).to_ticks(market(tick)))


def _no_fallback(path):
    raise AssertionError(f"the fast path handed {path} to load_candles")


# files the fast path reads as they are, and files it hands to the careful reader: same result either way
ACCEPTED = {
    "crlf": HEADER.replace("\n", "\r\n") + "1000,1.5,2,1,1.75,3\r\n2000,1.75,1.8,1.7,1.7,4\r\n",
    "blank lines and no final newline": HEADER + "1000,1.5,2,1,1.75,3\n\n2000,1.75,1.8,1.7,1.7,4",
    "empty volume": HEADER + "1000,1.5,2,1,1.75,\n2000,1.75,1.8,1.7,1.7,\n",
    "no volume column": "timestamp_ms,open,high,low,close\n1000,1.5,2,1,1.75\n2000,1.75,1.8,1.7,1.7\n\n",
    "comment line": HEADER + "# exported 2024-08-01\n1000,1.5,2,1,1.75,3\n2000,1.75,1.8,1.7,1.7,4\n",
    "an extra column": "timestamp_ms,open,high,low,close,volume,trades\n1000,1.5,2,1,1.75,3,9\n2000,1.75,1.8,1.7,1.7,4,9\n",
    "high below open (widened)": HEADER + "1000,1.5,1.4,1,1.75,3\n2000,1.75,1.8,1.7,1.7,4\n",
}


@pytest.mark.parametrize("text", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_odd_but_valid_files_give_what_the_careful_reader_gives(tmp_path, text):
    p = tmp_path / "c.csv"
    p.write_bytes(text.encode())
    assert same(load_tick_candles(p, market("0.05")), load_candles(p).to_ticks(market("0.05")))


BROKEN = {
    "duplicate": (HEADER + "1000,1,1,1,1,1\n2000,1,1,1,1,1\n2000,1,1,1,1,1\n",
                  ":4: duplicate timestamp 2000 (also on line 3)"),
    "back in time after a blank line": (HEADER + "2000,1,1,1,1,1\n\n1000,1,1,1,1,1\n",
                                        ":4: timestamps must increase (2000 then 1000)"),
    # issue 9: a data file's text is never quoted (a mistyped path may name a file of keys)
    "not a number": (HEADER + "1000,1,1,1,1,1\n2000,x,1,1,1,1\n", ":3: field 2 (open) is not a number"),
    "fractional timestamp": (HEADER + "1000.5,1,1,1,1,1\n", ":2: field 1 (timestamp_ms) is not a whole number"),
    "too few fields": (HEADER + "1000,1,1,1,1,1\n2000,1,1\n",
                       ":3: expected 6 fields (timestamp_ms,open,high,low,close,volume), it has 3 fields"),
    "zero price": (HEADER + "1000,1,1,1,1,1\n2000,1,1,0,1,1\n", ":3: prices must be positive numbers"),
    "nan price": (HEADER + "1000,1,1,1,1,1\n2000,nan,1,1,1,1\n", ":3: prices must be positive numbers"),
    "wrong header": ("time,o,h,l,c\n1,2,3,1,2\n",
                     ":1: expected header timestamp_ms,open,high,low,close,volume; the first line is not that "
                     "(it has 5 fields; its text is not shown)"),
    "a file of keys": ("AWS_SECRET=CANARYx9\n1,2\n",
                       ":1: expected header timestamp_ms,open,high,low,close,volume; the first line is not that "
                       "(it has 1 field; its text is not shown)"),
    "no candles": (HEADER + "\n\n", ": no candles"),
}


@pytest.mark.parametrize("text, message", BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_file_fails_with_the_careful_readers_message(tmp_path, text, message):
    p = tmp_path / "c.csv"
    p.write_text(text)
    with pytest.raises(DataError) as exc:
        load_tick_candles(p, market("0.5"))
    assert str(exc.value) == f"{p}{message}"


def test_a_duplicate_far_into_a_large_file_names_its_line(tmp_path):
    body = rows(200_000)
    lines = body.splitlines(keepends=True)
    lines[150_000] = lines[149_999]  # the same candle twice, in the second or third block
    p = tmp_path / "c.csv"
    p.write_text(HEADER + "".join(lines))
    t = lines[149_999].split(",")[0]
    with pytest.raises(DataError) as exc:
        load_tick_candles(p, market("0.01"), cache=False)
    assert str(exc.value) == f"{p}:150002: duplicate timestamp {t} (also on line 150001)"


def test_a_missing_file_says_it_cannot_be_read(tmp_path):
    with pytest.raises(DataError, match=r"missing.csv: cannot read"):
        load_tick_candles(tmp_path / "missing.csv", market("0.01"))


def test_at_most_100_bytes_a_candle(tmp_path):
    n = 150_000  # about a quarter of a year of 1-minute candles
    p = tmp_path / "big.csv"
    p.write_text(HEADER + rows(n))
    tracemalloc.start()
    try:
        c = load_tick_candles(p, market("0.01"), cache=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(c) == n and peak / n <= 100, f"{peak / n:.0f} bytes a candle"


# -- the binary copy ------------------------------------------------------------------------------
@pytest.fixture
def big(tmp_path, monkeypatch):
    """A 3,000-candle CSV, with the cache threshold lowered so it gets a copy."""
    monkeypatch.setattr(candle_cache, "CACHE_MIN_BYTES", 1000)
    monkeypatch.delenv("GRIDCTL_DATA_CACHE", raising=False)
    p = tmp_path / "year.csv"
    p.write_text(HEADER + rows(3000))
    return p


def test_a_large_file_gets_a_copy_that_the_next_load_uses(big, monkeypatch):
    rules = market("0.01")
    first = load_tick_candles(big, rules)
    copy = candle_cache.cache_path(big)
    assert copy.name == "year.csv.gridctl.npz" and copy.is_file()
    assert [p.name for p in big.parent.iterdir() if p.name.endswith(".tmp")] == []  # no temporary left
    monkeypatch.setattr(sources, "_parse_ticks", lambda *a: pytest.fail("parsed again despite the copy"))
    assert same(load_tick_candles(big, rules), first)


def test_a_changed_csv_is_parsed_again_and_the_copy_rebuilt(big):
    rules = market("0.01")
    assert len(load_tick_candles(big, rules)) == 3000
    text = big.read_text().splitlines(keepends=True)
    big.write_text("".join(text[:-1]))  # one candle fewer: another size, another tail
    assert len(load_tick_candles(big, rules)) == 2999
    # same size and tail but a new modification time: still not trusted
    os.utime(big, ns=(0, 10**18))
    copy = candle_cache.cache_path(big)
    before = copy.stat().st_mtime_ns
    assert len(load_tick_candles(big, rules)) == 2999 and copy.stat().st_mtime_ns != before


def test_a_copy_made_at_another_tick_is_not_used(big):
    a = load_tick_candles(big, market("0.01"))
    b = load_tick_candles(big, market("0.05"))
    assert same(b, load_candles(big).to_ticks(market("0.05"))) and not same(a, b)


def test_a_corrupt_copy_is_ignored_and_replaced(big):
    rules = market("0.01")
    good = load_tick_candles(big, rules)
    copy = candle_cache.cache_path(big)
    copy.write_bytes(b"PK\x03\x04 not a zip at all")
    assert same(load_tick_candles(big, rules), good)
    assert copy.stat().st_size > 1000  # rewritten


def test_no_copy_when_switched_off_or_the_folder_is_read_only(big, monkeypatch):
    rules = market("0.01")
    monkeypatch.setenv("GRIDCTL_DATA_CACHE", "0")
    load_tick_candles(big, rules)
    assert not candle_cache.cache_path(big).exists()
    monkeypatch.delenv("GRIDCTL_DATA_CACHE")
    if os.geteuid() != 0:  # root writes anyway
        big.parent.chmod(0o555)
        try:
            assert len(load_tick_candles(big, rules)) == 3000
        finally:
            big.parent.chmod(0o755)
    monkeypatch.setattr(candle_cache.os, "replace", _disk_full)
    assert len(load_tick_candles(big, rules)) == 3000  # a failed write is not an error
    assert not candle_cache.cache_path(big).exists()
    assert [p.name for p in big.parent.iterdir()] == ["year.csv"]


def _disk_full(*a):
    raise OSError(28, "No space left on device")


def test_small_files_get_no_copy(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text(HEADER + rows(100))
    load_tick_candles(p, market("0.01"))
    assert [x.name for x in tmp_path.iterdir()] == ["c.csv"]
