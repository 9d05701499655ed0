"""The skip-ahead search of the fast mode: the first candle whose range reaches the band.

In numpy slices (growing chunks) by default; compiled with numba when asked
(gridctl/backtest/fastkernel_numba.py, ``pip install 'gridctl[fast]'``). Both find
the same candle.
"""

from __future__ import annotations

import os
import sys
from typing import Callable, Optional

import numpy as np

SEARCH_CHUNK = 64  # candles looked at first (then 4x more each time)


def first_reaching(low: np.ndarray, high: np.ndarray, start: int, stop: int, lo: int, hi: int) -> int:
    """The first candle in [start, stop) whose low reaches lo or whose high reaches hi; stop if none."""
    size = SEARCH_CHUNK
    while start < stop:
        end = min(stop, start + size)
        hit = (low[start:end] <= lo) | (high[start:end] >= hi)
        i = int(hit.argmax())
        if hit[i]:
            return start + i
        start = end
        size *= 4
    return stop


_KERNEL: list = []  # [the compiled search, or None] once decided


def _say(message: str) -> None:
    sys.stderr.write(f"gridctl: {message}\n")


def kernel(notify: Optional[Callable[[str], None]] = _say) -> Optional[Callable]:
    """The numba-compiled skip-ahead search, or None for the pure-Python core (numpy slices),
    which finds the same candles.

    GRIDCTL_KERNEL=numba uses it (numba installed: ``pip install 'gridctl[fast]'``),
    =python never; by default (auto) only in a process that has imported numba already:
    importing numba costs about a second, more than the kernel saves on a year of candles,
    so it pays in a process that runs many backtests (a sweep), not in one `gridctl backtest`.
    """
    if _KERNEL:
        return _KERNEL[0]
    mode = os.environ.get("GRIDCTL_KERNEL", "auto")
    if mode == "python" or (mode == "auto" and "numba" not in sys.modules):
        return None
    try:
        from gridctl.backtest import fastkernel_numba
    except ImportError:
        _KERNEL.append(None)
        return None
    _KERNEL.append(fastkernel_numba.load(notify))
    return _KERNEL[0]


def use_kernel(enabled: bool) -> Optional[Callable]:
    """Use the compiled search from now on in this process (when numba is installed), or not."""
    _KERNEL.clear()
    if not enabled:
        _KERNEL.append(None)
        return None
    try:
        from gridctl.backtest import fastkernel_numba
    except ImportError:
        _KERNEL.append(None)
        return None
    _KERNEL.append(fastkernel_numba.load(_say))
    return _KERNEL[0]
