"""What `--set` sweeps: one axis per key, the candidates their cartesian product.

``--set KEY=V1,V2,…`` lists values; ``--set KEY=FROM:TO:STEP`` counts from FROM to TO
(inclusive when a step lands on it) in exact decimal steps. Each value is read as the
strategies file would read it (YAML scalar rules: ``5`` a whole number, ``0.5`` an exact
decimal, ``geometric`` a word), so a candidate is the file with those keys changed.
Keys are a strategy's keys, ``risk.KEY`` and ``risk.margin_ratio.KEY``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Iterator

from gridctl.config.reader import did_you_mean
from gridctl.config.validate import RISK_KEYS, STRATEGY_KEYS
from gridctl.config.yamlsrc import YamlSyntaxError, parse

# the data is one market and one account's feed: those cannot change within a sweep
FIXED = {"account": "the account (its feed and venue) is fixed for a sweep",
         "symbol": "the data is one market's candles"}
NOT_VALUES = {"risk", "refresh_interval_ms"}
SWEEPABLE = ([k for k in STRATEGY_KEYS if k not in FIXED and k not in NOT_VALUES]
             + [f"risk.{k}" for k in RISK_KEYS if k != "margin_ratio"]
             + [f"risk.margin_ratio.{k}" for k in ("warn", "reduce", "close")])
# keys that replace each other: sweeping one drops the other from the strategy
EXCLUSIVE = {"range_pct": ("lower", "upper"), "lower": ("range_pct",), "upper": ("range_pct",),
             "investment": ("amount",), "amount": ("investment",)}
MAX_CANDIDATES = 100_000
SYNTAX = "expected KEY=V1,V2,... or KEY=FROM:TO:STEP"


class SweepSpecError(ValueError):
    """A --set that cannot be swept; the message names it."""


@dataclass(frozen=True)
class Axis:
    """One swept key and its values (as the YAML reader gives them)."""

    key: str
    values: tuple[Any, ...]

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(self.key.split("."))


def _scalar(text: str, spec: str) -> Any:
    """A value as the strategies file reads it."""
    if not text.strip():
        raise SweepSpecError(f"--set {spec!r}: empty value")
    try:
        value = parse(text).data
    except YamlSyntaxError:
        value = None
    if value is None or isinstance(value, (dict, list)):
        raise SweepSpecError(f"--set {spec!r}: {text.strip()!r} is not a single value")
    return value


def _number(value: Decimal, whole: bool) -> Any:
    """A counted value: an int when the whole range is whole numbers, else a decimal
    without trailing zeros (1.50 -> 1.5, never 1E+1)."""
    if whole:
        return int(value)
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()


def _alike(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """Whole numbers among decimals become decimals, so one key's values print one way."""
    numeric = all(isinstance(v, (int, Decimal)) and not isinstance(v, bool) for v in values)
    if numeric and any(isinstance(v, Decimal) for v in values):
        return tuple(Decimal(v) for v in values)
    return values


def _count(text: str, spec: str) -> tuple[Any, ...]:
    parts = text.split(":")
    if len(parts) != 3:
        raise SweepSpecError(f"--set {spec!r}: a range is FROM:TO:STEP, e.g. grids=10:50:10")
    try:
        start, stop, step = (Decimal(p.strip()) for p in parts)
        if not all(x.is_finite() for x in (start, stop, step)):
            raise InvalidOperation
    except InvalidOperation:
        raise SweepSpecError(f"--set {spec!r}: FROM, TO and STEP must be numbers") from None
    if step <= 0:
        raise SweepSpecError(f"--set {spec!r}: STEP must be greater than 0, got {step}")
    if stop < start:
        raise SweepSpecError(f"--set {spec!r}: TO ({stop}) is below FROM ({start})")
    n = int((stop - start) / step) + 1
    if n > MAX_CANDIDATES:
        raise SweepSpecError(f"--set {spec!r}: {n:,} values, more than {MAX_CANDIDATES:,}")
    whole = all(x == x.to_integral_value() for x in (start, step))
    return tuple(_number(start + i * step, whole) for i in range(n))


def parse_set(spec: str) -> Axis:
    """One ``--set`` option: ``KEY=V1,V2,…`` or ``KEY=FROM:TO:STEP``."""
    key, eq, rhs = spec.partition("=")
    key = key.strip()
    if not eq or not key or not rhs.strip():
        raise SweepSpecError(f"--set {spec!r}: {SYNTAX}")
    if key in FIXED:
        raise SweepSpecError(f"--set {key}: cannot be swept: {FIXED[key]}")
    if key not in SWEEPABLE:
        bare = [k.split(".")[-1] for k in SWEEPABLE]
        hint = did_you_mean(key, SWEEPABLE)
        if not hint and key in bare:  # risk keys written without risk.
            hint = f" (did you mean '{SWEEPABLE[bare.index(key)]}'?)"
        raise SweepSpecError(f"--set {key}: unknown strategy key '{key}'{hint}")
    if ":" in rhs:
        values = _count(rhs, spec)
    else:
        values = _alike(tuple(_scalar(v, spec) for v in rhs.split(",")))
    if len(set(values)) != len(values):
        raise SweepSpecError(f"--set {spec!r}: a value is listed twice")
    return Axis(key, values)


def parse_sets(specs: list[str]) -> list[Axis]:
    """Every --set, checked together: each key once, no two keys that replace each other."""
    if not specs:
        raise SweepSpecError("give at least one --set KEY=V1,V2,... (or KEY=FROM:TO:STEP)")
    axes = [parse_set(s) for s in specs]
    seen: set[str] = set()
    for a in axes:
        if a.key in seen:
            raise SweepSpecError(f"--set {a.key}: given twice; list all its values in one --set")
        seen.add(a.key)
    for a in axes:
        for other in EXCLUSIVE.get(a.key, ()):
            if other in seen and (a.key, other) != ("lower", "upper"):
                raise SweepSpecError(f"--set {a.key} and --set {other}: a strategy takes one or the other")
    total = 1
    for a in axes:
        total *= len(a.values)
    if total > MAX_CANDIDATES:
        raise SweepSpecError(f"{total:,} candidates, more than {MAX_CANDIDATES:,}; sweep fewer values")
    return axes


def product(axes: list[Axis]) -> Iterator[dict[str, Any]]:
    """Every combination, the first axis varying slowest: {key: value}."""
    for combo in itertools.product(*(a.values for a in axes)):
        yield {a.key: v for a, v in zip(axes, combo)}
