"""Each candidate of a sweep as a strategy, validated by the code that validates the file.

A candidate is the strategies file as parsed, with the swept keys of one strategy set
to the candidate's values (and the keys they replace removed: sweeping range_pct drops
lower/upper, investment drops amount and back). It is validated like the file
(`gridctl.config.validate.from_source`) and then planned at the data's first price like
`gridctl validate` plans it (`gridctl.config.pretrade.strategy_plan`): a candidate that
either refuses is not run, and its reason is every problem found.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Optional

from gridctl.config.model import AccountConfig, StrategyConfig
from gridctl.config.pretrade import strategy_plan
from gridctl.config.reader import Problem
from gridctl.config.validate import ConfigError, from_source
from gridctl.config.yamlsrc import Source, parse, read_text
from gridctl.core.grid import GridError
from gridctl.core.market import MarketRules
from gridctl.core.plan_checks import ERROR
from gridctl.sweep.spec import EXCLUSIVE, Axis, product


@dataclass
class Candidate:
    """One combination of swept values: the strategy to run, or why it cannot run."""

    index: int  # its place in the product (the tie-break of the ranking)
    values: dict[str, Any]  # swept key -> value
    strategy: Optional[StrategyConfig] = None
    error: Optional[str] = None

    def label(self) -> str:
        """``grids=20 risk.stop_loss_pct=5``."""
        return " ".join(f"{k}={v}" for k, v in self.values.items())


def _with(data: dict, name: str, values: dict[str, Any]) -> dict:
    """A copy of the parsed file with strategy `name`'s keys set to `values`."""
    out = copy.deepcopy(data)
    m = out["strategies"][name]
    for key, value in values.items():
        *parents, last = key.split(".")
        node = m
        for p in parents:
            if not isinstance(node.get(p), dict):
                node[p] = {}
            node = node[p]
        node[last] = value
        for other in EXCLUSIVE.get(key, ()):
            if other not in values:
                m.pop(other, None)
    return out


def _reason(problems: list) -> str:
    return "; ".join(str(p) for p in problems)


class CandidateBuilder:
    """Validates candidates of strategy `name` of the file at `path` (parsed once)."""

    def __init__(self, path: Path, name: str, balance: Optional[Decimal] = None):
        self.path, self.name, self.balance = Path(path), name, balance
        self.src = parse(read_text(self.path))

    def account(self, s: StrategyConfig, config_accounts: dict[str, AccountConfig]) -> AccountConfig:
        a = config_accounts[s.account]
        return dataclasses.replace(a, balance=self.balance) if self.balance is not None else a

    def build(self, index: int, values: dict[str, Any], rules: MarketRules, start: int) -> Candidate:
        """The candidate, validated as the file and planned at `start` (ticks)."""
        c = Candidate(index, values)
        src = Source(_with(self.src.data, self.name, values), self.src.lines, self.src.duplicates)
        try:
            config = from_source(src, self.path)
        except ConfigError as exc:
            c.error = _reason(exc.problems)
            return c
        s = config.strategies[self.name]
        try:
            plan, _ = strategy_plan(s, self.account(s, config.accounts), rules, start)
        except GridError as exc:
            c.error = f"{exc} at the first price of the data"
            return c
        errors = [f for f in plan.findings if f.severity == ERROR]
        if errors:
            c.error = _reason([self._problem(src, f.field, f.message) for f in errors])
            return c
        c.strategy = s
        return c


    def _problem(self, src: Source, field: Optional[str], message: str) -> Problem:
        """A plan finding as validate reports it: the strategy's YAML path and line."""
        path = ("strategies", self.name) + (tuple(field.split(".")) if field else ())
        return Problem(path, src.line(path), message)


def candidates(builder: CandidateBuilder, axes: list[Axis], rules: MarketRules, start: int) -> list[Candidate]:
    """Every combination of the axes, validated."""
    return [builder.build(i, values, rules, start) for i, values in enumerate(product(axes))]
