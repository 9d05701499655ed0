"""A local venue (gridctl.venue) running in the test process on its own thread and loop,
and ccxt clients pointed at it by the URL rule (scheme+host replaced, path kept)."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Optional

from gridctl.venue.run import VenueOptions, build

KEY, SECRET = "test-key-1", "test-secret-1"


class LocalVenue:
    """`with LocalVenue("binanceusdm") as v:` serves on 127.0.0.1:<free port> until the block ends."""

    def __init__(self, protocol: str = "binanceusdm", **options) -> None:
        options.setdefault("speed", Decimal(1))
        self.opts = VenueOptions(protocol, **options)
        self.server = None
        self.url = ""
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._started = threading.Event()
        self._error: Optional[BaseException] = None

    def __enter__(self) -> "LocalVenue":
        self.server = build(self.opts)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._started.wait(20)
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.url = self.loop.run_until_complete(self.server.start("127.0.0.1", 0))
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            self._error = exc
            self._started.set()
            return
        self._started.set()
        self.loop.run_forever()

    def __exit__(self, *exc) -> None:
        self.call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    @property
    def venue(self):
        return self.server.venue

    def call(self, coro, timeout: float = 20):
        """Run a coroutine on the venue's loop and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def sync(self, fn, *args):
        """Run a plain function on the venue's loop (the venue is single-threaded)."""
        async def run():
            return fn(*args)
        return self.call(run())

    @property
    def ws(self) -> str:
        return "ws" + self.url[len("http"):]

    # -- admin ----------------------------------------------------------------------
    def admin(self, path: str, body: Optional[dict] = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method="GET" if body is None else "POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"null")

    def price(self, symbol: str, price) -> dict:
        return self.admin("/_admin/price", {"symbol": symbol, "price": str(price)})

    def faults(self, spec: dict) -> dict:
        return self.admin("/_admin/faults", spec)

    def state(self) -> dict:
        return self.admin("/_admin/state")


def point_binance(exchange, base: str) -> None:
    """URL rule: every REST url's scheme+host -> base; WS linear -> ws://HOST:PORT/ws."""
    api = exchange.urls["api"]
    for k, v in list(api.items()):
        if isinstance(v, str) and v.startswith("http"):
            path = v.split("://", 1)[1]
            path = path[path.find("/"):] if "/" in path else ""
            api[k] = base + path
    ws = api.get("ws")
    if isinstance(ws, dict):
        wsbase = "ws" + base[len("http"):]
        for k, v in list(ws.items()):
            if isinstance(v, str):
                rest = v.split("://", 1)[1]
                ws[k] = wsbase + (rest[rest.find("/"):] if "/" in rest else "")


def binance_client(base: str, key: str = KEY, secret: str = SECRET, pro: bool = True, **options):
    """ccxt's own binanceusdm (pro: REST + WS) pointed at the venue, with the options the adapter uses."""
    if pro:
        import ccxt.pro as mod
    else:
        import ccxt.async_support as mod
    cfg = {"apiKey": key, "secret": secret, "enableRateLimit": False, "timeout": options.pop("timeout", 10_000),
           "options": {"fetchCurrencies": False, "watchPositions": {"fetchPositionsSnapshot": False},
                       "setMarginMode": {"throwMarginModeAlreadySet": False},
                       "fetchOpenOrders": {"warnWithoutSymbol": False}, **options.pop("options", {})},
           **options}
    ex = mod.binanceusdm(cfg)
    point_binance(ex, base)
    return ex


def state_file(tmp_path: Path) -> Path:
    return tmp_path / "venue-state.json"
