"""ccxt's own backpack classes pointed at a local venue, with real ED25519 key pairs."""

from __future__ import annotations

import asyncio
import base64
from typing import Optional

from nacl.signing import SigningKey

SOL, BTC = "SOL/USDC:USDC", "BTC/USDC:USDC"
SOL_ID, BTC_ID = "SOL_USDC_PERP", "BTC_USDC_PERP"


def key_pair() -> tuple[str, str]:
    """(API key = base64 verify key, secret = base64 seed), as Backpack issues them."""
    sk = SigningKey.generate()
    return base64.b64encode(bytes(sk.verify_key)).decode(), base64.b64encode(bytes(sk)).decode()


def point_backpack(ex, base: str) -> None:
    """URL rule: REST scheme+host -> base (paths kept); the one WS URL -> ws://HOST:PORT/."""
    for k, v in list(ex.urls["api"].items()):
        if isinstance(v, str) and v.startswith("http"):
            rest = v.split("://", 1)[1]
            ex.urls["api"][k] = base + (rest[rest.find("/"):] if "/" in rest else "")
    ws = "ws" + base[len("http"):] + "/"
    ex.urls["api"]["ws"] = {"public": ws, "private": ws}


def backpack_client(base: str, key: Optional[str] = None, secret: Optional[str] = None, **config):
    """ccxt.pro.backpack (REST + WS) on the venue; a fresh key pair unless one is given."""
    import ccxt.pro as ccxtpro
    if key is None:
        key, secret = key_pair()
    cfg = {"apiKey": key, "secret": secret, "enableRateLimit": False,
           "timeout": config.pop("timeout", 10_000), **config}
    ex = ccxtpro.backpack(cfg)
    point_backpack(ex, base)
    return ex


def run(coro, timeout: float = 60):
    """Run one async test body."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def loaded(ex):
    """The client with the perpetual markets loaded, as the adapter loads them."""
    await ex.load_markets(False, {"marketType": "PERP"})
    return ex


def listeners(venue, stream: str) -> int:
    """How many sockets the venue has subscribed to `stream` (read on its loop)."""
    streams = venue.server.protocol.streams
    return venue.sync(lambda: sum(1 for subs in streams.subs.values() if stream in subs))


async def watching(venue, coro, *streams: str, timeout: float = 5.0):
    """Start a ccxt watch_* and return its task once the venue has subscribed its streams
    (an event sent before that would be lost, as on the real venue)."""
    loop = asyncio.get_running_loop()
    before = {s: await loop.run_in_executor(None, listeners, venue, s) for s in streams}
    task = asyncio.ensure_future(coro)
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        counts = {s: await loop.run_in_executor(None, listeners, venue, s) for s in streams}
        if all(counts[s] > before[s] for s in streams):
            break
        await asyncio.sleep(0.02)
    return task
