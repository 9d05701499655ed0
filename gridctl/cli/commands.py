"""Imports every command module so each registers its commands on `cli`."""

from gridctl.cli import (  # noqa: F401
    backtest_cmd, markets_cmd, operate_cmds, plan_cmds, read_cmds, sweep_cmd, venue_cmd,
)
