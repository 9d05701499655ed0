"""`gridctl reconcile ACCOUNT SYMBOL`: the venue's position against the strategies' virtual
positions, per leg, and `--assign NAME=QTY` of the difference (gridctl.core.virtual)."""

from __future__ import annotations

import asyncio
from decimal import Decimal, InvalidOperation
from typing import Optional

import click

from gridctl.cli.common import (
    EXIT_USAGE, AppContext, config_option, fail, json_option, load_config_or_exit, print_json,
)
from gridctl.cli.group import cli


@cli.command()
@config_option
@click.argument("account")
@click.argument("symbol")
@click.option("--assign", "assign", multiple=True, metavar="NAME=QTY",
              help="Give QTY of the difference to strategy NAME (repeatable); the rest goes to UNASSIGNED.")
@click.option("--unassigned", "to_unassigned", is_flag=True,
              help="Put the whole difference in the leg's UNASSIGNED bucket (no strategy gets any).")
@click.option("--leg", type=click.Choice(["long", "short"]), default=None,
              help="Hedge accounts: the leg to assign on (default: the only leg that differs).")
@json_option
@click.pass_obj
def reconcile(app: AppContext, config_path: str, account: str, symbol: str, assign: tuple[str, ...],
              to_unassigned: bool, leg: Optional[str], as_json: bool) -> None:
    """Compare ACCOUNT's position in SYMBOL on the venue with its strategies' virtual positions.

    Reads the venue's position per leg (hedge: long and short; one-way: the net) through the
    adapter the workers use, and each strategy's virtual position and the leg's UNASSIGNED
    bucket from the database; prints venue, strategies, UNASSIGNED and the difference.
    --assign NAME=QTY gives (part of) what no strategy holds to NAME, at the venue's mark
    price (its PnL on it counts from there: a reset, shown in status); the rest goes to
    UNASSIGNED. A running worker books it on its next check (within a minute). Nothing is
    traded.

    \b
    Example:
        gridctl reconcile -c strategies.yaml paper-hedge SOL/USDT:USDT
        gridctl reconcile paper-hedge SOL/USDT:USDT --assign sol-dip=0.5 --assign sol-wide=0.2
    """
    from gridctl.config.strategy import rules_for
    from gridctl.core import virtual as v
    from gridctl.store import virtual_read as vr
    from gridctl.store.db import NoDatabase, open_database

    config = load_config_or_exit(config_path, check_markets=False)
    if account not in config.accounts:
        fail(f"no account '{account}' in {config_path}; accounts: {', '.join(config.accounts)}", EXIT_USAGE)
    acc = config.accounts[account]
    hedge = acc.position_mode == "hedge"
    here = {n: s for n, s in config.strategies.items() if s.account == account and s.symbol == symbol}
    if not here:
        fail(f"no strategy of {config_path} trades {symbol} on account '{account}'", EXIT_USAGE)
    requests = _parse_assign(assign, config, account, symbol)
    if requests and to_unassigned:
        fail("--unassigned puts the whole difference in UNASSIGNED: give it without --assign", EXIT_USAGE)
    try:
        db = open_database(app.state_dir(config), config.database, create=False)
    except NoDatabase as exc:
        fail(str(exc))
    try:
        read = asyncio.run(_read(acc, symbol, rules_for(acc, symbol), app.state_dir(config)))
    except Exception as exc:  # the venue's answer, classified by the adapter (or the paper venue is down)
        fail(f"cannot read the position of {symbol} on account '{account}': {exc}")
    rules = read.rules
    for name, qty in requests.items():
        if qty % rules.step:
            fail(f"--assign {name}={qty}: not a multiple of {symbol}'s step {rules.step}", EXIT_USAGE)
    stored = vr.virtual_positions(account, symbol, rules)
    for name in here:
        stored.setdefault(name, {})
    legs = ("long", "short") if hedge else ("net",)
    checks = v.check_legs(v.venue_legs(read.reports, hedge), stored.values(), vr.unassigned(account, symbol, rules),
                          legs)
    from gridctl.store.read import now_ms

    ts = now_ms()
    result = {"account": account, "symbol": symbol, "mark": rules.price(read.mark),
              "legs": [_leg_json(c, stored, rules) for c in checks], "assigned": None}
    if requests or to_unassigned:
        try:
            check = v.pick_leg(checks, leg if hedge else None)
            eligible = [n for n, s in here.items() if check.leg in v.legs_of(s.mode.value, hedge)]
            plan = v.plan_assignment(check, {n: rules.qty_to_steps(q) for n, q in requests.items()}, eligible,
                                     fmt=lambda steps: format(rules.qty(steps), "f"))
        except v.AssignmentError as exc:
            fail(str(exc), EXIT_USAGE)
        if check.unexplained == 0:
            fail(f"the {check.leg} leg has no difference to assign (the venue's position equals the strategies' "
                 f"sum)", EXIT_USAGE)
        ids = vr.save_assignment(db, ts, account, symbol, check, plan.assigned, plan.unassigned, read.mark, rules,
                                 hedge)
        result["assigned"] = {"leg": check.leg, "price": rules.price(read.mark), "ids": ids,
                              "strategies": {n: rules.qty(q) for n, q in plan.assigned.items()},
                              "unassigned": rules.qty(plan.unassigned)}
        for name, steps in plan.assigned.items():
            stored[name][check.leg] = stored[name].get(check.leg, 0) + steps
        after = v.check_legs(v.venue_legs(read.reports, hedge), stored.values(),
                             vr.unassigned(account, symbol, rules), legs)
        result["legs"] = [_leg_json(c, stored, rules) for c in after]
    else:
        for c in checks:
            vr.record_check(ts, account, symbol, c, rules)
    if as_json:
        print_json(result)
        return
    click.echo(_render(result))
    if not result["assigned"] and any(not leg_["matched"] for leg_ in result["legs"]):
        click.echo(f"assign it: gridctl reconcile {account} {symbol} --assign NAME=QTY (the rest goes to UNASSIGNED)")


async def _read(acc, symbol, rules, state_dir):
    from gridctl.exchange.position_read import read_position

    return await read_position(acc, symbol, rules, state_dir)


def _parse_assign(items: tuple[str, ...], config, account: str, symbol: str) -> dict[str, Decimal]:
    """NAME=QTY pairs, each NAME a strategy of the config on this account and symbol."""
    out: dict[str, Decimal] = {}
    for item in items:
        name, eq, raw = item.partition("=")
        if not eq or not name:
            fail(f"--assign {item}: expected NAME=QTY (e.g. --assign sol-dip=0.5)", EXIT_USAGE)
        try:
            qty = Decimal(raw)
            if not qty.is_finite():
                raise InvalidOperation
        except InvalidOperation:
            fail(f"--assign {item}: {raw!r} is not a quantity", EXIT_USAGE)
        s = config.strategies.get(name)
        if s is None:
            fail(f"--assign {item}: no strategy '{name}' in {config.path}", EXIT_USAGE)
        if s.account != account or s.symbol != symbol:
            fail(f"--assign {item}: strategy '{name}' trades {s.symbol} on account '{s.account}', not {symbol} on "
                 f"'{account}'", EXIT_USAGE)
        if name in out:
            fail(f"--assign {item}: strategy '{name}' is named twice", EXIT_USAGE)
        out[name] = qty
    return out


def _leg_json(c, stored: dict[str, dict[str, int]], rules) -> dict:
    q = rules.qty
    return {"leg": c.leg, "venue": q(c.venue), "strategies": {n: q(p.get(c.leg, 0)) for n, p in sorted(stored.items())},
            "virtual": q(c.virtual), "unassigned": q(c.unassigned), "difference": q(c.difference),
            "matched": c.matched}


def _render(r: dict) -> str:
    from tabulate import tabulate

    rows = []
    for leg in r["legs"]:
        names = ", ".join(f"{n} {format(qty, 'f')}" for n, qty in leg["strategies"].items())
        rows.append([leg["leg"], format(leg["venue"], "f"), format(leg["virtual"], "f"), names or "-",
                     format(leg["unassigned"], "f"), format(leg["difference"], "f"),
                     "matched" if leg["matched"] else "MISMATCH"])
    lines = [f"{r['symbol']} on account '{r['account']}' (mark {format(r['mark'], 'f')})",
             tabulate(rows, headers=["leg", "venue", "strategies", "by strategy", "UNASSIGNED", "difference", ""],
                      disable_numparse=True, stralign="right")]
    a = r["assigned"]
    if a:
        given = ", ".join(f"{n} {format(q, 'f')}" for n, q in a["strategies"].items()) or "no strategy"
        lines.append(f"assigned on the {a['leg']} leg at {format(a['price'], 'f')}: {given}; UNASSIGNED "
                     f"{format(a['unassigned'], 'f')} (PnL of the assigned part counts from {format(a['price'], 'f')}: "
                     f"a reset; running workers book it on their next check)")
    return "\n".join(lines)
