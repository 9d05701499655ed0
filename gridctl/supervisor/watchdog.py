"""The supervisor's self-protection: its control socket comes back, a hung worker is aborted.

A mixin of Arbiter (as Operations is), called from the arbiter's tick: the control
socket file is checked every SOCKET_CHECK seconds and re-bound when deleted or
replaced; a worker whose heartbeat file (gridctl.process.heartbeat) is older than
the heartbeat timeout gets SIGABRT, then SIGKILL, and is restarted by the usual policy.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import TYPE_CHECKING

from gridctl.control.server import serve_control
from gridctl.process.heartbeat import last_beat
from gridctl.supervisor.commands import SupervisorCommands
from gridctl.supervisor.states import WorkerState

if TYPE_CHECKING:
    from gridctl.supervisor.arbiter import Arbiter, Worker

log = logging.getLogger("gridctl.supervisor")

SOCKET_CHECK = 1.0  # how often the supervisor checks that its control socket file is still its own


class Watchdog:
    """Socket and heartbeat watching; `self` is the Arbiter."""

    # ---- control socket ---------------------------------------------------------------------
    async def _bind(self: "Arbiter") -> None:
        """Serve the control socket and remember which file is ours."""
        self.server = await serve_control(self.paths.socket, SupervisorCommands(self))
        st = os.stat(self.paths.socket)
        self.socket_id = (st.st_dev, st.st_ino)

    def _socket_lost(self: "Arbiter") -> bool:
        """Whether the socket file we bound is gone or replaced (nobody could reach us there)."""
        try:
            st = os.stat(self.paths.socket)
        except FileNotFoundError:
            return True
        except OSError:
            return False
        return (st.st_dev, st.st_ino) != self.socket_id

    async def _rebind(self: "Arbiter") -> None:
        """Recreate a deleted control socket: without it every command would say 'not running'.

        Safe to replace whatever is at the path: we hold the state dir's supervisor lock.
        """
        old = self.server
        try:
            await self._bind()
        except OSError as exc:
            log.error("control socket %s is gone and cannot be recreated: %s", self.paths.socket, exc)
            return
        log.warning("control socket %s was deleted or replaced; recreated it", self.paths.socket)
        if old is not None:
            old.close()  # it listened on a file nobody can reach

    # ---- heartbeats ---------------------------------------------------------------------------
    def _check_heartbeat(self: "Arbiter", w: "Worker", now: float) -> None:
        """Abort (SIGABRT, then SIGKILL) a running worker whose heartbeat is older than the timeout.

        SIGABRT first, as gunicorn does: the worker's faulthandler writes every thread's
        stack to its log, which shows where it hung. Its exit is a crash, so the usual
        restart policy (back-off, crash loop) restarts it.
        """
        if self.heartbeat_timeout <= 0 or not w.pid or self.shutting_down:
            return
        if w.aborted_at:
            if w.state.alive and now - w.aborted_at > self.kill_timeout:
                log.warning("%s (pid %d) did not end on SIGABRT within %g s; sending SIGKILL",
                            w.name, w.pid, self.kill_timeout)
                w.aborted_at = float("inf")  # once
                self.send_signal(w, signal.SIGKILL)
            return
        if w.state not in (WorkerState.RUNNING, WorkerState.PAUSED, WorkerState.STARTING):
            return
        beat = last_beat(self.paths.worker_heartbeat(w.name))
        if beat is None and w.adopted:
            return  # left by a gridctl that wrote no heartbeat: nothing to judge it by
        age = now - max(beat or 0.0, w.started_mono)  # both monotonic (see gridctl.process.heartbeat)
        if age <= self.heartbeat_timeout:
            return
        w.hung = f"no heartbeat for {age:.0f} s, timeout {self.heartbeat_timeout:g} s"
        w.aborted_at = now
        log.warning("%s (pid %d): %s; aborting it (SIGABRT)", w.name, w.pid, w.hung)
        self.send_signal(w, signal.SIGABRT)
