"""Parse and validate strategies.yaml: every problem at once, each with path and line."""

from __future__ import annotations

import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Any, Optional

from gridctl import datasets
from gridctl.config import credentials, database_url, market_check
from gridctl.config.model import (
    AccountConfig, Config, EventsConfig, FeedConfig, MarginRatioConfig, ReportConfig, RiskConfig, StrategyConfig,
)
from gridctl.config.listen import ListenError, events_config
from gridctl.config.reader import Problem, Reader, did_you_mean
from gridctl.config.yamlsrc import Source, YamlLimitError, YamlSyntaxError, parse, read_text
from gridctl.core.grid import Mode, Spacing
from gridctl.exchange.venues import quirk
from gridctl.markets import bundled_venues

TOP_KEYS = ["version", "state_dir", "database", "accounts", "strategies", "reports", "events"]
EVENTS_KEYS = ["listen", "allow_remote"]
ACCOUNT_KEYS = ["exchange", "like", "balance", "feed", "api_key", "secret", "password",
                "position_mode", "margin_mode", "sandbox", "endpoint"]
FEED_KEYS = ["replay", "synthetic", "live", "poll_ms", "speed", "mark", "funding", "loop"]
SYNTHETIC_KEYS = ["seed", "price", "volatility"]
STRATEGY_KEYS = ["account", "symbol", "mode", "spacing", "lower", "upper", "range_pct", "grids",
                 "investment", "amount", "leverage", "max_position", "post_only", "initial_position",
                 "trigger_price", "max_slippage_pct", "partial_fill_timeout", "refresh_interval_ms", "risk"]
RISK_KEYS = ["stop_loss_pct", "stop_loss_price", "take_profit_pct", "take_profit_price", "max_loss",
             "take_profit", "max_level_loss", "on_stop", "margin_ratio", "exchange_stop"]
REPORT_KEYS = ["cron", "period", "format", "dir", "strategies"]
PERIODS = ["1h", "1d", "7d", "30d", "all"]
REPORT_FORMATS = ["csv", "md", "json", "table"]
MAX_GRIDS = 500
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


# Keys the file format reserves but this version does not implement: refused by name,
# with the reason, rather than accepted and silently ignored (a trader who sets
# `margin_mode: isolated` must not be trading cross margin without knowing it).
UNSUPPORTED = {
    "refresh_interval_ms": "the worker's order refresh interval is not configurable; remove the field",
    "margin_mode": "isolated margin (gridctl simulates cross margin only); use cross or remove the field",
    "mark": "separate mark-price candles for the paper exchange (its mark price follows the feed); "
            "remove the field",
    "loop": "choosing whether a replay loops (it always loops, each loop continuing where the last one "
            "closed); remove the field",
}


def _unsupported(r: Reader, path: Path, key: str) -> None:
    """Refuse a reserved key that this version would otherwise ignore."""
    r.error(path + (key,), f"is not supported yet: {UNSUPPORTED[key]}")


class ConfigError(Exception):
    """The file has problems; `problems` lists every one of them."""

    def __init__(self, problems: list[Problem]):
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = sorted(problems, key=lambda p: (p.line, p.path))


def _account(r: Reader, name: str, m: Any, base: Path) -> AccountConfig:
    path = ("accounts", name)
    m = r.mapping(m, path, ACCOUNT_KEYS)
    exchange = r.text(m, path, "exchange", required=True) or "paper"
    like = r.text(m, path, "like")
    if exchange == "paper":
        if like is not None and like not in bundled_venues():
            r.error(path + ("like",), f"no bundled market rules for '{like}'; choose one of "
                    f"{', '.join(bundled_venues())}{did_you_mean(like, bundled_venues())}")
            like = None
        feed = _feed(r, m.get("feed"), path + ("feed",), base)
        if "feed" not in m:
            r.error(path + ("feed",), "is required for a paper account: {replay: FILE}, {synthetic: {seed, price}} "
                    "or {live: VENUE}")
    else:
        market_check.check_exchange_id(r, path + ("exchange",), exchange)
        feed = FeedConfig()
    secrets = {k: r.secret(m, path, k, required=(exchange != "paper" and k != "password"))
               for k in ("api_key", "secret", "password")}
    credentials.check_key_pair(r, path, exchange, like, secrets)
    if r.choice(m, path, "margin_mode", ["cross", "isolated"], "cross") == "isolated":
        _unsupported(r, path, "margin_mode")
    sandbox = r.boolean(m, path, "sandbox")
    endpoint = _endpoint(r, m, path)
    if exchange == "paper":
        for key in ("sandbox", "endpoint"):
            if m.get(key):
                r.error(path + (key,), "applies to exchange accounts only (a paper account is served by gridctl)")
    return AccountConfig(
        name=name, exchange=exchange, like=like,
        balance=r.number(m, path, "balance", default=Decimal(10000), positive=True),
        feed=feed,
        api_key=secrets["api_key"], secret=secrets["secret"], password=secrets["password"],
        position_mode=r.choice(m, path, "position_mode", ["one-way", "hedge"], "one-way"),
        margin_mode="cross",
        endpoint=endpoint,
        sandbox=sandbox,
    )


ENDPOINT_RE = re.compile(r"https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?/?")


def _endpoint(r: Reader, m: dict, path: Path) -> Optional[str]:
    """`endpoint: http://HOST:PORT`: every REST url of the venue goes to this scheme and host
    (and every WebSocket url to ws://HOST:PORT), the paths kept."""
    value = r.text(m, path, "endpoint")
    if value is None:
        return None
    if not ENDPOINT_RE.fullmatch(value.strip()):
        r.error(path + ("endpoint",), f"must be http://HOST:PORT or https://HOST:PORT (no path), got {value!r}")
        return None
    return value.strip().rstrip("/")


def _data_file(r: Reader, m: dict, path: Path, key: str, base: Path) -> Optional[Path]:
    spec = r.text(m, path, key)
    if spec is None:
        return None
    p = datasets.resolve(spec, base)
    if not p.is_file():
        hint = ""
        if spec.startswith(datasets.BUILTIN):
            hint = f"; bundled files: {', '.join(datasets.builtin_names())}"
        r.error(path + (key,), f"file not found: {spec}{hint}")
        return None
    return p


def _feed(r: Reader, m: Any, path: Path, base: Path) -> FeedConfig:
    m = r.mapping(m, path, FEED_KEYS)
    synthetic = r.mapping(m.get("synthetic"), path + ("synthetic",), SYNTHETIC_KEYS)
    if m and sum(k in m for k in ("replay", "synthetic", "live")) != 1:
        r.error(path, "needs exactly one of replay, synthetic or live")
    live = r.text(m, path, "live")
    if live == "paper":
        r.error(path + ("live",), "needs a real venue's ccxt id (public market data), e.g. binanceusdm")
    elif live is not None and market_check.ccxt_exchange_ids() and live not in market_check.ccxt_exchange_ids():
        ids = market_check.ccxt_exchange_ids()
        r.error(path + ("live",), f"unknown venue '{live}'; use a ccxt exchange id such as binanceusdm, bybit, "
                f"okx{did_you_mean(live, ids)}")
    for key in ("mark", "loop"):
        if key in m:
            _unsupported(r, path, key)
    sp = path + ("synthetic",)
    return FeedConfig(
        replay=_data_file(r, m, path, "replay", base),
        speed=r.number(m, path, "speed", default=Decimal(60), positive=True),
        synthetic_seed=r.integer(synthetic, sp, "seed", default=7) if "synthetic" in m else None,
        synthetic_price=r.number(synthetic, sp, "price", required="synthetic" in m, positive=True),
        synthetic_volatility=r.number(synthetic, sp, "volatility", default=Decimal("0.0008"), positive=True),
        funding=_data_file(r, m, path, "funding", base),
        live=live,
        poll_ms=r.integer(m, path, "poll_ms", default=1000, minimum=200) or 1000,
    )


def _risk(r: Reader, m: Any, path: Path) -> RiskConfig:
    m = r.mapping(m, path, RISK_KEYS, elsewhere={k: f"strategies.{path[1]}, not risk:"
                                                 for k in STRATEGY_KEYS if k not in RISK_KEYS})
    mr_path = path + ("margin_ratio",)
    mr = r.mapping(m.get("margin_ratio"), mr_path, ["warn", "reduce", "close"])
    d = MarginRatioConfig()
    ratio = MarginRatioConfig(*(r.number(mr, mr_path, k, default=getattr(d, k), positive=True)
                                for k in ("warn", "reduce", "close")))
    if not ratio.warn <= ratio.reduce <= ratio.close <= 1:
        r.error(mr_path, "must satisfy warn <= reduce <= close <= 1")
    num = lambda k: r.number(m, path, k, positive=True)  # noqa: E731
    return RiskConfig(
        stop_loss_pct=num("stop_loss_pct"), stop_loss_price=num("stop_loss_price"),
        take_profit_pct=num("take_profit_pct"), take_profit_price=num("take_profit_price"),
        max_loss=num("max_loss"), take_profit=num("take_profit"), max_level_loss=num("max_level_loss"),
        on_stop=r.choice(m, path, "on_stop", ["close", "keep"], "close") or "close",
        margin_ratio=ratio,
        exchange_stop=_exchange_stop(r, m, path),
    )


def _exchange_stop(r: Reader, m: dict, path: Path) -> bool:
    """risk.exchange_stop: rests at the stop-loss price, so it needs one."""
    on = r.boolean(m, path, "exchange_stop", default=False)
    if on and m.get("stop_loss_price") is None and m.get("stop_loss_pct") is None:
        r.error(path + ("exchange_stop",), "needs risk.stop_loss_price or risk.stop_loss_pct: the stop order "
                "rests at the stop-loss price")
    return on


def _strategy(r: Reader, name: str, m: Any, accounts: dict[str, AccountConfig]) -> Optional[StrategyConfig]:
    path = ("strategies", name)
    if not NAME_RE.fullmatch(name):
        # names become file names (PID file, socket, log) and appear in shell commands
        r.error(path, "strategy names may use letters, digits, '-', '_' and '.' (up to 64, starting "
                "with a letter or digit)")
    m = r.mapping(m, path, STRATEGY_KEYS, elsewhere={k: "risk:" for k in RISK_KEYS})
    account = r.text(m, path, "account", required=True)
    if account is not None and account not in accounts:
        r.error(path + ("account",), f"no account '{account}' under accounts{did_you_mean(account, accounts)}")
    for one, other in (("lower", "range_pct"), ("investment", "amount")):
        if one in m and other in m:
            r.error(path + (other,), f"give either {one} or {other}, not both")
    if "range_pct" not in m:
        for k in ("lower", "upper"):
            if k not in m:
                r.error(path + (k,), "is required (or give range_pct)")
    if "investment" not in m and "amount" not in m:
        r.error(path, "needs investment (quote) or amount (base quantity per level)")
    lower = r.number(m, path, "lower", positive=True)
    upper = r.number(m, path, "upper", positive=True)
    if lower is not None and upper is not None and upper <= lower:
        r.error(path + ("upper",), f"must be greater than lower ({lower})")
    cfg = StrategyConfig(
        name=name, account=account or "", symbol=r.text(m, path, "symbol", required=True) or "",
        mode=Mode(r.choice(m, path, "mode", [x.value for x in Mode], "neutral", required=True) or "neutral"),
        spacing=Spacing(r.choice(m, path, "spacing", [x.value for x in Spacing], "arithmetic") or "arithmetic"),
        grids=r.integer(m, path, "grids", required=True, minimum=2, maximum=MAX_GRIDS) or 0,
        leverage=r.integer(m, path, "leverage", default=1, minimum=1) or 1,
        lower=lower, upper=upper,
        range_pct=r.number(m, path, "range_pct", positive=True),
        investment=r.number(m, path, "investment", positive=True),
        amount=r.number(m, path, "amount", positive=True),
        max_position=r.number(m, path, "max_position", positive=True),
        post_only=r.boolean(m, path, "post_only", default=True),
        initial_position=r.boolean(m, path, "initial_position", default=False),
        trigger_price=r.number(m, path, "trigger_price", positive=True),
        max_slippage_pct=r.number(m, path, "max_slippage_pct", default=Decimal("0.5"), positive=True)
        or Decimal("0.5"),
        partial_fill_timeout_ms=r.duration(m, path, "partial_fill_timeout", default=600_000),
        risk=_risk(r, m.get("risk"), path + ("risk",)),
    )
    if "refresh_interval_ms" in m:
        _unsupported(r, path, "refresh_interval_ms")
    if cfg.initial_position and cfg.mode is Mode.NEUTRAL:
        # the engine opens nothing for a neutral grid; accepting it would silently ignore it
        r.error(path + ("initial_position",), "has no effect on a neutral grid: it holds no position at start "
                "(buys below the start price, sells above); remove it, or use mode long or short")
    if cfg.risk.exchange_stop and account in accounts and quirk(accounts[account].venue, "stop_order") is None:
        r.error(path + ("risk", "exchange_stop"), f"is not supported on {accounts[account].venue} (binanceusdm and "
                "backpack take stop-market orders)")
    if cfg.max_slippage_pct >= 100:
        r.error(path + ("max_slippage_pct",), f"must be below 100, got {cfg.max_slippage_pct}")
    if cfg.range_pct is not None and cfg.range_pct >= 100:
        r.error(path + ("range_pct",), f"must be below 100, got {cfg.range_pct}")
    return cfg


def _report_dir(r: Reader, m: dict, path: Path) -> Path:
    """`dir:` of a report: relative to the state dir and inside it, or absolute as written.

    An absolute path (/... or ~/...) is the user naming a place outside the state dir on
    purpose; a relative one that climbs out ('..') is refused rather than followed: reports
    are written by the supervisor's reporter, unattended, with the state dir's rights.
    """
    value = r.text(m, path, "dir") or "reports"
    p = Path(os.path.expanduser(value))
    if not p.is_absolute() and ".." in p.parts:
        r.error(path + ("dir",), "must stay inside the state dir (a relative path without '..'); "
                "to write reports elsewhere give an absolute path (/... or ~/...)")
        return Path("reports")
    return p


def _report(r: Reader, name: str, m: Any, strategies: dict) -> ReportConfig:
    path = ("reports", name)
    if not NAME_RE.fullmatch(name):
        # the name starts the report's file name: a '/' or '..' in it would leave the folder
        r.error(path, "report names may use letters, digits, '-', '_' and '.' (up to 64, starting "
                "with a letter or digit)")
    m = r.mapping(m, path, REPORT_KEYS)
    cron = r.text(m, path, "cron", required=True) or ""
    if cron:
        market_check.check_cron(r, path + ("cron",), cron)
    names = m.get("strategies") or []
    if not isinstance(names, list):
        r.error(path + ("strategies",), "must be a list of strategy names")
        names = []
    for i, s in enumerate(names):
        if s not in strategies:
            r.error(path + ("strategies", str(i)), f"no strategy '{s}'{did_you_mean(s, strategies)}")
    return ReportConfig(
        name=name, cron=cron,
        period=r.choice(m, path, "period", PERIODS, "1d") or "1d",
        format=r.choice(m, path, "format", REPORT_FORMATS, "csv") or "csv",
        dir=_report_dir(r, m, path),
        strategies=tuple(str(s) for s in names),
    )


def _events(r: Reader, m: Any) -> Optional[EventsConfig]:
    """`events: {listen: HOST:PORT, allow_remote: false}`: the live WebSocket feed (absent: no feed)."""
    if m is None:
        return None
    path = ("events",)
    m = r.mapping(m, path, EVENTS_KEYS)
    allow_remote = r.boolean(m, path, "allow_remote")
    listen = r.text(m, path, "listen", required=True)
    if listen is None:
        return None
    try:
        return events_config(listen, allow_remote, "listen")
    except ListenError as exc:
        r.error(path + ("listen",), str(exc).removeprefix("listen: "))
        return None


def load(path: Path, environ: Optional[dict[str, str]] = None, check_markets: bool = True,
         vault: Optional[str] = None, state_dir: Optional[Path] = None,
         live_markets: Optional[dict[str, market_check.MarketSet]] = None) -> Config:
    """Read and validate a config file. Raises ConfigError with every problem found.

    `vault`: how `vault:NAME` credentials are read (gridctl.secrets.lookup.VaultLookup):
    `open` (every one read; a locked vault is a problem), `try` (read when a passphrase
    is at hand, else listed in Config.unchecked_secrets), `skip` (never opened). Default:
    `open`, or `skip` when check_markets is False (the read-only commands' light load).
    The vault is `<state dir>/secrets.vault`, the state dir `state_dir` if given, else the
    command's rule (gridctl.secrets.vault.state_dir_for).
    `live_markets`: per account name, markets to check its strategies against instead of the
    bundled snapshot (`validate --online`).
    """
    path = Path(path)
    try:
        text = read_text(path)
    except OSError as exc:
        raise ConfigError([Problem((), 0, f"cannot read {path}: {exc.strerror}")]) from None
    except YamlSyntaxError as exc:  # too large, or not UTF-8: the file is named in the header
        raise ConfigError([Problem((), exc.line, f"the file {exc}")]) from None
    try:
        src = parse(text)
    except YamlLimitError as exc:
        raise ConfigError([Problem((), exc.line, f"the file {exc}")]) from None
    except YamlSyntaxError as exc:
        raise ConfigError([credentials.yaml_problem(text, exc)]) from None
    return from_source(src, path, environ, check_markets, vault=vault, state_dir=state_dir, live_markets=live_markets)


def from_source(src: Source, path: Path, environ: Optional[dict[str, str]] = None, check_markets: bool = True,
                vault: Optional[str] = None, state_dir: Optional[Path] = None,
                live_markets: Optional[dict[str, market_check.MarketSet]] = None) -> Config:
    """Validate a parsed file (`path`: where it lives, for relative data files), as `load` does.

    `gridctl sweep` validates each candidate this way: the file's parsed values with some
    of a strategy's keys changed. Raises ConfigError with every problem found.
    """
    lookup = credentials.vault_lookup(src, environ, vault, check_markets, state_dir)
    r = Reader(src, environ, lookup)
    top = r.mapping(src.data, (), TOP_KEYS)
    version = r.integer(top, (), "version", default=1)
    if version != 1:
        r.error(("version",), f"must be 1 (this gridctl reads version 1), got {version}")
    base = path.resolve().parent
    for key in ("accounts", "strategies"):
        if not top.get(key):
            r.error((key,), "is required and must name at least one entry")
    accounts = {n: _account(r, str(n), m, base)
                for n, m in r.mapping(top.get("accounts"), ("accounts",)).items()}
    strategies = {n: s for n, m in r.mapping(top.get("strategies"), ("strategies",)).items()
                  if (s := _strategy(r, str(n), m, accounts)) is not None}
    reports = {n: _report(r, str(n), m, strategies)
               for n, m in r.mapping(top.get("reports"), ("reports",)).items()}
    events = _events(r, top.get("events"))
    if check_markets:
        market_check.check_strategies(r, accounts, strategies, live_markets)
    if isinstance(top.get("database"), str) and (why := database_url.problem(top["database"])):
        r.error(("database",), why)
    if r.problems:
        raise ConfigError(r.problems)
    state_dir = r.text(top, (), "state_dir")
    return Config(path=path, version=1, state_dir=Path(os.path.expanduser(state_dir)) if state_dir else None,
                  database=r.text(top, (), "database"), accounts=accounts, strategies=strategies,
                  reports=reports, events=events, unchecked_secrets=tuple(lookup.unchecked),
                  vault_path=lookup.vault.path if lookup.vault is not None else None)
