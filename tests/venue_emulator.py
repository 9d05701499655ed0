"""A local emulator of Binance USD-M's public REST API, for tests that must never touch a real venue.

It speaks the wire protocol ccxt's `binanceusdm` class uses for public market data:

- ``GET /fapi/v1/exchangeInfo``: the real exchangeInfo sample from ../shared/data
  (BTCUSDT, ETHUSDT and a quarterly BTC contract);
- ``GET /fapi/v1/ticker/24hr?symbol=...`` (what ccxt's fetch_ticker requests) and
  ``GET /fapi/v1/ticker/price?symbol=...``: the next step of a scripted sequence,
  which is either a price or a fault (`Fault`): a 429 with Retry-After, a 503, a
  request that hangs past the client's timeout, or a malformed body.

Every request is logged in `requests` (path with query); any other path answers 404.
Point ccxt's own class at it with `emulator.point(exchange)` so ccxt's real request
building and response parsing run.

    with VenueEmulator() as venue:
        venue.script("100.00", Fault(429, retry_after=1), "101.50")
        client = ccxt.async_support.binanceusdm({"timeout": 500})
        venue.point(client)
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional, Union
from urllib.parse import parse_qs, urlsplit

from shared_data import shared_data

SAMPLES = shared_data() / "exchange_samples" / "binanceusdm_nautilus"
EXCHANGE_INFO = SAMPLES / "http_futures_market_exchange_info.json"
TICKER_PATHS = ("/fapi/v1/ticker/24hr", "/fapi/v1/ticker/price")


@dataclass(frozen=True)
class Fault:
    """One scripted failure of a ticker request.

    status 429 (with `retry_after` seconds) or 5xx: an HTTP error with Binance's error body;
    "hang": no answer for `hang_s` seconds (past the client's timeout);
    "malformed": 200 with a body that is not JSON.
    """

    kind: Union[int, str]
    retry_after: Optional[int] = None
    hang_s: float = 3.0


Step = Union[str, int, float, Decimal, Fault]


class VenueEmulator:
    """A threaded HTTP server on 127.0.0.1 serving the scripted market."""

    def __init__(self, exchange_info: Path = EXCHANGE_INFO):
        self.exchange_info = exchange_info.read_bytes()
        self.steps: deque[Step] = deque()
        self.last: Optional[str] = None  # repeated once the script runs out
        self.requests: list[str] = []
        self.lock = threading.Lock()
        self.released = threading.Event()  # ends hanging requests at shutdown
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                emulator._handle(self)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread: Optional[threading.Thread] = None

    # -- control ----------------------------------------------------------------
    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "VenueEmulator":
        self.thread = threading.Thread(target=self.server.serve_forever, name="venue-emulator", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "VenueEmulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def script(self, *steps: Step) -> None:
        """Append steps: prices (served in order, the last one repeated) and faults."""
        with self.lock:
            self.steps.extend(steps)

    def point(self, exchange) -> None:
        """Redirect every REST endpoint of a ccxt exchange instance to this emulator."""
        api = exchange.urls["api"]
        for key, url in api.items():
            if isinstance(url, str):
                api[key] = re.sub(r"^https?://[^/]+", self.base, url)

    def ticker_requests(self) -> int:
        return sum(1 for r in self.requests if r.startswith(TICKER_PATHS))

    # -- serving ------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        url = urlsplit(h.path)
        with self.lock:
            self.requests.append(h.path)
        if url.path == "/fapi/v1/exchangeInfo":
            return self._send(h, 200, self.exchange_info)
        if url.path not in TICKER_PATHS:
            return self._send(h, 404, json.dumps({"code": -5000, "msg": f"Path {url.path}, Method GET is invalid"}))
        symbol = parse_qs(url.query).get("symbol", ["BTCUSDT"])[0]
        with self.lock:
            step = self.steps.popleft() if self.steps else None
            if step is not None and not isinstance(step, Fault):
                self.last = str(step)
            price = self.last
        if isinstance(step, Fault):
            return self._fault(h, step)
        if price is None:
            return self._send(h, 503, json.dumps({"code": -1001, "msg": "no price scripted"}))
        now = int(time.time() * 1000)
        if url.path.endswith("/price"):
            body = {"symbol": symbol, "price": price, "time": now}
        else:
            body = {"symbol": symbol, "priceChange": "0", "priceChangePercent": "0", "weightedAvgPrice": price,
                    "lastPrice": price, "lastQty": "1", "openPrice": price, "highPrice": price, "lowPrice": price,
                    "volume": "1000", "quoteVolume": "1000", "openTime": now - 86_400_000, "closeTime": now,
                    "firstId": 1, "lastId": 2, "count": 2}
        self._send(h, 200, json.dumps(body))

    def _fault(self, h: BaseHTTPRequestHandler, f: Fault) -> None:
        if f.kind == "hang":
            self.released.wait(f.hang_s)
            return self._send(h, 200, b"{}")  # long after the client gave up
        if f.kind == "malformed":
            return self._send(h, 200, b"<html>upstream gateway glitch</html>", "text/html")
        if f.kind == 429:
            headers = {"Retry-After": str(f.retry_after)} if f.retry_after is not None else {}
            return self._send(h, 429, json.dumps({"code": -1003, "msg": "Too many requests; current limit of "
                                                  "IP is 2400 requests per minute."}), headers=headers)
        return self._send(h, int(f.kind), json.dumps({"code": -1001, "msg": "Service unavailable."}))

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, body, content_type: str = "application/json",
              headers: Optional[dict] = None) -> None:
        data = body.encode() if isinstance(body, str) else body
        try:
            h.send_response(status)
            h.send_header("Content-Type", content_type)
            h.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and left
