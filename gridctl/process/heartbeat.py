"""A worker's heartbeat file `run/<name>.heartbeat` (gunicorn's pattern).

The worker touches it from its loop; the supervisor reads its age and aborts a
worker that has not touched it for the heartbeat timeout (a hung loop: a blocked
event loop, a deadlock, an await that never returns). A file's mtime rather than
a message on the socket: it costs the worker one utime() a second and needs
nothing from it that a hang could block.

As in gunicorn, the file's mtime is set to the system's monotonic clock, not the
wall clock: a clock step (NTP, a VM resumed) must not make every worker look hung.
CLOCK_MONOTONIC is the same for every process of the host.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional

DEFAULT_TIMEOUT = 60.0   # seconds without a beat before the supervisor aborts a worker (0: never)
MIN_INTERVAL = 1.0       # a worker touches the file at most this often


class Heartbeat:
    """The worker's side: `beat()` touches the file (at most once per MIN_INTERVAL)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._last = float("-inf")

    def beat(self) -> None:
        """Tell the supervisor this process is alive and its loop turns."""
        now = time.monotonic()
        if now - self._last < MIN_INTERVAL:
            return
        self._last = now
        try:
            if not self.path.exists():
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
            os.utime(self.path, (now, now))
        except OSError:
            pass  # a missing run dir must not stop trading; the supervisor will notice


def last_beat(path: Path) -> Optional[float]:
    """time.monotonic() of the last beat, None if the file does not exist."""
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None
