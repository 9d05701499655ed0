"""The supervisor's control socket `<state_dir>/gridctl.sock` (asyncio)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import AsyncIterator, Optional, Protocol

from gridctl.control.protocol import encode, error, serve_requests

log = logging.getLogger(__name__)


class Commands(Protocol):
    """What the supervisor offers: one coroutine per command, plus streams."""

    async def handle(self, cmd: str, args: dict) -> dict:
        """Answer one request ({"ok": ...}); raise CommandError for a user-facing failure."""

    def stream(self, cmd: str, args: dict) -> "AsyncIterator[dict] | None":
        """An async iterator of messages for a streaming command, None for a plain one."""


class CommandError(Exception):
    """A request that cannot be done; its message goes back to the user as is."""


async def serve_control(path: Path, commands: Commands) -> asyncio.AbstractServer:
    """Serve `commands` on `path` (0600; peers must be our uid or root)."""

    async def answer(cmd: str, args: dict, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> Optional[dict]:
        it = commands.stream(cmd, args)
        if it is not None:
            await _pump(it, reader, writer)
            return None
        try:
            return await commands.handle(cmd, args)
        except CommandError as exc:
            return error(str(exc))
        except Exception as exc:  # a bug must not kill the supervisor
            log.exception("control command %s failed", cmd)
            return error(f"internal error in '{cmd}': {exc}; see the supervisor log")

    return await serve_requests(path, answer, "permission denied: only the supervisor's user may control it")


async def _pump(it: AsyncIterator[dict], reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Forward a stream until it ends or the client hangs up."""
    closed = asyncio.ensure_future(reader.read(1))
    try:
        writer.write(encode({"ok": True, "stream": True}))
        await writer.drain()
        while True:
            nxt = asyncio.ensure_future(it.__anext__())
            done, _ = await asyncio.wait({nxt, closed}, return_when=asyncio.FIRST_COMPLETED)
            if nxt not in done:
                nxt.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await nxt  # let the generator unwind before aclose()
                return
            try:
                msg = nxt.result()
            except StopAsyncIteration:
                return
            writer.write(encode(msg))
            await writer.drain()
    finally:
        closed.cancel()
        aclose = getattr(it, "aclose", None)
        if aclose is not None:
            await aclose()
