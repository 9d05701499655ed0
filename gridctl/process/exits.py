"""Reserved exit codes of gridctl's processes and what they mean.

Here rather than in the supervisor because the worker sets them and the
supervisor (and the CLI) read them: both sides import this neutral module.
"""

from __future__ import annotations

# Reserved worker exit codes (BSD sysexits values, so they mean something to admins too).
EX_OK = 0
EX_DB_UNAVAILABLE = 69    # the database cannot be opened at start (a PostgreSQL server down): retried, never fatal
EX_SOFTWARE = 70          # an unhandled exception in the worker
EX_ALREADY_RUNNING = 75   # another process holds the strategy's PID-file lock
EX_AUTH = 77              # the exchange refused the API keys: restarting will not help
EX_CONFIG = 78            # the strategy's configuration is unusable: restarting will not help

EXIT_MEANING = {
    EX_DB_UNAVAILABLE: "database unavailable",
    EX_SOFTWARE: "internal error",
    EX_ALREADY_RUNNING: "already running",
    EX_AUTH: "authentication error",
    EX_CONFIG: "configuration error",
}


def describe_exit(status: int | None, signal_name: str | None) -> str:
    """'exit 78 (configuration error)', 'killed by SIGKILL', or 'vanished' when unknown."""
    if signal_name:
        return f"killed by {signal_name}"
    if status is None:
        return "vanished (exit status unknown)"
    meaning = EXIT_MEANING.get(status)
    return f"exit {status} ({meaning})" if meaning else f"exit {status}"
