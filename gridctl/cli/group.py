"""The `gridctl` click group every command module registers its commands on.

Apart from gridctl/cli/__init__.py so that command modules import the group from
here and the package's __init__ can import the command modules: no circle.
"""

from __future__ import annotations

import click

from gridctl import __version__
from gridctl.cli.common import AppContext, GridctlGroup


@click.group(cls=GridctlGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="gridctl")
@click.option("--state-dir", type=click.Path(file_okay=False), envvar="GRIDCTL_STATE_DIR",
              help="Where the database, PID files and socket live "
                   "(default: state_dir in the config, else ~/.local/state/gridctl).")
@click.pass_context
def cli(ctx: click.Context, state_dir: str | None) -> None:
    """Grid trading on crypto perpetual futures.

    \b
    Example:
        gridctl validate -c strategies.yaml
    """
    ctx.obj = AppContext(state_dir_option=state_dir)
