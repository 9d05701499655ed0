"""Backpack's WebSocket (one URL, wss://ws.backpack.exchange -> ws://HOST:PORT/), as
ccxt.pro.backpack uses it.

Clients send ``{"method": "SUBSCRIBE", "params": [streams], "signature": [key, sig, ts, window]}``.
Private (account.*) streams need the ED25519 signature of
``instruction=subscribe&timestamp=..&window=..`` by the account's key; a refused subscribe is
answered with an error frame ``{"id": null, "error": {"code": 4006, "message": ...}}`` and
nothing is subscribed. Messages are ``{"stream": NAME, "data": {...}}`` with microsecond
times: account.orderUpdate[.<sym>], account.positionUpdate[.<sym>], ticker.<sym>,
markPrice.<sym>. On an account.positionUpdate subscribe the current positions are sent once
without an `e` field, as the venue does (ccxt ignores them).

Faults: drop_streams closes every socket (server.drop_streams); silent_streams keeps them
open while sending nothing and answering no ping (a zombie).
"""

from __future__ import annotations

import asyncio
import json
import logging
from decimal import Decimal
from typing import Optional

from aiohttp import WSMsgType, web

from gridctl.venue import backpack_events as events
from gridctl.venue import backpack_views as views
from gridctl.venue import backpack_wire as wire
from gridctl.venue.records import AccountEvent, MarketEvent, OrderEvent, fingerprint
from gridctl.venue.triggers import TriggerEvent
from gridctl.venue.backpack_triggers import trigger_event

log = logging.getLogger(__name__)
MARK_EVERY_S = 1.0


class BackpackStreams:
    """The WebSocket endpoint and the fan-out of the core's events to subscribed sockets."""

    def __init__(self, protocol) -> None:
        self.protocol = protocol
        self.venue = protocol.venue
        self.server = protocol.server
        # socket -> {stream: account fingerprint (private) or None (public)}
        self.subs: dict[web.WebSocketResponse, dict[str, Optional[str]]] = {}
        self.nets: dict[tuple[str, str], Decimal] = {}  # (fingerprint, symbol) -> last net position
        self._queue: Optional[asyncio.Queue] = None
        self._task: Optional[asyncio.Task] = None
        self._marks: Optional[asyncio.Task] = None

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/", self.handle)]

    async def start(self) -> None:
        for acc in self.venue.accounts.values():  # a restored state: positions already open
            for p in self.protocol.position_views(acc):
                sym = next(m.symbol for m in self.venue.markets.values() if m.rules.venue_id == p.symbol)
                self.nets[(acc.fingerprint, sym)] = Decimal(p.net_qty)
        self._queue = self.venue.subscribe()
        self._task = asyncio.create_task(self._pump(), name="backpack-streams")
        self._marks = asyncio.create_task(self._mark_clock(), name="backpack-mark-prices")

    async def stop(self) -> None:
        for task in (self._task, self._marks):
            if task is not None:
                task.cancel()
        if self._queue is not None:
            self.venue.unsubscribe(self._queue)

    # -- the endpoint ------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        """GET / with an Upgrade: the Backpack WebSocket (a plain GET: 404 as an unknown path)."""
        # no permessage-deflate: each compressed socket holds ~0.7 MB of zlib state a side
        ws = web.WebSocketResponse(autoping=False, compress=False)
        if not ws.can_prepare(request).ok:
            return web.Response(status=404, text="not found")
        await ws.prepare(request)
        self.server.track(ws)
        self.subs[ws] = {}
        try:
            async for msg in ws:
                if self.venue.faults.is_on("silent_streams"):
                    continue  # a zombie: no pong, no answer
                if msg.type == WSMsgType.PING:
                    await ws.pong(msg.data)
                elif msg.type == WSMsgType.TEXT:
                    await self._on_text(ws, msg.data)
                elif msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                    break
        finally:
            self.server.untrack(ws)
            self.subs.pop(ws, None)
        return ws

    async def _on_text(self, ws: web.WebSocketResponse, text: str) -> None:
        try:
            sub = wire.parse_subscribe(text)
            key = wire.check_subscribe(sub, self.venue.now_ms())
            if key is not None and self.venue.account_for(key) is None:
                raise ValueError("Unauthorized")
            for stream in sub.streams:
                symbol = wire.stream_symbol(stream)
                if not wire.known_stream(stream) or (symbol is not None and not self._served(symbol)):
                    raise ValueError("Invalid stream")
        except ValueError as e:
            await self._send(ws, events.error_frame(wire.WS_INVALID, str(e), _request_id(text)))
            return
        subs = self.subs.setdefault(ws, {})
        for stream in sub.streams:
            if sub.method == "UNSUBSCRIBE":
                subs.pop(stream, None)
                continue
            private = stream.startswith(wire.PRIVATE_PREFIX)
            fp = fingerprint(key) if private and key else None
            subs[stream] = fp
            if private and stream.startswith("account.positionUpdate") and fp is not None:
                await self._position_snapshot(ws, stream, fp)

    def _served(self, venue_id: str) -> bool:
        return any(m.rules.venue_id == venue_id for m in self.venue.markets.values())

    async def _position_snapshot(self, ws: web.WebSocketResponse, stream: str, fp: str) -> None:
        acc = self.venue.accounts.get(fp)
        symbol = wire.stream_symbol(stream)
        now_us = self.venue.now_ms() * 1000
        for p in self.protocol.position_views(acc) if acc is not None else []:
            if symbol in (None, p.symbol):
                data = events.position_event("", p, now_us)
                data.pop("e")
                await self._send(ws, events.envelope(stream, data))

    @staticmethod
    async def _send(ws: web.WebSocketResponse, message: dict) -> None:
        if ws.closed:
            return
        try:
            await ws.send_str(json.dumps(message, separators=(",", ":")))
        except (ConnectionError, RuntimeError):
            pass

    # -- events -> messages ------------------------------------------------------------------
    async def _pump(self) -> None:
        while True:
            ev = await self._queue.get()
            try:
                if self.venue.faults.take("drop_streams"):
                    await self.server.drop_streams()
                    continue
                for stream, fp, message in self.messages(ev):
                    if self.venue.faults.is_on("silent_streams"):
                        break
                    await self._publish(stream, fp, message)
                if getattr(ev, "fill", None) is not None:  # a fill pushed: the `kill` fault's mid-fill moment
                    await self.venue.faults.kill_point("stream_fill")
            except Exception:  # one bad event must not end the streams
                log.exception("backpack stream event %r", ev)

    async def _mark_clock(self) -> None:
        """markPrice.<symbol> once a second, as the venue publishes it even in a quiet market."""
        while True:
            await asyncio.sleep(MARK_EVERY_S)
            if self.venue.faults.is_on("silent_streams"):
                continue
            try:
                for sym in self.venue.markets:
                    stream, _, data = self.messages(MarketEvent(sym, self.venue.now_ms()))[1]
                    await self._publish(stream, None, data)
            except Exception:
                log.exception("backpack mark price clock")

    def messages(self, ev) -> list[tuple[str, Optional[str], dict]]:
        """(stream, account fingerprint or None, message) for one core event."""
        now_us = self.venue.now_ms() * 1000
        if isinstance(ev, OrderEvent):
            rules = self.venue.markets[ev.order.symbol].rules
            fill = None if ev.fill is None else views.fill_view(ev.fill, rules)
            data = events.order_event(views.EVENT[ev.execution], views.order_view(ev.order, rules), now_us,
                                     fill, rules.tick, rules.step)
            return [("account.orderUpdate." + rules.venue_id, ev.account, data),
                    ("account.orderUpdate", ev.account, data)]
        if isinstance(ev, TriggerEvent):
            rules = self.venue.markets[ev.trigger.symbol].rules
            data = trigger_event(ev.trigger, rules, now_us)
            return [] if data is None else [("account.orderUpdate." + rules.venue_id, ev.account, data),
                                            ("account.orderUpdate", ev.account, data)]
        if isinstance(ev, AccountEvent):
            return self._position_messages(ev, now_us)
        if isinstance(ev, MarketEvent):
            m = self.venue.markets[ev.symbol]
            vid = m.rules.venue_id
            first, high, low = m.day_stats()
            row = self.protocol.mark_row(ev.symbol)
            tick = events.ticker_event(vid, first, m.price(), high, low, Decimal(0), Decimal(0), 0, now_us)
            mark = events.mark_price_event(vid, m.price(), m.price(), m.funding_rate,
                                          row["nextFundingTimestamp"], now_us)
            return [("ticker." + vid, None, tick), ("markPrice." + vid, None, mark)]
        return []

    def _position_messages(self, ev: AccountEvent, now_us: int) -> list:
        acc = self.venue.accounts.get(ev.account)
        if acc is None:
            return []
        out = []
        for sym in ev.symbols:
            rules = self.venue.markets[sym].rules
            current = {p.symbol: p for p in self.protocol.position_views(acc, sym)}
            before = self.nets.get((ev.account, sym), Decimal(0))
            p = current.get(rules.venue_id)
            after = Decimal(0) if p is None else Decimal(p.net_qty)
            if after == before:
                continue
            self.nets[(ev.account, sym)] = after
            if p is None:  # closed: report the flat position at the mark
                m = self.venue.markets[sym]
                p = views.position_view(acc.fingerprint, rules, Decimal(0), Decimal(0), m.price(), Decimal(0),
                                        Decimal(0), acc.pnl.get(sym, Decimal(0)), Decimal(0),
                                        acc.leverage.get(sym, 1))
            data = events.position_event(events.position_event_kind(before, after), p, now_us)
            out += [("account.positionUpdate." + rules.venue_id, ev.account, data),
                    ("account.positionUpdate", ev.account, data)]
        return out

    async def _publish(self, stream: str, fp: Optional[str], data: dict) -> None:
        message = events.envelope(stream, data)
        for ws, subs in list(self.subs.items()):
            if stream in subs and subs[stream] == fp:
                await self._send(ws, message)


def _request_id(text: str):
    try:
        msg = json.loads(text)
        return msg.get("id") if isinstance(msg, dict) else None
    except ValueError:
        return None
