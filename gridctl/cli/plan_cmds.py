"""`gridctl validate` and `gridctl plan`."""

from __future__ import annotations

import sys
from typing import Callable, Optional

import click

from gridctl.cli.group import cli
from gridctl.cli.common import (
    EXIT_CONFIG, AppContext, complete_strategy_names, config_option, fail, json_option, load_config_or_exit, positive_number_or_exit, print_json,
    strategy_market_or_exit,
)
from gridctl.cli.plan_render import plan_json, print_plan
from gridctl.cli import validate_online
from gridctl.cli.secrets_cmd import unchecked_secret_notes
from gridctl.config import pretrade
from gridctl.config.strategy import default_start
from gridctl.core.grid import GridError


ONLINE_HELP = ("Ask live venues for the account balance to check the margin against (not supported yet: "
               "live venues cannot be checked offline, and this version does not ask them).")


VALIDATE_ONLINE_HELP = ("Also ask each live account's venue for its markets (rules fetched in the last 24 h are "
                        "reused) and check the strategies against them: the live rules win over the bundled "
                        "snapshot, and their differences are listed. The balance is not read yet.")


def online_option(f: Callable) -> Callable:
    return click.option("--online", is_flag=True, help=ONLINE_HELP)(f)


@cli.command()
@config_option
@click.option("--online", is_flag=True, help=VALIDATE_ONLINE_HELP)
@json_option
@click.pass_obj
def validate(app: AppContext, config_path: str, online: bool, as_json: bool) -> None:
    """Check the strategies file against each market's rules and each account's balance.

    Every problem is listed with its YAML path and line; the exit status is 2
    when there is any. Then each grid's plan is checked before money moves: a
    margin above the account's balance, a start price or trigger already past a
    stop are problems; little balance headroom, a liquidation estimate before a
    stop are warnings (printed under the strategy's ok line, exit 0). Nothing is
    traded. --json prints {"ok", "path", "problems": [{"path", "line", "message"}],
    "strategies": [{"name", ..., "warnings", "notes"}]} (and "online": the live
    accounts' markets, with --online). A live venue that cannot be reached with
    --online is an error naming the account (exit 1).

    \b
    Example:
        gridctl validate -c strategies.yaml
        gridctl validate -c strategies.yaml --online --json
    """
    live = validate_online.fetch(app, config_path) if online else None
    if as_json:
        _validate_json(config_path, online, live)
        return
    for line in validate_online.summary_lines(live) if live is not None else []:
        click.echo(line)
    # no passphrase: the vault's entries go unchecked
    config = load_config_or_exit(config_path, vault="try", live_markets=live.sets if live is not None else None)
    report = pretrade.check(config, online)
    if report.problems:
        click.echo(f"{config_path}: {len(report.problems)} problem(s)", err=True)
        for p in sorted(report.problems, key=lambda p: (p.line, p.path)):
            click.echo(f"  {p}", err=True)
        for w in (w for ws in report.warnings.values() for w in ws):
            click.echo(f"  warning: {w}", err=True)
        sys.exit(EXIT_CONFIG)
    for s in config.strategies.values():
        acc = config.accounts[s.account]
        rng = f"{s.lower}..{s.upper}" if s.range_pct is None else f"±{s.range_pct}% around start"
        size = f"investment {s.investment}" if s.investment is not None else f"amount {s.amount}/level"
        click.echo(f"ok  {s.name}: {s.mode.value} {s.spacing.value} {s.symbol} on {acc.name} "
                   f"({acc.exchange}), {rng}, {s.grids} grids, {size}, {s.leverage}x")
        for w in report.warnings.get(s.name, []):
            click.echo(f"  warning: {w}")
        for n in report.notes.get(s.name, []):
            click.echo(f"  note: {n}")
    for n in unchecked_secret_notes(config):
        click.echo(f"note: {n}")


def _problems_json(problems) -> list:
    """Problems (and warnings, which may be Problems too) as {"path", "line", "message"}; text stays text."""
    return [{"path": ".".join(str(k) for k in p.path), "line": p.line, "message": p.message}
            if hasattr(p, "line") else str(p) for p in problems]


def _validate_json(config_path: str, online: bool, live: Optional[validate_online.Online] = None) -> None:
    """validate --json: the problems (exit 2), or the strategies with their warnings and notes."""
    from pathlib import Path

    from gridctl.config import ConfigError, load

    extra = {"online": validate_online.summary_json(live)} if live is not None else {}
    try:
        config = load(Path(config_path), vault="try", live_markets=live.sets if live is not None else None)
    except ConfigError as exc:
        print_json({"ok": False, "path": config_path, "problems": _problems_json(exc.problems), "strategies": [],
                    **extra})
        sys.exit(EXIT_CONFIG)
    report = pretrade.check(config, online)
    print_json({"ok": not report.problems, "path": config_path, "problems": _problems_json(sorted(report.problems, key=lambda p: (p.line, p.path))),
                "strategies": [{"name": s.name, "account": s.account, "symbol": s.symbol, "mode": s.mode.value,
                                "grids": s.grids, "warnings": _problems_json(report.warnings.get(s.name, [])),
                                "notes": _problems_json(report.notes.get(s.name, []))} for s in config.strategies.values()],
                "secrets_not_checked": [{"path": where, "vault_entry": name} for where, name in config.unchecked_secrets],
                "notes": unchecked_secret_notes(config), **extra})
    if report.problems:
        sys.exit(EXIT_CONFIG)


@cli.command()
@config_option
@click.argument("name", shell_complete=complete_strategy_names)
@click.option("--price", help="Start price to plan from (default: the paper feed's first price, else mid-range).")
@online_option
@json_option
def plan(config_path: str, name: str, price: Optional[str], online: bool, as_json: bool) -> None:
    """Show the orders a strategy will place, what starting costs, where it stops, and its profit.

    The levels with their cycle profit; initial_position's market orders with their
    notional and taker fee; the margin against the account's balance; the liquidation
    estimate, stop-loss and take-profit prices; the fee rates used; the profit per grid
    after fees; and warnings for whatever `validate` would refuse or warn about.

    \b
    Example:
        gridctl plan -c strategies.yaml sol-neutral --price 141.2 --json
    """
    _, s, account, rules = strategy_market_or_exit(config_path, name, "plan")
    if price is not None:
        start = rules.price_to_ticks(positive_number_or_exit(price, "--price"))
        if start <= 0:
            fail(f"--price must be at least one tick ({rules.tick}), got {price!r}", EXIT_CONFIG)
    else:
        start = default_start(rules, s, account)
        if start is None:
            fail(f"{name} sets its range around the start price; pass --price", EXIT_CONFIG)
    if online and not account.is_paper:
        fail(f"--online cannot read the balance of account '{account.name}' ({account.exchange}): "
             f"{pretrade.LIVE_NOT_SUPPORTED}", EXIT_CONFIG)
    try:
        p, note = pretrade.strategy_plan(s, account, rules, start, online)
    except GridError as exc:
        fail(f"{name}: {exc}", EXIT_CONFIG)
    notes = [note] if note else []
    if as_json:
        print_json(plan_json(name, s, account, rules, p, notes))
    else:
        print_plan(name, s, account, rules, p, notes)
