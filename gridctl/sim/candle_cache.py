"""A binary copy of a candles CSV in ticks, beside the file: loading a year takes milliseconds.

``FILE.csv`` → ``FILE.csv.gridctl.npz`` (uncompressed numpy arrays ts, open, high, low,
close, int64, and a ``meta`` entry). The meta records what the copy was made from: the
source's size, modification time and a hash of its first and last 64 KiB, and the tick
the prices were rounded to; a copy whose meta does not match is ignored and rebuilt.
Only files of CACHE_MIN_BYTES or more are copied (a small file parses faster than a
copy is checked). Writing is atomic (a temporary file renamed over the old copy) and
best effort: a read-only folder, a full disk or GRIDCTL_DATA_CACHE=0 just means no copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from decimal import Decimal
from pathlib import Path
from typing import Any, Optional

import numpy as np

SUFFIX = ".gridctl.npz"
FORMAT = 1
CACHE_MIN_BYTES = 4 << 20
EDGE_BYTES = 64 << 10
COLUMNS = ("ts", "open", "high", "low", "close")


def cache_path(source: Path) -> Path:
    """Where the binary copy of `source` lives."""
    return source.with_name(source.name + SUFFIX)


def enabled() -> bool:
    """False when GRIDCTL_DATA_CACHE is 0 / off / no."""
    return os.environ.get("GRIDCTL_DATA_CACHE", "1").strip().lower() not in ("0", "off", "no", "false")


def fingerprint(source: Path) -> Optional[dict]:
    """What identifies the source's content (None: too small to cache, unreadable, or caching is off)."""
    if not enabled():
        return None
    try:
        st = source.stat()
        if st.st_size < CACHE_MIN_BYTES:
            return None
        with open(source, "rb") as fh:
            head = fh.read(EDGE_BYTES)
            fh.seek(max(st.st_size - EDGE_BYTES, 0))
            tail = fh.read(EDGE_BYTES)
    except OSError:
        return None
    return {"format": FORMAT, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "edges_sha256": hashlib.sha256(head + b"|" + tail).hexdigest()}


def read(source: Path, tick: Decimal, stamp: dict) -> Optional[list[np.ndarray]]:
    """The cached columns (ts, open, high, low, close) when the copy was made from this very
    file at this tick, else None."""
    path = cache_path(source)
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            if meta != {**stamp, "tick": str(tick)}:
                return None
            cols = [z[c] for c in COLUMNS]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # absent, truncated or foreign: not ours to trust
        return None
    if len({len(c) for c in cols}) != 1 or any(c.dtype != np.int64 for c in cols):
        return None
    return cols


def write(source: Path, tick: Decimal, stamp: dict, candles: Any) -> bool:
    """Save the copy of `candles` (a TickCandles) atomically; False when it could not be written or the source changed meanwhile."""
    if fingerprint(source) != stamp:
        return False
    meta = np.frombuffer(json.dumps({**stamp, "tick": str(tick)}).encode(), dtype=np.uint8)
    target = cache_path(source)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{source.name}.", suffix=".tmp", dir=source.parent)
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, meta=meta, **{c: getattr(candles, c) for c in COLUMNS})
        os.chmod(tmp, source.stat().st_mode & 0o666)  # readable by whoever may read the source
        os.replace(tmp, target)
        return True
    except OSError:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        return False
