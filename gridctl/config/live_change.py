"""What `gridctl reload` may change under a running grid, and how the worker applies it.

Risk keys (stop and take-profit prices and percentages, money limits, on_stop,
margin-ratio thresholds), `max_position` and `partial_fill_timeout` change a running strategy at once:
the supervisor sends them to the worker (`apply_risk`), which rebuilds its
engine's RiskLimits and EngineConfig fields in place. Anything else (range,
grids, size, mode, symbol, account, ...) changes the grid's shape and waits until
the strategy is stopped, as exchange grid bots' "edit parameters" do.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any, Optional

from gridctl.config.model import AccountConfig, MarginRatioConfig, RiskConfig, StrategyConfig
from gridctl.core.engine import EngineConfig
from gridctl.core.market import MarketRules
from gridctl.core.partial import describe_ms
from gridctl.core.risk import RiskLimits, price_limits

# top-level strategy keys that change at once; every risk.* key does too
LIVE_KEYS = ("max_position", "partial_fill_timeout_ms")


def _flat(prefix: str, obj: Any) -> dict[str, Any]:
    """{"risk.margin_ratio.warn": Decimal(...), ...} of a (nested) frozen dataclass."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out.update(_flat(key + ".", value))
        else:
            out[key] = value
    return out


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, Decimal):
        return format(value, "f")
    return getattr(value, "value", str(value))


def diff(old: StrategyConfig, new: StrategyConfig, old_account: Optional[AccountConfig] = None,
         new_account: Optional[AccountConfig] = None) -> tuple[list[str], list[str]]:
    """(live changes, grid changes) between what runs and the new settings, as "key old -> new"."""
    a, b = _flat("", old), _flat("", new)
    live, grid = [], []
    for key in a:
        if a[key] != b[key]:
            if key == "partial_fill_timeout_ms":  # shown as the file writes it
                text = f"partial_fill_timeout {_timeout(a[key])} -> {_timeout(b[key])}"
            else:
                text = f"{key} {_show(a[key])} -> {_show(b[key])}"
            (live if key.startswith("risk.") or key in LIVE_KEYS else grid).append(text)
    if old_account is not None and new_account is not None and old_account != new_account:
        grid.append(f"account {old_account.name}'s settings")
    return live, grid


def with_live_changes(running: StrategyConfig, new: StrategyConfig) -> StrategyConfig:
    """What runs after the live keys of `new` are applied to `running` (the grid stays)."""
    return dataclasses.replace(running, risk=new.risk, max_position=new.max_position,
                               partial_fill_timeout_ms=new.partial_fill_timeout_ms)


def _timeout(ms: Optional[int]) -> str:
    return "off" if ms is None else describe_ms(ms)


def _dec(v: Optional[Decimal]) -> Optional[str]:
    return None if v is None else format(v, "f")


def live_settings(s: StrategyConfig) -> dict:
    """The live keys as JSON (decimals as strings) for the worker's `apply_risk`."""
    r = s.risk
    return {"stop_loss_pct": _dec(r.stop_loss_pct), "stop_loss_price": _dec(r.stop_loss_price),
            "take_profit_pct": _dec(r.take_profit_pct), "take_profit_price": _dec(r.take_profit_price),
            "max_loss": _dec(r.max_loss), "take_profit": _dec(r.take_profit),
            "max_level_loss": _dec(r.max_level_loss), "on_stop": r.on_stop,
            "margin_ratio": {k: _dec(getattr(r.margin_ratio, k)) for k in ("warn", "reduce", "close")},
            "max_position": _dec(s.max_position), "partial_fill_timeout_ms": s.partial_fill_timeout_ms}


def _risk_config(settings: dict) -> RiskConfig:
    d = lambda k: None if settings.get(k) is None else Decimal(str(settings[k]))  # noqa: E731
    mr = settings.get("margin_ratio") or {}
    return RiskConfig(stop_loss_pct=d("stop_loss_pct"), stop_loss_price=d("stop_loss_price"),
                      take_profit_pct=d("take_profit_pct"), take_profit_price=d("take_profit_price"),
                      max_loss=d("max_loss"), take_profit=d("take_profit"), max_level_loss=d("max_level_loss"),
                      on_stop=str(settings.get("on_stop") or "close"),
                      margin_ratio=MarginRatioConfig(**{k: Decimal(str(v)) for k, v in mr.items()}))


def apply_live_settings(cfg: EngineConfig, rules: MarketRules, settings: dict) -> EngineConfig:
    """A new EngineConfig with the live keys of `settings` (from live_settings), the grid unchanged.

    Built the same way as gridctl.config.strategy.engine_config, on the running
    grid's bounds (for range_pct strategies those were resolved at start).
    """
    r = _risk_config(settings)
    ticks = lambda p: rules.price_to_ticks(p) if p is not None else None  # noqa: E731
    prices = price_limits(cfg.mode, cfg.lower, cfg.upper, r.stop_loss_pct, ticks(r.stop_loss_price),
                          r.take_profit_pct, ticks(r.take_profit_price))
    max_position = settings.get("max_position")
    timeout = settings.get("partial_fill_timeout_ms", cfg.partial_fill_timeout_ms)  # absent: a sender before it
    return dataclasses.replace(
        cfg, on_stop=r.on_stop,
        max_position=rules.qty_to_steps(Decimal(str(max_position))) if max_position is not None else None,
        limits=RiskLimits(**prices, max_loss=r.max_loss, take_profit=r.take_profit,
                          max_level_loss=r.max_level_loss),
        margin_ratio=(r.margin_ratio.warn, r.margin_ratio.reduce, r.margin_ratio.close),
        partial_fill_timeout_ms=None if timeout is None else int(timeout))
