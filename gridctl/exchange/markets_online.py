"""A live venue's market rules through ccxt (`load_markets`), cached 24 h, compared with the bundled snapshot.

One request where ccxt allows it (research note §1.1): no currencies, swap markets
only (Backpack `marketType: PERP`, Bybit `linear`, OKX `swap`), no API keys. Each
active linear swap market becomes `MarketRules`. What the venue (or ccxt) reports
wins; a field it does not report (Binance publishes no max leverage without keys,
Backpack no fees) comes from the bundled snapshot when it has the market, else from
MarketRules' defaults, and `LiveMarket.origin` says which.

The cache (gridctl.store.market_cache) holds what the venue said, keyed by venue,
endpoint ("" for the venue itself, the `endpoint:` URL, or "sandbox") and symbol.
A paper account answers from its bundled snapshot and never asks anyone.

Failures are `MarketsUnavailable`, whose message names the account and says what
went wrong in words ("connection refused", "no answer within 10 s"), never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation, ROUND_FLOOR
from importlib import resources
from typing import Any, Callable, Mapping, Optional

import ccxt
import ccxt.async_support as ccxt_async

from gridctl.config.model import AccountConfig
from gridctl.core.market import MarketRules
from gridctl.markets import bundled_venues, find_market, load_snapshot

log = logging.getLogger(__name__)

RULE_FIELDS = ("tick", "step", "min_qty", "min_notional", "contract_size", "max_leverage",
               "maintenance_margin_rate", "maker_fee", "taker_fee")
LABELS = {"tick": "tick", "step": "step", "min_qty": "min qty", "min_notional": "min notional",
          "contract_size": "contract size", "max_leverage": "max leverage",
          "maintenance_margin_rate": "maintenance margin rate", "maker_fee": "maker fee", "taker_fee": "taker fee"}
# load_markets params and fetchMarkets types that keep it to swap markets in one request
LOAD_PARAMS: dict[str, dict] = {"backpack": {"marketType": "PERP"}}
FETCH_TYPES: dict[str, list[str]] = {"bybit": ["linear"], "okx": ["swap"]}
TIMEOUT_MS = 10_000
_DEFAULTS = MarketRules("", "", "", Decimal(1), Decimal(1), Decimal(1), Decimal(0))


class MarketsUnavailable(Exception):
    """The account's markets could not be loaded; the message names the account and the reason."""


# ---- pointing a ccxt client -------------------------------------------------------------------
def point_client(client: Any, endpoint: str) -> None:
    """Send every REST URL of a ccxt client to `endpoint` (scheme and host replaced, path kept),
    and every WebSocket URL to the same host with ws:// (wss:// for an https endpoint)."""
    http = endpoint.rstrip("/")
    ws = re.sub(r"^http", "ws", http)

    def walk(node: dict) -> None:
        for key, url in node.items():
            if isinstance(url, dict):
                walk(url)
            elif isinstance(url, str):
                node[key] = re.sub(r"^wss?://[^/]+", ws, re.sub(r"^https?://[^/]+", http, url))

    walk(client.urls["api"])


def where(account: AccountConfig) -> str:
    """'binanceusdm at http://127.0.0.1:8080', 'binanceusdm (sandbox)' or 'binanceusdm'."""
    if account.endpoint:
        return f"{account.exchange} at {account.endpoint}"
    return f"{account.exchange} (sandbox)" if account.sandbox else account.exchange


def cache_endpoint(account: AccountConfig) -> str:
    """The cache key's endpoint part: the URL, "sandbox", or "" for the venue itself."""
    return account.endpoint or ("sandbox" if account.sandbox else "")


def markets_client(account: AccountConfig, timeout_ms: Optional[int] = None) -> Any:
    """A key-less ccxt async client of the account's venue, pointed as the account says."""
    timeout_ms = timeout_ms or TIMEOUT_MS
    cls = getattr(ccxt_async, account.exchange, None)
    if cls is None:
        raise MarketsUnavailable(f"account '{account.name}': ccxt has no exchange '{account.exchange}'")
    options: dict[str, Any] = {"fetchCurrencies": False}
    if account.exchange in FETCH_TYPES:
        options["fetchMarkets"] = {"types": FETCH_TYPES[account.exchange]}
    client = cls({"enableRateLimit": True, "timeout": timeout_ms, "options": options})
    client.has["fetchCurrencies"] = False  # backpack and bybit ignore the option (research §1.1)
    if account.sandbox:
        if not client.urls.get("test"):
            raise MarketsUnavailable(f"account '{account.name}': ccxt has no sandbox (test network) for "
                                     f"{account.exchange}; remove sandbox: or use endpoint: URL")
        client.set_sandbox_mode(True)
    if account.endpoint:
        point_client(client, account.endpoint)
    return client


def failure_reason(exc: BaseException, timeout_ms: Optional[int] = None, venue: str = "") -> str:
    """What went wrong, in words: the network cause when there is one, else ccxt's message."""
    if isinstance(exc, ccxt.RequestTimeout):
        return f"no answer within {(timeout_ms or TIMEOUT_MS) / 1000:g} s"
    seen: BaseException | None = exc
    while seen is not None:
        os_error = getattr(seen, "os_error", None)
        cause = os_error if isinstance(os_error, OSError) else seen
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return f"cannot resolve the host name ({cause.strerror})"
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror[0].lower() + cause.strerror[1:]
        seen = seen.__cause__ or seen.__context__
    if not isinstance(exc, ccxt.BaseError):  # ccxt itself tripped over the answer
        return f"its answer could not be read ({type(exc).__name__}: {str(exc)[:200]})"
    text = str(exc).removeprefix(f"{venue} ").strip() or type(exc).__name__  # ccxt starts with its id
    return text[:300]


# ---- from ccxt's market to rules ---------------------------------------------------------------
def _dec(value: Any) -> Optional[Decimal]:
    """A ccxt number (float, int or str) as an exact Decimal; None when absent or not a number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        d = Decimal(str(value))  # str() of a float is its shortest repr: the venue's decimal string
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


def _plain(d: Optional[Decimal]) -> Optional[str]:
    return None if d is None else format(d.normalize(), "f")


def _size(value: Any, precision_mode: int) -> Optional[Decimal]:
    """A tick or step from ccxt's precision field (TICK_SIZE, or a number of DECIMAL_PLACES)."""
    d = _dec(value)
    if d is None or precision_mode == ccxt.SIGNIFICANT_DIGITS:
        return None
    if precision_mode == ccxt.DECIMAL_PLACES:
        return Decimal(1).scaleb(-int(d))
    return d if d > 0 else None


def _function_base(info: Any, key: str) -> Optional[Decimal]:
    """Backpack's imfFunction/mmfFunction `base`: the margin fraction of a small position."""
    fn = info.get(key) if isinstance(info, dict) else None
    return _dec(fn.get("base")) if isinstance(fn, dict) else None


def parse_market(m: dict, precision_mode: int) -> Optional[dict]:
    """What the venue says about one ccxt market, as decimal strings (None: not reported); None
    for anything but an active linear swap with a price and size grid."""
    if not m.get("swap") or m.get("inverse") or m.get("active") is False:
        return None
    precision, limits = m.get("precision") or {}, m.get("limits") or {}
    tick, step = _size(precision.get("price"), precision_mode), _size(precision.get("amount"), precision_mode)
    if tick is None or step is None:
        return None
    amount, cost, lev = (limits.get(k) or {} for k in ("amount", "cost", "leverage"))
    min_qty = _dec(amount.get("min"))
    leverage = _dec(lev.get("max"))
    imf = _function_base(m.get("info"), "imfFunction")
    if leverage is None and imf is not None and imf > 0:
        leverage = (1 / imf).to_integral_value(rounding=ROUND_FLOOR)
    values = {
        "tick": tick, "step": step,
        "min_qty": min_qty if min_qty is not None and min_qty > 0 else step,  # never below one step
        "min_notional": _dec(cost.get("min")) or Decimal(0),  # no cost limit: the venue has no such rule
        "contract_size": _dec(m.get("contractSize")) or Decimal(1),
        "max_leverage": leverage if leverage is not None and leverage >= 1 else None,
        "maintenance_margin_rate": _function_base(m.get("info"), "mmfFunction"),
        "maker_fee": _dec(m.get("maker")), "taker_fee": _dec(m.get("taker")),
    }
    return {"symbol": m["symbol"], "id": str(m.get("id") or ""), "base": str(m.get("base") or ""),
            "quote": str(m.get("settle") or m.get("quote") or ""),
            **{k: _plain(v) for k, v in values.items()}}


@dataclass(frozen=True)
class Difference:
    """One rule where the venue and the bundled snapshot disagree (the venue's value applies)."""

    field: str
    bundled: Any
    live: Any

    def __str__(self) -> str:
        return f"{LABELS[self.field]}: bundled {self.bundled}, live {self.live}"


@dataclass(frozen=True)
class LiveMarket:
    """One market's rules, and where each rule came from: "venue", "bundled" or "default"."""

    rules: MarketRules
    origin: Mapping[str, str] = field(hash=False)
    bundled: Optional[MarketRules] = None

    @property
    def leverage_known(self) -> bool:
        return self.origin.get("max_leverage") != "default"

    def differences(self) -> list[Difference]:
        """The venue-reported rules that differ from the bundled snapshot (none without one)."""
        if self.bundled is None:
            return []
        return [Difference(f, getattr(self.bundled, f), getattr(self.rules, f)) for f in RULE_FIELDS
                if self.origin.get(f) == "venue" and getattr(self.bundled, f) != getattr(self.rules, f)]


def live_market(raw: dict, bundled: Optional[MarketRules]) -> LiveMarket:
    """Rules from what the venue said, filling what it did not say from the bundled snapshot or defaults."""
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for f in RULE_FIELDS:
        if raw.get(f) is not None:
            values[f], origin[f] = Decimal(raw[f]), "venue"
        elif bundled is not None:
            values[f], origin[f] = getattr(bundled, f), "bundled"
        else:
            values[f], origin[f] = getattr(_DEFAULTS, f), "default"
    values["max_leverage"] = int(values["max_leverage"])
    rules = MarketRules(symbol=raw["symbol"], base=raw["base"], quote=raw["quote"], venue_id=raw["id"], **values)
    return LiveMarket(rules, origin, bundled)


# ---- an account's markets -------------------------------------------------------------------
@dataclass(frozen=True)
class AccountMarkets:
    """The markets an account trades on, and where they came from."""

    account: str
    venue: str
    endpoint: str  # cache_endpoint(): the URL, "sandbox" or ""
    source: str  # "live" (fetched now), "cache" or "bundled" (a paper account)
    fetched_ts: Optional[int]  # epoch ms of the fetch (None for the bundled snapshot)
    captured: Optional[str]  # the bundled snapshot's date, when the venue has one
    markets: dict[str, LiveMarket] = field(hash=False)

    def find(self, symbol: str) -> Optional[LiveMarket]:
        """A market by unified symbol or venue id (SOL/USDT:USDT, SOLUSDT, SOL_USDC_PERP)."""
        rules = find_market({s: m.rules for s, m in self.markets.items()}, symbol)
        return self.markets[rules.symbol] if rules is not None else None

    def rules(self) -> dict[str, MarketRules]:
        return {s: m.rules for s, m in self.markets.items()}


def snapshot_captured(venue: str) -> Optional[str]:
    """The `captured` date of a bundled snapshot (None when gridctl has none for the venue)."""
    if venue not in bundled_venues():
        return None
    path = resources.files("gridctl") / "data" / "markets" / f"{venue}.json"
    return json.loads(path.read_text()).get("captured")


def bundled_markets(account: AccountConfig) -> AccountMarkets:
    """A paper account's markets: the bundled snapshot of the venue it is like."""
    snap = load_snapshot(account.venue) if account.venue in bundled_venues() else {}
    every = {f: "bundled" for f in RULE_FIELDS}
    return AccountMarkets(account.name, account.venue, "", "bundled", None, snapshot_captured(account.venue),
                          {s: LiveMarket(r, every, r) for s, r in snap.items()})


def _with_snapshot(account: AccountConfig, source: str, fetched_ts: int, raw: dict[str, dict]) -> AccountMarkets:
    snap = load_snapshot(account.venue) if account.venue in bundled_venues() else {}
    markets = {s: live_market(r, snap.get(s)) for s, r in sorted(raw.items())}
    return AccountMarkets(account.name, account.venue, cache_endpoint(account), source, fetched_ts,
                          snapshot_captured(account.venue), markets)


async def fetch_markets(account: AccountConfig, client: Any = None,
                        timeout_ms: Optional[int] = None) -> dict[str, dict]:
    """{symbol: what the venue says} for every active linear swap market, in one `load_markets`."""
    own = client is None
    timeout_ms = timeout_ms or (client.timeout if client is not None else TIMEOUT_MS)
    try:
        if own:
            client = markets_client(account, timeout_ms)
        markets = await client.load_markets(False, dict(LOAD_PARAMS.get(account.exchange, {})))
        raw = {r["symbol"]: r for m in (markets or {}).values()
               if (r := parse_market(m, client.precisionMode)) is not None}
    except MarketsUnavailable:
        raise
    except Exception as exc:  # anything ccxt or the network raise: one clear message
        raise MarketsUnavailable(f"account '{account.name}': cannot load the markets of {where(account)}: "
                                 f"{failure_reason(exc, timeout_ms, account.exchange)}") from None
    finally:
        if own and client is not None:
            try:
                await client.close()
            except Exception as exc:  # closing never hides the answer
                log.debug("closing the %s client: %s", account.exchange, exc)
    if not raw:
        raise MarketsUnavailable(f"account '{account.name}': {where(account)} lists no linear swap markets")
    return raw


def _cache_read(db: Any, account: AccountConfig, now_ms: int) -> Optional[tuple[int, dict[str, dict]]]:
    from peewee import PeeweeException

    from gridctl.store import market_cache

    try:
        return market_cache.read(db, account.exchange, cache_endpoint(account), now_ms)
    except (PeeweeException, ValueError) as exc:  # a broken cache is only a slower answer
        log.warning("market cache unreadable, asking %s: %s", where(account), exc)
        return None


def _cache_write(db: Any, account: AccountConfig, now_ms: int, raw: dict[str, dict]) -> None:
    from peewee import PeeweeException

    from gridctl.store import market_cache

    try:
        market_cache.write(db, account.exchange, cache_endpoint(account), now_ms, raw)
    except PeeweeException as exc:
        log.warning("could not cache the markets of %s: %s", where(account), exc)


async def account_markets(account: AccountConfig, db: Any = None, refresh: bool = False,
                          clock: Callable[[], float] = time.time, client: Any = None) -> AccountMarkets:
    """The account's markets: bundled for paper; else from the cache when fetched less than 24 h
    ago (unless `refresh`), else from the venue (then cached). Raises MarketsUnavailable."""
    if account.is_paper:
        return bundled_markets(account)
    now_ms = int(clock() * 1000)
    if db is not None and not refresh:
        hit = _cache_read(db, account, now_ms)
        if hit is not None:
            return _with_snapshot(account, "cache", hit[0], hit[1])
    raw = await fetch_markets(account, client)
    if db is not None:
        _cache_write(db, account, now_ms, raw)
    return _with_snapshot(account, "live", now_ms, raw)


def load_account_markets(account: AccountConfig, db: Any = None, refresh: bool = False,
                         clock: Callable[[], float] = time.time) -> AccountMarkets:
    """account_markets for synchronous callers (the commands)."""
    return asyncio.run(account_markets(account, db, refresh, clock))


def rules_from_ccxt(market: dict, precision_mode: int, bundled: Optional[MarketRules]) -> Optional[LiveMarket]:
    """One market of an already loaded ccxt client as LiveMarket (None if not a linear swap), so
    an adapter that loads markets itself trades by the same rules `gridctl markets` shows."""
    raw = parse_market(market, precision_mode)
    return live_market(raw, bundled) if raw is not None else None


def remember_loaded(account: AccountConfig, db: Any, client: Any,
                    clock: Callable[[], float] = time.time) -> AccountMarkets:
    """Cache the markets a client's own `load_markets` returned (a worker's adapter loads them
    anyway); the answer is what account_markets would give from now on."""
    raw = {r["symbol"]: r for m in (client.markets or {}).values()
           if (r := parse_market(m, client.precisionMode)) is not None}
    now_ms = int(clock() * 1000)
    if db is not None and raw:
        _cache_write(db, account, now_ms, raw)
    return _with_snapshot(account, "live", now_ms, raw)


async def market_rules(account: AccountConfig, symbol: str, db: Any = None,
                       clock: Callable[[], float] = time.time, client: Any = None) -> MarketRules:
    """The rules a worker trades `symbol` with: the venue's (cached 24 h), which win over the
    bundled snapshot; differences are logged. Raises MarketsUnavailable (also for an unknown symbol)."""
    found = await account_markets(account, db, clock=clock, client=client)
    market = found.find(symbol)
    if market is None:
        raise MarketsUnavailable(f"account '{account.name}': no market '{symbol}' on {where(account)}")
    for d in market.differences():
        log.warning("%s on %s: %s (the live rules apply)", market.rules.symbol, where(account), d)
    return market.rules

