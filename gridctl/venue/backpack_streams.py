"""Backpack's WebSocket (one URL for public and private streams), as ccxt.pro.backpack uses it.

Clients send ``{"method": "SUBSCRIBE", "params": [streams], "signature": [key, sig, ts, window]}``;
private (account.*) streams need the ED25519 signature of ``instruction=subscribe&timestamp=..
&window=..``; a refused subscribe is answered with an error frame
``{"id": null, "error": {"code": 4006, "message": ...}}`` and nothing else. Messages are
``{"stream": NAME, "data": {...}}`` with microsecond times. On an account.positionUpdate
subscribe the current positions are sent once without an `e` field, as the venue does.

Faults: `drop_all()` closes every socket now; `silent` keeps sockets open (pings answered)
while no message is sent.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Optional

from aiohttp import WSMsgType, web

from gridctl.venue import backpack_codec as codec
from gridctl.venue import backpack_wire as wire
from gridctl.venue.backpack_port import OrderEvent, Port, PositionEvent, PriceEvent

log = logging.getLogger(__name__)
PING_S = 60.0  # Backpack pings every 60 s and drops a client that does not answer


@dataclass
class Connection:
    """One client socket: its streams (with the key a private one was signed by) and its queue."""

    ws: web.WebSocketResponse
    streams: dict[str, Optional[str]] = field(default_factory=dict)  # stream -> api key (private)
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)

    def wants(self, stream: str, api_key: Optional[str] = None) -> bool:
        """True when this socket subscribed `stream` (for `api_key`'s account, if private)."""
        return stream in self.streams and self.streams[stream] == api_key


class Streams:
    """The WebSocket endpoint and the fan-out of core events to subscribed sockets."""

    def __init__(self, port: Port) -> None:
        self.port = port
        self.connections: set[Connection] = set()
        self.silent = False
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._unsubscribe = None

    # -- fan-out ----------------------------------------------------------------------------
    def start(self) -> None:
        """Start receiving the core's events (idempotent; needs the running loop)."""
        if self._unsubscribe is None:
            self._loop = asyncio.get_running_loop()
            self._unsubscribe = self.port.subscribe(self.on_event)

    def stop(self) -> None:
        """Stop receiving events."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def on_event(self, event: object) -> None:
        """Route one core event to the sockets that subscribed it (thread-safe)."""
        loop = self._loop
        if loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._route(event)
        else:
            loop.call_soon_threadsafe(self._route, event)

    def _route(self, event: object) -> None:
        now_us = self.port.now_ms() * 1000
        if isinstance(event, OrderEvent):
            rules = self.port.rules(event.order.symbol)
            data = codec.order_event(event.kind, event.order, now_us, event.fill, rules.tick, rules.step)
            self._send("account.orderUpdate", event.order.symbol, data, event.api_key)
        elif isinstance(event, PositionEvent):
            kind = codec.position_event_kind(Decimal(event.before), Decimal(event.position.net_qty))
            data = codec.position_event(kind, event.position, now_us)
            self._send("account.positionUpdate", event.position.symbol, data, event.api_key)
        elif isinstance(event, PriceEvent):
            q, s = event.quote, event.symbol
            self._send("ticker", s, codec.ticker_event(s, q.first, q.last, q.high, q.low, q.volume,
                                                         q.quote_volume, q.trades, now_us))
            self._send("markPrice", s, codec.mark_price_event(s, q.mark, q.index, q.funding_rate,
                                                              q.next_funding_ms, now_us))

    def _send(self, kind: str, symbol: str, data: dict, api_key: Optional[str] = None) -> None:
        if self.silent:
            return
        names = [f"{kind}.{symbol}"] + ([kind] if api_key is not None else [])
        for conn in list(self.connections):
            for name in names:
                if conn.wants(name, api_key):
                    conn.queue.put_nowait(codec.envelope(name, data))

    # -- faults -----------------------------------------------------------------------------
    async def drop_all(self) -> int:
        """Close every socket now (clients see "connection closed"); returns how many."""
        conns = list(self.connections)
        for conn in conns:
            await conn.ws.close(code=1001, message=b"dropped")
        return len(conns)

    # -- the endpoint -------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        """GET / with an Upgrade: the Backpack WebSocket."""
        ws = web.WebSocketResponse(heartbeat=PING_S)
        if not ws.can_prepare(request).ok:
            return web.Response(status=404, text="not found")
        await ws.prepare(request)
        self.start()
        conn = Connection(ws)
        self.connections.add(conn)
        writer = asyncio.create_task(self._writer(conn))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_text(conn, msg.data)
                elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            self.connections.discard(conn)
            writer.cancel()
        return ws

    async def _writer(self, conn: Connection) -> None:
        while True:
            message = await conn.queue.get()
            if conn.ws.closed:
                return
            try:
                await conn.ws.send_str(json.dumps(message, separators=(",", ":")))
            except (ConnectionError, RuntimeError):
                return

    async def _on_text(self, conn: Connection, text: str) -> None:
        try:
            sub = wire.parse_subscribe(text)
            key = wire.check_subscribe(sub, self.port.now_ms())
            for stream in sub.streams:
                if not wire.known_stream(stream):
                    raise ValueError("Invalid stream")
                symbol = wire.stream_symbol(stream)
                if symbol is not None and symbol not in self.port.symbols():
                    raise ValueError("Invalid stream")
        except ValueError as e:
            request_id = None
            try:
                request_id = json.loads(text).get("id")
            except (ValueError, AttributeError):
                pass
            conn.queue.put_nowait(codec.error_frame(wire.WS_INVALID, str(e), request_id))
            return
        for stream in sub.streams:
            private_key = key if stream.startswith(wire.PRIVATE_PREFIX) else None
            if sub.method == "UNSUBSCRIBE":
                conn.streams.pop(stream, None)
                continue
            if private_key is not None:
                self.port.open_account(private_key)
            conn.streams[stream] = private_key
            if stream.startswith("account.positionUpdate") and private_key is not None:
                self._position_snapshot(conn, stream, private_key)

    def _position_snapshot(self, conn: Connection, stream: str, api_key: str) -> None:
        """The current positions, once, without `e` (ccxt ignores them; the real venue sends them)."""
        symbol = wire.stream_symbol(stream)
        now_us = self.port.now_ms() * 1000
        for p in self.port.positions(api_key):
            if symbol in (None, p.symbol):
                data = codec.position_event("", p, now_us)
                data.pop("e")
                conn.queue.put_nowait(codec.envelope(stream, data))
