"""The `gridctl` command line: thin click commands over library functions."""

from __future__ import annotations

from gridctl.cli import commands  # noqa: F401  (registers the commands on `cli`)
from gridctl.cli import secrets_cmd  # noqa: F401  (`gridctl secrets`)
from gridctl.cli.group import cli

__all__ = ["cli", "main"]


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="gridctl")
