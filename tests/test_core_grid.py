"""Grid geometry and sizing: lines on the tick grid, level roles, sizes vs venue minimums."""

from __future__ import annotations

from decimal import Decimal, localcontext

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridctl.core.grid import (
    GridError, Mode, Side, Spacing, grid_lines, level_roles, min_investment, nearest_line,
    required_steps, round_bounds, size_from_investment,
)
from gridctl.core.market import MarketRules
from gridctl.core.plan import GridParams, SizeError, build_grid

SETTINGS = settings(max_examples=100, deadline=None)

SOL = MarketRules(symbol="SOL/USDT:USDT", base="SOL", quote="USDT", tick=Decimal("0.01"),
                  step=Decimal("0.01"), min_qty=Decimal("0.01"), min_notional=Decimal("5"))


@st.composite
def market_rules(draw) -> MarketRules:
    """Realistic venue rules: ticks and steps are powers of ten (or 5x), minimums vary."""
    tick = draw(st.sampled_from(["0.0001", "0.001", "0.01", "0.05", "0.1", "1"]))
    step = draw(st.sampled_from(["0.0001", "0.001", "0.01", "0.1", "1", "10"]))
    min_qty_steps = draw(st.integers(1, 20))
    return MarketRules(
        symbol="X/USDT:USDT", base="X", quote="USDT", tick=Decimal(tick), step=Decimal(step),
        min_qty=Decimal(step) * min_qty_steps,
        min_notional=Decimal(draw(st.sampled_from(["0", "1", "5", "10", "100"]))),
        contract_size=Decimal(draw(st.sampled_from(["1", "1", "0.1", "10"]))),
    )


# -- lines ---------------------------------------------------------------------------

@SETTINGS
@given(lower=st.integers(1, 10**7), width=st.integers(1, 10**6), grids=st.integers(1, 500),
       spacing=st.sampled_from(list(Spacing)))
def test_lines_on_tick_increasing_and_bounded(lower, width, grids, spacing):
    upper = lower + width
    try:
        lines = grid_lines(lower, upper, grids, spacing)
    except GridError:
        # impossible for arithmetic exactly when there are more cells than ticks;
        # for geometric only when the bottom cell (the narrowest) is under one tick
        if spacing is Spacing.ARITHMETIC:
            assert width < grids
        else:
            with localcontext() as ctx:
                ctx.prec = 50
                narrowest = Decimal(lower) * ((Decimal(upper) / lower) ** (Decimal(1) / grids) - 1)
            assert narrowest < 1
        return
    assert all(isinstance(x, int) for x in lines)  # ints of ticks: on tick by construction
    assert len(lines) == grids + 1
    assert lines[0] == lower and lines[-1] == upper
    assert all(b > a for a, b in zip(lines, lines[1:]))


@SETTINGS
@given(lower=st.integers(1, 10**6), width=st.integers(1, 10**4), grids=st.integers(1, 500))
def test_arithmetic_lines_buildable_whenever_enough_ticks(lower, width, grids):
    if width >= grids:
        lines = grid_lines(lower, lower + width, grids, Spacing.ARITHMETIC)
        gaps = {b - a for a, b in zip(lines, lines[1:])}
        # rounded to the nearest tick: cells differ by at most one tick
        assert max(gaps) - min(gaps) <= 1
    else:
        with pytest.raises(GridError):
            grid_lines(lower, lower + width, grids, Spacing.ARITHMETIC)


def test_four_grid_arithmetic_100_to_104_by_hand():
    lo, hi = round_bounds(SOL, Decimal("100"), Decimal("104"))
    lines = grid_lines(lo, hi, 4, Spacing.ARITHMETIC)
    assert [SOL.price(x) for x in lines] == [Decimal(p) for p in ("100.00", "101.00", "102.00", "103.00", "104.00")]


def test_geometric_lines_by_hand():
    # 100 → 400 in 2 cells: ratio 2 per cell
    assert grid_lines(100, 400, 2, Spacing.GEOMETRIC) == [100, 200, 400]
    # 1000 → 1331 in 3 cells: ratio 1.1 per cell
    assert grid_lines(1000, 1331, 3, Spacing.GEOMETRIC) == [1000, 1100, 1210, 1331]


def test_too_fine_grid_is_refused():
    with pytest.raises(GridError):
        grid_lines(16000, 16005, 10, Spacing.ARITHMETIC)
    with pytest.raises(GridError):
        grid_lines(5, 4, 2, Spacing.ARITHMETIC)


def test_round_bounds_rounds_inward():
    assert round_bounds(SOL, Decimal("100.004"), Decimal("103.999")) == (10001, 10399)


# -- roles ---------------------------------------------------------------------------

LINES = [10000, 10100, 10200, 10300, 10400]


def test_long_and_short_roles():
    assert level_roles(LINES, Mode.LONG, 10250) == [
        (0, Side.BUY, 10000, 10100), (1, Side.BUY, 10100, 10200),
        (2, Side.BUY, 10200, 10300), (3, Side.BUY, 10300, 10400)]
    assert level_roles(LINES, Mode.SHORT, 10250) == [
        (1, Side.SELL, 10100, 10000), (2, Side.SELL, 10200, 10100),
        (3, Side.SELL, 10300, 10200), (4, Side.SELL, 10400, 10300)]


def test_neutral_skips_the_line_nearest_the_start():
    roles = level_roles(LINES, Mode.NEUTRAL, 10240)  # start 102.40: nearest line is 102
    assert roles == [(0, Side.BUY, 10000, 10100), (1, Side.BUY, 10100, 10200),
                     (3, Side.SELL, 10300, 10200), (4, Side.SELL, 10400, 10300)]
    assert [r[0] for r in level_roles(LINES, Mode.NEUTRAL, 10260)] == [0, 1, 2, 4]  # nearest: 103
    assert nearest_line(LINES, 10250) == 2  # a tie goes to the lower line


@SETTINGS
@given(lower=st.integers(100, 10**6), width=st.integers(10, 10**5), grids=st.integers(2, 60),
       start_off=st.integers(-10**5, 2 * 10**5), spacing=st.sampled_from(list(Spacing)))
def test_neutral_buys_below_start_sells_above_n_levels(lower, width, grids, start_off, spacing):
    try:
        lines = grid_lines(lower, lower + width, grids, spacing)
    except GridError:
        return
    start = max(1, lower + start_off)
    roles = level_roles(lines, Mode.NEUTRAL, start)
    assert len(roles) == grids
    pivot = lines[nearest_line(lines, start)]
    assert pivot not in [r[2] for r in roles]
    for i, side, entry, exit_ in roles:
        assert entry == lines[i]
        if side is Side.BUY:
            assert entry < pivot and exit_ == lines[i + 1]
        else:
            assert entry > pivot and exit_ == lines[i - 1]


# -- sizes ---------------------------------------------------------------------------

def _meets_minimums(rules: MarketRules, price_ticks: int, steps: int) -> bool:
    qty = rules.qty(steps)
    return qty >= rules.min_qty and qty * rules.price(price_ticks) * rules.contract_size >= rules.min_notional


@SETTINGS
@given(rules=market_rules(), lower=st.integers(1, 10**6), width=st.integers(1, 10**5),
       grids=st.integers(2, 80), mode=st.sampled_from(list(Mode)), spacing=st.sampled_from(list(Spacing)),
       start_frac=st.floats(0, 1), leverage=st.integers(1, 125),
       investment=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("1000000"), places=2))
def test_build_grid_sizes_meet_minimums_or_say_what_works(rules, lower, width, grids, mode, spacing,
                                                         start_frac, leverage, investment):
    upper = lower + width
    start = lower + int(width * start_frac)
    params = GridParams(mode, spacing, lower, upper, grids, leverage, investment=investment)
    try:
        levels = build_grid(rules, params, start)
    except SizeError as exc:
        assert exc.minimum > investment
        # the minimum it names really works, and a cent less does not
        works = build_grid(rules, GridParams(mode, spacing, lower, upper, grids, leverage,
                                             investment=exc.minimum), start)
        assert all(_meets_minimums(rules, lv.entry, lv.size) and _meets_minimums(rules, lv.exit, lv.size)
                   for lv in works)
        with pytest.raises(SizeError):
            build_grid(rules, GridParams(mode, spacing, lower, upper, grids, leverage,
                                         investment=exc.minimum - Decimal("0.01")), start)
        return
    except GridError:
        return
    assert len(levels) == grids
    assert len({lv.size for lv in levels}) == 1
    for lv in levels:
        assert isinstance(lv.size, int) and lv.size > 0
        assert _meets_minimums(rules, lv.entry, lv.size), "entry below the venue minimum"
        assert _meets_minimums(rules, lv.exit, lv.size), "exit below the venue minimum"
    # every entry filled never uses more margin than the investment
    used = sum(rules.notional(lv.entry, lv.size) for lv in levels) / leverage
    assert used <= investment


@SETTINGS
@given(rules=market_rules(), entries=st.lists(st.integers(1, 10**6), min_size=1, max_size=50),
       investment=st.decimals(min_value=Decimal("1"), max_value=Decimal("100000"), places=2),
       leverage=st.integers(1, 100))
def test_size_from_investment_is_the_largest_fitting_step_count(rules, entries, investment, leverage):
    steps = size_from_investment(rules, entries, investment, leverage)
    total = sum(rules.price(e) for e in entries) * rules.contract_size
    assert rules.qty(steps) * total <= investment * leverage
    assert rules.qty(steps + 1) * total > investment * leverage


def test_min_investment_by_hand():
    # long 160..180, 10 cells: entries 160, 162, ..., 178 (sum 1690); min notional 5 at
    # the lowest entry 160 needs ceil(5 / 1.60) = 4 steps = 0.04 SOL
    lines = grid_lines(16000, 18000, 10, Spacing.ARITHMETIC)
    roles = level_roles(lines, Mode.LONG, 17000)
    assert required_steps(SOL, roles) == 4
    assert min_investment(SOL, roles, 2) == Decimal("33.80")  # 0.04 * 1690 / 2
    with pytest.raises(SizeError) as info:
        build_grid(SOL, GridParams(Mode.LONG, Spacing.ARITHMETIC, 16000, 18000, 10, 2,
                                   investment=Decimal("10")), 17000)
    assert info.value.minimum == Decimal("33.80")
    assert info.value.per_level == Decimal("0.01") and info.value.required == Decimal("0.04")


def test_amount_below_minimum_is_refused():
    with pytest.raises(SizeError):
        build_grid(SOL, GridParams(Mode.LONG, Spacing.ARITHMETIC, 16000, 18000, 10, 2, amount=3), 17000)
    levels = build_grid(SOL, GridParams(Mode.LONG, Spacing.ARITHMETIC, 16000, 18000, 10, 2, amount=4), 17000)
    assert {lv.size for lv in levels} == {4}
