"""The validated configuration: plain frozen values the rest of gridctl reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Optional

from gridctl.core.grid import Mode, Spacing
from gridctl.secrets.secret import Secret, UnloadedSecret  # noqa: F401  (the credential type, re-exported)


@dataclass(frozen=True)
class FeedConfig:
    """Where the paper exchange gets prices."""

    replay: Optional[Path] = None
    speed: Decimal = Decimal(60)
    synthetic_seed: Optional[int] = None
    synthetic_price: Optional[Decimal] = None
    synthetic_volatility: Decimal = Decimal("0.0008")
    funding: Optional[Path] = None
    live: Optional[str] = None  # a ccxt id: live public ticker data of that venue
    poll_ms: int = 1000  # live feeds: one ticker poll (and one candle) every poll_ms


@dataclass(frozen=True)
class AccountConfig:
    name: str
    exchange: str
    like: Optional[str] = None
    balance: Decimal = Decimal(10000)
    feed: FeedConfig = field(default_factory=FeedConfig)
    api_key: Optional[Secret] = None
    secret: Optional[Secret] = None
    password: Optional[Secret] = None
    position_mode: str = "one-way"
    margin_mode: str = "cross"  # the only mode implemented (validate refuses isolated)
    endpoint: Optional[str] = None  # http://HOST:PORT: REST and WebSocket of a local venue or a test network
    sandbox: bool = False  # ccxt's sandbox (testnet) mode

    @property
    def is_paper(self) -> bool:
        return self.exchange == "paper"

    @property
    def venue(self) -> str:
        """The venue whose rules apply: `like` for paper, the exchange otherwise."""
        return (self.like or "binanceusdm") if self.is_paper else self.exchange


@dataclass(frozen=True)
class MarginRatioConfig:
    warn: Decimal = Decimal("0.5")
    reduce: Decimal = Decimal("0.75")
    close: Decimal = Decimal("0.95")


@dataclass(frozen=True)
class RiskConfig:
    stop_loss_pct: Optional[Decimal] = None
    stop_loss_price: Optional[Decimal] = None
    take_profit_pct: Optional[Decimal] = None
    take_profit_price: Optional[Decimal] = None
    max_loss: Optional[Decimal] = None
    take_profit: Optional[Decimal] = None
    max_level_loss: Optional[Decimal] = None
    on_stop: str = "close"
    margin_ratio: MarginRatioConfig = field(default_factory=MarginRatioConfig)
    exchange_stop: bool = False  # keep a reduce-only stop-market order on the venue (gridctl.worker.safety_stop)


@dataclass(frozen=True)
class StrategyConfig:
    name: str
    account: str
    symbol: str
    mode: Mode
    spacing: Spacing
    grids: int
    leverage: int = 1
    lower: Optional[Decimal] = None
    upper: Optional[Decimal] = None
    range_pct: Optional[Decimal] = None
    investment: Optional[Decimal] = None
    amount: Optional[Decimal] = None
    max_position: Optional[Decimal] = None
    post_only: bool = True
    initial_position: bool = False
    trigger_price: Optional[Decimal] = None
    max_slippage_pct: Decimal = Decimal("0.5")  # initial_position's market orders: IOC limit this far from the price
    # a partly filled entry's rest is cancelled this long after its first fill (ms; None: never)
    partial_fill_timeout_ms: Optional[int] = 600_000
    risk: RiskConfig = field(default_factory=RiskConfig)


@dataclass(frozen=True)
class ReportConfig:
    name: str
    cron: str
    period: str = "1d"
    format: str = "csv"
    dir: Path = Path("reports")
    strategies: tuple[str, ...] = ()


@dataclass(frozen=True)
class EventsConfig:
    """The live event feed (WebSocket): where it listens; see gridctl/config/listen.py."""

    host: str = "127.0.0.1"
    port: int = 8765
    allow_remote: bool = False

    @property
    def listen(self) -> str:
        """HOST:PORT as written (IPv6 in brackets)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Config:
    path: Path
    version: int
    state_dir: Optional[Path]
    database: Optional[str]
    accounts: dict[str, AccountConfig]
    strategies: dict[str, StrategyConfig]
    reports: dict[str, ReportConfig]
    events: Optional[EventsConfig] = None  # `events:` (the live feed); None: no feed unless `start --events`
    # `vault:NAME` fields left unread (validate without a passphrase, read-only commands):
    # (field path, entry name); those fields hold an UnloadedSecret
    unchecked_secrets: tuple[tuple[str, str], ...] = ()
    vault_path: Optional[Path] = None  # the vault the `vault:` fields name (None: the file has none)
