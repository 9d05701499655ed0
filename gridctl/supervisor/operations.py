"""What the operator can ask of the supervisor: start, stop, pause, resume, emergency-close, shutdown.

A mixin of Arbiter (kept apart so each file stays readable). Every operation
returns a result dict {"name", "ok", "message", ...} that the CLI prints as is.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import TYPE_CHECKING, Optional

from gridctl.config.reader import did_you_mean
from gridctl.config.strategy import settings_hash
from gridctl.control.client import ControlError, NotRunning, worker_call
from gridctl.process.exits import EX_ALREADY_RUNNING
from gridctl.supervisor.states import WorkerState

if TYPE_CHECKING:
    from gridctl.supervisor.arbiter import Arbiter

log = logging.getLogger("gridctl.supervisor")

S = WorkerState


def _result(name: str, ok: bool, message: str, **extra) -> dict:
    return {"name": name, "ok": ok, "message": message, **extra}


class Operations:
    """Operations on workers; `self` is the Arbiter."""

    async def start_worker(self: "Arbiter", name: str) -> dict:
        """Start (or restart a stopped/failed) strategy; wait until it answers or fails."""
        if self.shutting_down:
            return _result(name, False, "the supervisor is shutting down")
        assert self.config is not None
        if name not in self.config.strategies:
            return _result(name, False, f"no strategy '{name}' in {self.config_path}"
                                        f"{did_you_mean(name, self.config.strategies)}")
        w = self.worker(name)
        if w.state == S.STOPPING:
            return _result(name, False, f"{name} is stopping; start it again once it has stopped")
        if w.state.alive:
            return _result(name, True, f"{name} is already running (pid {w.pid})", pid=w.pid, state=w.state.value)
        account = self.config.accounts.get(self.config.strategies[name].account)
        if account is not None and account.is_paper:  # its local venue first
            problem = await self.venues.ensure(account)
            if problem:
                return _result(name, False, f"{name} failed to start: {problem}", state=w.state.value)
        w.crashes = 0
        w.config_hash = settings_hash(self.config, name)
        w.running = self.settings_of(name)
        self._spawn(w)
        pid = w.pid
        await self.wait_for(lambda: w.state != S.STARTING or w.pid != pid, self.start_wait)
        if w.state in (S.RUNNING, S.PAUSED):
            return _result(name, True, f"started {name} (pid {pid})", pid=pid, state=w.state.value)
        if w.state == S.STARTING:
            return _result(name, True, f"starting {name} (pid {pid}); its socket does not answer yet",
                           pid=pid, state=w.state.value)
        if w.state == S.EXITED and w.last_exit.startswith(f"exit {EX_ALREADY_RUNNING}"):
            return _result(name, False, w.reason, state=w.state.value)
        return _result(name, False, f"{name} failed to start: {w.reason}", state=w.state.value)

    async def stop_worker(self: "Arbiter", name: str, keep_position: Optional[bool] = None,
                          emergency: bool = False) -> dict:
        """Ask the worker to stop (or emergency-close) and wait for it to exit; escalate if it hangs.

        keep_position None means as configured (the strategy's risk.on_stop).
        """
        w = self.workers.get(name)
        verb = "emergency-closed" if emergency else "stopped"
        if w is None or w.state in (S.STOPPED, S.EXITED, S.FATAL):
            if self.config and name not in self.config.strategies and w is None:
                return _result(name, False, f"no strategy '{name}'{did_you_mean(name, self.config.strategies)}",
                               unknown=True)
            if emergency:
                return _result(name, False, f"{name} is not running", not_running=True)
            return _result(name, True, f"{name} is not running ({w.state.value if w else 'stopped'})")
        if w.state == S.BACKOFF:
            self.set_state(w, S.STOPPED, "stopped while waiting to restart")
            return _result(name, True, f"{verb} {name} (it was waiting to restart)")
        if w.state == S.STOPPING:
            await self.wait_for(lambda: not w.state.alive, self.stop_timeout + 2 * self.kill_timeout)
            return _result(name, not w.state.alive, f"{name} {w.state.value}")
        if keep_position is None:
            strat = self.config.strategies.get(name) if self.config else None
            keep_position = bool(strat and strat.risk.on_stop == "keep")
        if w.state == S.STARTING:
            await self.wait_for(lambda: w.state != S.STARTING, self.start_wait)
            if not w.state.alive:
                return await self.stop_worker(name, keep_position, emergency)
        w.stop_requested = True
        pid = w.pid
        self.set_state(w, S.STOPPING, "emergency close requested" if emergency else "stop requested")
        reply: Optional[dict] = None
        try:
            if emergency:
                reply = await worker_call(self.paths.worker_socket(name), "emergency_close", timeout=self.stop_timeout)
            else:
                reply = await worker_call(self.paths.worker_socket(name), "stop", timeout=self.stop_timeout,
                                          keep_position=keep_position)
        except (NotRunning, ControlError, OSError) as exc:
            log.warning("%s did not take the %s request (%s); sending SIGTERM", name, verb, exc)
        forced = ""
        if reply is None:  # no answer: it may have died taking the request (then a successor finishes the stop)
            await self.wait_for(lambda: not w.state.alive or w.pid != pid, 1.0)
        done = (reply is not None or w.pid != pid) and \
            await self.wait_for(lambda: not w.state.alive or w.pid != pid, self.stop_timeout)
        while done and w.state == S.STOPPING and w.pid and w.pid != pid:  # killed mid-stop: its successor finishes
            pid = w.pid
            done = await self.wait_for(lambda: not w.state.alive or w.pid != pid, self.stop_timeout)
        if not done:
            w.forced = True
            forced = "SIGTERM"
            self.send_signal(w, signal.SIGTERM)
            if not await self.wait_for(lambda: not w.state.alive or w.pid != pid, self.kill_timeout):
                forced = "SIGKILL"
                self.send_signal(w, signal.SIGKILL)
                await self.wait_for(lambda: not w.state.alive or w.pid != pid, 5.0)
        detail = (reply or {}).get("message")
        msg = f"{verb} {name}"
        if not emergency:
            msg += " (position kept)" if keep_position else ""
        if detail:
            msg += f": {detail}"
        if forced:
            msg += f" (it did not exit when asked; sent {forced})"
        return _result(name, not w.state.alive, msg, state=w.state.value)

    async def _relay(self: "Arbiter", name: str, cmd: str) -> dict:
        w = self.workers.get(name)
        if w is None and self.config is not None and name not in self.config.strategies:
            return _result(name, False, f"no strategy '{name}'{did_you_mean(name, self.config.strategies)}",
                           unknown=True)
        if w is None or w.state not in (S.RUNNING, S.PAUSED):
            state = w.state.value if w else "stopped"
            return _result(name, False, f"{name} is not running ({state})")
        try:
            reply = await worker_call(self.paths.worker_socket(name), cmd, timeout=10.0)
        except (NotRunning, ControlError, OSError) as exc:
            return _result(name, False, f"{name} did not take '{cmd}': {exc}")
        if w.state in (S.RUNNING, S.PAUSED):
            self.set_state(w, S.PAUSED if cmd == "pause" else S.RUNNING, f"{cmd}d by operator")
        detail = reply.get("message")
        return _result(name, True, f"{cmd}d {name}" + (f": {detail}" if detail else ""))

    async def pause(self: "Arbiter", name: str) -> dict:
        """Keep orders and position; place nothing new."""
        return await self._relay(name, "pause")

    async def resume(self: "Arbiter", name: str) -> dict:
        """Continue without rebuilding the grid."""
        return await self._relay(name, "resume")

    async def emergency_close(self: "Arbiter", name: str) -> dict:
        """Cancel everything and close the position at market now; the worker then exits."""
        return await self.stop_worker(name, emergency=True)

    async def shutdown(self: "Arbiter") -> list[dict]:
        """Stop every strategy as configured, stop the reporter, then end the supervisor."""
        if self.shutting_down:
            await self.done.wait()
            return []
        self.shutting_down = True
        names = [w.name for w in self.workers.values() if w.state.alive or w.state == S.BACKOFF]
        results = list(await asyncio.gather(*(self.stop_worker(n) for n in names)))
        if self.reporter_pid:
            import os

            os.kill(self.reporter_pid, signal.SIGTERM)
            for _ in range(50):
                self.reap()
                if not self.reporter_pid:
                    break
                await asyncio.sleep(0.1)
        await self.venues.stop_all()  # after the workers: a stop's close trades on its venue
        # Let the caller's reply go out before the socket closes.
        asyncio.get_running_loop().call_later(0.2, self.done.set)
        return results
