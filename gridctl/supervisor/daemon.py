"""Turning the supervisor into a daemon (double fork, as in Stevens and gunicorn)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable

from gridctl.supervisor.child import close_inherited_fds


def daemonize(body: Callable[[], int], log_path: Path) -> int:
    """Run body() in a detached daemon process; return the daemon's PID to the caller.

    fork → setsid (no controlling terminal, own session) → fork again (the daemon
    is not a session leader, so it can never acquire a terminal) → cwd /, stdin
    /dev/null, stdout and stderr appended to log_path, every other inherited fd closed.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    r, w = os.pipe()
    first = os.fork()
    if first:
        os.close(w)
        with os.fdopen(r, "rb") as f:
            data = f.read()
        os.waitpid(first, 0)
        return int(data or b"0")
    code = 1
    try:
        os.close(r)
        os.setsid()
        second = os.fork()
        if second:
            os.write(w, str(second).encode())
            os._exit(0)
        os.close(w)
        os.chdir("/")
        os.umask(0o077)
        null = os.open(os.devnull, os.O_RDWR)
        out = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        # Inherited pipes (ssh, cron, a test runner) would wait for our EOF forever.
        close_inherited_fds()
        code = int(body() or 0)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)
    return 0
