"""`gridctl validate` and `gridctl plan`."""

from __future__ import annotations

import sys
from typing import Optional

import click
from tabulate import tabulate

from gridctl.cli.group import cli
from gridctl.cli.common import (
    EXIT_CONFIG, config_option, fail, json_option, load_config_or_exit, positive_number_or_exit, print_json,
    strategy_market_or_exit,
)
from gridctl.core.grid import GridError
from gridctl.core.plan import Plan, make_plan
from gridctl.config.strategy import default_start, grid_params


@cli.command()
@config_option
@json_option
def validate(config_path: str, as_json: bool) -> None:
    """Check the strategies file against each market's rules.

    Every problem is listed with its YAML path and line; the exit status is 2
    when there is any. Nothing is traded. --json prints {"ok", "path",
    "problems": [{"path", "line", "message"}], "strategies": [...]}.

    \b
    Example:
        gridctl validate -c strategies.yaml
        gridctl validate -c strategies.yaml --json
    """
    if as_json:
        _validate_json(config_path)
        return
    config = load_config_or_exit(config_path)
    for s in config.strategies.values():
        acc = config.accounts[s.account]
        rng = f"{s.lower}..{s.upper}" if s.range_pct is None else f"±{s.range_pct}% around start"
        size = f"investment {s.investment}" if s.investment is not None else f"amount {s.amount}/level"
        click.echo(f"ok  {s.name}: {s.mode.value} {s.spacing.value} {s.symbol} on {acc.name} "
                   f"({acc.exchange}), {rng}, {s.grids} grids, {size}, {s.leverage}x")


def _validate_json(config_path: str) -> None:
    """validate --json: the problems (exit 2) or the strategies found."""
    from pathlib import Path

    from gridctl.config import ConfigError, load

    try:
        config = load(Path(config_path))
    except ConfigError as exc:
        print_json({"ok": False, "path": config_path,
                    "problems": [{"path": ".".join(str(k) for k in p.path), "line": p.line, "message": p.message}
                                 for p in exc.problems],
                    "strategies": []})
        sys.exit(EXIT_CONFIG)
    print_json({"ok": True, "path": config_path, "problems": [],
                "strategies": [{"name": s.name, "account": s.account, "symbol": s.symbol, "mode": s.mode.value,
                                "grids": s.grids} for s in config.strategies.values()]})


def plan_json(name: str, symbol: str, plan: Plan) -> dict:
    """The plan as the stable --json shape (decimals as strings)."""
    return {
        "strategy": name,
        "symbol": symbol,
        "start_price": plan.start_price,
        "levels": [{"index": lv.index, "price": lv.price, "exit_price": lv.exit_price, "side": lv.side.value,
                    "qty": lv.qty, "notional": lv.notional, "cycle_profit": lv.cycle_profit,
                    "cycle_return_pct": lv.cycle_return_pct} for lv in plan.levels],
        "orders_at_start": plan.orders_at_start,
        "margin": plan.margin,
        "liquidation_price": plan.liquidation_price,
        "liquidation_price_down": plan.liquidation_down,
        "liquidation_price_up": plan.liquidation_up,
        "warnings": plan.warnings,
    }


def _print_plan(name: str, symbol: str, quote: str, plan: Plan) -> None:
    rows = [(lv.index, lv.price, lv.side.value, lv.exit_price, lv.qty, lv.notional, lv.cycle_profit,
             f"{lv.cycle_return_pct}%") for lv in reversed(plan.levels)]
    click.echo(f"{name}: {symbol}, start price {plan.start_price}")
    click.echo(tabulate(rows, headers=["level", "price", "side", "exit", "qty", "notional",
                                       f"cycle profit ({quote})", "cycle % on margin"],
                        disable_numparse=True, stralign="right"))
    click.echo(f"orders at start: {plan.orders_at_start}")
    click.echo(f"margin needed: {plan.margin} {quote}")
    if plan.liquidation_down is not None:
        click.echo(f"est. liquidation if every buy fills: {plan.liquidation_down}")
    if plan.liquidation_up is not None:
        click.echo(f"est. liquidation if every sell fills: {plan.liquidation_up}")
    for w in plan.warnings:
        click.echo(f"warning: {w}")


@cli.command()
@config_option
@click.argument("name")
@click.option("--price", help="Start price to plan from (default: the paper feed's first price, else mid-range).")
@json_option
def plan(config_path: str, name: str, price: Optional[str], as_json: bool) -> None:
    """Show the orders a strategy will place, its cycle profit, margin and liquidation.

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
    try:
        p = make_plan(rules, grid_params(rules, s, start), start, s.post_only, s.initial_position)
    except GridError as exc:
        fail(f"{name}: {exc}", EXIT_CONFIG)
    if as_json:
        print_json(plan_json(name, rules.symbol, p))
    else:
        _print_plan(name, rules.symbol, rules.quote, p)
