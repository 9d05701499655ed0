"""A stand-in for the real worker, for process tests of the supervisor.

It does what gridctl.worker.main.run_worker must do: hold the PID-file lock,
serve `run/<name>.sock`, and exit with the reserved codes. Behaviour by name:
`crash*` exits 1 at once, `badcfg*` exits 78, `badauth*` exits 77, `hang*` trades for
a second and then blocks its event loop for good (a hung worker); anything else
"trades": every 0.1 s it appends `tick N pid=P` to `<state_dir>/ticks/<name>.log`
unless paused, and emits a tick event.

Standalone (a second copy of a strategy): python fake_worker.py NAME STATE_DIR
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import sys
import time
from pathlib import Path

from gridctl.control.worker_server import serve_worker
from gridctl.process.heartbeat import Heartbeat
from gridctl.process.paths import StatePaths
from gridctl.process.pidfile import AlreadyRunning, acquire_worker_lock


class FakeHandler:
    def __init__(self, name: str, ticks: Path):
        self.name, self.ticks = name, ticks
        self.paused = False
        self.n = 0
        self.done = asyncio.Event()
        self.events: collections.deque[dict] = collections.deque(maxlen=200)
        self.queues: set[asyncio.Queue] = set()

    def note(self, text: str) -> None:
        with open(self.ticks, "a") as f:
            f.write(f"{text} pid={os.getpid()}\n")

    def emit(self, ev: dict) -> None:
        ev = {"ts": int(time.time() * 1000), "strategy": self.name, **ev}
        self.events.append(ev)
        for q in self.queues:
            q.put_nowait(ev)

    async def pause(self) -> dict:
        self.paused = True
        self.note("paused")
        return {"message": "orders kept"}

    async def resume(self) -> dict:
        self.paused = False
        self.note("resumed")
        return {}

    async def stop(self, keep_position: bool) -> dict:
        self.note(f"stop keep_position={keep_position}")
        asyncio.get_running_loop().call_later(0.05, self.done.set)
        return {"message": "position kept" if keep_position else "position closed"}

    async def emergency_close(self) -> dict:
        self.note("emergency_close")
        asyncio.get_running_loop().call_later(0.05, self.done.set)
        return {"message": "closed 0 at market"}

    def status(self) -> dict:
        return {"paused": self.paused, "ticks": self.n}

    def recent_events(self, n: int) -> list[dict]:
        return list(self.events)[-n:]

    def subscribe(self) -> asyncio.Queue:
        q: asyncio.Queue = asyncio.Queue()
        self.queues.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue) -> None:
        self.queues.discard(q)


async def _trade(name: str, state_dir: Path) -> int:
    ticks = state_dir / "ticks"
    ticks.mkdir(exist_ok=True)
    h = FakeHandler(name, ticks / f"{name}.log")
    server = await serve_worker(StatePaths(state_dir).worker_socket(name), h)
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, h.done.set)
    h.note("started")
    heart = Heartbeat(StatePaths(state_dir).worker_heartbeat(name))
    began = time.monotonic()
    while not h.done.is_set():
        if name.startswith("hang") and time.monotonic() - began > 1.0:
            h.note("hanging")
            time.sleep(3600)  # blocks the loop: no heartbeat, no socket, no SIGTERM handler
        heart.beat()
        if not h.paused:
            h.n += 1
            h.note(f"tick {h.n}")
            h.emit({"type": "tick", "n": h.n})
        try:
            await asyncio.wait_for(h.done.wait(), 0.1)
        except asyncio.TimeoutError:
            pass
    server.close()
    return 0


def run_worker(name: str, config_path: Path, state_dir: Path) -> int:
    """The worker entry the supervisor forks into (GRIDCTL_WORKER_MAIN=fake_worker:run_worker)."""
    acquire_worker_lock(state_dir, name)  # already held by the supervisor's child: a no-op
    if name.startswith("crash"):
        print(f"{name}: simulated crash", file=sys.stderr)
        return 1
    if name.startswith("badcfg"):
        print(f"{name}: grid lower must be below upper", file=sys.stderr)
        return 78
    if name.startswith("badauth"):
        print(f"{name}: exchange rejected the API key", file=sys.stderr)
        return 77
    return asyncio.run(_trade(name, Path(state_dir)))


if __name__ == "__main__":
    nm, sd = sys.argv[1], Path(sys.argv[2])
    try:
        acquire_worker_lock(sd, nm)
    except AlreadyRunning as exc:
        print(exc, file=sys.stderr)
        sys.exit(75)
    sys.exit(run_worker(nm, Path("-"), sd))
