"""How `gridctl plan` shows a plan: the table and the stable --json shape.

Laid out like the exchange grid bots' confirmation screens (Binance futures grid, OKX,
Bybit): the levels, then what starting costs (initial market orders with their notional
and taker fee, margin against the balance), where it stops (liquidation, stop-loss,
take-profit), the fee rates used and the profit per grid as a % range after fees.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Optional

import click
from tabulate import tabulate

from gridctl.config.model import AccountConfig, StrategyConfig
from gridctl.core.market import MarketRules
from gridctl.core.plan import Plan

NONE = "none"


def pct(rate: Decimal) -> str:
    """A fee rate as a percentage without trailing zeros or exponent: 0.0002 → '0.02'."""
    return format((rate * 100).normalize(), "f")


def _price(rules: MarketRules, ticks: Optional[int]) -> Optional[Decimal]:
    return rules.price(ticks) if ticks is not None else None


def _sides(below: Optional[Decimal], above: Optional[Decimal]) -> str:
    parts = ([f"at or below {below}"] if below is not None else []) + \
            ([f"at or above {above}"] if above is not None else [])
    return ", ".join(parts) or NONE


def _liquidation(value: Optional[Decimal], side_exists: bool) -> Optional[str]:
    """The liquidation line's value: the price, 'none' when that side cannot be liquidated,
    nothing when the grid has no entries on that side."""
    if not side_exists:
        return None
    return str(value) if value is not None else NONE


def plan_json(name: str, s: StrategyConfig, account: AccountConfig, rules: MarketRules, plan: Plan,
              notes: list[str]) -> dict:
    """The plan as the stable --json shape (decimals as strings; no liquidation is null)."""
    lim, op = plan.limits, plan.opening
    return {
        "strategy": name,
        "symbol": rules.symbol,
        "start_price": plan.start_price,
        "levels": [{"index": lv.index, "price": lv.price, "exit_price": lv.exit_price, "side": lv.side.value,
                    "qty": lv.qty, "notional": lv.notional, "cycle_profit": lv.cycle_profit,
                    "cycle_return_pct": lv.cycle_return_pct} for lv in plan.levels],
        "orders_at_start": plan.orders_at_start,
        "initial_position": None if op is None else {
            "price": op.price,
            "orders": [{"level": o.level, "side": o.side.value, "qty": o.qty, "level_price": o.level_price,
                        "notional": o.notional, "taker_fee": o.fee} for o in op.orders],
            "qty": op.qty, "notional": op.notional, "taker_fee": op.fee,
            "left_out_by_max_position": op.left_out,
        },
        "margin": plan.margin,
        "account": account.name,
        "balance": account.balance if account.is_paper else None,  # a live venue's is not read offline
        "liquidation_price": plan.liquidation_price,
        "liquidation_price_down": plan.liquidation_down,
        "liquidation_price_up": plan.liquidation_up,
        "stop_loss_below": _price(rules, lim.stop_below),
        "stop_loss_above": _price(rules, lim.stop_above),
        "take_profit_below": _price(rules, lim.take_below),
        "take_profit_above": _price(rules, lim.take_above),
        "max_loss": lim.max_loss,
        "take_profit": lim.take_profit,
        "max_level_loss": lim.max_level_loss,
        "trigger_price": s.trigger_price,
        "maker_fee": plan.maker_fee,
        "taker_fee": plan.taker_fee,
        "profit_per_grid_pct": {"min": plan.profit_per_grid[0], "max": plan.profit_per_grid[1]},
        "warnings": plan.warnings,
        "notes": notes,
    }


def print_plan(name: str, s: StrategyConfig, account: AccountConfig, rules: MarketRules, plan: Plan,
               notes: list[str]) -> None:
    """The plan as a table and one line per figure."""
    quote, base, lim, op = rules.quote, rules.base, plan.limits, plan.opening
    rows = [(lv.index, lv.price, lv.side.value, lv.exit_price, lv.qty, lv.notional, lv.cycle_profit,
             f"{lv.cycle_return_pct}%") for lv in reversed(plan.levels)]
    click.echo(f"{name}: {rules.symbol}, start price {plan.start_price}")
    click.echo(tabulate(rows, headers=["level", "price", "side", "exit", "qty", "notional",
                                       f"cycle profit ({quote})", "cycle % on margin"],
                        disable_numparse=True, stralign="right"))
    lo, hi = plan.profit_per_grid
    click.echo(f"profit per grid: {lo} %–{hi} % after fees" if lo != hi else f"profit per grid: {lo} % after fees")
    click.echo(f"fees used: maker {pct(plan.maker_fee)} %, taker {pct(plan.taker_fee)} %")
    if s.trigger_price is not None:
        t = rules.price(rules.price_to_ticks(s.trigger_price))
        way = "rises" if t > plan.start_price else "falls" if t < plan.start_price else "is"
        click.echo(f"trigger: waits until the price {way} to {t} (from {plan.start_price})")
    click.echo(f"orders at start: {plan.orders_at_start}")
    if op is not None:
        where = "the trigger price" if s.trigger_price is not None else "the start price"
        if op.orders:
            side = op.orders[0].side.value
            click.echo(f"initial position: {len(op.orders)} market {side}(s) at about {op.price} ({where}): "
                       f"{op.qty} {base}, notional {op.notional} {quote}, taker fee {op.fee} {quote}")
            for o in op.orders:
                click.echo(f"  level {o.level}: {o.side.value} {o.qty} {base} at market (level price "
                           f"{o.level_price}), notional {o.notional} {quote}, taker fee {o.fee} {quote}")
        else:
            click.echo(f"initial position: no market orders at {op.price} ({where})")
        if op.left_out:
            click.echo(f"  {op.left_out} more level(s) left out: they would exceed max_position {s.max_position}")
    balance = f"account '{account.name}' balance {account.balance} {quote}" if account.is_paper else \
        f"account '{account.name}' balance on {account.exchange}: not checked"
    click.echo(f"margin needed: {plan.margin} {quote} ({balance})")
    for label, value in (("buy", _liquidation(plan.liquidation_down, plan.has_buys)),
                         ("sell", _liquidation(plan.liquidation_up, plan.has_sells))):
        if value is not None:
            click.echo(f"est. liquidation if every {label} fills: {value}")
    click.echo(f"stop-loss: {_sides(_price(rules, lim.stop_below), _price(rules, lim.stop_above))}")
    click.echo(f"take-profit: {_sides(_price(rules, lim.take_below), _price(rules, lim.take_above))}")
    money = [f"{k} {v} {quote}" for k, v in (("max_loss", lim.max_loss), ("take_profit", lim.take_profit),
                                              ("max_level_loss", lim.max_level_loss)) if v is not None]
    if money:
        click.echo(f"money stops: {', '.join(money)}")
    for n in notes:
        click.echo(f"note: {n}")
    for w in plan.warnings:
        click.echo(f"warning: {w}")
