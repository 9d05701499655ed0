"""What every command shares: config loading, state dir, output and errors."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Optional

import click

from gridctl.config import Config, ConfigError, load

DEFAULT_CONFIG = "strategies.yaml"
DEFAULT_STATE_DIR = Path("~/.local/state/gridctl")
EXIT_CONFIG = 2


@dataclass
class AppContext:
    state_dir_option: Optional[str] = None

    def state_dir(self, config: Optional[Config] = None) -> Path:
        """--state-dir (or GRIDCTL_STATE_DIR) > the config's state_dir > the default."""
        if self.state_dir_option:
            return Path(self.state_dir_option).expanduser()
        if config is not None and config.state_dir is not None:
            return config.state_dir
        return DEFAULT_STATE_DIR.expanduser()


def config_option(f: Callable) -> Callable:
    """-c/--config FILE, defaulting to ./strategies.yaml (or GRIDCTL_CONFIG)."""
    return click.option("-c", "--config", "config_path", default=DEFAULT_CONFIG, envvar="GRIDCTL_CONFIG",
                        show_default=True, type=click.Path(dir_okay=False),
                        help="The strategies file.")(f)


def json_option(f: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(f)


def load_config_or_exit(path: str, **kw: Any) -> Config:
    """Load the config; on problems print each one and exit 2 (no traceback, nothing traded)."""
    try:
        return load(Path(path), **kw)
    except ConfigError as exc:
        click.echo(f"{path}: {len(exc.problems)} problem(s)", err=True)
        for p in exc.problems:
            click.echo(f"  {p}", err=True)
        sys.exit(EXIT_CONFIG)


def fail(message: str, code: int = 1) -> None:
    """Print an error for the user and exit non-zero."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


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

    config = load_config_or_exit(config_path)
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
