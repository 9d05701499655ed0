"""The grid plan: cycle profit after maker fees, margin, liquidation estimate, warnings."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from gridctl.core.grid import GridError, Mode, Side, Spacing
from gridctl.core.market import MarketRules
from gridctl.core.plan import GridParams, bounds_from_pct, build_grid, make_plan

SOL = MarketRules(symbol="SOL/USDT:USDT", base="SOL", quote="USDT", tick=Decimal("0.01"),
                  step=Decimal("0.01"), min_qty=Decimal("0.01"), min_notional=Decimal("5"),
                  maintenance_margin_rate=Decimal("0.005"), maker_fee=Decimal("0.0002"))
D = Decimal


def _params(mode, lower="100", upper="104", grids=4, leverage=2, **kw):
    return GridParams(mode, Spacing.ARITHMETIC, SOL.price_to_ticks(D(lower)), SOL.price_to_ticks(D(upper)),
                      grids, leverage, **kw)


def test_long_cycle_profit_margin_and_liquidation_by_hand():
    # 4 cells of 1.00 between 100 and 104, 1 SOL per level (investment 203 x2 over 406 of entries)
    plan = make_plan(SOL, _params(Mode.LONG, investment=D("203")), SOL.price_to_ticks(D("103.50")))
    assert [(lv.price, lv.exit_price, lv.qty) for lv in plan.levels] == [
        (D("100.00"), D("101.00"), D("1.00")), (D("101.00"), D("102.00"), D("1.00")),
        (D("102.00"), D("103.00"), D("1.00")), (D("103.00"), D("104.00"), D("1.00"))]
    assert all(lv.side is Side.BUY for lv in plan.levels)
    # level 0: qty * spacing - maker fee on both legs = 1.00 - (100 + 101) * 0.0002 = 0.9598
    assert plan.levels[0].cycle_profit == D("0.9598")
    assert plan.levels[3].cycle_profit == D("0.9586")  # 1.00 - (103 + 104) * 0.0002
    assert plan.levels[0].notional == D("100.0000")
    # return on the level's margin (100 / 2x = 50): 0.9598 / 50 = 1.9196 %
    assert plan.levels[0].cycle_return_pct == D("1.920")
    assert plan.margin == D("203.00")  # (100 + 101 + 102 + 103) / 2
    # every buy filled: Q = 4 at avg 101.5 (cost 406), collateral 203, mmr 0.5 %:
    # P = (406 - 203) / (4 * 0.995) = 51.005...
    assert plan.liquidation_down == D("51.01")
    assert plan.liquidation_up is None
    assert plan.liquidation_price == plan.liquidation_down
    assert plan.orders_at_start == 4
    assert plan.warnings == []


def test_short_liquidation_by_hand():
    plan = make_plan(SOL, _params(Mode.SHORT, investment=D("205")), SOL.price_to_ticks(D("100.50")))
    assert [lv.price for lv in plan.levels] == [D("101.00"), D("102.00"), D("103.00"), D("104.00")]
    assert all(lv.side is Side.SELL and lv.qty == D("1.00") for lv in plan.levels)
    assert plan.levels[0].exit_price == D("100.00")
    assert plan.levels[0].cycle_profit == D("0.9598")  # 1.00 - (101 + 100) * 0.0002
    # P = (410 + 205) / (4 * 1.005) = 152.985...
    assert plan.liquidation_up == D("152.99") and plan.liquidation_down is None
    assert plan.liquidation_price == D("152.99")
    assert plan.margin == D("205.00")


def test_neutral_plan_at_start_price():
    plan = make_plan(SOL, _params(Mode.NEUTRAL, amount=100), SOL.price_to_ticks(D("102.30")))
    assert [(lv.index, lv.side) for lv in plan.levels] == [
        (0, Side.BUY), (1, Side.BUY), (3, Side.SELL), (4, Side.SELL)]
    assert plan.orders_at_start == 4
    # buys 100 + 101 = 201, sells 103 + 104 = 207: margin covers the larger side at 2x
    assert plan.margin == D("103.50")


def test_initial_position_counts_exits_of_levels_bought_at_start():
    start = SOL.price_to_ticks(D("102.50"))
    plain = make_plan(SOL, _params(Mode.LONG, amount=100), start)
    assert plain.orders_at_start == 3  # buys at 100, 101, 102 rest; 103 is above the price
    held = make_plan(SOL, _params(Mode.LONG, amount=100), start, initial_position=True)
    assert held.orders_at_start == 4  # plus the exit of the level bought at market


def test_warnings_for_fine_spacing_and_start_outside_the_range():
    # 1-tick cells on 100.00..100.04: profit 0.01 per SOL is below ~0.04 of fees
    plan = make_plan(SOL, _params(Mode.LONG, upper="100.04", amount=100), SOL.price_to_ticks(D("120")))
    assert any("below its fees" in w for w in plan.warnings)
    assert any("spacing under 2 ticks" in w for w in plan.warnings)
    assert any("outside the range" in w for w in plan.warnings)


def test_bounds_from_pct_rounds_inward():
    assert bounds_from_pct(SOL, 15000, D("10")) == (13500, 16500)
    assert bounds_from_pct(SOL, 15001, D("10")) == (13501, 16501)  # 135.009 up, 165.011 down


@settings(max_examples=100, deadline=None)
@given(mode=st.sampled_from(list(Mode)), spacing=st.sampled_from(list(Spacing)),
       lower=st.integers(1000, 50000), width=st.integers(20, 20000), grids=st.integers(2, 40),
       start_frac=st.floats(-0.2, 1.2), leverage=st.integers(1, 20),
       investment=st.decimals(min_value=D("100"), max_value=D("100000"), places=2))
def test_plan_matches_the_grid_and_its_formulas(mode, spacing, lower, width, grids, start_frac,
                                                leverage, investment):
    upper = lower + width
    start = max(1, lower + int(width * start_frac))
    p = GridParams(mode, spacing, lower, upper, grids, leverage, investment=investment)
    try:
        levels = build_grid(SOL, p, start)
    except GridError:
        return
    plan = make_plan(SOL, p, start)
    assert [lv.index for lv in plan.levels] == [lv.index for lv in levels]
    for row, lv in zip(plan.levels, levels):
        qty = SOL.qty(lv.size)
        entry, exit_ = SOL.price(lv.entry), SOL.price(lv.exit)
        assert (row.price, row.exit_price, row.qty) == (entry, exit_, qty)
        assert SOL.is_on_tick(row.price) and (row.qty / SOL.step) == int(row.qty / SOL.step)
        fees = (entry + exit_) * qty * SOL.maker_fee
        assert abs(row.cycle_profit - (qty * abs(exit_ - entry) - fees)) <= D("0.00005")
        # a long level exits above its entry, a short one below
        assert (exit_ > entry) == (row.side is Side.BUY)
    # with at least 1/20 of the notional as collateral, the estimate lies beyond the average entry
    for side, liq in ((Side.BUY, plan.liquidation_down), (Side.SELL, plan.liquidation_up)):
        rows = [r for r in plan.levels if r.side is side]
        # no rows, no estimate; a long whose collateral covers its cost has none (None, never 0.00)
        assert rows or liq is None
        assert liq is not None or not rows or side is Side.BUY
        if liq is not None:
            avg = sum(r.price * r.qty for r in rows) / sum(r.qty for r in rows)
            assert liq < avg if side is Side.BUY else liq > avg
    assert plan.margin * leverage >= max(sum(r.notional for r in plan.levels if r.side is s) for s in Side)


def test_plan_warns_when_liquidation_comes_before_the_last_entry():
    """A wide long grid at high leverage on thin collateral is liquidated before its lowest buy fills."""
    from decimal import Decimal

    from gridctl.core.grid import Mode, Spacing
    from gridctl.core.market import MarketRules
    from gridctl.core.plan import GridParams, make_plan

    rules = MarketRules("T/USDT:USDT", "T", "USDT", Decimal("0.01"), Decimal("0.01"), Decimal("0.01"),
                        Decimal(5), max_leverage=100)
    params = GridParams(Mode.LONG, Spacing.ARITHMETIC, 5000, 15000, 10, 20, investment=Decimal(1000))
    plan = make_plan(rules, params, 15000)
    assert plan.liquidation_down is not None and plan.liquidation_down >= Decimal(50)
    assert any("liquidated before every entry fills" in w for w in plan.warnings)
    safe = make_plan(rules, GridParams(Mode.LONG, Spacing.ARITHMETIC, 5000, 15000, 10, 1,
                                       investment=Decimal(1000)), 15000)
    assert not any("liquidated" in w for w in safe.warnings)


def test_a_long_that_cannot_be_liquidated_has_no_estimate():
    """1x with the investment as collateral: (cost - collateral) / ... <= 0 is "none", not 0.00."""
    plan = make_plan(SOL, _params(Mode.LONG, investment=D("406"), leverage=1), SOL.price_to_ticks(D("103.50")))
    assert plan.liquidation_down is None and plan.liquidation_price is None and plan.has_buys


def test_initial_position_is_capped_by_max_position_as_the_engine_does():
    # 1 SOL per level; at 100.50 the levels 101, 102, 103 would be held; max_position 2 SOL takes the
    # two nearest (101, 102) and leaves 103 out
    plan = make_plan(SOL, _params(Mode.LONG, amount=100), SOL.price_to_ticks(D("100.50")), initial_position=True,
                     max_position=200)
    assert plan.opening is not None
    assert [(o.level, o.level_price, o.qty) for o in plan.opening.orders] == [
        (1, D("101.00"), D("1.00")), (2, D("102.00"), D("1.00"))]
    assert plan.opening.left_out == 1 and plan.orders_at_start == 1 + 2  # the buy at 100 rests
    # market orders at the start price: 100.50 notional, taker fee 0.05 % = 0.0502 each (0.05025, half-even)
    assert plan.opening.notional == D("201.0000") and plan.opening.fee == D("0.1004")
