"""`partial_fill_timeout` on a strategy: a duration with its unit (default 10m), `off` to wait for
the rest forever; bad values are refused by name and line; a reload changes it at once."""

from __future__ import annotations

from dataclasses import replace

import pytest

from backtest_helpers import account, strategy, toy_rules
from gridctl.config import load
from gridctl.config.live_change import apply_live_settings, diff, live_settings, with_live_changes
from gridctl.config.strategy import engine_config, grid_params
from test_config_errors import BASE, problems, validate

R = toy_rules()


def loaded(tmp_path, line: str):
    path = tmp_path / "s.yaml"
    path.write_text(BASE + line)
    return load(path, check_markets=False).strategies["sol"]


@pytest.mark.parametrize("line,ms", [
    ("", 600_000), ("    partial_fill_timeout: 90s\n", 90_000), ("    partial_fill_timeout: 2m\n", 120_000),
    ("    partial_fill_timeout: 1h\n", 3_600_000), ("    partial_fill_timeout: 1.5m\n", 90_000),
    ("    partial_fill_timeout: ~\n", 600_000),  # null: not given, as every other key
    ("    partial_fill_timeout: off\n", None),  # YAML reads an unquoted off as false
    ("    partial_fill_timeout: 'off'\n", None), ("    partial_fill_timeout: 0\n", None),
])
def test_values(tmp_path, line, ms):
    assert loaded(tmp_path, line).partial_fill_timeout_ms == ms


@pytest.mark.parametrize("value,message", [
    ("10", "must be a duration with its unit like 90s, 10m or 1h (or off), got 10"),
    ("ten minutes", "must be a duration with its unit like 90s, 10m or 1h (or off), got 'ten minutes'"),
    ("true", "must be a duration with its unit like 90s, 10m or 1h (or off), got True"),
    ("500ms", "must be between 1s and 30d, got 500ms"),
    ("31d", "must be between 1s and 30d, got 31d"),
])
def test_bad_values_are_refused_by_name_and_line(tmp_path, value, message):
    assert problems(tmp_path, BASE + f"    partial_fill_timeout: {value}\n") == [
        f"strategies.sol.partial_fill_timeout (line 18): {message}"]


def test_a_valid_timeout_validates(tmp_path):
    result, _ = validate(tmp_path, BASE + "    partial_fill_timeout: 5m\n")
    assert result.exit_code == 0, result.output


def test_the_engine_gets_it():
    s = replace(strategy("long", "100", "103", 3, amount="1"), partial_fill_timeout_ms=90_000)
    params = grid_params(R, s, 10250)
    assert engine_config(R, s, account(), params).partial_fill_timeout_ms == 90_000


def test_a_reload_changes_it_at_once_without_touching_the_grid():
    old = strategy("long", "100", "103", 3, amount="1")
    new = replace(old, partial_fill_timeout_ms=120_000)
    assert diff(old, new) == (["partial_fill_timeout 10m -> 2m"], [])
    assert diff(new, replace(old, partial_fill_timeout_ms=None)) == (["partial_fill_timeout 2m -> off"], [])
    running = with_live_changes(old, new)
    assert running.partial_fill_timeout_ms == 120_000
    params = grid_params(R, old, 10250)
    cfg = engine_config(R, old, account(), params)
    assert apply_live_settings(cfg, R, live_settings(running)).partial_fill_timeout_ms == 120_000
    assert apply_live_settings(cfg, R, live_settings(replace(old, partial_fill_timeout_ms=None))) \
        .partial_fill_timeout_ms is None
    older = {k: v for k, v in live_settings(old).items() if k != "partial_fill_timeout_ms"}
    assert apply_live_settings(cfg, R, older).partial_fill_timeout_ms == 600_000  # a sender without the key
