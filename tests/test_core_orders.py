"""Desired orders and the reconcile diff: never cross, caps, reduceOnly, idempotent sync."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from gridctl.core.grid import LevelSpec, Mode, Side, Spacing, build_levels, grid_lines, level_roles
from gridctl.core.orders import (
    Cancel, DesiredOrder, Intent, Level, LevelState, OpenOrder, OrderPolicy, Place, apply_actions,
    desired_orders, reconcile,
)

SETTINGS = settings(max_examples=120, deadline=None)


@st.composite
def grid_state(draw):
    """Levels of a random grid with random holdings, a market price and a policy."""
    mode = draw(st.sampled_from(list(Mode)))
    grids = draw(st.integers(2, 12))
    lower = draw(st.integers(1000, 5000))
    lines = grid_lines(lower, lower + draw(st.integers(grids, 40 * grids)), grids, Spacing.ARITHMETIC)
    start = draw(st.integers(lines[0] - 50, lines[-1] + 50))
    specs = build_levels(level_roles(lines, mode, start), draw(st.integers(1, 10)))
    levels = []
    for s in specs:
        held = draw(st.integers(0, s.size))
        exiting = held > 0 and draw(st.booleans())
        levels.append(Level(s, held=held, exiting=exiting, gen=draw(st.integers(0, 5))))
    market = draw(st.integers(lines[0] - 100, lines[-1] + 100))
    cap = draw(st.one_of(st.none(), st.integers(0, 60)))
    policy = OrderPolicy(max_position=cap, hedge=draw(st.booleans()), post_only=draw(st.booleans()))
    working = draw(st.sets(st.sampled_from([s.index for s in specs])))
    return levels, market, policy, working


def _net(levels) -> int:
    return sum(lv.signed_held for lv in levels)


@SETTINGS
@given(grid_state())
def test_new_entries_never_cross_the_market(state):
    levels, market, policy, working = state
    for o in desired_orders(levels, market, policy, working):
        if o.intent is Intent.ENTRY and o.level not in working:
            assert (o.price < market) if o.side is Side.BUY else (o.price > market), o


@SETTINGS
@given(grid_state())
def test_every_held_level_has_its_exit_for_what_it_holds(state):
    levels, market, policy, working = state
    orders = desired_orders(levels, market, policy, working)
    exits = {o.level: o for o in orders if o.intent is Intent.EXIT}
    for lv in levels:
        if lv.held > 0:
            o = exits.pop(lv.spec.index)
            assert (o.side, o.price, o.qty) == (lv.spec.exit_side, lv.spec.exit, lv.held)
    assert not exits, "an exit for a level that holds nothing"


@SETTINGS
@given(grid_state())
def test_max_position_never_exceeded_by_resting_entries(state):
    levels, market, policy, working = state
    if policy.max_position is None:
        return
    cap = policy.max_position
    entries = [o for o in desired_orders(levels, market, policy, working) if o.intent is Intent.ENTRY]
    buys = sum(o.qty for o in entries if o.side is Side.BUY)
    sells = sum(o.qty for o in entries if o.side is Side.SELL)
    if policy.hedge:
        long_leg = sum(lv.held for lv in levels if lv.spec.side is Side.BUY)
        short_leg = sum(lv.held for lv in levels if lv.spec.side is Side.SELL)
        assert buys <= max(0, cap - long_leg)
        assert sells <= max(0, cap - short_leg)
    else:
        net = _net(levels)
        assert buys <= max(0, cap - net)
        assert sells <= max(0, cap + net)


@SETTINGS
@given(grid_state())
def test_reduce_only_exits_never_exceed_the_net_position(state):
    levels, market, policy, working = state
    if policy.hedge:
        return
    net = _net(levels)
    exits = [o for o in desired_orders(levels, market, policy, working) if o.intent is Intent.EXIT]
    assert sum(o.qty for o in exits if o.reduce_only and o.side is Side.SELL) <= max(net, 0)
    assert sum(o.qty for o in exits if o.reduce_only and o.side is Side.BUY) <= max(-net, 0)


@SETTINGS
@given(grid_state())
def test_hedge_mode_exits_are_all_reduce_only(state):
    levels, market, policy, working = state
    policy = OrderPolicy(max_position=policy.max_position, hedge=True, post_only=policy.post_only)
    assert all(o.reduce_only for o in desired_orders(levels, market, policy, working)
               if o.intent is Intent.EXIT)


@SETTINGS
@given(grid_state())
def test_paused_strategy_keeps_only_exits(state):
    levels, market, policy, working = state
    paused = OrderPolicy(policy.max_position, policy.hedge, policy.post_only, entries_enabled=False)
    orders = desired_orders(levels, market, paused, working)
    assert all(o.intent is Intent.EXIT for o in orders)
    assert len(orders) == sum(1 for lv in levels if lv.held > 0)


# -- hand-checked ------------------------------------------------------------------

def _long_grid(size=2):
    return [Level(s) for s in build_levels(level_roles([100, 101, 102, 103, 104], Mode.LONG, 102), size)]


def test_long_grid_at_start_buys_below_market_only():
    orders = desired_orders(_long_grid(), 102, OrderPolicy())
    assert [(o.level, o.side, o.price, o.qty) for o in orders] == [(0, Side.BUY, 100, 2), (1, Side.BUY, 101, 2)]
    assert all(o.post_only and not o.reduce_only for o in orders)


def test_working_entry_keeps_its_place_when_price_crosses():
    orders = desired_orders(_long_grid(), 101, OrderPolicy(), working_entries=[1])
    assert [(o.level, o.price) for o in orders] == [(0, 100), (1, 101)]


def test_max_position_drops_entries_farthest_from_market_first():
    orders = desired_orders(_long_grid(), 104, OrderPolicy(max_position=5))
    assert [(o.level, o.price) for o in orders] == [(2, 102), (3, 103)]


def test_one_way_neutral_exit_beyond_net_is_not_reduce_only():
    lines = [100, 101, 102, 103, 104]
    specs = build_levels(level_roles(lines, Mode.NEUTRAL, 102), 1)  # buys at 100, 101; sells at 103, 104
    held = {0: 1, 3: 1, 4: 1}  # long 1, short 2: net -1
    levels = [Level(s, held=held.get(s.index, 0), exiting=s.index in held) for s in specs]
    exits = {o.level: o for o in desired_orders(levels, 102, OrderPolicy()) if o.intent is Intent.EXIT}
    assert not exits[0].reduce_only  # SELL 1 while net short: it opens exposure
    # the net short of 1 gives room for one reduceOnly BUY: the highest (first to fill)
    assert (exits[3].reduce_only, exits[4].reduce_only) == (False, True)


def test_partial_fill_wants_the_rest_and_an_exit():
    spec = LevelSpec(0, Side.BUY, 100, 101, 5)
    lv = Level(spec, held=2)
    orders = desired_orders([lv], 102, OrderPolicy())
    assert [(o.intent, o.qty) for o in orders] == [(Intent.ENTRY, 3), (Intent.EXIT, 2)]
    assert lv.state(entry_open=True, exit_open=False) is LevelState.ENTRY_WORKING
    assert Level(spec, held=2, exiting=True).state(False, True) is LevelState.EXIT_WORKING
    assert Level(spec).state(False, False) is LevelState.IDLE
    assert Level(spec, held=5, exiting=True).state(False, False) is LevelState.POSITION_OPEN


# -- reconcile ---------------------------------------------------------------------

_ids = iter(range(10**9))


@st.composite
def open_orders(draw, desired):
    """Actual orders: copies of desired ones (exact, wrong qty, flipped flag), duplicates, foreign levels."""
    out = []
    for d in draw(st.lists(st.sampled_from(desired), max_size=12)) if desired else []:
        qty = d.qty if draw(st.booleans()) else draw(st.integers(1, 12))
        ro = d.reduce_only if draw(st.integers(0, 3)) else not d.reduce_only
        out.append(OpenOrder(d.level, d.intent, d.side, d.price, qty, ro, order_id=str(next(_ids))))
    for _ in range(draw(st.integers(0, 6))):
        out.append(OpenOrder(draw(st.integers(0, 30)), draw(st.sampled_from(list(Intent))),
                             draw(st.sampled_from(list(Side))), draw(st.integers(90, 110)),
                             draw(st.integers(1, 12)), draw(st.booleans()), order_id=str(next(_ids))))
    return draw(st.permutations(out))


def _shape(o) -> tuple:
    return (o.key, o.qty, o.reduce_only)


@SETTINGS
@given(st.data())
def test_reconcile_then_apply_is_a_fixed_point(data):
    levels, market, policy, working = data.draw(grid_state())
    desired = desired_orders(levels, market, policy, working)
    actual = data.draw(open_orders(desired))
    actions = reconcile(desired, actual)
    # cancels first, so margin and reduceOnly room are freed before placing
    kinds = [isinstance(a, Place) for a in actions]
    assert kinds == sorted(kinds)
    after = apply_actions(actual, actions)
    assert reconcile(desired, after) == []
    assert Counter(map(_shape, after)) == Counter(map(_shape, desired))
    # minimal: an exact match is never cancelled and re-placed
    exact = Counter(map(_shape, actual)) & Counter(map(_shape, desired))
    assert sum(1 for a in actions if isinstance(a, Place)) == len(desired) - sum(exact.values())
    assert sum(1 for a in actions if isinstance(a, Cancel)) == len(actual) - sum(exact.values())


def test_reconcile_by_hand():
    d1 = DesiredOrder(0, Intent.ENTRY, Side.BUY, 100, 2)
    d2 = DesiredOrder(1, Intent.EXIT, Side.SELL, 102, 2, reduce_only=True)
    keep = OpenOrder(0, Intent.ENTRY, Side.BUY, 100, 2, order_id="a")
    dup = OpenOrder(0, Intent.ENTRY, Side.BUY, 100, 2, order_id="b")
    wrong_flag = OpenOrder(1, Intent.EXIT, Side.SELL, 102, 2, reduce_only=False, order_id="c")
    foreign = OpenOrder(7, Intent.ENTRY, Side.BUY, 95, 1, order_id="d")
    actions = reconcile([d1, d2], [keep, dup, wrong_flag, foreign])
    assert {a.order.order_id for a in actions if isinstance(a, Cancel)} == {"b", "c", "d"}
    assert [a.order for a in actions if isinstance(a, Place)] == [d2]
    assert reconcile([], []) == []
