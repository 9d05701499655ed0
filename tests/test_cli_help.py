"""Every command's help shows an example, and the main help lists every command."""

import pytest
from click.testing import CliRunner

import gridctl.cli.commands  # noqa: F401  (registers the commands)
from gridctl.cli import cli

COMMANDS = sorted(cli.commands)


def test_all_operator_commands_are_registered():
    assert set(COMMANDS) >= {"validate", "plan", "backtest", "start", "stop", "pause", "resume", "reload",
                             "shutdown", "emergency-close", "status", "logs", "export", "report"}


@pytest.mark.parametrize("name", COMMANDS)
def test_help_has_an_example(name):
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output and f"gridctl {name}" in result.output.split("Example:", 1)[1]
