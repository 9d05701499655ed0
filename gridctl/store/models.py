"""Peewee models: one table per kind of record a worker keeps.

Money, prices and quantities are TEXT decimal strings (`DecimalText`): SQLite's
NUMERIC affinity would turn them into floats. Timestamps are integer epoch ms.
Every table that belongs to a strategy has an indexed `strategy` column (the
strategy's name). Models are bound to a database by `gridctl.store.db`.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any, Optional

from peewee import (AutoField, BigIntegerField, BooleanField, CharField, Field, IntegerField, Model,
                    TextField)


class DecimalText(Field):
    """A Decimal stored as exact plain text ("0.00000001", "1.50"); reads back an equal Decimal.

    Plain notation (never "1E-8") so exports and ad-hoc SQL show what a user expects;
    trailing zeros are kept, so a value with a fractional part reads back identical.
    """

    field_type = "TEXT"

    def db_value(self, value: Any) -> Optional[str]:
        if value is None:
            return None
        if isinstance(value, Decimal):
            return _plain(value)
        if isinstance(value, bool):
            raise TypeError("a boolean is not a decimal")
        if isinstance(value, float):
            # Floats never belong here; the shortest repr is the least surprising fallback.
            value = repr(value)
        try:
            return _plain(Decimal(str(value)))
        except InvalidOperation:
            raise ValueError(f"not a decimal: {value!r}") from None

    def python_value(self, value: Any) -> Optional[Decimal]:
        if value is None:
            return None
        return Decimal(str(value))


def _plain(d: Decimal) -> str:
    if not d.is_finite():
        raise ValueError(f"not a finite decimal: {d}")
    return format(d, "f")


class BaseModel(Model):
    class Meta:
        database = None  # bound at open time (gridctl.store.db.open_database)
        legacy_table_names = False


class SchemaVersion(BaseModel):
    version = IntegerField(primary_key=True)
    applied_ts = BigIntegerField()

    class Meta:
        table_name = "schema_version"


class Strategy(BaseModel):
    id = AutoField()
    name = CharField(unique=True)
    config_json = TextField(null=True)
    config_hash = CharField(null=True)
    grid_json = TextField(null=True)  # the original grid (bounds, lines, start): restart keeps it
    status = CharField(default="starting")
    stop_reason = TextField(null=True)
    last_error = TextField(null=True)
    pid = IntegerField(null=True)
    # the host whose supervisor runs it (gridctl.process.host); hosts sharing a database never touch another's
    host = CharField(null=True)
    started_ts = BigIntegerField(null=True)
    updated_ts = BigIntegerField(null=True)
    # every venue trade of the grid before this time (venue ms) is booked and stored: a
    # restart reads the trade history from here (gridctl.worker.loop, "fills checked")
    fills_checked_ts = BigIntegerField(null=True)

    class Meta:
        table_name = "strategies"


class Level(BaseModel):
    id = AutoField()
    strategy = CharField(index=True)
    idx = IntegerField()
    side = CharField()
    entry_price = DecimalText()
    exit_price = DecimalText(null=True)
    size = DecimalText()
    held = DecimalText(default=Decimal(0))
    exiting = BooleanField(default=False)  # the entry is done; held steps wait for their exit
    gen = IntegerField(default=0)
    updated_ts = BigIntegerField(null=True)

    class Meta:
        table_name = "levels"
        indexes = ((("strategy", "idx"), True),)


class Order(BaseModel):
    id = AutoField()
    strategy = CharField(index=True)
    client_id = CharField()
    order_id = CharField(null=True)
    level = IntegerField(null=True)
    intent = CharField(null=True)  # entry / exit / close
    side = CharField(null=True)
    price = DecimalText(null=True)
    qty = DecimalText(null=True)
    filled = DecimalText(default=Decimal(0))
    status = CharField(default="open")  # open / filled / cancelled / rejected
    reduce_only = BooleanField(default=False)
    post_only = BooleanField(default=False)
    reason = TextField(null=True)
    created_ts = BigIntegerField(null=True)
    updated_ts = BigIntegerField(null=True)

    class Meta:
        table_name = "orders"
        indexes = (
            (("strategy", "client_id"), True),
            (("strategy", "status", "side"), False),  # status: open orders by side
            (("strategy", "updated_ts"), False),  # report / export windows
        )


class FillRow(BaseModel):
    id = AutoField()
    strategy = CharField(index=True)
    ts = BigIntegerField()
    client_id = CharField(null=True)
    order_id = CharField(null=True)
    level = IntegerField(null=True)
    intent = CharField(null=True)
    side = CharField()
    price = DecimalText()
    qty = DecimalText()
    fee = DecimalText(default=Decimal(0))
    maker = BooleanField(default=True)
    reduce_only = BooleanField(default=False)
    realized_pnl = DecimalText(null=True)
    # The venue's trade id: a fill replayed from the writer's journal is inserted once (NULL: unknown).
    trade_id = CharField(null=True)

    class Meta:
        table_name = "fills"
        indexes = ((("strategy", "ts"), False), (("strategy", "client_id"), False),
                   (("strategy", "trade_id"), True))


class Trade(BaseModel):
    id = AutoField()
    strategy = CharField(index=True)
    level = IntegerField(null=True)
    side = CharField()  # the entry side
    entry_ts = BigIntegerField(null=True)
    exit_ts = BigIntegerField()
    entry_price = DecimalText()
    exit_price = DecimalText()
    qty = DecimalText()
    profit = DecimalText()  # gross
    fees = DecimalText(default=Decimal(0))
    net_profit = DecimalText()
    hold_ms = BigIntegerField(null=True)

    class Meta:
        table_name = "trades"
        indexes = ((("strategy", "exit_ts"), False),)


class Funding(BaseModel):
    id = AutoField()
    strategy = CharField(index=True)
    ts = BigIntegerField()
    rate = DecimalText()
    mark_price = DecimalText(null=True)
    position = DecimalText(null=True)
    amount = DecimalText()

    class Meta:
        table_name = "funding"
        indexes = ((("strategy", "ts"), False),)


class Equity(BaseModel):
    id = AutoField()
    strategy = CharField(index=True)
    ts = BigIntegerField()
    price = DecimalText(null=True)
    position = DecimalText(default=Decimal(0))
    realized = DecimalText(default=Decimal(0))
    grid_profit = DecimalText(default=Decimal(0))
    unrealized = DecimalText(default=Decimal(0))
    fees = DecimalText(default=Decimal(0))
    funding = DecimalText(default=Decimal(0))
    total_pnl = DecimalText(default=Decimal(0))
    equity = DecimalText(null=True)
    open_buys = IntegerField(default=0)
    open_sells = IntegerField(default=0)
    # the exchange's net position at this snapshot (== position unless they differ; null: not known)
    exchange_position = DecimalText(null=True)

    class Meta:
        table_name = "equity"
        indexes = ((("strategy", "ts"), False),)


EVENT_TYPES = ("info", "warn", "error", "order", "fill", "trade", "status", "risk", "price", "pnl", "config")


class Event(BaseModel):
    id = AutoField()
    strategy = CharField(index=True)
    ts = BigIntegerField()
    type = CharField()
    message = TextField()
    level = IntegerField(null=True)
    order_id = CharField(null=True)
    data_json = TextField(null=True)

    class Meta:
        table_name = "events"
        indexes = ((("strategy", "ts"), False), (("strategy", "type", "ts"), False))


class MarketCache(BaseModel):
    """A venue's market rules as fetched with ccxt (`load_markets`), kept 24 h
    (gridctl.store.market_cache). `endpoint` is the account's endpoint URL, "sandbox",
    or "" for the venue itself; `rules_json` the rules as decimal strings."""

    id = AutoField()
    venue = CharField()
    endpoint = CharField(default="")
    symbol = CharField()
    rules_json = TextField()
    fetched_ts = BigIntegerField()

    class Meta:
        table_name = "market_cache"
        indexes = ((("venue", "endpoint", "symbol"), True),)


class VirtualPosition(BaseModel):
    """A strategy's virtual position per venue leg (gridctl.core.virtual), upserted by its worker
    when it changes: its siblings on the account and symbol sum them against the venue's."""

    id = AutoField()
    strategy = CharField(unique=True)
    account = CharField(index=True)
    symbol = CharField()
    long_qty = DecimalText(default=Decimal(0))  # hedge: the long leg; one-way: the net position
    short_qty = DecimalText(default=Decimal(0))  # hedge: the short leg (<= 0); one-way: 0
    hedge = BooleanField(default=False)
    reset_ts = BigIntegerField(null=True)  # the last assignment applied: PnL continues from there
    ts = BigIntegerField()

    class Meta:
        table_name = "virtual_positions"


class PositionCheck(BaseModel):
    """The last check of one account's leg: the venue's position against the strategies' sum
    and the UNASSIGNED bucket (written by any worker on the leg, and by `gridctl reconcile`)."""

    id = AutoField()
    account = CharField()
    symbol = CharField()
    leg = CharField()  # long / short / net
    venue_qty = DecimalText()
    virtual_qty = DecimalText()
    unassigned_qty = DecimalText(default=Decimal(0))
    difference = DecimalText()
    ts = BigIntegerField()
    by = CharField(null=True)  # the strategy (or "reconcile") that checked

    class Meta:
        table_name = "position_checks"
        indexes = ((("account", "symbol", "leg"), True),)


class PositionAssignment(BaseModel):
    """A quantity `gridctl reconcile --assign` gave a strategy (signed, at `price`): its worker
    books it once (by id) and again from the store on every restart of the grid."""

    id = AutoField()
    strategy = CharField(index=True)
    account = CharField()
    symbol = CharField()
    leg = CharField()
    qty = DecimalText()
    price = DecimalText()
    ts = BigIntegerField()

    class Meta:
        table_name = "position_assignments"


class UnassignedPosition(BaseModel):
    """The UNASSIGNED bucket of one account's leg: what `reconcile --assign` gave no strategy."""

    id = AutoField()
    account = CharField()
    symbol = CharField()
    leg = CharField()
    qty = DecimalText(default=Decimal(0))
    price = DecimalText(null=True)
    ts = BigIntegerField()

    class Meta:
        table_name = "unassigned_positions"
        indexes = ((("account", "symbol", "leg"), True),)


VIRTUAL_MODELS = [VirtualPosition, PositionCheck, PositionAssignment, UnassignedPosition]


# Table name -> model: the names the writer and the exports use.
# `runs` and `market_rules` were defined by schema 1 but never written: they are no
# longer models. Databases created before keep the empty tables; nothing reads them.
TABLES: dict[str, type[BaseModel]] = {
    "strategies": Strategy, "levels": Level, "orders": Order, "fills": FillRow,
    "trades": Trade, "funding": Funding, "equity": Equity, "events": Event,
    "virtual_positions": VirtualPosition, "position_checks": PositionCheck,  # written by workers (virtual.py)
}
# The market cache is no strategy's record: not in TABLES (the writer and the exports).
MODELS: list[type[BaseModel]] = [SchemaVersion, *TABLES.values(), MarketCache, PositionAssignment,
                                  UnassignedPosition]
# The natural key each upsert-able table is updated by.
UPSERT_KEYS: dict[str, tuple[str, ...]] = {
    "strategies": ("name",), "levels": ("strategy", "idx"), "orders": ("strategy", "client_id"),
    "virtual_positions": ("strategy",), "position_checks": ("account", "symbol", "leg"),
}
# Plain inserts that are skipped when a row with the same key exists (replaying the journal twice).
INSERT_ONCE_KEYS: dict[str, tuple[str, ...]] = {"fills": ("strategy", "trade_id")}
