"""Where each command lives, and (imported) every command registered on `cli` at once
(tests, `gridctl --help` lists them without this)."""

from gridctl.cli import (  # noqa: F401
    backtest_cmd, markets_cmd, operate_cmds, plan_cmds, read_cmds, reconcile_cmd, secrets_cmd, status_cmd, sweep_cmd,
    venue_cmd,
)
