"""The local venue's HTTP/WebSocket server: one aiohttp app on one port, REST + WS + admin.

A protocol is a class with this shape (gridctl/venue/binance.py is one):

    class MyProtocol(Protocol):
        name = "backpack"                 # the `gridctl venue NAME` argument
        like = "backpack"                 # the bundled market snapshot (gridctl/data/markets)
        default_symbols = ("BTC/USDC:USDC", "SOL/USDC:USDC")
        def routes(self) -> list[web.RouteDef]: ...   # every path at the real venue's path
        async def start(self) / async def stop(self)  # optional background tasks

It gets `self.venue` (gridctl.venue.core.Venue) and `self.server` (VenueServer:
`track(ws)` / `untrack(ws)` for its WebSockets so /_admin/drop-streams closes them,
`drop_streams()`). Register it in PROTOCOLS.

Admin API (tests and the soak; never served by a real venue):

    GET  /_admin/state                      markets, accounts by key fingerprint, faults
    POST /_admin/price   {"symbol", "price"} walk there now (filling), pin it
    POST /_admin/release {"symbol"}          the feed drives it again
    POST /_admin/funding {"symbol", "rate"}  settle funding now at that rate
         {"symbol", "rate", "every_ms"}      or: settle it every every_ms from now on, at instants
                                            the venue announces (the soak's simulated 8 h)
    POST /_admin/faults  {...}               gridctl.venue.faults (module docs)
    POST /_admin/drop-streams                close every WebSocket now
    POST /_admin/save                        write the state file now
    GET  /_admin/audit                      gridctl.venue.audit: max |position| per leg, duplicate
                                            live client ids, reused ids, faults fired
    GET  /_admin/history                    every account's orders (any status), fills, funding

Errors answer 400 {"error": "..."}.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
from decimal import Decimal, InvalidOperation
from typing import Optional

from aiohttp import web

from gridctl.venue.core import Venue
from gridctl.venue.faults import FaultError
from gridctl.venue.records import VenueReject

log = logging.getLogger(__name__)

PROTOCOLS = {"binanceusdm": "gridctl.venue.binance:BinanceProtocol",
             "backpack": "gridctl.venue.backpack:BackpackProtocol"}


def protocol_class(name: str):
    """The protocol class for `gridctl venue NAME`; KeyError for an unknown name."""
    module, _, cls = PROTOCOLS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


class Protocol:
    """Base of the wire protocols (see module docs)."""

    name = ""
    like = ""
    default_symbols: tuple[str, ...] = ()

    def __init__(self, venue: Venue, server: "VenueServer") -> None:
        self.venue = venue
        self.server = server

    def routes(self) -> list[web.RouteDef]:
        return []

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def empty_reply(self, fault: dict) -> web.StreamResponse:
        """What the venue sends for the `empty` fault (an executed request answered with no body)."""
        return web.Response(status=int(fault.get("status", 200)), body=b"", content_type="application/json")

    async def before_faults(self, kind: str, order_type: Optional[str] = None) -> None:
        """Faults that hit a request before the venue executes it (a `kill` with when=before)."""
        await self.venue.faults.kill_point(kind, "before", order_type)

    async def after_faults(self, kind: str, response: web.StreamResponse,
                           order_type: Optional[str] = None) -> web.StreamResponse:
        """Faults that hit once the venue executed a request and saved its outcome, before the
        answer goes out: a `kill` (the client never learns the outcome), then, for a placement
        or cancel, an answer that comes too late, or an empty one."""
        await self.venue.faults.kill_point(kind, "after", order_type)
        if kind not in ("place", "cancel") or response.status != 200:
            return response
        f = self.venue.faults.take("timeout", kind)
        if f:
            await asyncio.sleep(float(f.get("delay", 15)))
        f = self.venue.faults.take("empty", kind)
        return self.empty_reply(f) if f else response


class VenueServer:
    """The aiohttp application around one Venue and one protocol."""

    def __init__(self, venue: Venue, protocol_cls) -> None:
        self.venue = venue
        self.protocol = protocol_cls(venue, self)
        self.sockets: set[web.WebSocketResponse] = set()
        self.runner: Optional[web.AppRunner] = None
        self.url = ""
        self.app = web.Application()
        self.app.add_routes(self._admin_routes())
        self.app.add_routes(self.protocol.routes())

    # -- websockets ----------------------------------------------------------------
    def track(self, ws: web.WebSocketResponse) -> None:
        self.sockets.add(ws)

    def untrack(self, ws: web.WebSocketResponse) -> None:
        self.sockets.discard(ws)

    async def drop_streams(self) -> int:
        """Close every WebSocket connection now; returns how many."""
        socks = list(self.sockets)
        for ws in socks:
            try:
                await asyncio.wait_for(ws.close(code=1001), 1)  # 1001: going away
            except Exception:  # a dead peer: nothing to close politely
                pass
        return len(socks)

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Load the state, start the clock and listen; returns the base URL http://HOST:PORT."""
        self.venue.load()
        await self.venue.start()
        await self.protocol.start()
        self.runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port)
        await site.start()
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        self.url = f"http://{host}:{sock.getsockname()[1]}"
        return self.url

    async def stop(self) -> None:
        await self.drop_streams()
        await self.protocol.stop()
        if self.runner is not None:
            await self.runner.cleanup()
        await self.venue.stop()

    # -- admin -----------------------------------------------------------------------------
    def _admin_routes(self) -> list[web.RouteDef]:
        return [
            web.get("/_admin/state", self._state),
            web.post("/_admin/price", self._price),
            web.post("/_admin/release", self._release),
            web.post("/_admin/funding", self._funding),
            web.post("/_admin/faults", self._faults),
            web.post("/_admin/drop-streams", self._drop),
            web.post("/_admin/save", self._save),
            web.get("/_admin/audit", self._audit),
            web.get("/_admin/history", self._history),
        ]

    async def _state(self, request: web.Request) -> web.Response:
        return web.json_response(self.venue.admin_state())

    async def _body(self, request: web.Request) -> dict:
        try:
            body = await request.json() if request.can_read_body else {}
        except (ValueError, json.JSONDecodeError):
            raise _bad("the body must be a JSON object") from None
        if not isinstance(body, dict):
            raise _bad("the body must be a JSON object")
        return body

    async def _price(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        try:
            price = Decimal(str(body["price"]))
            if self.venue.timing is not None:
                self.venue.timing.record("price", symbol=str(body["symbol"]), price=str(price))
            self.venue.pin(str(body["symbol"]), price)
        except KeyError as exc:
            raise _bad(f"missing field {exc.args[0]}") from None
        except (InvalidOperation, VenueReject) as exc:
            raise _bad(str(exc)) from None
        return web.json_response(self.venue.admin_state()["markets"])

    async def _release(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        try:
            self.venue.release(str(body["symbol"]))
        except KeyError:
            raise _bad("missing field symbol") from None
        except VenueReject as exc:
            raise _bad(str(exc)) from None
        return web.json_response({"released": body["symbol"]})

    async def _funding(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        try:
            if body.get("every_ms") is not None:  # a schedule: settled by the clock at announced times
                m = self.venue.market(str(body["symbol"]))
                every = int(body["every_ms"])
                if every < 1000:
                    raise VenueReject("invalid_funding", "every_ms must be at least 1000")
                m.funding_interval_ms, m.funding_rate = every, Decimal(str(body["rate"]))
                m.next_funding_ms = m.next_funding_after(self.venue.now_ms())
                self.venue.dirty()
                return web.json_response({"next_funding_ms": m.next_funding_ms})
            paid = self.venue.settle_funding(str(body["symbol"]), Decimal(str(body["rate"])))
        except KeyError as exc:
            raise _bad(f"missing field {exc.args[0]}") from None
        except (InvalidOperation, VenueReject) as exc:
            raise _bad(str(exc)) from None
        return web.json_response({"settled": len(paid)})

    async def _faults(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        try:
            self.venue.faults.configure(body)
        except FaultError as exc:
            raise _bad(str(exc)) from None
        if self.venue.faults.take("drop_streams"):
            await self.drop_streams()
        return web.json_response(self.venue.faults.describe())

    async def _drop(self, request: web.Request) -> web.Response:
        return web.json_response({"closed": await self.drop_streams()})

    async def _audit(self, request: web.Request) -> web.Response:
        return web.json_response({**self.venue.audit.to_dict(), "faults_fired": dict(self.venue.faults.fired),
                                  "faults_recent": self.venue.faults.recent})

    async def _history(self, request: web.Request) -> web.Response:
        v = self.venue
        return web.json_response({fp: {"hedge": acc.hedge,
                                       "orders": [o.to_dict() for o in v.all_orders(acc)],
                                       "fills": [f.to_dict() for f in acc.fills],
                                       "income": [i.to_dict() for i in acc.income],
                                       "positions": [{"symbol": p.symbol, "side": p.position_side, "qty": str(p.qty)}
                                                     for p in v.positions(acc)]}
                                  for fp, acc in v.accounts.items()})

    async def _save(self, request: web.Request) -> web.Response:
        self.venue.save()
        return web.json_response({"saved": str(self.venue.state_path) if self.venue.state_path else None})


def _bad(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")
