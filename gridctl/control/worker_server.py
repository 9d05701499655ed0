"""The control socket each worker serves at `<state_dir>/run/<name>.sock`.

The worker's own event loop runs it, so the supervisor (or a new supervisor that
adopted the worker after a crash) reaches the worker directly. Requests:

    {"cmd": "status"}                               -> {"ok": true, "status": {...}}
    {"cmd": "pause"} / {"cmd": "resume"}            -> {"ok": true, ...handler's dict}
    {"cmd": "stop", "args": {"keep_position": b}}   -> {"ok": true, ...}; the worker then exits 0
    {"cmd": "emergency_close"}                      -> {"ok": true, ...}; the worker then exits 0
    {"cmd": "apply_risk", "args": {"settings": {...}, "config_hash": h, "changes": [...]}}
        -> {"ok": true, "message": ..., "applied_ts": ms}; risk keys and max_position at once, grid kept
    {"cmd": "events", "args": {"n": 50, "follow": true}}
        -> {"ok": true, "stream": true}, the last n events, then live events, one per line
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Optional, Protocol

from gridctl.control.protocol import encode, error, serve_requests

log = logging.getLogger(__name__)


class WorkerHandler(Protocol):
    """What a worker exposes to the supervisor. Dicts must be JSON-serialisable."""

    async def pause(self) -> dict: ...

    async def resume(self) -> dict: ...

    async def stop(self, keep_position: bool) -> dict:
        """Cancel orders, flatten (unless keep_position) and then exit the process with 0."""

    async def emergency_close(self) -> dict:
        """Cancel everything and close the position at market at once, then exit with 0."""

    async def apply_risk(self, args: dict) -> dict:
        """Apply changed risk settings (gridctl.config.live_change.live_settings) without touching the grid."""

    def status(self) -> dict:
        """Must contain "paused": bool; everything else is shown as is by `status`."""

    def recent_events(self, n: int) -> list[dict]: ...

    def subscribe(self) -> "asyncio.Queue[dict]": ...

    def unsubscribe(self, q: "asyncio.Queue[dict]") -> None: ...


async def serve_worker(path: Path, handler: WorkerHandler) -> asyncio.AbstractServer:
    """Start serving `handler` on the Unix socket `path` (mode 0600, same-uid peers only).

    Call it after taking the PID-file lock: it replaces any socket file left at path.
    """

    async def answer(cmd: str, args: dict, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> Optional[dict]:
        if cmd == "events":
            await _stream_events(handler, args, reader, writer)
            return None
        return await _dispatch(handler, cmd, args)

    return await serve_requests(path, answer, "permission denied: not the owner of this worker")


async def _dispatch(handler: WorkerHandler, cmd: str, args: dict) -> dict:
    try:
        if cmd == "status":
            return {"ok": True, "status": handler.status()}
        if cmd == "pause":
            result = await handler.pause()
        elif cmd == "resume":
            result = await handler.resume()
        elif cmd == "stop":
            result = await handler.stop(bool(args.get("keep_position", False)))
        elif cmd == "emergency_close":
            result = await handler.emergency_close()
        elif cmd == "apply_risk":
            result = await handler.apply_risk(args)
        else:
            return error(f"unknown command {cmd!r}")
    except Exception as exc:  # the worker keeps serving; the caller sees what went wrong
        log.exception("control command %s failed", cmd)
        return error(f"{cmd} failed: {exc}")
    return {"ok": True, **(result or {})}


async def _stream_events(handler: WorkerHandler, args: dict, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
    q = handler.subscribe() if args.get("follow", True) else None
    try:
        writer.write(encode({"ok": True, "stream": True}))
        n = int(args.get("n", 50))
        for ev in handler.recent_events(n) if n > 0 else ():  # n=0: live events only ([-0:] is all)
            writer.write(encode(ev))
        await writer.drain()
        if q is None:
            return
        closed = asyncio.ensure_future(reader.read(1))  # EOF from the client ends the stream
        while True:
            get = asyncio.ensure_future(q.get())
            done, _ = await asyncio.wait({get, closed}, return_when=asyncio.FIRST_COMPLETED)
            if closed in done:
                get.cancel()
                return
            writer.write(encode(get.result()))
            await writer.drain()
    finally:
        if q is not None:
            handler.unsubscribe(q)
