"""`gridctl validate --online`: each live account's markets from its venue (cache allowed), so
the market checks run against the rules that will apply rather than the bundled snapshot."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from gridctl.cli.common import AppContext
from gridctl.cli.markets_cmd import account_markets_or_exit, cache_db, source_text
from gridctl.config import ConfigError, load
from gridctl.config.market_check import MarketSet


@dataclass
class Online:
    """The live accounts' markets (AccountMarkets by account name) and the checks' market sets."""

    accounts: dict[str, Any] = field(default_factory=dict)  # the file's accounts (AccountConfig by name)
    found: dict[str, Any] = field(default_factory=dict)
    sets: dict[str, MarketSet] = field(default_factory=dict)
    used: dict[str, list[str]] = field(default_factory=dict)  # account -> the symbols its strategies trade


def fetch(app: AppContext, config_path: str) -> Optional[Online]:
    """The markets of every live account a strategy uses; a venue that cannot be reached is an
    error naming the account (exit 1). None when the file itself has problems (the normal
    offline load then reports every one of them)."""
    from gridctl.exchange.markets_online import where

    try:
        base = load(Path(config_path), check_markets=False)
    except ConfigError:
        return None
    online = Online(accounts=base.accounts)
    for s in base.strategies.values():
        if not base.accounts[s.account].is_paper:
            online.used.setdefault(s.account, []).append(s.symbol)
    if not online.used:
        return online
    db = cache_db(app, base)
    try:
        for name in sorted(online.used):
            account = base.accounts[name]
            found = account_markets_or_exit(account, db)
            online.found[name] = found
            online.sets[name] = MarketSet(found.rules(), f"{where(account)} (live markets)",
                                          frozenset(s for s, m in found.markets.items() if not m.leverage_known))
    finally:
        if db is not None:
            db.close()
    return online


def _used_markets(online: Online, name: str) -> list:
    found = online.found[name]
    markets = {m.rules.symbol: m for sym in online.used[name] if (m := found.find(sym)) is not None}
    return [markets[s] for s in sorted(markets)]


def summary_lines(online: Online) -> list[str]:
    """One line per live account (where its markets came from), then each traded market that
    differs from the bundled snapshot or has none, or whose max leverage is not published."""
    from gridctl.exchange.markets_online import where

    lines = []
    for name, found in online.found.items():
        lines.append(f"online: account '{name}' ({where(online.accounts[name])}): {len(found.markets)} swap markets, "
                     f"{source_text(found)}")
        for m in _used_markets(online, name):
            sym = m.rules.symbol
            if m.bundled is None:
                lines.append(f"  {sym}: no bundled snapshot; checked against the live rules")
            elif m.differences():
                lines.append(f"  {sym}: the live rules differ from the bundled snapshot (captured {found.captured}) "
                             f"and apply: {'; '.join(str(d) for d in m.differences())}")
            if not m.leverage_known:
                lines.append(f"  {sym}: max leverage not published by the venue: not checked here")
    return lines


def summary_json(online: Online) -> list[dict]:
    """The live accounts' markets for validate --json: where they came from, and each traded market."""
    from gridctl.cli.markets_cmd import found_json

    return [{**found_json(found, online.accounts[name]),
             "markets": [{"symbol": m.rules.symbol, "bundled": m.bundled is not None,
                          "leverage_known": m.leverage_known,
                          "differences": [{"field": d.field, "bundled": d.bundled, "live": d.live}
                                          for d in m.differences()]}
                         for m in _used_markets(online, name)]}
            for name, found in online.found.items()]
