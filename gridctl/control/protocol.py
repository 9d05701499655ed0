"""The wire format and the socket rules shared by every control endpoint.

One request per line: ``{"cmd": "pause", "args": {"names": ["sol-neutral"]}}``.
One response per line: ``{"ok": true, ...}`` or ``{"ok": false, "error": "message"}``.
A streaming command (``events``) answers ``{"ok": true, "stream": true}`` and then
sends one JSON object per line until either side closes the connection.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
from decimal import Decimal
from pathlib import Path
from typing import Any, Awaitable, Callable, Optional

# Replies can hold the status of 100+ workers; asyncio's 64 KiB default is too small.
LINE_LIMIT = 16 * 1024 * 1024
# Linux sun_path is 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107


class ProtocolError(Exception):
    """A malformed request or response."""


def _default(o: Any) -> Any:
    if isinstance(o, (Decimal, Path)):
        return str(o)
    if hasattr(o, "value"):
        return o.value
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def encode(obj: dict) -> bytes:
    """One message as a line of JSON (Decimals as strings: money is never a float)."""
    return (json.dumps(obj, default=_default, separators=(",", ":")) + "\n").encode()


def decode(line: bytes) -> dict:
    """Parse one line; ProtocolError unless it is a JSON object."""
    try:
        obj = json.loads(line)
    except ValueError as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("a message must be a JSON object")
    return obj


def request(cmd: str, **args: Any) -> dict:
    """A request message."""
    return {"cmd": cmd, "args": args}


def error(message: str) -> dict:
    """A failure response."""
    return {"ok": False, "error": message}


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a connected Unix socket (SO_PEERCRED)."""
    fmt = "3i"  # struct ucred: pid, uid, gid
    data = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize(fmt))
    return struct.unpack(fmt, data)[1]


def peer_allowed(sock: socket.socket) -> bool:
    """Only our own user (or root, who could read our files anyway) may control us."""
    try:
        uid = peer_uid(sock)
    except OSError:
        return False
    return uid in (os.getuid(), 0)


def check_socket_path(path: Path) -> None:
    """A clear error instead of a cryptic one when the state dir path is too long for a socket."""
    if len(os.fsencode(str(path))) > MAX_SOCKET_PATH:
        raise OSError(f"socket path too long ({len(str(path))} > {MAX_SOCKET_PATH} bytes): {path}; "
                      f"use a shorter --state-dir")


def listen_unix(path: Path, backlog: int = 64) -> socket.socket:
    """A listening socket at path with mode 0600 from the moment it exists.

    The caller must own the path (hold the supervisor or worker lock): a leftover
    socket file from a dead process is removed.
    """
    check_socket_path(path)
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # no window in which another user could connect
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


Answer = Callable[[str, dict, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[Optional[dict]]]


async def serve_requests(path: Path, answer: Answer, denied: str) -> asyncio.AbstractServer:
    """Serve newline-delimited JSON requests on the Unix socket `path` (0600, same uid or root).

    `answer(cmd, args, reader, writer)` returns the reply, or None when it took the
    connection over (a stream), which then ends. Peers of another uid get `denied`.
    """
    sock = listen_unix(Path(path))

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if not peer_allowed(writer.get_extra_info("socket")):
                writer.write(encode(error(denied)))
                await writer.drain()
                return
            while line := await reader.readline():
                try:
                    req = decode(line)
                    cmd, args = str(req.get("cmd", "")), req.get("args") or {}
                    if not isinstance(args, dict):
                        raise ProtocolError("args must be a JSON object")
                except ProtocolError as exc:
                    writer.write(encode(error(str(exc))))
                    await writer.drain()
                    continue
                reply = await answer(cmd, args, reader, writer)
                if reply is None:
                    return
                writer.write(encode(reply))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    return await asyncio.start_unix_server(on_client, sock=sock, limit=LINE_LIMIT)
