"""The simulated perpetual-futures exchange and its price sources (see docs/simulation.md)."""

from gridctl.sim.account import Account, Leg, LiquidationEvent
from gridctl.sim.book import Book, Reject, SimOrder
from gridctl.sim.exchange import LIQUIDATION, NO_HIGH, NO_LOW, SimExchange
from gridctl.sim.sources import (
    Candles,
    DataError,
    TickCandles,
    funding_candle_index,
    load_candles,
    load_tick_candles,
    load_funding,
    synthetic_candles,
)

__all__ = [
    "Account", "Book", "Candles", "DataError", "LIQUIDATION", "Leg", "LiquidationEvent", "NO_HIGH",
    "NO_LOW", "Reject", "SimExchange", "SimOrder", "TickCandles", "funding_candle_index",
    "load_candles", "load_funding", "load_tick_candles", "synthetic_candles",
]
