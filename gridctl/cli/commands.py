"""Imports every command module so each registers its commands on `cli`."""

from gridctl.cli import backtest_cmd, operate_cmds, plan_cmds, read_cmds, venue_cmd  # noqa: F401
