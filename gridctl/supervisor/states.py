"""Worker states and the restart policy (after supervisord).

The reserved exit codes live in gridctl.process.exits: the worker sets them too.
"""

from __future__ import annotations

import enum


class WorkerState(str, enum.Enum):
    """What the supervisor knows about one strategy's process."""

    STARTING = "starting"   # forked; its control socket does not answer yet
    RUNNING = "running"
    PAUSED = "paused"       # alive, keeps orders and position, places nothing new
    BACKOFF = "backoff"     # crashed; waiting before the next restart
    STOPPING = "stopping"   # asked to stop; waiting for it to exit
    STOPPED = "stopped"     # stopped on request
    EXITED = "exited"       # ended on its own (exit 0, e.g. a stop-loss) or refused to run twice
    FATAL = "fatal"         # will not be restarted until `gridctl start NAME`

    @property
    def alive(self) -> bool:
        """Whether a process is expected to exist in this state."""
        return self in (WorkerState.STARTING, WorkerState.RUNNING, WorkerState.PAUSED, WorkerState.STOPPING)


class RestartPolicy:
    """Exponential back-off and crash-loop detection.

    A crash within `window` seconds of the process start counts towards a crash
    loop; more than `max_crashes` of them in a row make the worker fatal. A run
    that lasted longer than `window` resets the count (and the back-off).
    """

    def __init__(self, base: float = 1.0, cap: float = 60.0, window: float = 60.0, max_crashes: int = 5):
        self.base, self.cap, self.window, self.max_crashes = base, cap, window, max_crashes

    def next_count(self, previous: int, run_seconds: float) -> int:
        """The consecutive-crash count after a crash of a run that lasted run_seconds."""
        return previous + 1 if run_seconds < self.window else 1

    def is_loop(self, count: int) -> bool:
        """Whether `count` consecutive quick crashes make a crash loop."""
        return count > self.max_crashes

    def delay(self, count: int) -> float:
        """Seconds to wait before restart number `count` (1, 2, 4, ... capped)."""
        return min(self.base * (2 ** max(count - 1, 0)), self.cap)
