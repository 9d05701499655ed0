"""Shared builders for the engine / ledger / backtest tests: strategies, data, hand-made candles,
and a Backtest that checks the book after every candle it handles."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from gridctl.backtest import load_market_data, prepare
from gridctl.backtest.runner import Backtest, MarketData
from gridctl.config.model import AccountConfig, RiskConfig, StrategyConfig
from gridctl.core.grid import Mode, Side, Spacing
from gridctl.core.market import MarketRules
from gridctl.core.orders import Intent
from gridctl.markets import load_snapshot
from shared_data import require, shared_data

D = Decimal
DATA = shared_data()
SOL_1M = DATA / "candles" / "gridtradingbot_SOLUSDT_1m.csv"
XRP_5M = DATA / "candles" / "freqtrade_XRPUSDT-PERP_5m.csv"
XRP_1H_MARK = DATA / "candles" / "freqtrade_XRPUSDT-PERP_1h_mark.csv"
XRP_8H_FUNDING = DATA / "funding" / "freqtrade_XRPUSDT-PERP_8h.csv"
BTC_1M = DATA / "candles" / "nautilus-ftx_BTC-PERP_1m.csv"
T0 = 1_700_000_000_000  # hand-made candles start here, one per minute
MIN = 60_000


def venue_rules(symbol: str) -> MarketRules:
    """The bundled Binance USD-M rules of a symbol."""
    return load_snapshot("binanceusdm")[symbol]


def toy_rules(**kw) -> MarketRules:
    """A made-up market with round numbers: tick 0.01, step 0.1, maker 0.02 %, taker 0.05 %."""
    base = dict(symbol="TST/USDT:USDT", base="TST", quote="USDT", tick=D("0.01"), step=D("0.1"),
                min_qty=D("0.1"), min_notional=D("0"), max_leverage=125,
                maintenance_margin_rate=D("0.005"), maker_fee=D("0.0002"), taker_fee=D("0.0005"))
    base.update(kw)
    return MarketRules(**base)




def account(balance: str = "10000") -> AccountConfig:
    """A one-way paper account with Binance rules and client ids."""
    return AccountConfig(name="paper", exchange="paper", like="binanceusdm", balance=D(balance))


def strategy(mode: str, lower: str, upper: str, grids: int, *, symbol: str = "TST/USDT:USDT",
             spacing: str = "arithmetic", leverage: int = 1, amount: Optional[str] = None,
             investment: Optional[str] = None, max_position: Optional[str] = None,
             trigger_price: Optional[str] = None, initial_position: bool = False,
             name: str = "t", **risk) -> StrategyConfig:
    """A strategy as the validated config would hold it; `risk` takes RiskConfig fields."""
    conv = {k: (D(v) if isinstance(v, str) and k != "on_stop" else v) for k, v in risk.items()}
    return StrategyConfig(
        name=name, account="paper", symbol=symbol, mode=Mode(mode), spacing=Spacing(spacing), grids=grids,
        leverage=leverage, lower=D(lower), upper=D(upper),
        amount=D(amount) if amount is not None else None,
        investment=D(investment) if investment is not None else None,
        max_position=D(max_position) if max_position is not None else None,
        trigger_price=D(trigger_price) if trigger_price is not None else None,
        initial_position=initial_position, risk=RiskConfig(**conv))


def candles(rows: Sequence[tuple[str, str, str, str]], rules: MarketRules, start: int = T0,
            interval: int = MIN) -> MarketData:
    """MarketData from (open, high, low, close) price strings, one candle per `interval`."""
    t = lambda i: np.array([rules.price_to_ticks(D(r[i])) for r in rows], dtype=np.int64)  # noqa: E731
    ts = start + np.arange(len(rows), dtype=np.int64) * interval
    return MarketData(ts=ts, open=t(0), high=t(1), low=t(2), close=t(3))


def real_data(rules: MarketRules, path: Path, rows: Optional[int] = None, mark: Optional[Path] = None,
              funding: Optional[Path] = None) -> MarketData:
    """A real candle file (its first `rows` candles) in ticks, with optional mark and funding.

    Skips (fails under CI) when the shared data is missing."""
    require(path, mark, funding)
    data = load_market_data(rules, path, mark, funding)
    if rows is not None and rows < len(data):
        end = int(data.ts[rows])
        data = load_market_data(rules, path, mark, funding, end_ms=end)
    return data


@dataclass
class Violation:
    candle: int
    what: str


class CheckedBacktest(Backtest):
    """A Backtest that inspects the simulated book after every candle it handles.

    Records (rather than raises) every resting entry set that could push |position|
    past max_position if it all filled, and every fill range that lies outside
    what the market traded since the previous close.
    """

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.violations: list[Violation] = []
        self.handled = 0
        self.max_resting = 0

    def handle_candle(self, k: int) -> None:
        super().handle_candle(k)
        self.handled += 1
        e, sim = self.engine, self.sim
        cap = e.cfg.max_position
        buys = sells = 0
        for o in sim.open_orders():
            dec = e.decode(o.client_id)
            if dec is None or dec.intent is not Intent.ENTRY:
                continue
            if o.side is Side.BUY:
                buys += o.remaining
            else:
                sells += o.remaining
        self.max_resting = max(self.max_resting, len(sim.open_orders()))
        pos = sim.position
        if cap is not None and (pos + buys > cap or -pos + sells > cap):
            self.violations.append(Violation(k, f"position {pos} + resting entries buy {buys} / sell {sells} "
                                                f"> max_position {cap}"))


def checked(prepared_backtest: Backtest) -> CheckedBacktest:
    """The same engine, sim and data, driven by a CheckedBacktest."""
    b = prepared_backtest
    return CheckedBacktest(b.engine, b.sim, b.data)


def run_strategy(rules: MarketRules, s: StrategyConfig, data: MarketData, balance: str = "10000",
                 fast: bool = True) -> CheckedBacktest:
    """Prepare and run a strategy over data; returns the finished CheckedBacktest."""
    p = prepare(rules, s, account(balance), data, D(balance))
    bt = checked(p.backtest)
    bt.run(fast=fast)
    return bt


def fill_rows(bt: Backtest) -> list[tuple]:
    """Fills as (minute index, level, side, intent, price str, qty str) for compact asserts."""
    t0 = int(bt.data.ts[0])
    return [((f.ts - t0) // MIN, f.level, f.side, f.intent, str(f.price), str(f.qty)) for f in bt.fills]


@dataclass
class Recorder:
    """Wraps sim.pay_funding to keep every FundingPayment."""

    payments: list = field(default_factory=list)

    def attach(self, bt: Backtest) -> "Recorder":
        orig = bt.sim.pay_funding

        def pay(ts, rate):
            p = orig(ts, rate)
            if p is not None:
                self.payments.append(p)
            return p

        bt.sim.pay_funding = pay  # type: ignore[method-assign]
        return self
