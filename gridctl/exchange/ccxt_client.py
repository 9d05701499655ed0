"""The ccxt client of an account: one ccxt.pro instance (REST and WebSocket) with the
account's keys, sandbox or endpoint, and the adapter's timing knobs."""

from __future__ import annotations

import copy
import json
import os
import re
from dataclasses import dataclass, field, fields
from typing import Any, Optional

from gridctl.config.model import AccountConfig
from gridctl.exchange.base import ExchangeError
from gridctl.exchange.ccxt_streams import StreamTiming, tee_class
from gridctl.exchange.ccxt_throttle import install as install_throttle
from gridctl.exchange.venues import quirk

TIMING_ENV = "GRIDCTL_CCXT_TIMING"  # JSON overrides of Timing (tests make reconnects fast)


class PreflightError(ExchangeError):
    """The account is set up in a way the venue will not change for us: a configuration error."""

    reason = "configuration"


@dataclass(frozen=True)
class Timing:
    """Every interval of the adapter, in seconds (see StreamTiming for reconnects)."""

    streams: StreamTiming = field(default_factory=StreamTiming)
    heartbeat_s: float = 1.0  # events() returns empty after this, so the worker syncs in quiet markets
    margin_every_s: float = 30.0
    funding_every_s: float = 600.0  # and a few seconds after each funding time the stream announces
    listen_key_every_s: float = 1800.0  # Binance: PUT /fapi/v1/listenKey (ccxt's own fires once)
    confirm_stream_s: float = 2.0  # unknown outcome: wait this long for the stream to mention the order
    confirm_tries: int = 3
    confirm_retry_s: float = 1.0
    rest_timeout_ms: int = 10_000
    ws_keepalive_ms: Optional[int] = None  # ccxt's ping interval (None: its default)
    read_retries: int = 3  # temporary errors on reads: retried with back-off 0.5, 1, 2 s
    stale_s: float = 30.0  # no stream message for this long: a zombie socket, re-dialled

    @classmethod
    def from_env(cls, environ: Optional[dict] = None) -> "Timing":
        """Timing with the overrides of GRIDCTL_CCXT_TIMING, e.g. {"reconnect_delays": [0.2, 0.2, 0.2]}."""
        raw = (environ if environ is not None else os.environ).get(TIMING_ENV)
        if not raw:
            return cls()
        data = json.loads(raw)
        stream_keys = {f.name for f in fields(StreamTiming)}
        streams = StreamTiming(**{k: (tuple(v) if k == "reconnect_delays" else v)
                                  for k, v in data.items() if k in stream_keys})
        return cls(streams=streams, **{k: v for k, v in data.items() if k not in stream_keys})


def point(client: Any, endpoint: str) -> None:
    """Send every REST url of a ccxt instance to `endpoint` (scheme+host replaced, path kept)
    and every WebSocket url to the same host as ws:// (the local venue's URL rule)."""
    base = endpoint.rstrip("/")
    m = re.match(r"^(https?)://([^/]+)", base)
    if not m:
        raise ValueError(f"endpoint must be http(s)://HOST[:PORT], got {endpoint!r}")
    ws_base = ("wss" if m.group(1) == "https" else "ws") + "://" + m.group(2)
    http_base = f"{m.group(1)}://{m.group(2)}"

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, str):
            node = re.sub(r"^https?://[^/]+", http_base, node)
            return re.sub(r"^wss?://[^/]+", ws_base, node)
        return node

    client.urls["api"] = walk(client.urls["api"])


def make_client(account: AccountConfig, timing: Timing) -> Any:
    """One ccxt.pro instance for the account (keys, sandbox, endpoint, quiet options)."""
    venue = account.exchange
    cfg: dict[str, Any] = {"enableRateLimit": True, "timeout": timing.rest_timeout_ms,
                           "options": copy.deepcopy(quirk(venue, "options"))}
    for key, name in (("api_key", "apiKey"), ("secret", "secret"), ("password", "password")):
        value = getattr(account, key)
        if value:
            cfg[name] = value.reveal()
    if timing.ws_keepalive_ms:
        cfg["streaming"] = {"keepAlive": timing.ws_keepalive_ms, "maxPingPongMisses": 2}
    client = tee_class(venue)(cfg)
    install_throttle(client)  # ccxt's pacing, idle time credited (gridctl.exchange.ccxt_throttle)
    if not quirk(venue, "fetch_currencies"):
        client.has["fetchCurrencies"] = False
    if getattr(account, "sandbox", False):
        client.set_sandbox_mode(True)
    if getattr(account, "endpoint", None):
        point(client, account.endpoint)
    return client


