"""The fill-driven ledger: hand-checked lots and trades, and its invariants over real market data
for every mode and spacing (checked against the fills, the simulated account and the book)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gridctl.backtest.summary import summarize
from gridctl.core.grid import Side
from gridctl.core.ledger import UNASSIGNED, Ledger
from backtest_helpers import (
    BTC_1M, SOL_1M, XRP_1H_MARK, XRP_5M, XRP_8H_FUNDING, CheckedBacktest, real_data, run_strategy, strategy,
    toy_rules, venue_rules,
)

D = Decimal
BUY, SELL = Side.BUY, Side.SELL


# -- the ledger alone, by hand ------------------------------------------------------------
def ledger() -> Ledger:
    return Ledger(toy_rules())  # tick 0.01, step 0.1: prices in cents, qty in tenths


def test_a_level_cycle_realizes_its_own_entry_as_grid_profit_and_makes_one_trade():
    led = ledger()
    led.entry(3, BUY, 1000, 10000, 10, D("0.02"))  # 1.0 @ 100.00
    led.entry(4, BUY, 2000, 9900, 10, D("0.0198"))  # 1.0 @ 99.00
    assert led.position == 20 and led.entry_price() == D("99.5")
    # level 3's exit at 101.00: 1.0 x (101 - 100) = 1.00, whatever level 4 paid
    trade = led.exit(3, 3000, 10100, 10, D("0.0202"))
    assert trade is not None
    assert (trade.level, trade.side, trade.entry_ts, trade.exit_ts) == (3, BUY, 1000, 3000)
    assert (trade.entry_price, trade.exit_price, trade.qty) == (D("100"), D("101"), D("1.0"))
    assert trade.profit == D("1.00") and trade.fees == D("0.0402") and trade.net_profit == D("0.9598")
    assert led.grid_profit == D("1.00") and led.other_realized == 0
    assert led.fees == D("0.0600") and led.fills == 3
    assert led.position == 10 and led.entry_price() == D("99")
    # unrealized of level 4's 1.0 @ 99 at a mark of 97.50
    assert led.unrealized(9750) == D("-1.5")
    assert led.total_pnl(9750) == D("1.00") - D("0.0600") - D("1.5")


def test_partial_exits_make_one_trade_when_the_level_is_empty():
    led = ledger()
    led.entry(0, SELL, 0, 20000, 30, D("0"))  # short 3.0 @ 200
    assert led.exit(0, 1, 19900, 10, D("0")) is None  # 1.0 @ 199: +1.00
    assert led.grid_profit == D("1.00")
    trade = led.exit(0, 2, 19800, 20, D("0"))  # 2.0 @ 198: +4.00
    assert trade is not None and trade.side is SELL
    assert trade.qty == D("3.0") and trade.profit == D("5.00") and led.grid_profit == D("5.00")
    assert trade.exit_price == D("198.3333333333333333333333333")  # (199 + 2*198) / 3
    assert led.position == 0


def test_a_close_realizes_every_lot_at_its_price_as_other_realized():
    led = ledger()
    led.entry(0, BUY, 0, 10000, 10, D("0"))
    led.entry(1, BUY, 0, 10100, 10, D("0"))
    led.entry(2, BUY, 0, 10200, 10, D("0"))
    led.close(SELL, 9900, 30, D("0.1485"))  # stop: 3.0 at 99.00
    # (99-100) + (99-101) + (99-102) = -6.00
    assert led.other_realized == D("-6.00") and led.grid_profit == 0
    assert led.position == 0 and all(lot.qty == 0 for lot in led.lots.values())
    assert led.realized == D("-6.00") and led.total_pnl(5000) == D("-6.1485")


def test_an_exit_larger_than_its_level_leaves_the_excess_unassigned_not_lost():
    led = ledger()
    led.entry(0, BUY, 0, 10000, 10, D("0"))
    led.exit(0, 1, 10100, 15, D("0"))  # sells 1.5: 1.0 closes the level, 0.5 is a short nobody ordered
    assert led.grid_profit == D("1.00")
    assert led.position == -5 and led.lots[UNASSIGNED].qty == 5 and led.lots[UNASSIGNED].sign == -1
    led.close(BUY, 10000, 5, D("0"))  # buying it back at 100 earns 0.5 x 1.00
    assert led.other_realized == D("0.50") and led.position == 0


def test_funding_is_signed_cash_in_the_total():
    led = ledger()
    led.add_funding(D("-0.25"))
    led.add_funding(D("0.05"))
    assert led.funding == D("-0.20") and led.total_pnl(10000) == D("-0.20")


# -- invariants over real data -------------------------------------------------------------
def _signed(f) -> Decimal:
    return f.qty if f.side == "buy" else -f.qty


def check_invariants(bt: CheckedBacktest) -> None:
    """Everything that must hold after any backtest, from the user's figures down to the book."""
    e, led, sim, rules = bt.engine, bt.engine.ledger, bt.sim, bt.engine.rules
    n = len(bt.data)
    mark = int(bt._marks(n - 1, n)[0])
    fig = summarize(bt, D(1), 60_000)
    assert bt.fills, "the scenario is meant to trade"
    # realized splits exactly into grid profit and other realized, and the total adds up
    assert led.realized == led.grid_profit + led.other_realized
    assert led.total_pnl(mark) == led.realized - led.fees + led.funding + led.unrealized(mark)
    # ... and it is what the cash flows of the fills say, independent of any lot bookkeeping
    cash = sum((-_signed(f) * f.price for f in bt.fills), D(0)) * rules.contract_size
    fee_sum = sum((f.fee for f in bt.fills), D(0))
    pos_qty = sum((_signed(f) for f in bt.fills), D(0))
    by_cash = cash + pos_qty * rules.price(mark) * rules.contract_size - fee_sum + led.funding
    assert abs(led.total_pnl(mark) - by_cash) < D("1e-18")
    # ... and what the simulated wallet says (its WAC bookkeeping is independent of the ledger's)
    assert abs(led.total_pnl(mark) - (sim.account.equity(mark) - sim.initial_balance)) < D("1e-18")
    # position and fees: ledger == fills == exchange == figures
    assert rules.qty(led.position) == pos_qty == rules.qty(sim.position) == fig["final_position"]
    assert led.fees == fee_sum == sim.fees
    assert led.funding == sim.funding
    assert led.fills == len(bt.fills) == fig["fills"]
    # grid profit is exactly the sum of the completed cycles
    assert led.grid_profit == sum((t.profit for t in e.trades), D(0))
    assert fig["cycles"] == len(e.trades)
    # every fill on the tick/step grid, inside what the market traded since the previous close
    d = bt.data
    for f in bt.fills:
        assert f.price % rules.tick == 0 and f.qty % rules.step == 0 and f.qty > 0, f
        k = int((d.ts <= f.ts).sum()) - 1
        lo = min(d.low[k], d.close[k - 1] if k else d.open[k])
        hi = max(d.high[k], d.close[k - 1] if k else d.open[k])
        if d.mark_ts is None or f.intent != "liquidation":
            assert rules.price(int(lo)) <= f.price <= rules.price(int(hi)), (f, k)
    # reduceOnly fills never increase |position|
    pos = D(0)
    for f in bt.fills:
        after = pos + _signed(f)
        if f.reduce_only:
            assert abs(after) < abs(pos), f
        pos = after
    # no resting entries that could carry |position| past max_position
    assert bt.violations == []


SOL = venue_rules("SOL/USDT:USDT")
XRP = venue_rules("XRP/USDT:USDT")
BTC = venue_rules("BTC/USDT:USDT")

# (rules, data loader args, lower, upper, grids, amount, max_position, extra risk)
SETS = {
    "sol-1m": (SOL, dict(path=SOL_1M), "140", "175", 20, "1", "8", {}),
    "xrp-5m-funding": (XRP, dict(path=XRP_5M, funding=XRP_8H_FUNDING), "1.00", "1.25", 15, "50", "400", {}),
    "xrp-5m-mark": (XRP, dict(path=XRP_5M, funding=XRP_8H_FUNDING, mark=XRP_1H_MARK), "1.00", "1.25", 15, "50",
                    None, {}),
    "btc-1m-20k": (BTC, dict(path=BTC_1M, rows=20_000), "40000", "48000", 16, "0.01", "0.1", {}),
}
_cache: dict = {}


def data_for(key: str):
    if key not in _cache:
        rules, args = SETS[key][0], SETS[key][1]
        _cache[key] = real_data(rules, **args)
    return _cache[key]


@pytest.mark.parametrize("spacing", ["arithmetic", "geometric"])
@pytest.mark.parametrize("mode", ["long", "short", "neutral"])
@pytest.mark.parametrize("key", list(SETS))
def test_ledger_invariants_on_real_data(key, mode, spacing):
    rules, _, lower, upper, grids, amount, max_pos, risk = SETS[key]
    s = strategy(mode, lower, upper, grids, symbol=rules.symbol, spacing=spacing, leverage=5, amount=amount,
                 max_position=max_pos, **risk)
    bt = run_strategy(rules, s, data_for(key), balance="100000")
    check_invariants(bt)
    assert bt.engine.stop_reason is None
    assert len(bt.engine.trades) > 3  # the grids really cycled


@pytest.mark.parametrize("mode, risk", [
    ("long", dict(stop_loss_pct="2")),  # SOL falls from 171 to 140: a long below 150 stops
    ("short", dict(max_loss="5")),
    ("neutral", dict(stop_loss_price="148", on_stop="close")),
    ("long", dict(stop_loss_price="149.5", on_stop="keep")),
])
def test_ledger_invariants_when_a_stop_closes_or_keeps_the_position(mode, risk):
    s = strategy(mode, "150", "175", 12, symbol=SOL.symbol, leverage=5, amount="1", **risk)
    bt = run_strategy(SOL, s, data_for("sol-1m"), balance="100000")
    check_invariants(bt)
    assert bt.engine.stop_reason in ("stop_loss", "max_loss")
    assert bt.sim.open_orders() == []
    if risk.get("on_stop") == "keep":
        assert bt.sim.position != 0 and bt.engine.ledger.other_realized == 0
    else:
        assert bt.sim.position == 0 and bt.engine.ledger.other_realized != 0
        assert bt.fills[-1].intent == "close" and bt.fills[-1].reduce_only


def test_max_position_binds_on_real_data_and_is_never_exceeded():
    """SOL falls ~18 %: a long grid with max_position 3 would hold 10 lots without the cap."""
    s = strategy("long", "140", "175", 20, symbol=SOL.symbol, leverage=5, amount="1", max_position="3")
    bt = run_strategy(SOL, s, data_for("sol-1m"), balance="100000")
    check_invariants(bt)
    assert bt.series.max_abs_position == 300  # the cap, in steps of 0.01
    uncapped = run_strategy(SOL, strategy("long", "140", "175", 20, symbol=SOL.symbol, leverage=5, amount="1"),
                            data_for("sol-1m"), balance="100000")
    assert uncapped.series.max_abs_position > 300
