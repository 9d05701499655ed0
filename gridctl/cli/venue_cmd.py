"""`gridctl venue`: a local exchange speaking a real venue's wire protocol (paper, tests, faults)."""

from __future__ import annotations

import asyncio
import json
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Optional

import click

from gridctl.cli.group import cli
from gridctl.datasets import BUILTIN, resolve
from gridctl.cli.common import EXIT_CONFIG

FAULT_HELP = """\b
Faults (--faults "NAME:k=v,...;NAME2" or POST /_admin/faults {"NAME": {...}}):
  rate_limit      429 with the venue's body and Retry-After   (retry_after=S)
  server_error    a 5xx                                        (status=503, html=true)
  timeout         the order IS placed, the answer waits        (delay=S, default 15)
  empty           the order IS placed, the answer is an empty 200
  reject          the order is refused with the venue's code   (reason=insufficient_margin|...)
  partial         a resting order fills in several trades      (pieces=3)
                  leave=F: only part fills, F of it keeps resting (leave=0.6)
  drop_streams    close every stream;  silent_streams: no pong, no data (on=true|false)
  expire_auth     listen keys expire now
Each takes count=N (the next N requests) or p=P (probability, seeded by --seed),
and on=any|place|cancel|read|order.
"""


def _decimal(value: Optional[str], option: str, positive: bool = True) -> Optional[Decimal]:
    if value is None:
        return None
    try:
        d = Decimal(value)
        if not d.is_finite() or (positive and d <= 0):
            raise InvalidOperation
    except InvalidOperation:
        raise click.BadParameter(f"expected a positive number, got {value!r}", param_hint=option) from None
    return d


def _data_file(spec: Optional[str], option: str) -> Optional[Path]:
    if spec is None:
        return None
    path = resolve(spec, Path.cwd())
    if not path.is_file():
        raise click.BadParameter(f"no such file: {spec}", param_hint=option)
    return path


def _symbol_from_data(spec: str, like: Optional[str] = None) -> Optional[str]:
    """builtin:SOLUSDT_1m -> SOL/USDT:USDT (the file name's first part); on a venue that lists
    no such market, its perpetual of the same base (Backpack: SOL/USDC:USDC)."""
    name = Path(spec[len(BUILTIN):] if spec.startswith(BUILTIN) else spec).stem.split("_")[0].upper()
    for quote in ("USDT", "USDC"):
        if name.endswith(quote) and len(name) > len(quote):
            symbol = f"{name[:-len(quote)]}/{quote}:{quote}"
            if like is not None:
                from gridctl.markets import load_snapshot
                markets = load_snapshot(like)
                same_base = [s for s, r in markets.items() if r.base == name[:-len(quote)]]
                if symbol not in markets and len(same_base) == 1:
                    return same_base[0]
            return symbol
    return None


@cli.command("venue", epilog=FAULT_HELP)
@click.argument("protocol", type=click.Choice(["binanceusdm", "backpack"]))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="Port (0: any free port).")
@click.option("--data", help="Candles to replay for the --symbol markets (CSV or builtin:NAME).")
@click.option("--funding", help="Funding rates to replay with --data (CSV or builtin:NAME).")
@click.option("--symbol", "symbols", multiple=True, help="Market the --data drives (repeatable).")
@click.option("--speed", default="1", show_default=True, help="Replay speed (candles per candle interval).")
@click.option("--balance", default="10000", show_default=True, help="Wallet of a new account.")
@click.option("--api-key", envvar="GRIDCTL_VENUE_API_KEY",
              help="Accept only this API key (default: any key, each its own account). Env: GRIDCTL_VENUE_API_KEY.")
@click.option("--secret", envvar="GRIDCTL_VENUE_SECRET",
              help="Verify signatures with this secret (default: not verified). Env: GRIDCTL_VENUE_SECRET "
                   "(keeps it out of the process list).")
@click.option("--state", type=click.Path(dir_okay=False), help="State file: continued on restart.")
@click.option("--faults", "fault_spec", help="Faults to inject (see below).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of synthetic prices and random faults.")
@click.option("--start-price", help="First price of synthetic markets.")
@click.option("--volatility", default="0.0008", show_default=True, help="Synthetic walk: stdev per candle.")
@click.option("--live", "live", help="Drive the --symbol markets with this ccxt venue's public ticker.")
@click.option("--poll-ms", type=click.IntRange(100, 600_000), default=1000, show_default=True,
              help="Live feed poll interval.")
@click.option("--port-file", type=click.Path(dir_okay=False), help="Write http://HOST:PORT here once listening.")
def venue_cmd(protocol: str, host: str, port: int, data: Optional[str], funding: Optional[str],
              symbols: tuple[str, ...], speed: str, balance: str, api_key: Optional[str], secret: Optional[str],
              state: Optional[str], fault_spec: Optional[str], seed: int, start_price: Optional[str],
              volatility: str, live: Optional[str], poll_ms: int, port_file: Optional[str]) -> None:
    """Run a local exchange that speaks PROTOCOL's real REST and WebSocket API.

    Point ccxt (or an account's `endpoint:`) at the printed URL: every path is
    served where the real venue serves it. Matching, fees, margin, funding and
    liquidation are gridctl's simulator; prices replay --data, walk a seeded
    synthetic path, or follow --live. Stops on SIGTERM/SIGINT, saving --state.

    \b
    Example:
        gridctl venue binanceusdm --port 0 --port-file /tmp/venue.url
        gridctl venue binanceusdm --data builtin:SOLUSDT_1m --speed 60 --state /tmp/v.json
    """
    from gridctl.venue.core import VenueStateError
    from gridctl.venue.faults import FaultError, parse_spec
    from gridctl.venue.records import VenueReject
    from gridctl.venue.run import VenueOptions, build, serve

    if (api_key is None) != (secret is None) and api_key is not None:
        raise click.BadParameter("--api-key needs --secret", param_hint="--api-key")
    data_path = _data_file(data, "--data")
    syms = list(symbols)
    if data and not syms:
        inferred = _symbol_from_data(data, protocol)
        if inferred is None:
            raise click.BadParameter(f"cannot tell the market of {data}: add --symbol", param_hint="--data")
        syms = [inferred]
    try:
        faults = json.loads(fault_spec) if fault_spec and fault_spec.lstrip().startswith("{") else \
            parse_spec(fault_spec or "")
    except (FaultError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="--faults") from None
    opts = VenueOptions(
        protocol, host, port, data_path, _data_file(funding, "--funding"), syms, _decimal(speed, "--speed"),
        _decimal(balance, "--balance"), api_key, secret, Path(state) if state else None, faults, seed,
        _decimal(start_price, "--start-price"), _decimal(volatility, "--volatility"), live, poll_ms,
        Path(port_file) if port_file else None)
    try:
        server = build(opts)
    except VenueReject as exc:
        click.echo(f"error: {exc.message or exc}", err=True)
        sys.exit(EXIT_CONFIG)
    except FaultError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_CONFIG)
    except ImportError:
        click.echo(f"error: the {protocol} protocol is not available in this version", err=True)
        sys.exit(1)

    def ready(url: str) -> None:
        click.echo(f"gridctl venue {protocol} listening on {url}")
        sys.stdout.flush()

    try:
        asyncio.run(serve(server, opts, ready))
    except VenueStateError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_CONFIG)
    except OSError as exc:
        click.echo(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        sys.exit(1)
