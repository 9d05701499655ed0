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


def test_every_command_is_found_lazily_and_status_imports_no_backtest_or_ccxt(tmp_path):
    # the lazy map names every registered command (a command missing from it would vanish from `gridctl`)
    assert sorted(cli.lazy_commands) == COMMANDS
    import subprocess
    import sys
    code = ("import sys; from click.testing import CliRunner; from gridctl.cli import cli; "
            f"r = CliRunner().invoke(cli, ['--state-dir', {str(tmp_path)!r}, 'status', '--json']); "
            "print(r.exit_code, sorted(m for m in ('numpy', 'ccxt', 'aiohttp', 'gridctl.backtest') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] != "0" and out[1:] == ["[]"]  # no database yet: a clear error, with nothing heavy imported


def test_the_main_help_lists_commands_not_yet_imported():
    import subprocess
    import sys
    code = "from click.testing import CliRunner; from gridctl.cli import cli; print(CliRunner().invoke(cli, ['--help']).output)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert all(f"  {name} " in out for name in COMMANDS), out
