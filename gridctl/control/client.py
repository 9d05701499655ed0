"""Clients of the control sockets: blocking (the CLI) and asyncio (the supervisor)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any, Iterator, Optional

from gridctl.control.protocol import LINE_LIMIT, ProtocolError, decode, encode, request
from gridctl.process.paths import StatePaths


class NotRunning(Exception):
    """Nobody listens on the socket (no supervisor, or a dead one's leftover file)."""


class ControlError(Exception):
    """The peer answered {"ok": false} or did not answer in time."""


class ControlClient:
    """Talks to the supervisor of one state dir over `<state_dir>/gridctl.sock`."""

    def __init__(self, state_dir: Path, timeout: float = 10.0):
        self.state_dir = Path(state_dir)
        self.path = StatePaths(self.state_dir).socket
        self.timeout = timeout

    def _connect(self, timeout: Optional[float]) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(str(self.path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            sock.close()
            raise NotRunning(f"no supervisor answers on {self.path}") from exc
        except OSError:
            sock.close()
            raise
        return sock

    def call(self, cmd: str, timeout: Optional[float] = None, **args: Any) -> dict:
        """Send one request and return the response.

        ControlError on {"ok": false, "error": ...} or silence; a per-strategy reply
        ({"ok": false, "results": [...]}) is returned for the caller to show.
        """
        sock = self._connect(self.timeout if timeout is None else timeout)
        try:
            sock.sendall(encode(request(cmd, **args)))
            with sock.makefile("rb") as f:
                line = f.readline(LINE_LIMIT)
        except socket.timeout:
            raise ControlError(f"the supervisor did not answer '{cmd}' within "
                               f"{self.timeout if timeout is None else timeout:g} s") from None
        finally:
            sock.close()
        # with "results", each result says whether it worked
        return _reply(line, cmd, "the supervisor", allow_results=True)

    def stream(self, cmd: str, **args: Any) -> Iterator[dict]:
        """Send a streaming request and yield each message after the header until EOF."""
        sock = self._connect(self.timeout)
        try:
            sock.sendall(encode(request(cmd, **args)))
            sock.settimeout(None)  # a quiet stream is not an error
            with sock.makefile("rb") as f:
                header = decode(f.readline(LINE_LIMIT) or b"{}")
                if not header.get("ok"):
                    raise ControlError(header.get("error") or f"'{cmd}' failed")
                for line in f:
                    yield decode(line)
        finally:
            sock.close()

    def is_running(self) -> bool:
        """Whether a supervisor answers a status request."""
        try:
            self.call("ping", timeout=2.0)
            return True
        except (NotRunning, ControlError, OSError):
            return False


def supervisor_status(state_dir: Path, timeout: float = 5.0) -> Optional[dict]:
    """The supervisor's status reply (process states per strategy), or None if it is not running.

    For `gridctl status`, which also works with the supervisor down.
    """
    try:
        return ControlClient(state_dir, timeout).call("status")
    except (NotRunning, ControlError, OSError):
        return None


async def worker_call(path: Path, cmd: str, timeout: float = 5.0, **args: Any) -> dict:
    """One request to a worker's socket from an asyncio program; ControlError on failure."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path), limit=LINE_LIMIT),
                                                timeout)
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise NotRunning(f"nothing answers on {path}") from exc
    except asyncio.TimeoutError:
        raise ControlError(f"no answer from {path.name} within {timeout:g} s") from None
    try:
        writer.write(encode(request(cmd, **args)))
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
    except asyncio.TimeoutError:
        raise ControlError(f"{path.stem} did not answer '{cmd}' within {timeout:g} s") from None
    except ConnectionError as exc:
        raise ControlError(f"{path.stem} dropped the connection: {exc}") from None
    finally:
        writer.close()
    return _reply(line, cmd, path.stem)


def _reply(line: bytes, cmd: str, who: str, allow_results: bool = False) -> dict:
    """The decoded reply; ControlError for a dropped connection, garbage or a refusal."""
    if not line:
        raise ControlError(f"{who} closed the connection during '{cmd}'")
    try:
        resp = decode(line)
    except ProtocolError as exc:
        raise ControlError(str(exc)) from None
    if not resp.get("ok") and not (allow_results and "results" in resp):
        raise ControlError(resp.get("error") or f"'{cmd}' failed")
    return resp
