"""The market-rules cache: a venue's markets as last fetched, with the fetch time.

One row per (venue, endpoint, symbol). A fetch replaces every row of its venue
and endpoint in one transaction, so the rows of one venue always come from one
fetch and a market the venue delisted does not linger. The rules are stored as
a JSON object of decimal strings (what `gridctl.exchange.markets_online` writes);
this module does not interpret them.
"""

from __future__ import annotations

import json
from typing import Optional

from peewee import Database

from gridctl.store.models import MarketCache

TTL_MS = 24 * 3600 * 1000  # market rules change rarely; a day old is fresh enough to size a grid


def read(db: Database, venue: str, endpoint: str, now_ms: int,
         max_age_ms: int = TTL_MS) -> Optional[tuple[int, dict[str, dict]]]:
    """(fetched_ts, {symbol: rules}) of the venue's cached markets, or None when there are
    none or they were fetched `max_age_ms` or longer ago."""
    with db.bind_ctx([MarketCache]):
        rows = list(MarketCache.select().where((MarketCache.venue == venue) & (MarketCache.endpoint == endpoint)))
    if not rows:
        return None
    fetched = min(r.fetched_ts for r in rows)
    if now_ms - fetched >= max_age_ms or fetched > now_ms:  # a clock set back: do not trust the row
        return None
    return fetched, {r.symbol: json.loads(r.rules_json) for r in rows}


def write(db: Database, venue: str, endpoint: str, fetched_ts: int, markets: dict[str, dict]) -> None:
    """Replace the venue's cached markets with a fresh fetch."""
    rows = [{"venue": venue, "endpoint": endpoint, "symbol": sym, "fetched_ts": fetched_ts,
             "rules_json": json.dumps(rules, sort_keys=True)} for sym, rules in markets.items()]
    with db.bind_ctx([MarketCache]), db.atomic():
        MarketCache.delete().where((MarketCache.venue == venue) & (MarketCache.endpoint == endpoint)).execute()
        for i in range(0, len(rows), 200):  # SQLite's limit on bound variables per statement
            MarketCache.insert_many(rows[i:i + 200]).execute()
