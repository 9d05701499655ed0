"""Price sources for the simulator: CSV candles, mark candles, funding rates, synthetic paths.

CSV candles: header ``timestamp_ms,open,high,low,close,volume`` (volume may be
empty, as in mark-price files). Funding: ``timestamp_ms,rate``.

The live public-ticker source (ccxt, for the paper exchange on real machines) is
gridctl/exchange/live_feed.py: it talks to a venue, so it belongs in the exchange
layer; sim/ imports only gridctl.core.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np

from gridctl.core.market import MarketRules
from gridctl.sim import candle_cache

PathLike = Union[str, Path]


class DataError(ValueError):
    """A market-data file cannot be used; the message names the file (and line)."""


@dataclass(frozen=True)
class Candles:
    """Candles as read: ts int64 (epoch ms), prices float64, volume float64 (NaN if empty)."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    def to_ticks(self, rules: MarketRules) -> "TickCandles":
        """Prices rounded to the nearest tick (half-even, like MarketRules.price_to_ticks).

        The float noise of the real files (1.0854300000000001) disappears here. High
        and low are widened to contain open and close so the candle path stays inside
        the candle.
        """
        o, h, l, c = (_to_ticks(a, rules.tick) for a in (self.open, self.high, self.low, self.close))
        h = np.maximum(h, np.maximum(o, c))
        l = np.minimum(l, np.minimum(o, c))
        vol = None if np.isnan(self.volume).all() else self.volume
        return TickCandles(self.ts, o, h, l, c, vol)


@dataclass(frozen=True)
class TickCandles:
    """Candles on the tick grid: int64 arrays ts, open, high, low, close; volume optional."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.ts)

    def between(self, start_ms: Optional[int] = None, end_ms: Optional[int] = None) -> "TickCandles":
        """The candles with start_ms <= ts < end_ms (either bound optional)."""
        i = 0 if start_ms is None else int(np.searchsorted(self.ts, start_ms, side="left"))
        j = len(self.ts) if end_ms is None else int(np.searchsorted(self.ts, end_ms, side="left"))
        vol = None if self.volume is None else self.volume[i:j]
        return TickCandles(self.ts[i:j], self.open[i:j], self.high[i:j], self.low[i:j], self.close[i:j], vol)

    def mark_at(self, ts: int) -> Optional[int]:
        """Used as a mark series: the close of the latest candle with candle ts <= ts; None before the first."""
        i = int(np.searchsorted(self.ts, ts, side="right")) - 1
        return None if i < 0 else int(self.close[i])

    def marks_for(self, ts: np.ndarray) -> np.ndarray:
        """Vectorised mark_at(): int64 array, -1 where there is no mark yet."""
        idx = np.searchsorted(self.ts, ts, side="right") - 1
        out = np.where(idx >= 0, self.close[np.clip(idx, 0, None)], -1) if len(self.ts) else np.full(len(ts), -1)
        return out.astype(np.int64)


def _to_ticks(values: np.ndarray, tick: Decimal) -> np.ndarray:
    """Float prices → nearest int ticks; values within float noise of a half tick are
    decided exactly with Decimal from their shortest repr (which is the file's text)."""
    x = values / float(tick)
    ticks = np.rint(x)
    near_half = np.abs(np.abs(x - np.floor(x)) - 0.5) < 1e-6
    for i in np.flatnonzero(near_half):
        exact = Decimal(repr(float(values[i]))) / tick
        ticks[i] = float(exact.to_integral_value(rounding=ROUND_HALF_EVEN))
    return ticks.astype(np.int64)


def load_tick_candles(path: PathLike, rules: MarketRules, cache: bool = True) -> TickCandles:
    """A candles CSV straight to ticks in one pass: ``load_candles(path).to_ticks(rules)``
    without volume, at a fraction of the time and memory (int64 ts + OHLC, 40 bytes a candle).

    The file is parsed in blocks, each turned into ticks before the next is read. Any
    row the fast path does not take as it is (a parse error, a duplicate, a price that is
    not positive, a column layout it does not expect) hands the file to `load_candles`,
    so errors and odd-but-accepted files behave exactly as there. With `cache`, a binary
    copy beside a large file (gridctl.sim.candle_cache) is used when it is still the
    file's, and written after a parse; it is never required.
    """
    path = Path(path)
    stamp = candle_cache.fingerprint(path) if cache else None
    if stamp is not None:
        hit = candle_cache.read(path, rules.tick, stamp)
        if hit is not None:
            return TickCandles(*hit)
    out = _parse_ticks(path, rules)
    if out is None:  # the careful reader decides: an error naming the line, or a file it accepts
        full = load_candles(path).to_ticks(rules)
        out = TickCandles(full.ts, full.open, full.high, full.low, full.close)
    elif stamp is not None:
        candle_cache.write(path, rules.tick, stamp, out)
    return out


_BLOCK = 1 << 20  # bytes parsed at a time: bounds the text and float copies held at once (~5 MB)
_FIELDS = ("ts", "open", "high", "low", "close", "volume")
_HEADER = ["timestamp_ms", *_FIELDS[1:]]


def _parse_ticks(path: Path, rules: MarketRules) -> Optional[TickCandles]:
    """The fast path of load_tick_candles; None when the file needs the careful reader."""
    try:
        with open(path, "rb") as fh:
            header = fh.readline().decode("utf-8", "replace").strip()
            cols = [c.strip().lower() for c in header.split(",")]
            if cols not in (_HEADER, _HEADER[:5]):
                return None
            dtype = np.dtype([(f, np.int64 if f == "ts" else np.float64) for f in _FIELDS[:len(cols)]])
            start = fh.tell()
            rows = sum(block.count(b"\n") for block in iter(lambda: fh.read(_BLOCK), b"")) + 1
            fh.seek(start)
            ts, o, h, lo, c = (np.empty(rows, dtype=np.int64) for _ in range(5))
            n, rest = 0, b""
            while True:
                block = fh.read(_BLOCK)
                text = rest + block
                cut = text.rfind(b"\n") + 1 if block else len(text)
                text, rest = text[:cut], text[cut:]
                if text.strip():
                    m = _parse_block(text, dtype, rules.tick, (ts, o, h, lo, c), n)
                    if m is None:
                        return None
                    n += m
                if not block:
                    break
    except OSError:
        return None  # the careful reader names the problem
    if n == 0 or (np.diff(ts[:n]) <= 0).any():
        return None
    return TickCandles(ts[:n], o[:n], h[:n], lo[:n], c[:n])


def _parse_block(text: bytes, dtype: np.dtype, tick: Decimal, out: tuple, at: int) -> Optional[int]:
    """Parse whole lines into `out` (ts, open, high, low, close) from row `at`; the rows
    written, or None when the block is not plain well-formed candles."""
    if b"\r" in text:
        text = text.replace(b"\r\n", b"\n")
    if not text.endswith(b"\n"):
        text += b"\n"
    if b",\n" in text:  # an empty volume (mark files)
        text = text.replace(b",\n", b",nan\n")
    try:
        rec = np.loadtxt(io.BytesIO(text), delimiter=",", dtype=dtype, ndmin=1, encoding=None, quotechar=None,
                         comments="#" if b"#" in text else None)
    except ValueError:
        return None
    m = len(rec)
    if at + m > len(out[0]):  # more rows than newlines counted: the file changed under us
        return None
    px = [rec[f] for f in _FIELDS[1:5]]
    if any(not (np.isfinite(p).all() and (p > 0).all()) for p in px):
        return None
    ts, t_o, t_h, t_l, t_c = out
    ts[at:at + m] = rec["ts"]
    for dest, p in zip((t_o, t_h, t_l, t_c), px):
        dest[at:at + m] = _to_ticks(p, tick)
    # as Candles.to_ticks: the candle's path stays inside the candle
    w = slice(at, at + m)
    np.maximum(t_h[w], np.maximum(t_o[w], t_c[w]), out=t_h[w])
    np.minimum(t_l[w], np.minimum(t_o[w], t_c[w]), out=t_l[w])
    return m


def load_candles(path: PathLike) -> Candles:
    """Read a ``timestamp_ms,open,high,low,close,volume`` CSV (empty volume allowed).

    Raises DataError for a missing file, a wrong header, an unparsable row,
    a duplicate timestamp or timestamps that do not strictly increase; the
    message names the file and its line.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from None
    text = text.replace("\r\n", "\n")
    header, _, body = text.partition("\n")
    body = body.strip("\n") + "\n" if body.strip() else ""
    cols = [c.strip().lower() for c in header.strip().split(",")]
    if cols[:5] != ["timestamp_ms", "open", "high", "low", "close"]:
        # what the line holds is not quoted (nor anywhere below): a mistyped path may name a
        # file of keys or passwords, and errors end up in logs and terminals (issue 9)
        raise DataError(f"{path}:1: expected header timestamp_ms,open,high,low,close,volume; the first line "
                        f"is not that ({_fields(header)}; its text is not shown)")
    if len(cols) == 5:  # no volume column at all
        body = body.replace("\n", ",nan\n")
    # an empty last field (mark files) becomes NaN so numpy's fast C parser reads it
    body = body.replace(",\n", ",nan\n")
    try:
        ts = np.loadtxt(io.StringIO(body), delimiter=",", usecols=0, dtype=np.int64, ndmin=1)
        px = np.loadtxt(io.StringIO(body), delimiter=",", usecols=(1, 2, 3, 4, 5), dtype=np.float64, ndmin=2)
    except ValueError as e:
        raise DataError(f"{path}{_locate(text, e)}") from None
    if len(ts) == 0:
        raise DataError(f"{path}: no candles")
    _check_increasing(path, ts, lambda: _row_lines(text))
    if not np.isfinite(px[:, :4]).all() or (px[:, :4] <= 0).any():
        row = int(np.flatnonzero(~np.isfinite(px[:, :4]).all(axis=1) | (px[:, :4] <= 0).any(axis=1))[0])
        raise DataError(f"{path}:{_row_lines(text)[row]}: prices must be positive numbers")
    return Candles(ts, px[:, 0].copy(), px[:, 1].copy(), px[:, 2].copy(), px[:, 3].copy(), px[:, 4].copy())


def _row_lines(text: str) -> list[int]:
    """The file line number of each data row, as numpy's reader counts rows (it skips
    blank lines and ``#`` comments), so errors point at the line the user sees."""
    return [n for n, line in enumerate(text.split("\n")[1:], start=2)
            if line.strip() and not line.lstrip().startswith("#")]


def _check_increasing(path: Path, ts: np.ndarray, lines: Callable[[], list[int]]) -> None:
    """DataError at the first row whose timestamp repeats or goes back in time.

    A duplicate is named as such (two rows for one time: which is right is not ours to
    guess); `lines` maps rows to file lines and is only called on an error.
    """
    bad = np.flatnonzero(np.diff(ts) <= 0)
    if not len(bad):
        return
    i = int(bad[0])
    where = lines()
    if ts[i] == ts[i + 1]:
        raise DataError(f"{path}:{where[i + 1]}: duplicate timestamp {ts[i + 1]} (also on line {where[i]})")
    raise DataError(f"{path}:{where[i + 1]}: timestamps must increase ({ts[i]} then {ts[i + 1]})")


def _fields(line: str) -> str:
    """How many comma-separated fields a line has, in words (its text is never quoted)."""
    n = len(line.split(","))
    return f"it has {n} field{'s' if n != 1 else ''}"


_CANDLE_FIELDS = ("timestamp_ms", "open", "high", "low", "close", "volume")


def _locate(text: str, err: ValueError) -> str:
    """numpy's parse error as the file line and field, where we can tell them (numpy's own
    message quotes the text, so it is never passed on)."""
    for n, line in enumerate(text.split("\n")[1:], start=2):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split(",")
        if len(parts) < 5:
            return f":{n}: expected 6 fields (timestamp_ms,open,high,low,close,volume), {_fields(line)}"
        for k, value in enumerate(parts[:6]):
            try:
                int(value) if k == 0 else float(value)
            except ValueError:
                what = "a whole number" if k == 0 else "a number"
                return f":{n}: field {k + 1} ({_CANDLE_FIELDS[k]}) is not {what}"
    return ": the rows are not timestamp_ms,open,high,low,close,volume numbers"


def load_funding(path: PathLike) -> tuple[np.ndarray, list[Decimal]]:
    """Read a ``timestamp_ms,rate`` CSV: (int64 timestamps, rates as Decimal from the text).

    Checked like candles: header, parsable rows, finite rates, strictly increasing
    timestamps (a duplicate is named as one) and at least one row; errors name the
    file and line.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from None
    if not lines or [c.strip().lower() for c in lines[0].split(",")][:2] != ["timestamp_ms", "rate"]:
        raise DataError(f"{path}:1: expected header timestamp_ms,rate")
    ts: list[int] = []
    rates: list[Decimal] = []
    where: list[int] = []
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split(",")
        try:
            t, r = int(parts[0]), Decimal(parts[1].strip())
        except (IndexError, ValueError, InvalidOperation):
            raise DataError(f"{path}:{n}: expected timestamp_ms,rate (a whole number and a number), "
                            f"{_fields(line)}; its text is not shown") from None
        if not r.is_finite():
            raise DataError(f"{path}:{n}: the rate must be a finite number")
        ts.append(t)
        rates.append(r)
        where.append(n)
    if not ts:
        raise DataError(f"{path}: no funding rates")
    out = np.array(ts, dtype=np.int64)
    _check_increasing(path, out, lambda: where)
    return out, rates


def funding_candle_index(candle_ts: np.ndarray, funding_ts: np.ndarray) -> np.ndarray:
    """For each funding time, the index of the first candle with ts >= it (len(candle_ts) = never)."""
    return np.searchsorted(candle_ts, funding_ts, side="left")


def synthetic_candles(seed: int, price: Union[Decimal, float, int], volatility: Union[Decimal, float],
                      n: int, interval_ms: int, start_ts: int, rules: MarketRules, substeps: int = 8) -> TickCandles:
    """A seeded geometric random walk as candles on the tick grid (deterministic per seed).

    `price` (the configured Decimal) is rounded to the nearest tick exactly and the walk
    starts there; every price after it is a whole number of ticks (at least 1).
    `volatility` is the standard deviation of the log return per candle (a Decimal from
    the config, or a float); each candle is built from `substeps` sub-moves so high/low
    differ from open/close.
    """
    if n <= 0:
        raise ValueError("n must be positive")
    start = rules.price_to_ticks(Decimal(str(price)))
    if start < 1:
        raise ValueError(f"synthetic price {price} is below one tick ({rules.tick})")
    # the config holds Decimals; the random walk itself is float maths in tick units,
    # rounded back onto the integer tick grid below
    sigma = float(volatility) / float(np.sqrt(substeps))
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, sigma, size=(n, substeps))
    logp = np.log(float(start)) + np.concatenate([[0.0], np.cumsum(steps.ravel())])
    path = np.maximum(np.rint(np.exp(logp)), 1).astype(np.int64)
    path[0] = start  # exp(log(x)) may be off by an ulp; the open is the configured price exactly
    # candle k spans path[k*substeps .. (k+1)*substeps]: it opens at the previous close
    idx = np.arange(n) * substeps
    window = np.lib.stride_tricks.sliding_window_view(path, substeps + 1)[idx]
    ts = start_ts + np.arange(n, dtype=np.int64) * interval_ms
    return TickCandles(ts, window[:, 0].copy(), window.max(axis=1), window.min(axis=1), window[:, -1].copy())
