"""Binance USDⓈ-M streams on the local venue: listen keys, the user-data stream and market streams.

Paths (ccxt.pro.binanceusdm with urls['api']['ws']['linear'] = ws://HOST:PORT/ws):
    /private/ws?listenKey=K   (also /ws/K)     user data: ORDER_TRADE_UPDATE, ACCOUNT_UPDATE,
                                               listenKeyExpired
    /market/ws/<n>, /public/ws/<n>, /ws, /stream   SUBSCRIBE/UNSUBSCRIBE {"method","params","id"}
        streams <sym>@markPrice[@1s], <sym>@bookTicker, <sym>@miniTicker, <sym>@ticker
A listen key lives 60 minutes after its last POST/PUT; POST returns the account's live key.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from typing import Optional

from aiohttp import WSMsgType, web

from gridctl.venue import binance_wire as W
from gridctl.venue.records import AccountEvent, MarketEvent, OrderEvent
from gridctl.venue.triggers import TriggerEvent

log = logging.getLogger(__name__)
LISTEN_KEY_TTL_MS = 60 * 60 * 1000


class BinanceStreams:
    """Listen keys and WebSocket connections of the Binance protocol."""

    def __init__(self, protocol) -> None:
        self.protocol = protocol
        self.venue = protocol.venue
        self.server = protocol.server
        self.private: dict[str, set[web.WebSocketResponse]] = {}  # listen key -> sockets
        self.market_subs: dict[web.WebSocketResponse, set[str]] = {}
        self._task: Optional[asyncio.Task] = None
        self._expiry_task: Optional[asyncio.Task] = None
        self._tick_task: Optional[asyncio.Task] = None

    # -- listen keys (state in venue.extra_state["listen_keys"]: fingerprint -> {key, expires_ms}) --
    @property
    def keys(self) -> dict:
        return self.venue.extra_state.setdefault("listen_keys", {})

    def _live_key(self, fp: str) -> Optional[str]:
        k = self.keys.get(fp)
        if k and k["expires_ms"] > self.venue.now_ms():
            return k["key"]
        return None

    async def create_key(self, call) -> web.Response:
        fp = call.account.fingerprint
        key = self._live_key(fp)
        if key is None:
            n = self.venue.extra_state.get("listen_key_seq", 0) + 1
            self.venue.extra_state["listen_key_seq"] = n
            key = hashlib.sha256(f"gridctl-venue:{fp}:{n}".encode()).hexdigest()
        self.keys[fp] = {"key": key, "expires_ms": self.venue.now_ms() + LISTEN_KEY_TTL_MS}
        self.venue.dirty()
        return web.json_response({"listenKey": key})

    async def keep_alive(self, call) -> web.Response:
        fp = call.account.fingerprint
        key = self._live_key(fp)
        if key is None or (call.get("listenKey") and call.get("listenKey") != key):
            return W.error("listen_key_missing")
        self.keys[fp]["expires_ms"] = self.venue.now_ms() + LISTEN_KEY_TTL_MS
        self.venue.dirty()
        return web.json_response({"listenKey": key})

    async def delete_key(self, call) -> web.Response:
        entry = self.keys.pop(call.account.fingerprint, None)
        if entry:
            for ws in list(self.private.get(entry["key"], ())):
                await ws.close()
        self.venue.dirty()
        return web.json_response({})

    def _account_of_key(self, key: str) -> Optional[str]:
        now = self.venue.now_ms()
        for fp, k in self.keys.items():
            if k["key"] == key and k["expires_ms"] > now:
                return fp
        return None

    async def expire_keys(self, fingerprints: Optional[list[str]] = None) -> None:
        """Expire listen keys now (all, or the accounts'): listenKeyExpired, then the stream closes."""
        now = self.venue.now_ms()
        for fp, k in list(self.keys.items()):
            if fingerprints is not None and fp not in fingerprints:
                continue
            del self.keys[fp]
            msg = json.dumps({"e": "listenKeyExpired", "E": now, "listenKey": k["key"]})
            for ws in list(self.private.get(k["key"], ())):
                try:
                    await ws.send_str(msg)
                    await ws.close()
                except Exception:
                    pass
        self.venue.dirty()

    # -- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        self._queue = self.venue.subscribe()
        self._task = asyncio.create_task(self._pump(), name="binance-streams")
        self._expiry_task = asyncio.create_task(self._expiry(), name="binance-listen-keys")
        self._tick_task = asyncio.create_task(self._every_second(), name="binance-market-streams")

    async def stop(self) -> None:
        for t in (self._task, self._expiry_task, self._tick_task):
            if t is not None:
                t.cancel()
        self.venue.unsubscribe(self._queue)

    async def _expiry(self) -> None:
        while True:
            await asyncio.sleep(1)
            if self.venue.faults.take("expire_auth"):
                await self.expire_keys()
                continue
            now = self.venue.now_ms()
            due = [fp for fp, k in self.keys.items() if k["expires_ms"] <= now]
            if due:
                await self.expire_keys(due)

    async def _every_second(self) -> None:
        """Market streams also update every second, as Binance's @1s / miniTicker streams do."""
        while True:
            await asyncio.sleep(1)
            if self.venue.faults.is_on("silent_streams"):
                continue
            for sym in list(self.venue.markets):
                try:
                    await self._market_event(MarketEvent(sym, self.venue.now_ms()))
                except Exception:  # a socket closing under us
                    log.debug("market tick", exc_info=True)

    # -- routes ------------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        return [web.get("/private/ws", self.private_ws), web.get("/ws/{listenKey}", self.private_ws),
                web.get("/market/ws/{n}", self.market_ws), web.get("/public/ws/{n}", self.market_ws),
                web.get("/market/ws", self.market_ws), web.get("/public/ws", self.market_ws),
                web.get("/ws", self.market_ws), web.get("/stream", self.market_ws)]

    async def private_ws(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info.get("listenKey") or request.query.get("listenKey", "")
        if self._account_of_key(key) is None:
            return web.Response(status=400, text=json.dumps({"code": -1125, "msg": "This listenKey does not exist."}),
                                content_type="application/json")
        socks = self.private.setdefault(key, set())
        # no permessage-deflate: each compressed socket holds ~0.7 MB of zlib state a side
        ws = web.WebSocketResponse(autoping=False, compress=False)
        socks.add(ws)
        try:
            return await self._serve_prepared(request, ws)
        finally:
            socks.discard(ws)

    async def _serve_prepared(self, request: web.Request, ws: web.WebSocketResponse, on_text=None):
        await ws.prepare(request)
        self.server.track(ws)
        try:
            async for msg in ws:
                if self.venue.faults.is_on("silent_streams"):
                    continue
                if msg.type == WSMsgType.PING:
                    await ws.pong(msg.data)
                elif msg.type == WSMsgType.TEXT and on_text is not None:
                    await on_text(ws, msg.data)
        finally:
            self.server.untrack(ws)
        return ws

    async def market_ws(self, request: web.Request) -> web.StreamResponse:
        # no permessage-deflate: each compressed socket holds ~0.7 MB of zlib state a side
        ws = web.WebSocketResponse(autoping=False, compress=False)
        self.market_subs[ws] = set()
        streams = request.query.get("streams")
        if streams:
            self.market_subs[ws].update(streams.split("/"))
        try:
            return await self._serve_prepared(request, ws, self._on_market_text)
        finally:
            self.market_subs.pop(ws, None)

    async def _on_market_text(self, ws: web.WebSocketResponse, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            await ws.send_str(json.dumps({"error": {"code": 3, "msg": "Invalid JSON"}}))
            return
        method, params, mid = msg.get("method"), msg.get("params") or [], msg.get("id")
        subs = self.market_subs.setdefault(ws, set())
        if method == "SUBSCRIBE":
            subs.update(params)
            await ws.send_str(json.dumps({"result": None, "id": mid}))
            for stream in params:  # the current value at once, as a fresh subscriber sees soon anyway
                for m in self.venue.markets.values():
                    payload = self._market_payload(stream, m)
                    if payload is not None:
                        await ws.send_str(json.dumps(payload))
        elif method == "UNSUBSCRIBE":
            subs.difference_update(params)
            await ws.send_str(json.dumps({"result": None, "id": mid}))
        elif method == "LIST_SUBSCRIPTIONS":
            await ws.send_str(json.dumps({"result": sorted(subs), "id": mid}))
        else:
            await ws.send_str(json.dumps({"error": {"code": 2, "msg": f"Invalid request: unknown method {method}"},
                                          "id": mid}))

    # -- events -> messages -----------------------------------------------------------------
    async def _pump(self) -> None:
        while True:
            ev = await self._queue.get()
            try:
                if self.venue.faults.is_on("silent_streams"):
                    continue
                if self.venue.faults.take("drop_streams"):
                    await self.server.drop_streams()
                    continue
                if isinstance(ev, MarketEvent):
                    await self._market_event(ev)
                elif isinstance(ev, (OrderEvent, AccountEvent, TriggerEvent)):
                    await self._user_event(ev)
                    if getattr(ev, "fill", None) is not None:  # a fill pushed: the `kill` fault's mid-fill moment
                        await self.venue.faults.kill_point("stream_fill")
            except Exception:
                log.exception("stream event %r", ev)

    async def _user_event(self, ev) -> None:
        entry = self.keys.get(ev.account)
        if not entry:
            return
        socks = self.private.get(entry["key"])
        if not socks:
            return
        from gridctl.venue.binance_events import user_message
        msg = user_message(self.venue, ev)
        if msg is None:
            return
        text = json.dumps(msg)
        if self.venue.timing is not None and msg.get("e") == "ORDER_TRADE_UPDATE":
            o = msg["o"]
            t = self.venue.timing
            t.record("publish", x=o["x"], X=o["X"], c=o["c"], i=o["i"],
                     **t.account_state(self.venue, ev.account, ev.order.symbol))
        for ws in list(socks):
            await _send(ws, text)

    async def _market_event(self, ev: MarketEvent) -> None:
        m = self.venue.markets[ev.symbol]
        for ws, subs in list(self.market_subs.items()):
            if ws.closed:
                continue
            for stream in list(subs):
                payload = self._market_payload(stream, m)
                if payload is not None:
                    await _send(ws, json.dumps(payload))

    def _market_payload(self, stream: str, m) -> Optional[dict]:
        from gridctl.venue.binance_events import market_message
        return market_message(self.venue, self.protocol, stream, m)


async def _send(ws: web.WebSocketResponse, text: str) -> None:
    """Send unless the socket is gone (a peer that left must not stop the others' stream)."""
    if ws.closed:
        return
    try:
        await ws.send_str(text)
    except (ConnectionError, RuntimeError) as exc:
        log.debug("send to a closing socket: %s", exc)
