"""Pre-trade checks of a loaded config: each strategy's plan against its account and stops.

`load()` checks that the file makes sense on its own (types, market rules); this checks
what the grid would do with money: the margin it needs against the account's balance,
the liquidation estimate against the stops, the start price and trigger against the
stops. `gridctl validate` turns ERROR findings into problems (exit 2) and prints the
rest as warnings; `gridctl plan` prints them all as warnings. They stay out of `load()`
on purpose: a plan depends on a start price (`plan --price` explores others), and the
other commands that load the file have their own rules for what to refuse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Optional

from gridctl.config.model import AccountConfig, Config, StrategyConfig
from gridctl.config.reader import Problem
from gridctl.config.strategy import default_start, engine_config, grid_params, rules_for
from gridctl.config.yamlsrc import Source, YamlSyntaxError, parse, read_text
from gridctl.core.grid import GridError
from gridctl.core.market import MarketRules
from gridctl.core.plan import Plan, make_plan
from gridctl.core.plan_checks import ERROR, WARNING, Finding, margin_vs_balance

LIVE_NOT_SUPPORTED = "live venues are not supported yet in this version"


def size_field(s: StrategyConfig) -> str:
    """The key that sets the grid's size, which the margin findings point at."""
    return "investment" if s.investment is not None else "amount"


def balance_findings(plan: Plan, s: StrategyConfig, account: AccountConfig, quote: str,
                     online: bool) -> tuple[list[Finding], Optional[str]]:
    """(findings, note) of the margin check. A paper account's balance is in the file; a live
    account's is on the venue, and reading it is not built yet: the check is skipped with a
    note (with --online too, which reads the venue's markets)."""
    fees = plan.opening.fee if plan.opening is not None else Decimal(0)
    if account.is_paper:
        return margin_vs_balance(plan.margin, fees, account.balance, account.name, quote, size_field(s)), None
    if online:  # validate --online reads the venue's markets; reading a live balance is not built yet
        return [], (f"margin {plan.margin} {quote} not checked against account '{account.name}''s balance on "
                    f"{account.exchange}: --online reads the venue's markets, not yet the balance")
    return [], (f"margin {plan.margin} {quote} not checked against account '{account.name}''s balance: it is "
                f"on {account.exchange} (--online would ask the venue; {LIVE_NOT_SUPPORTED})")


def strategy_plan(s: StrategyConfig, account: AccountConfig, rules: MarketRules, start: int,
                  online: bool = False) -> tuple[Plan, Optional[str]]:
    """The plan of `s` started at `start` (ticks) with every pre-trade finding, and the note of
    a skipped balance check. Raises GridError like make_plan."""
    params = grid_params(rules, s, start)
    ecfg = engine_config(rules, s, account, params)
    plan = make_plan(rules, params, start, s.post_only, s.initial_position, max_position=ecfg.max_position,
                     limits=ecfg.limits, trigger=ecfg.trigger)
    findings, note = balance_findings(plan, s, account, rules.quote, online)
    plan.add(findings)
    return plan, note


@dataclass
class Report:
    """What validate prints after a file loaded: problems refuse it, warnings and notes do not."""

    problems: list[Problem] = field(default_factory=list)
    warnings: dict[str, list[Problem]] = field(default_factory=dict)  # by strategy
    notes: dict[str, list[str]] = field(default_factory=dict)


def _source(config: Config) -> Optional[Source]:
    try:
        return parse(read_text(config.path))
    except (OSError, YamlSyntaxError):
        return None  # it loaded a moment ago; without it the lines fall back to 1


def check(config: Config, online: bool = False) -> Report:
    """Every strategy's pre-trade findings, with YAML paths and lines, and the accounts shared
    by several grids whose margins fit one by one but not together."""
    src = _source(config)
    report = Report()

    def problem(s: StrategyConfig, f: Finding) -> Problem:
        path = ("strategies", s.name) + (tuple(f.field.split(".")) if f.field else ())
        return Problem(path, src.line(path) if src else 1, f.message)

    need: dict[tuple[str, str], list[tuple[str, Decimal]]] = {}  # (account, quote) -> (strategy, margin)
    for s in config.strategies.values():
        account = config.accounts[s.account]
        rules = rules_for(account, s.symbol)
        start = default_start(rules, s, account) if rules is not None else None
        if rules is None and not account.is_paper and not online:
            report.notes.setdefault(s.name, []).append(
                f"{s.symbol} is not in gridctl's bundled snapshot of {account.venue}: its market rules are "
                f"checked by validate --online and at start")
        if rules is None or start is None:
            continue  # no bundled rules, or range_pct on a live venue: checked at start
        try:
            plan, note = strategy_plan(s, account, rules, start, online)
        except GridError:
            continue  # load() already refused what cannot be built
        for f in plan.findings:
            (report.problems.append if f.severity == ERROR else
             report.warnings.setdefault(s.name, []).append)(problem(s, f))
        if note:
            report.notes.setdefault(s.name, []).append(note)
        if account.is_paper:
            need.setdefault((account.name, rules.quote), []).append((s.name, plan.margin))
    for (name, quote), grids in need.items():
        total, balance = sum((m for _, m in grids), Decimal(0)), config.accounts[name].balance
        if len(grids) > 1 and total > balance and all(m <= balance for _, m in grids):
            path = ("accounts", name, "balance")
            msg = (f"the grids on account '{name}' ({', '.join(n for n, _ in grids)}) need {total} {quote} of "
                   f"margin together, more than its balance of {balance} {quote}: run together, some of their orders would "
                   f"be rejected for insufficient margin")
            report.warnings.setdefault(grids[-1][0], []).append(Problem(path, src.line(path) if src else 1, msg))
    return report


__all__ = ["ERROR", "WARNING", "Report", "check", "strategy_plan"]
