"""One read of an account's position in a symbol, through the adapter the worker uses.

For `gridctl reconcile`: the ccxt adapter against the venue (or the paper account's local
venue), markets loaded, no pre-flight (nothing on the account is changed), no streams.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from gridctl.config.model import AccountConfig
from gridctl.core.market import MarketRules
from gridctl.exchange.base import PositionReport


@dataclass
class PositionRead:
    """The venue's position reports, its mark price (ticks) and the market's rules."""

    reports: list[PositionReport]
    mark: int
    rules: MarketRules


async def read_position(account: AccountConfig, symbol: str, rules: Optional[MarketRules],
                        state_dir: Path) -> PositionRead:
    """The venue's position in `symbol` (per leg in hedge mode) and its mark price; raises the
    adapter's ExchangeError (or VenueUnavailable for a paper account whose venue is down)."""
    from gridctl.exchange import ccxt_orders as co
    from gridctl.exchange import ccxt_rest
    from gridctl.exchange.ccxt_adapter import CcxtExchange, Timing
    from gridctl.exchange.venues import quirk

    if account.is_paper:
        from gridctl.exchange.paper_venue import connect_account
        from gridctl.process.paths import StatePaths

        account = connect_account(StatePaths(state_dir), account, timeout=5.0)
    ex = CcxtExchange(account, symbol, rules, timing=Timing.from_env())
    try:
        c = ex.client
        await ex._read(c.load_markets, False, quirk(ex.venue, "load_markets_params"))
        ex.market = c.market(ex.symbol)
        ex.symbol = ex.market["symbol"]
        ex.rules = ccxt_rest.live_rules(c, ex.market, rules)
        reports = await ccxt_rest.positions(ex)
        rows = await ex._read(c.fetch_positions, [ex.symbol])
        mark = next((r.get("markPrice") for r in rows if r.get("symbol") == ex.symbol and r.get("markPrice")), None)
        if mark is None:
            ticker = await ex._read(c.fetch_ticker, ex.symbol)
            mark = ticker.get("last") or ticker.get("close")
        return PositionRead(reports, co.to_ticks(ex.rules, mark), ex.rules)
    finally:
        try:
            await ex.client.close()
        except Exception:
            pass
