"""The live event feed's listen address (`events: {listen: HOST:PORT}` or `start --events HOST:PORT`).

The feed is loopback-only unless the operator opts in (`events.allow_remote: true`):
anyone who can reach the port and has the token reads every strategy's orders and fills.
"""

from __future__ import annotations

import ipaddress
from typing import Optional

from gridctl.config.model import EventsConfig


class ListenError(ValueError):
    """A listen address that cannot be used; the message says why (without the field's name)."""


def parse_listen(text: str) -> tuple[str, int]:
    """'127.0.0.1:8765', '[::1]:8765' or 'localhost:8765' -> (host, port); port 0 means any free port."""
    text = str(text).strip()
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ListenError(f"'{text}' is not HOST:PORT (e.g. 127.0.0.1:8765)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ListenError(f"'{text}': write an IPv6 address in brackets, e.g. [::1]:8765")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ListenError(f"'{text}': the port must be a number from 0 to 65535")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ListenError(f"'{text}': the host must be an IP address or localhost") from None
    return host, int(port)


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach host (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def events_config(listen: str, allow_remote: bool, field: str) -> EventsConfig:
    """A checked EventsConfig; ListenError names `field` when the address is refused."""
    try:
        host, port = parse_listen(listen)
    except ListenError as exc:
        raise ListenError(f"{field}: {exc}") from None
    if not allow_remote and not is_loopback(host):
        raise ListenError(f"{field}: {listen} is not a loopback address; the event feed listens on this "
                          f"machine only unless `events: {{allow_remote: true}}` is set in the YAML "
                          f"(then anyone who can reach the port and has the token reads the feed)")
    return EventsConfig(host=host, port=port, allow_remote=allow_remote)


def resolve(option: Optional[str], configured: Optional[EventsConfig]) -> Optional[EventsConfig]:
    """`start --events` wins over the YAML's `events.listen`; allow_remote always comes from the YAML."""
    if option is None:
        return configured
    return events_config(option, bool(configured and configured.allow_remote), "--events")
