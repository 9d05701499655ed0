"""`gridctl markets ACCOUNT [SYMBOL]`: the rules of an account's swap markets, live or bundled."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Optional

import click

from gridctl.cli.common import EXIT_USAGE, AppContext, config_option, fail, json_option, load_config_or_exit, print_json
from gridctl.cli.group import cli
from gridctl.config.model import AccountConfig, Config

ORIGIN_NOTE = {"bundled": "not published by the venue: from the bundled snapshot",
               "default": "not published by the venue: gridctl's default"}


# ---- shared with validate --online ----------------------------------------------------------
def cache_db(app: AppContext, config: Config) -> Any:
    """The database holding the market cache, or None (with a warning) when it cannot be opened."""
    from peewee import PeeweeException

    from gridctl.store.db import open_database

    state_dir = app.state_dir(config)
    try:
        return open_database(state_dir, url=config.database)
    except (PeeweeException, OSError) as exc:
        click.echo(f"warning: no market cache (cannot open the gridctl database in {state_dir}: {exc}); "
                   f"asking the venue", err=True)
        return None


def account_markets_or_exit(account: AccountConfig, db: Any, refresh: bool = False):
    """The account's markets (AccountMarkets), or the reason they could not be loaded and exit 1."""
    from gridctl.exchange.markets_online import MarketsUnavailable, load_account_markets

    try:
        return load_account_markets(account, db, refresh=refresh)
    except MarketsUnavailable as exc:
        fail(str(exc))


def when(ts: Optional[int]) -> str:
    """Epoch ms as '2026-12-02 00:41:07 UTC'."""
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def source_text(found) -> str:
    """Where the markets came from, for a heading: 'live (fetched …)', 'cached (fetched …)', 'bundled snapshot …'."""
    if found.source == "bundled":
        return f"bundled snapshot (captured {found.captured})" if found.captured else "bundled snapshot"
    if found.source == "cache":
        return f"cached (fetched {when(found.fetched_ts)}; --refresh fetches now)"
    return f"live (fetched {when(found.fetched_ts)})"


def heading(account: AccountConfig) -> str:
    from gridctl.exchange.markets_online import where

    return f"paper, like {account.venue}" if account.is_paper else where(account)


# ---- output ---------------------------------------------------------------------------------
def _pct(fee: Decimal) -> str:
    return f"{format((fee * 100).normalize(), 'f')}%"


def _num(d: Decimal) -> str:
    return format(d.normalize(), "f")


def _leverage(market) -> str:
    return f"{market.rules.max_leverage}x" if market.leverage_known else "unknown"


def _cell(market, f: str, text: str, marks: set) -> str:
    """A live table cell: '*' when it differs from the bundled snapshot, '~' when the venue did
    not publish it and it comes from the bundled snapshot."""
    if any(d.field == f for d in market.differences()):
        marks.add("*")
        return text + "*"
    if market.origin.get(f) == "bundled":
        marks.add("~")
        return text + "~"
    return text


def _table(found, account: AccountConfig) -> None:
    from tabulate import tabulate

    marks: set[str] = set()
    live = found.source != "bundled"
    rows = []
    for m in found.markets.values():
        r = m.rules
        cells = {"tick": _num(r.tick), "step": _num(r.step), "min_qty": _num(r.min_qty),
                 "min_notional": f"{_num(r.min_notional)} {r.quote}",
                 "max_leverage": f"{r.max_leverage}x" if m.leverage_known else "-",
                 "maker_fee": _pct(r.maker_fee), "taker_fee": _pct(r.taker_fee)}
        if live:
            cells = {f: _cell(m, f, text, marks) if text != "-" else text for f, text in cells.items()}
        rows.append([r.symbol, r.venue_id, *cells.values()])
    click.echo(f"account '{account.name}': {heading(account)}, {len(rows)} swap markets, {source_text(found)}")
    click.echo(tabulate(rows, headers=["symbol", "id", "tick", "step", "min qty", "min notional", "max leverage",
                                       "maker", "taker"], disable_numparse=True))
    if "*" in marks:
        click.echo(f"* differs from the bundled snapshot (captured {found.captured}); the live rule applies "
                   f"(gridctl markets {account.name} SYMBOL shows both)")
    if "~" in marks:
        click.echo("~ not published by the venue: from the bundled snapshot")


def _detail(found, account: AccountConfig, market) -> None:
    r = market.rules
    click.echo(f"{r.symbol} ({r.venue_id}) on account '{account.name}': {heading(account)}, {source_text(found)}")
    values = {"tick": f"{_num(r.tick)} {r.quote}", "step": f"{_num(r.step)} {r.base}",
              "min_qty": f"{_num(r.min_qty)} {r.base}", "min_notional": f"{_num(r.min_notional)} {r.quote}",
              "contract_size": _num(r.contract_size), "max_leverage": _leverage(market),
              "maintenance_margin_rate": _num(r.maintenance_margin_rate),
              "maker_fee": _pct(r.maker_fee), "taker_fee": _pct(r.taker_fee)}
    from gridctl.exchange.markets_online import LABELS

    for f, text in values.items():
        origin = market.origin.get(f)
        note = f" ({ORIGIN_NOTE[origin]})" if found.source != "bundled" and origin in ORIGIN_NOTE else ""
        click.echo(f"  {LABELS[f]:<24} {text}{note}")
    if found.source == "bundled":
        return
    if "venue" in (market.origin.get("maker_fee"), market.origin.get("taker_fee")):
        click.echo("  (fees: the venue's standard rates as ccxt reports them; your account's may be lower)")
    diffs = market.differences()
    if market.bundled is None:
        click.echo("no bundled snapshot of this market: the live rules are all gridctl knows")
    elif diffs:
        click.echo(f"differs from the bundled snapshot (captured {found.captured}); the live rules apply:")
        for d in diffs:
            click.echo(f"  {d}")
    else:
        click.echo(f"same as the bundled snapshot (captured {found.captured})")


def market_json(market) -> dict:
    """One market as JSON: its rules (decimal strings), each rule's origin and the differences."""
    from gridctl.exchange.markets_online import RULE_FIELDS

    r = market.rules
    out: dict[str, Any] = {"symbol": r.symbol, "id": r.venue_id, "base": r.base, "quote": r.quote}
    out.update({f: getattr(r, f) for f in RULE_FIELDS})
    if not market.leverage_known:
        out["max_leverage"] = None
    out["origin"] = dict(market.origin)
    out["differences"] = [{"field": d.field, "bundled": d.bundled, "live": d.live} for d in market.differences()]
    return out


def found_json(found, account: AccountConfig) -> dict:
    from gridctl.store.read import iso

    return {"account": account.name, "exchange": account.exchange, "venue": found.venue,
            "endpoint": account.endpoint, "sandbox": account.sandbox, "source": found.source,
            "fetched": iso(found.fetched_ts) or None, "captured": found.captured}


# ---- the command ----------------------------------------------------------------------------
@cli.command()
@config_option
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("symbol", required=False)
@click.option("--refresh", is_flag=True, help="Ask the venue now instead of using rules fetched in the last 24 h.")
@json_option
@click.pass_obj
def markets(app: AppContext, config_path: str, account_name: str, symbol: Optional[str], refresh: bool,
            as_json: bool) -> None:
    """The swap markets of an account: tick, step, minimums, max leverage, fees.

    A live account's rules come from the venue (ccxt load_markets, at its
    endpoint: if set), kept 24 h in the database; where they differ from the
    snapshot bundled with gridctl, the live rules apply and are marked. A paper
    account answers from the bundled snapshot of the venue it is like. With
    SYMBOL (BTC/USDT:USDT or the venue's id, BTCUSDT), that market in detail
    with every difference from the bundled snapshot. --json prints {"account",
    "source", "fetched", ..., "markets": [...]} (or "market" with SYMBOL).

    \b
    Example:
        gridctl markets main
        gridctl markets main BTC/USDT:USDT --refresh
        gridctl markets paper SOLUSDT --json
    """
    from gridctl.config.reader import did_you_mean

    config = load_config_or_exit(config_path, check_markets=False)
    account = config.accounts.get(account_name)
    if account is None:
        fail(f"no account '{account_name}' in {config_path}{did_you_mean(account_name, config.accounts)}; "
             f"accounts: {', '.join(config.accounts)}", EXIT_USAGE)
    assert account is not None
    db = cache_db(app, config) if not account.is_paper else None
    try:
        found = account_markets_or_exit(account, db, refresh)
    finally:
        if db is not None:
            db.close()
    if symbol is None:
        if as_json:
            print_json({**found_json(found, account), "markets": [market_json(m) for m in found.markets.values()]})
        else:
            _table(found, account)
        return
    market = found.find(symbol)
    if market is None:
        fail(f"no market '{symbol}' on account '{account.name}' ({heading(account)})"
             f"{did_you_mean(symbol, found.markets)}; gridctl markets {account.name} lists them", EXIT_USAGE)
    if as_json:
        print_json({**found_json(found, account), "market": market_json(market)})
    else:
        _detail(found, account, market)
