"""A paper account as a local venue: the venue's command line, its API keys, its address.

A paper account is served by one `gridctl venue` process (gridctl/venue/) that speaks the
wire protocol of the venue the account is `like`; its workers trade through the same ccxt
adapter as on a real account, pointed at the venue's address. This module is what the
supervisor (which starts the venue), the worker (which connects to it) and the CLI share.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import replace
from typing import Iterable, Optional

from gridctl.config.model import AccountConfig, Secret
from gridctl.process.paths import StatePaths
from gridctl.process.pidfile import write_atomic

PROTOCOLS = ("binanceusdm", "backpack")


class VenueUnavailable(Exception):
    """The paper account's venue did not come up (its log says why)."""


def protocol(account: AccountConfig) -> str:
    """The wire protocol the account's venue speaks (its `like`)."""
    return account.venue if account.venue in PROTOCOLS else "binanceusdm"


def _new_keys(proto: str) -> dict:
    if proto == "backpack":  # the API key is the ED25519 public key of the secret
        from nacl.signing import SigningKey

        key = SigningKey.generate()
        return {"api_key": base64.b64encode(bytes(key.verify_key)).decode(),
                "secret": base64.b64encode(bytes(key)).decode()}
    return {"api_key": secrets.token_hex(32), "secret": secrets.token_hex(32)}


def account_keys(paths: StatePaths, account: AccountConfig) -> tuple[Secret, Secret]:
    """The paper account's key pair, made once and kept owner-only in the state dir."""
    path = paths.venue_keys(account.name)
    proto = protocol(account)
    try:
        data = json.loads(path.read_text())
        if data.get("protocol") == proto:
            return Secret(data["api_key"]), Secret(data["secret"])
    except (OSError, ValueError, KeyError):
        pass
    data = {"protocol": proto, **_new_keys(proto)}
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(path, json.dumps(data), 0o600)
    return Secret(data["api_key"]), Secret(data["secret"])


def _feed_args(account: AccountConfig) -> list[str]:
    f = account.feed
    if f.live is not None:
        return ["--live", f.live, "--poll-ms", str(f.poll_ms)]
    args = ["--speed", str(f.speed)]
    if f.replay is not None:
        args += ["--data", str(f.replay)]
    else:
        args += ["--seed", str(f.synthetic_seed if f.synthetic_seed is not None else 7),
                 "--volatility", str(f.synthetic_volatility)]
        if f.synthetic_price is not None:
            args += ["--start-price", str(f.synthetic_price)]
    if f.funding is not None:
        args += ["--funding", str(f.funding)]
    return args


def venue_argv(paths: StatePaths, account: AccountConfig, symbols: Iterable[str], port: int = 0) -> list[str]:
    """`gridctl venue …` arguments for the account (run in a forked child, never exec'd:
    the secret never appears in a process's command line)."""
    key, secret = account_keys(paths, account)
    argv = [protocol(account), "--host", "127.0.0.1", "--port", str(port),
            "--state", str(paths.venue_state(account.name)), "--port-file", str(paths.venue_url(account.name)),
            "--balance", str(account.balance), "--api-key", key.reveal(), "--secret", secret.reveal()]
    for sym in sorted(set(symbols)):
        argv += ["--symbol", sym]
    return argv + _feed_args(account)


def recorded_port(paths: StatePaths, account: str) -> int:
    """The port the account's venue listened on last time (0: none yet): a restarted venue
    takes the same one, so workers' endpoints stay valid."""
    try:
        return int(paths.venue_url(account).read_text().strip().rsplit(":", 1)[1])
    except (OSError, ValueError, IndexError):
        return 0


def venue_url(paths: StatePaths, account: str) -> Optional[str]:
    try:
        url = paths.venue_url(account).read_text().strip()
    except OSError:
        return None
    return url or None


def connect_account(paths: StatePaths, account: AccountConfig, timeout: float = 30.0) -> AccountConfig:
    """The paper account as a live account on its venue: exchange = the protocol, endpoint =
    the venue's address (waits up to timeout for the venue to listen), the account's keys."""
    from gridctl.process.pidfile import lock_holder

    deadline = time.monotonic() + timeout
    while True:
        url = venue_url(paths, account.name)
        if url is not None and lock_holder(paths.venue_pid(account.name)) is not None:
            break
        if time.monotonic() > deadline:
            raise VenueUnavailable(f"account '{account.name}': its local venue is not running "
                                   f"(see {paths.venue_log(account.name)})")
        time.sleep(0.1)
    key, secret = account_keys(paths, account)
    return replace(account, exchange=protocol(account), endpoint=url, api_key=key, secret=secret)

