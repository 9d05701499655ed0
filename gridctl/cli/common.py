"""What every command shares: config loading, state dir, output, errors and exit codes.

Exit codes: 0 ok, 1 runtime failure (the supervisor is down, a worker refused),
2 usage or configuration error (click's own usage errors are 2 too), 130 Ctrl-C.
Also: the time-window options, strategy-name completion and did-you-mean answers.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import click

from gridctl.config import Config, ConfigError, load

DEFAULT_CONFIG = "strategies.yaml"
DEFAULT_STATE_DIR = Path("~/.local/state/gridctl")
POINTER_NAME = "last-state-dir"  # under the default state dir: where `start` last ran
EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_CONFIG = 2  # a configuration error is a usage error
EXIT_INTERRUPTED = 130


@dataclass
class AppContext:
    state_dir_option: Optional[str] = None

    def state_dir(self, config: Optional[Config] = None) -> Path:
        """--state-dir (or GRIDCTL_STATE_DIR) > the config's state_dir > the default."""
        if self.state_dir_option:
            return Path(self.state_dir_option).expanduser()
        if config is not None and config.state_dir is not None:
            return config.state_dir
        remembered = read_state_pointer()
        return remembered if remembered is not None else DEFAULT_STATE_DIR.expanduser()


def _pointer_file() -> Path:
    return DEFAULT_STATE_DIR.expanduser() / POINTER_NAME


def read_state_pointer() -> Optional[Path]:
    """The state dir `gridctl start` last used (set by `state_dir:` in its config), if it still exists."""
    try:
        text = _pointer_file().read_text(encoding="utf-8").strip()
    except OSError:
        return None
    path = Path(text) if text else None
    return path if path is not None and path.is_absolute() and path.is_dir() else None


def remember_state_dir(state_dir: Path) -> None:
    """Let commands run without -c find a state dir that came from the config's `state_dir:`.

    Written by `start` as a one-line pointer file under the default state location;
    removed when the state dir is the default itself. Best effort: never fails a start.
    """
    pointer = _pointer_file()
    try:
        if state_dir.resolve() == DEFAULT_STATE_DIR.expanduser().resolve():
            pointer.unlink(missing_ok=True)
            return
        from gridctl.process.private import private_dir, write_private

        # its folder is the default state dir: made 0700 here as it would be by a start
        private_dir(pointer.parent, tighten_existing=False)
        write_private(pointer, f"{state_dir.resolve()}\n")
    except OSError:
        pass


def config_option(f: Callable) -> Callable:
    """-c/--config FILE, defaulting to ./strategies.yaml (or GRIDCTL_CONFIG)."""
    return click.option("-c", "--config", "config_path", default=DEFAULT_CONFIG, envvar="GRIDCTL_CONFIG",
                        show_default=True, type=click.Path(dir_okay=False),
                        help="The strategies file.")(f)


def json_option(f: Callable) -> Callable:
    """--json: print the results as JSON (money as decimal strings) instead of text."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(f)


def load_config_or_exit(path: str, **kw: Any) -> Config:
    """Load the config; on problems print each one and exit 2 (no traceback, nothing traded)."""
    try:
        return load(Path(path), **kw)
    except ConfigError as exc:
        click.echo(f"{path}: {len(exc.problems)} problem(s)", err=True)
        for p in exc.problems:
            click.echo(f"  {p}", err=True)
        sys.exit(EXIT_CONFIG)


def fail(message: str, code: int = EXIT_RUNTIME) -> None:
    """Print an error for the user and exit non-zero (1 runtime, 2 usage/configuration)."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


class GridctlGroup(click.Group):
    """The command group: Ctrl-C (KeyboardInterrupt, or click.Abort from a prompt) exits 130.

    Commands are imported when asked for (`lazy_commands`: name -> module that registers it),
    so `gridctl status` does not pay for numpy, the backtest and the venue (0.5 s of imports)."""

    lazy_commands: dict[str, str] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(self.lazy_commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> Optional[click.Command]:
        module = self.lazy_commands.get(cmd_name)
        if cmd_name not in self.commands and module is not None:
            importlib.import_module(module)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (KeyboardInterrupt, click.Abort):
            click.echo("\ninterrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)


def _default(o: Any) -> Any:
    if isinstance(o, Decimal):
        return format(o, "f")  # 0.00000001, never 1E-8
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "value"):
        return o.value
    raise TypeError(f"not serialisable: {type(o).__name__}")


def print_json(data: Any) -> None:
    """JSON with Decimal as strings (money is never a float in output)."""
    click.echo(json.dumps(data, default=_default, indent=2))


def strategy_or_exit(config: Config, name: str):
    """The named strategy, or a clear error listing the names there are."""
    from gridctl.config.reader import did_you_mean

    if name not in config.strategies:
        fail(f"no strategy '{name}' in {config.path}{did_you_mean(name, config.strategies)}; "
             f"strategies: {', '.join(config.strategies)}", EXIT_CONFIG)
    return config.strategies[name]


def strategy_market_or_exit(config_path: str, name: str, purpose: str):
    """(config, strategy, account, market rules) for commands that need the bundled rules."""
    from gridctl.config.strategy import rules_for

    config = load_config_or_exit(config_path, vault="skip")  # plan and backtest need no credentials
    s = strategy_or_exit(config, name)
    account = config.accounts[s.account]
    rules = rules_for(account, s.symbol)
    if rules is None:
        fail(f"no bundled market rules for {s.symbol} on {account.venue}; {purpose} needs them", EXIT_CONFIG)
    return config, s, account, rules


def positive_number_or_exit(value: str, option: str) -> Decimal:
    """A finite positive decimal from an option, or a clear error naming the option."""
    from decimal import InvalidOperation

    try:
        number = Decimal(value)
        if number.is_finite() and 0 < number < 10**15:
            return number
    except InvalidOperation:
        pass
    fail(f"{option} must be a positive number, got {value!r}", EXIT_CONFIG)
    raise AssertionError  # fail() exits


# ---- time windows -------------------------------------------------------------------------------
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def parse_when(text: str, now_ms: int) -> int:
    """A duration ago (30m, 2h, 7d; also s, ms, w) or an ISO date/time (UTC unless it has an offset) → epoch ms."""
    text = text.strip()
    m = _DURATION.match(text)
    if m:
        return now_ms - int(Decimal(m.group(1)) * _UNIT_MS[m.group(2)])
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{text!r} is neither a duration like 30m, 2h, 7d nor an ISO date/time "
                                 f"like 2024-08-01 or 2024-08-01T12:00") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


def time_window_options(f: Callable) -> Callable:
    """--since/--until (durations ago or ISO dates/times), with --from/--to kept as hidden aliases.

    The command receives `since` and `until` as the text given (None when absent);
    turn them into epoch ms with `window_ms`.
    """
    f = click.option("--to", "until_alias", hidden=True)(f)
    f = click.option("--from", "since_alias", hidden=True)(f)
    f = click.option("--until", help="Up to (not including) a duration ago or an ISO date/time (UTC).")(f)
    f = click.option("--since", help="From a duration ago (30m, 2h, 7d) or an ISO date/time (UTC).")(f)
    return f


def merge_window(since: Optional[str], until: Optional[str], since_alias: Optional[str],
                 until_alias: Optional[str]) -> tuple[Optional[str], Optional[str]]:
    """The window text from --since/--until or their old names --from/--to (not both)."""
    for new, old, names in ((since, since_alias, "--since and --from"), (until, until_alias, "--until and --to")):
        if new is not None and old is not None:
            raise click.UsageError(f"give only one of {names} (--from/--to are the old names)")
    return (since if since is not None else since_alias), (until if until is not None else until_alias)


def window_ms(since: Optional[str], until: Optional[str], now_ms: int) -> tuple[Optional[int], Optional[int]]:
    """(since_ms, until_ms) of a window's texts; a bad value is a usage error (exit 2)."""
    return (parse_when(since, now_ms) if since else None), (parse_when(until, now_ms) if until else None)


# ---- strategy names --------------------------------------------------------------------------
def unknown_strategy(name: str, known: Iterable[str]) -> str:
    """"no strategy 'sol-nutral' (did you mean 'sol-neutral'?)"."""
    from gridctl.config.reader import did_you_mean

    return f"no strategy '{name}'{did_you_mean(name, known)}"


def configured_names(config_path: Optional[str]) -> Optional[list[str]]:
    """The strategy names of a config file (None when it is missing or does not parse)."""
    if not config_path or not os.path.isfile(config_path):
        return None
    try:
        return list(load(Path(config_path), check_markets=False).strategies)
    except (ConfigError, OSError):
        return None


def check_names_or_exit(config_path: str, names: Iterable[str]) -> None:
    """Refuse names the config does not have, with a did-you-mean, exit 2 (skipped when the config
    cannot be read: a broken file must not keep anyone from stopping a running grid)."""
    known = configured_names(config_path)
    if known is None:
        return
    bad = [n for n in names if n not in known]
    if bad:
        fail("; ".join(unknown_strategy(n, known) for n in bad), EXIT_USAGE)


def complete_strategy_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list:
    """Shell completion of NAME arguments from the config of -c, GRIDCTL_CONFIG or ./strategies.yaml."""
    from click.shell_completion import CompletionItem

    path = ctx.params.get("config_path") or os.environ.get("GRIDCTL_CONFIG") or DEFAULT_CONFIG
    known = configured_names(path) or []
    taken = set(ctx.params.get(param.name or "") or ()) if param.multiple or param.nargs == -1 else set()
    return [CompletionItem(n) for n in known if n.startswith(incomplete) and n not in taken]
