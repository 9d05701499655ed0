"""The live event feed: a WebSocket server for dashboards, run inside the supervisor.

    ws://127.0.0.1:8765   (start --events HOST:PORT, or events: {listen: HOST:PORT})

A client connects, then sends one JSON message within 10 s:

    {"token": "<contents of <state>/events.token>",
     "subscribe": {"strategies": ["sol-neutral"], "channels": ["fills", "trades"]}}

(the token may instead come as an ``Authorization: Bearer <token>`` header; an empty or
missing list means all). The server answers ``{"event": "subscribed", ...}`` and then sends
one JSON object per feed event (gridctl/control/feed_events.py, docs/events.md). A later
``{"subscribe": ...}`` message replaces the subscription. Refusals close the connection
with a code and a reason: 4401 token missing or wrong, 4400 a malformed message,
4408 no subscription in time, 1013 too many clients or a client too slow to keep up.

The token is generated at every feed start (owner-only file, 0600) and compared in
constant time. Events are live only: history is in the database (`gridctl export`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable, Optional

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from gridctl.config.model import EventsConfig
from gridctl.control.feed_events import CHANNELS, EVENT_CHANNEL, Redactor, pnl_event, price_event, to_feed

log = logging.getLogger("gridctl.feed")

TOKEN_FILE = "events.token"
HELLO_TIMEOUT = 10.0
MAX_CLIENTS = 64
QUEUE_LIMIT = 1000          # events waiting for one client before it is dropped as too slow
PRICE_EVERY = 1.0           # price / pnl: at most one per strategy per second
MAX_MESSAGE = 64 * 1024     # what a client may send


class Refused(Exception):
    """A client message the feed refuses; closes the connection with `code` and the message."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code


@dataclass
class Subscription:
    """Which strategies (empty: all) and channels a client wants."""

    strategies: frozenset[str] = frozenset()
    channels: frozenset[str] = frozenset(CHANNELS)

    def wants(self, strategy: Optional[str], channel: str) -> bool:
        return channel in self.channels and (not self.strategies or strategy in self.strategies)


def parse_subscription(msg: dict) -> Subscription:
    """The `subscribe` part of a client message; Refused(4400) with the reason when it is malformed."""
    sub = msg.get("subscribe", {})
    if not isinstance(sub, dict):
        raise Refused(4400, "subscribe must be an object: {strategies: [...], channels: [...]}")
    unknown_keys = set(sub) - {"strategies", "channels"}
    if unknown_keys:
        raise Refused(4400, f"unknown subscribe key {sorted(unknown_keys)[0]!r}; use strategies, channels")
    lists = {}
    for key in ("strategies", "channels"):
        v = sub.get(key) or []
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise Refused(4400, f"subscribe.{key} must be a list of strings")
        lists[key] = frozenset(v)
    bad = sorted(lists["channels"] - set(CHANNELS))
    if bad:
        raise Refused(4400, f"unknown channel {bad[0]!r}; channels: {', '.join(CHANNELS)}")
    return Subscription(lists["strategies"], lists["channels"] or frozenset(CHANNELS))


@dataclass(eq=False)
class Client:
    """One connected, authenticated dashboard."""

    conn: ServerConnection
    sub: Subscription
    queue: "asyncio.Queue[str]" = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))


def write_token(path: Path) -> str:
    """A new random token in `path`, created owner-only (0600) and replaced atomically."""
    token = secrets.token_urlsafe(32)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.replace(tmp, path)
    return token


def _json(ev: dict) -> str:
    return json.dumps(ev, separators=(",", ":"), default=lambda o: str(o) if isinstance(o, Decimal) else repr(o))


class EventFeed:
    """Serves the supervisor's event stream to WebSocket clients (see the module docstring).

    source() yields every worker and supervisor row (gridctl.supervisor.commands.events);
    live() names the strategies whose workers answer; status(name) is that worker's
    status reply (or None), sampled for `price` and `pnl`; redactor() blanks secrets.
    """

    def __init__(self, cfg: EventsConfig, state_dir: Path, source: Callable[[], AsyncIterator[dict]],
                 live: Callable[[], list[str]], status: Callable[[str], Awaitable[Optional[dict]]],
                 redactor: Callable[[], Redactor]):
        self.cfg, self.token_path = cfg, Path(state_dir) / TOKEN_FILE
        self.source, self.live, self.status, self.redactor = source, live, status, redactor
        self.clients: set[Client] = set()
        self.token = ""
        self.server: Optional[Server] = None
        self.tasks: list[asyncio.Task] = []
        self.last_sample: dict[str, tuple] = {}

    @property
    def address(self) -> str:
        """HOST:PORT actually bound (the real port when 0 was asked for)."""
        assert self.server is not None
        host, port = list(self.server.sockets)[0].getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def info(self) -> dict:
        """Where the feed listens and where its token is (never the token itself)."""
        return {"listen": self.address, "url": f"ws://{self.address}", "token_file": str(self.token_path),
                "clients": len(self.clients), "allow_remote": self.cfg.allow_remote}

    async def start(self) -> None:
        """Write the token and listen; OSError when the address cannot be bound."""
        self.token = write_token(self.token_path)
        self.server = await serve(self._handle, self.cfg.host, self.cfg.port, max_size=MAX_MESSAGE,
                                  server_header=None, ping_interval=20, ping_timeout=20)
        self.tasks = [asyncio.create_task(self._pump()), asyncio.create_task(self._sample())]
        log.info("event feed on ws://%s (token in %s)", self.address, self.token_path)

    async def close(self) -> None:
        """Stop listening, disconnect every client, remove the token file."""
        for t in self.tasks:
            t.cancel()
        if self.server is not None:
            self.server.close(close_connections=True)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 5)
        self.token_path.unlink(missing_ok=True)

    # ---- fan-out ------------------------------------------------------------------------
    def publish(self, ev: dict) -> None:
        """Queue a feed event for every client subscribed to its strategy and channel."""
        channel = EVENT_CHANNEL[ev["event"]]
        wanted = [c for c in self.clients if c.sub.wants(ev.get("strategy"), channel)]
        if not wanted:
            return
        text = _json(self.redactor().event(ev))
        for c in wanted:
            if c.queue.full():
                self.clients.discard(c)
                asyncio.create_task(c.conn.close(1013, f"client too slow: {QUEUE_LIMIT} events waiting; reconnect"))
            else:
                c.queue.put_nowait(text)

    async def _pump(self) -> None:
        """Forward the supervisor's stream for as long as the feed runs (restarted if it ends)."""
        while True:
            try:
                async for row in self.source():
                    ev = to_feed(row)
                    if ev is not None:
                        self.publish(ev)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not end the feed or the supervisor
                log.exception("event feed: the event stream failed; re-attaching")
            await asyncio.sleep(0.5)

    async def _sample(self) -> None:
        """`price` and `pnl` of the strategies someone watches, at most once a second, when changed."""
        while True:
            await asyncio.sleep(PRICE_EVERY)
            watched = [n for n in self.live() if any(
                c.sub.wants(n, "price") or c.sub.wants(n, "pnl") for c in self.clients)]
            replies = await asyncio.gather(*(self.status(n) for n in watched), return_exceptions=True)
            ts = int(time.time() * 1000)
            for name, st in zip(watched, replies):
                if not isinstance(st, dict):
                    continue
                before = self.last_sample.get(name, (None, None))
                price, pnl = price_event(name, ts, st), pnl_event(name, ts, st)
                now = (price["price"], tuple(pnl[k] for k in sorted(pnl) if k != "ts"))
                if now[0] is not None and now[0] != before[0]:
                    self.publish(price)
                if now[1] != before[1]:
                    self.publish(pnl)
                self.last_sample[name] = now

    # ---- one client ---------------------------------------------------------------------
    def _authorized(self, conn: ServerConnection, msg: dict) -> None:
        header = conn.request.headers.get("Authorization", "") if conn.request else ""
        given = msg.get("token")
        if given is None and header.lower().startswith("bearer "):
            given = header[7:].strip()
        if not given:
            raise Refused(4401, f"token missing: send {{\"token\": ...}} first (the token is in {self.token_path})")
        if not isinstance(given, str) or not hmac.compare_digest(given.encode(), self.token.encode()):
            raise Refused(4401, "wrong token (it changes whenever the supervisor starts)")

    @staticmethod
    def _decode(raw: object) -> dict:
        try:
            msg = json.loads(raw)
        except (TypeError, ValueError):
            raise Refused(4400, "messages must be JSON objects") from None
        if not isinstance(msg, dict):
            raise Refused(4400, "messages must be JSON objects")
        return msg

    async def _handle(self, conn: ServerConnection) -> None:
        try:
            try:
                raw = await asyncio.wait_for(conn.recv(), HELLO_TIMEOUT)
            except asyncio.TimeoutError:
                raise Refused(4408, f"no token and subscription within {HELLO_TIMEOUT:g} s") from None
            msg = self._decode(raw)
            self._authorized(conn, msg)
            if len(self.clients) >= MAX_CLIENTS:
                raise Refused(1013, f"too many clients ({MAX_CLIENTS}); try again later")
            client = Client(conn, parse_subscription(msg))
        except Refused as exc:
            log.info("event feed: refused %s: %s", conn.remote_address, exc)
            await conn.close(exc.code, str(exc)[:120])
            return
        except ConnectionClosed:
            return
        self._ack(client)  # queued first: it precedes every event
        self.clients.add(client)
        log.info("event feed: client %s subscribed", conn.remote_address)
        try:
            sender = asyncio.create_task(self._send(client))
            try:
                async for raw in conn:  # later messages re-subscribe
                    try:
                        client.sub = parse_subscription(self._decode(raw))
                        self._ack(client)
                    except Refused as exc:
                        await conn.close(exc.code, str(exc)[:120])
                        return
            finally:
                sender.cancel()
        except ConnectionClosed:
            pass
        finally:
            self.clients.discard(client)

    def _ack(self, c: Client) -> None:
        if c.queue.full():
            return
        c.queue.put_nowait(_json({"event": "subscribed", "strategies": sorted(c.sub.strategies),
                                 "channels": [ch for ch in CHANNELS if ch in c.sub.channels],
                                 "running": sorted(self.live())}))

    @staticmethod
    async def _send(c: Client) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await c.conn.send(await c.queue.get())
