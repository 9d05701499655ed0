"""Does a mark or funding series cover the candles? One warning sentence per gap.

A backtest over candles the mark series does not reach values the position with a
stale mark (or the last price), and one over candles the funding series does not
reach pays no funding there. Neither is an error (partial data is common), but the
figures are not what they seem, so the user is told which file, what it covers and
what the candles cover.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

import numpy as np

DEFAULT_FUNDING_MS = 8 * 3_600_000  # the usual perpetual funding interval, for a one-row series


def when(ms: int) -> str:
    """Epoch ms as ``YYYY-MM-DD HH:MM`` (UTC)."""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")


def span(ms: int) -> str:
    """A duration in the largest unit that shows it as 2 or more (floored): '10 days',
    '47 hours', '119 minutes'; so '1 day' never stands for almost two."""
    for unit, size in (("day", 86_400_000), ("hour", 3_600_000), ("minute", 60_000)):
        if ms >= 2 * size:
            return f"{ms // size} {unit}s"
    if ms >= 60_000:
        return f"{ms // 60_000} minute"  # 1 minute .. 1 minute 59 s
    seconds = max(ms // 1000, 1)
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def _ranges(kind: str, ts: np.ndarray, first: int, last: int) -> str:
    return (f"({kind} series: {when(int(ts[0]))} to {when(int(ts[-1]))} UTC, "
            f"candles: {when(first)} to {when(last)} UTC)")


def mark_warnings(name: str, ts: np.ndarray, step_ms: int, first: int, last: int) -> list[str]:
    """Warnings for a mark series (row timestamps `ts`, one row per `step_ms`) against
    candles whose first and last timestamps are `first` and `last`.

    It should start at or before the first candle (before it, the last price stands in
    for the mark) and its last row should be at most one mark interval before the last
    candle (after that the last mark is reused for every candle).
    """
    out = []
    rng = _ranges("mark", ts, first, last)
    start, end = int(ts[0]), int(ts[-1])
    if start > first:
        out.append(f"mark series {name} starts {when(start)} UTC, {span(start - first)} after the candles "
                   f"({when(first)} UTC); the last price is used as the mark until then {rng}")
    if last - end > step_ms:
        out.append(f"mark series {name} ends {when(end)} UTC, {span(last - end)} before the candles "
                   f"({when(last)} UTC); the last mark is used from then on {rng}")
    return out


def funding_warnings(name: str, ts: np.ndarray, step_ms: int, first: int, last: int) -> list[str]:
    """Warnings for a funding series (one payment every `step_ms`) against candles from
    `first` to `last`: a series whose first payment is more than one interval after the
    first candle, or whose last is more than one interval before the last candle, leaves
    payments out of the backtest."""
    out = []
    rng = _ranges("funding", ts, first, last)
    start, end = int(ts[0]), int(ts[-1])
    if start - first > step_ms:
        out.append(f"funding series {name} starts {when(start)} UTC, {span(start - first)} after the candles "
                   f"({when(first)} UTC); no funding is paid before then {rng}")
    if last - end > step_ms:
        out.append(f"funding series {name} ends {when(end)} UTC, {span(last - end)} before the candles "
                   f"({when(last)} UTC); no funding is paid after it {rng}")
    return out


def window_warnings(name: str, interval_ms: int, first: int, window_end: int,
                    start_ms: Optional[int], end_ms: Optional[int]) -> list[str]:
    """Warnings when the candle file does not reach a requested --from / --to by at least
    one candle: the backtest then covers less time than was asked for."""
    out = []
    if start_ms is not None and first - start_ms >= interval_ms:
        out.append(f"candles {name} start {when(first)} UTC, {span(first - start_ms)} after the requested "
                   f"start ({when(start_ms)} UTC); the backtest begins there")
    if end_ms is not None and end_ms - window_end >= interval_ms:
        out.append(f"candles {name} end {when(window_end)} UTC, {span(end_ms - window_end)} before the requested "
                   f"end ({when(end_ms)} UTC); the backtest stops there")
    return out
