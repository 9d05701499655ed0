"""The host name a supervisor and its workers record beside their strategies.

Several hosts (one supervisor each, each with its own state dir) may share one PostgreSQL
database; each strategy row names the host that runs it, so no host starts, stops or
judges another's strategy. The name is GRIDCTL_HOST when set (give every gridctl command
on that machine the same one, e.g. in the systemd unit and the shell profile), else the
machine's hostname.
"""

from __future__ import annotations

import os
import socket

ENV = "GRIDCTL_HOST"


def host_name() -> str:
    """GRIDCTL_HOST, else the machine's hostname (never empty)."""
    name = os.environ.get(ENV, "").strip()
    return name or socket.gethostname() or "localhost"
