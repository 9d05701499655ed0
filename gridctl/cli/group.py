"""The `gridctl` click group every command module registers its commands on.

Apart from gridctl/cli/__init__.py so that command modules import the group from
here and the package's __init__ can import the command modules: no circle.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Optional

import click

from gridctl import __version__
from gridctl.cli.common import AppContext, GridctlGroup
from gridctl.secrets import vault as vault_files


def interactive() -> bool:
    """Whether someone at a terminal can answer a prompt: stdin is a terminal (not a pipe, a
    file, /dev/null as in the daemon, cron or systemd)."""
    return sys.stdin.isatty()


def ask_passphrase(question: str, confirm: bool) -> Optional[str]:
    """The vault's passphrase from a hidden prompt on stderr; None when no one can answer."""
    if not interactive():
        return None
    return click.prompt(question, hide_input=True, confirmation_prompt=confirm, err=True)


def _vault_rules(ctx: click.Context, app: AppContext) -> None:
    """`vault:` fields read the vault of the state dir every other command uses (cwd fixed now:
    the daemon changes to /), and may ask for its passphrase; both end with the command."""
    cwd = Path.cwd()
    vault_files.use_state_dir_rule(lambda sd: cwd / app.state_dir(SimpleNamespace(state_dir=sd)))  # type: ignore[arg-type]
    vault_files.use_prompt(ask_passphrase)

    def reset() -> None:
        vault_files.use_state_dir_rule(None)
        vault_files.use_prompt(None)
    ctx.call_on_close(reset)


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
    _vault_rules(ctx, ctx.obj)


# name -> the module that registers it (imported when the command is asked for; see GridctlGroup)
cli.lazy_commands = {
    **{name: "gridctl.cli.operate_cmds" for name in (
        "start", "stop", "pause", "resume", "reload", "shutdown", "emergency-close")},
    **{name: "gridctl.cli.read_cmds" for name in ("logs", "export", "report")},
    "status": "gridctl.cli.status_cmd", "plan": "gridctl.cli.plan_cmds", "validate": "gridctl.cli.plan_cmds",
    "backtest": "gridctl.cli.backtest_cmd", "sweep": "gridctl.cli.sweep_cmd", "markets": "gridctl.cli.markets_cmd",
    "venue": "gridctl.cli.venue_cmd", "secrets": "gridctl.cli.secrets_cmd",
    "reconcile": "gridctl.cli.reconcile_cmd",
}
