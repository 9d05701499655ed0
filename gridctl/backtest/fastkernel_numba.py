"""The compiled part of the fast mode: the skip-ahead search, jitted with numba.

Optional (``pip install 'gridctl[fast]'``); used when numba imports and
GRIDCTL_PURE_PYTHON is not set. The first use compiles it (a few seconds) and says
so on stderr; numba caches the machine code next to this file (or in
NUMBA_CACHE_DIR), so later runs load it in milliseconds.
"""

from __future__ import annotations

import os
from typing import Callable, Optional

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def first_reaching(low, high, start, stop, lo, hi):  # pragma: no cover - compiled
    """The first candle in [start, stop) whose low reaches lo or whose high reaches hi; stop if none."""
    for i in range(start, stop):
        if low[i] <= lo or high[i] >= hi:
            return i
    return stop


def cached() -> bool:
    """Whether a compiled copy is already on disk (a stale one is recompiled silently)."""
    try:
        return os.path.exists(first_reaching._cache._cache_file._index_path)
    except AttributeError:
        return False


def load(notify: Optional[Callable[[str], None]] = None) -> Callable:
    """The kernel, compiled (or loaded from the cache) now rather than inside a run."""
    if not cached() and notify is not None:
        notify("compiling the fast backtest kernel with numba (once; it is cached for later runs)")
    z = np.zeros(1, dtype=np.int64)
    first_reaching(z, z, 0, 1, 0, 0)
    return first_reaching
