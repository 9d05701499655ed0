"""Run a local venue process: build the Venue from options, serve until SIGTERM/SIGINT, save."""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Callable, Optional

from gridctl.process.private import write_private
from gridctl.venue.core import Venue
from gridctl.venue.market import FeedSpec
from gridctl.venue.server import VenueServer, protocol_class
from gridctl.venue.timing import from_env as timing_from_env


@dataclass
class VenueOptions:
    """What `gridctl venue` was asked for (validated by the CLI)."""

    protocol: str
    host: str = "127.0.0.1"
    port: int = 0
    data: Optional[Path] = None
    funding: Optional[Path] = None
    symbols: list[str] = field(default_factory=list)
    speed: Decimal = Decimal(1)
    balance: Decimal = Decimal(10_000)
    api_key: Optional[str] = None
    secret: Optional[str] = None
    state: Optional[Path] = None
    faults: dict = field(default_factory=dict)
    seed: int = 0
    start_price: Optional[Decimal] = None
    volatility: Decimal = Decimal("0.0008")
    live: Optional[str] = None
    poll_ms: int = 1000
    port_file: Optional[Path] = None


def build(opts: VenueOptions) -> VenueServer:
    """The server for these options (not started). Raises VenueReject for a bad symbol."""
    cls = protocol_class(opts.protocol)
    symbols = list(cls.default_symbols)
    for s in opts.symbols:
        if s not in symbols:
            symbols.append(s)
    # the markets the options drive: the --symbol ones; without any, --live drives every
    # market and --start-price the first one (--data always names its market, see the CLI)
    driven = list(opts.symbols) or (list(symbols) if opts.live else symbols[:1] if opts.start_price else [])
    specs = {}
    for i, sym in enumerate(symbols):
        seed = opts.seed + 7 + i
        if sym in driven:
            specs[sym] = FeedSpec(replay=opts.data, funding=opts.funding, start_price=opts.start_price,
                                  volatility=opts.volatility, seed=seed, speed=opts.speed, live=opts.live,
                                  poll_ms=opts.poll_ms)
        else:
            specs[sym] = FeedSpec(volatility=opts.volatility, seed=seed, speed=opts.speed)
    venue = Venue(cls.like, symbols, specs, opts.balance, opts.api_key, opts.seed, opts.state, secret=opts.secret)
    venue.faults.configure(opts.faults)
    venue.timing = timing_from_env()
    return VenueServer(venue, cls)


def write_port_file(path: Path, url: str) -> None:
    """The venue's URL for the supervisor and workers (atomic, owner-only like the rest of the state dir)."""
    write_private(path, url + "\n")


async def serve(server: VenueServer, opts: VenueOptions, ready: Callable[[str], None]) -> None:
    """Start, report readiness, run until SIGTERM/SIGINT, then stop (saving the state)."""
    url = await server.start(opts.host, opts.port)
    if opts.port_file is not None:
        write_port_file(opts.port_file, url)
    ready(url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()
