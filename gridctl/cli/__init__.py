"""The `gridctl` command line: thin click commands over library functions."""

from __future__ import annotations

from gridctl.cli.group import cli  # commands are imported when asked for (cli.lazy_commands)

__all__ = ["cli", "main"]


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="gridctl")
