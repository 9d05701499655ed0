"""The store on a real PostgreSQL server (tests/pg_server.py): migrations, the buffered
writer, the read model, a server restart, and the URL's password kept out of messages."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from peewee import OperationalError

from gridctl.store import read
from gridctl.store.db import open_database
from gridctl.store.migrations import LATEST, current_version, migrate
from gridctl.store.models import TABLES, Equity, Event, FillRow, Level, Order, SchemaVersion, Strategy
from gridctl.store.postgres import GridctlPostgres, connect_params, redact
from gridctl.store.writer import BufferedWriter

BIG_TS = 1_764_000_000_123  # epoch ms: far beyond int4


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def db(pg_url, tmp_path):
    d = open_database(tmp_path, pg_url)
    yield d
    d.close()


def column_types(db, table: str) -> dict[str, str]:
    return {c.name: c.data_type for c in db.get_columns(table)}


def test_migrations_from_empty_then_idempotent(pg_url, tmp_path):
    db = open_database(tmp_path, pg_url)
    assert isinstance(db, GridctlPostgres)
    assert set(TABLES) | {"schema_version", "market_cache"} <= set(db.get_tables())
    assert current_version(db) == LATEST and SchemaVersion.select().count() == LATEST
    # ms timestamps are bigint, money is exact text, flags are booleans
    fills = column_types(db, "fills")
    assert fills["ts"] == "bigint" and fills["price"] == "text" and fills["maker"] == "boolean", fills
    assert column_types(db, "strategies")["host"].startswith("character varying")
    Level.insert(strategy="s", idx=0, side="buy", entry_price=Decimal("1.5"), size=Decimal("2")).execute()
    assert migrate(db) == LATEST
    db.close()
    db = open_database(tmp_path, pg_url)  # a second process opening the same database
    assert current_version(db) == LATEST and SchemaVersion.select().count() == LATEST
    assert Level.select().count() == 1
    db.close()


def test_workers_migrating_a_new_database_at_once_all_succeed(pg_url, tmp_path):
    # the workers of two hosts may start together on an empty database
    errors: list[BaseException] = []

    def one() -> None:
        try:
            open_database(tmp_path, pg_url).close()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    db = open_database(tmp_path, pg_url)
    assert SchemaVersion.select().count() == LATEST
    db.close()


def test_writer_stores_orders_fills_and_events_exactly(db):
    w = BufferedWriter(db, now=Clock(), wall_ms=lambda: BIG_TS, strategy="s")
    w.upsert("strategies", {"name": "s", "status": "running", "started_ts": BIG_TS, "pid": 4242, "host": "a"})
    w.upsert("orders", {"strategy": "s", "client_id": "c1", "order_id": "9" * 19, "side": "buy", "level": 3,
                        "price": Decimal("150.2500"), "qty": Decimal("0.3"), "status": "open", "reduce_only": False,
                        "post_only": True, "created_ts": BIG_TS, "updated_ts": BIG_TS})
    for i in range(300):
        w.add("fills", {"strategy": "s", "ts": BIG_TS + i, "side": "buy", "price": Decimal("150.25"),
                        "qty": Decimal("0.3"), "fee": Decimal("0.00000001"), "client_id": f"c{i}",
                        "trade_id": f"t{i}", "maker": i % 2 == 0, "reduce_only": True})
    w.upsert("orders", {"strategy": "s", "client_id": "c1", "status": "filled", "filled": Decimal("0.3"),
                        "updated_ts": BIG_TS + 1})
    w.event("s", "fill", "buy 0.3 @ 150.25", level=3, data={"price": Decimal("150.25")})
    w.add("equity", {"strategy": "s", "ts": BIG_TS, "price": Decimal("150.3"), "position": Decimal("-0.6"),
                     "total_pnl": Decimal("-1.23456789"), "open_buys": 4})
    assert w.flush() is True and w.pending == 0 and w.rejected == 0, w.stats()
    o = Order.get(Order.client_id == "c1")
    assert (o.status, o.filled, o.price, o.post_only, o.reduce_only, o.side) == (
        "filled", Decimal("0.3"), Decimal("150.2500"), True, False, "buy")
    assert str(o.price) == "150.2500"  # the text kept every digit
    assert FillRow.select().count() == 300
    f = FillRow.get(FillRow.trade_id == "t1")
    assert (f.ts, f.fee, f.maker, f.reduce_only) == (BIG_TS + 1, Decimal("0.00000001"), False, True)
    assert Event.get().data_json == '{"price":"150.25"}' and Event.get().ts == BIG_TS
    assert Equity.get().total_pnl == Decimal("-1.23456789")
    # a journal replay of fills already stored inserts nothing twice (ON CONFLICT DO NOTHING)
    for i in range(5):
        w.add("fills", {"strategy": "s", "ts": BIG_TS + i, "side": "buy", "price": Decimal("150.25"),
                        "qty": Decimal("0.3"), "client_id": f"c{i}", "trade_id": f"t{i}"})
    assert w.flush() is True and FillRow.select().count() == 300 and w.rejected == 0


def test_a_refused_row_is_dropped_alone(db):
    w = BufferedWriter(db, now=Clock(), wall_ms=lambda: BIG_TS, strategy="s")
    w.add("fills", {"strategy": "s", "ts": 1, "side": "buy", "price": Decimal(1), "qty": Decimal(1), "trade_id": "a"})
    w.add("fills", {"strategy": "s", "ts": 2, "side": None, "price": Decimal(1), "qty": Decimal(1), "trade_id": "b"})
    w.add("fills", {"strategy": "s", "ts": 3, "side": "sell", "price": Decimal(1), "qty": Decimal(1), "trade_id": "c"})
    assert w.flush() is True
    assert w.rejected == 1 and sorted(f.trade_id for f in FillRow.select()) == ["a", "c"]


def test_read_model_status_events_and_export(db):
    w = BufferedWriter(db, now=Clock(), wall_ms=lambda: BIG_TS, strategy="s")
    w.upsert("strategies", {"name": "s", "status": "running", "started_ts": BIG_TS - 60_000, "host": "h1",
                            "config_json": '{"symbol": "SOL/USDT:USDT"}'})
    w.upsert("orders", {"strategy": "s", "client_id": "b1", "side": "buy", "status": "open", "created_ts": BIG_TS})
    w.upsert("orders", {"strategy": "s", "client_id": "s1", "side": "sell", "status": "open", "created_ts": BIG_TS})
    w.add("equity", {"strategy": "s", "ts": BIG_TS, "price": Decimal("150.3"), "total_pnl": Decimal("2.5")})
    w.event("s", "info", "Grid 50% done", ts=BIG_TS)
    w.event("s", "info", "grid 5_0 other", ts=BIG_TS + 1)
    w.add("fills", {"strategy": "s", "ts": BIG_TS, "side": "buy", "price": Decimal("150.25"), "qty": Decimal("0.3"),
                    "trade_id": "t"})
    assert w.flush() is True
    (row,) = read.status(db, now=BIG_TS)
    assert (row["symbol"], row["open_buys"], row["open_sells"], row["total_pnl"], row["uptime_s"]) == (
        "SOL/USDT:USDT", 1, 1, Decimal("2.5"), 60)
    assert row["host"] == "h1"
    # grep is literal and case-insensitive (ILIKE on PostgreSQL)
    assert [e["message"] for e in read.events(db, "s", grep="50%")] == ["Grid 50% done"]
    assert [e["message"] for e in read.events(db, "s", grep="GRID")] == ["Grid 50% done", "grid 5_0 other"]
    header, rows = read.export(db, "s", "fills")
    (r,) = list(rows)
    assert r[header.index("price")] == Decimal("150.25") and r[header.index("ts")] == BIG_TS
    with pytest.raises(read.UnknownStrategy, match="no strategy 'x'"):
        read.status(db, ["x"])


def test_the_writer_reconnects_after_a_server_restart(pg_server, db):
    w = BufferedWriter(db, now=Clock(), wall_ms=lambda: BIG_TS, strategy="s")
    w.upsert("strategies", {"name": "s", "status": "running"})
    assert w.flush() is True
    pg_server.stop("immediate")  # the writer's connection dies with the server
    try:
        w.add("fills", {"strategy": "s", "ts": 1, "side": "buy", "price": Decimal(1), "qty": Decimal(1),
                        "trade_id": "x"})
        assert w.flush(force=True) is False and w.pending == 1
    finally:
        pg_server.start()
    # the first attempt may find the old connection dead; a new one is made, nothing lost
    for _ in range(3):
        if w.flush(force=True):
            break
    assert w.pending == 0 and FillRow.select().count() == 1


def test_a_connection_idle_through_a_restart_is_replaced_on_first_use(pg_server, db):
    # regression: the worker's last flush (in its main thread, whose connection sat idle since
    # before a server crash) failed on the dead connection, so its final fills went to the journal
    Strategy.insert(name="s").execute()
    pg_server.stop("immediate")
    pg_server.start()
    w = BufferedWriter(db, now=Clock(), wall_ms=lambda: BIG_TS, strategy="s")
    w.add("fills", {"strategy": "s", "ts": 1, "side": "buy", "price": Decimal(1), "qty": Decimal(1), "trade_id": "x"})
    assert w.flush(force=True) is True and w.failures == 0
    assert Strategy.select().count() == 1  # and a plain read outside a transaction too


class ServerCrash:
    """The outage: the server stopped like a crash (every connection dies), then started again."""

    def __init__(self, server):
        self.server = server

    def begin(self) -> None:
        self.server.stop("immediate")

    def end(self) -> None:
        self.server.start()


def test_a_crashed_server_under_load_loses_no_fill_and_no_order(pg_server, pg_url, tmp_path):
    # tests/test_store_outage.py's scenario (a producer thread at an even pace, the writer
    # flushing from its thread, a memory bound that sends orders and fills to the journal)
    from outage_scenario import run_outage

    r = run_outage(tmp_path, outage_s=3.0, fills=5000, orders=1000, maxsize=200, url=pg_url,
                   outage=ServerCrash(pg_server), db_timeout_s=1.0)
    assert r["failed_flushes"] >= 3 and r["unavailable_since_ms"] is not None, r
    assert r["peak_journaled"] > r["maxsize"], r
    assert r["fills_stored"] == r["distinct_trade_ids"] == 5000, r
    assert r["orders_stored"] == r["orders_filled"] == 1000, r
    assert r["pending_after"] == 0 and not r["journal_left"] and r["closed_clean"], r


def test_a_socket_directory_url_without_a_password_in_it(pg_server, pg_url, tmp_path, monkeypatch):
    bare = pg_url.replace(f":{pg_server.password}@", "@")
    assert "@/" in bare and "?host=/" in bare
    monkeypatch.setenv("PGPASSWORD", pg_server.password)  # libpq's own: better than a URL password
    db = open_database(tmp_path, bare)
    assert Strategy.select().count() == 0
    db.close()


def test_the_password_never_appears_in_an_error(pg_server, pg_url, tmp_path):
    wrong = pg_url.replace(pg_server.password, "Secret-Wrong-9")
    with pytest.raises(OperationalError) as err:
        open_database(tmp_path, wrong)
    assert "password authentication failed" in str(err.value)
    assert "Secret-Wrong-9" not in str(err.value) and "Secret-Wrong-9" not in repr(err.value)
    with pytest.raises(ValueError) as err:
        open_database(tmp_path, f"postgresql://u:Secret-Wrong-9@/?host={pg_server.sockets}")
    assert "names no database" in str(err.value) and "Secret-Wrong-9" not in str(err.value)
    assert redact("postgresql://u:p%40ss@h:5/db?x=1") == "postgresql://u:***@h:5/db?x=1"
    assert connect_params("postgresql://u:p%40ss@/db?host=/run/pg")["password"] == "p@ss"


BASE = """\
version: 1
database: {url}
accounts:
  paper:
    exchange: paper
    like: binanceusdm
    feed: {{replay: "builtin:SOLUSDT_1m"}}
strategies:
  sol:
    account: paper
    symbol: SOL/USDT:USDT
    mode: long
    lower: 160
    upper: 180
    grids: 10
    investment: 500
    leverage: 2
"""


@pytest.mark.parametrize("url, message", [
    ("mysql://u:Secret-9@db/grid", "database (line 2): mysql://u:***@db/grid is not a PostgreSQL URL"),
    ("postgresql://u:Secret-9@db/", "database (line 2): database URL postgresql://u:***@db/ names no database"),
    ("postgresql://u:Secret-9@db:x/grid", "database (line 2): database URL postgresql://u:***@db:x/grid: the port is not a number"),
])
def test_validate_refuses_an_unusable_database_url_without_showing_its_password(tmp_path, url, message):
    from click.testing import CliRunner

    import gridctl.cli.commands  # noqa: F401  (registers the commands)
    from gridctl.cli import cli

    cfg = tmp_path / "strategies.yaml"
    cfg.write_text(BASE.format(url=url))
    r = CliRunner().invoke(cli, ["validate", "-c", str(cfg)])
    assert r.exit_code == 2, r.output
    assert message in r.output and "Secret-9" not in r.output and "Traceback" not in r.output


def test_status_logs_export_report_against_a_postgres_database(pg_url, tmp_path):
    from click.testing import CliRunner

    import gridctl.cli.commands  # noqa: F401  (registers the commands)
    from gridctl.cli import cli

    db = open_database(tmp_path, pg_url)
    w = BufferedWriter(db, strategy="sol")
    w.upsert("strategies", {"name": "sol", "status": "stopped", "started_ts": BIG_TS - 3_600_000, "host": "h1",
                            "config_json": '{"symbol": "SOL/USDT:USDT"}'})
    w.add("fills", {"strategy": "sol", "ts": BIG_TS, "side": "buy", "price": Decimal("150.25"), "qty": Decimal("0.3"),
                    "trade_id": "t1"})
    w.event("sol", "info", "hello from postgres", ts=BIG_TS)
    assert w.flush() is True
    db.close()
    cfg = tmp_path / "strategies.yaml"
    cfg.write_text(BASE.format(url=pg_url))
    run = CliRunner().invoke
    st = run(cli, ["--state-dir", str(tmp_path / "st"), "status", "-c", str(cfg), "--json"])
    assert st.exit_code == 0, st.output
    (row,) = __import__("json").loads(st.output)
    assert (row["name"], row["state"], row["host"]) == ("sol", "stopped", "h1")
    logs = run(cli, ["logs", "-c", str(cfg), "sol"])
    assert logs.exit_code == 0 and "hello from postgres" in logs.output, logs.output
    csv = run(cli, ["export", "-c", str(cfg), "sol", "fills"])
    assert csv.exit_code == 0 and "150.25" in csv.output, csv.output
    rep = run(cli, ["report", "-c", str(cfg), "sol", "--period", "all"])
    assert rep.exit_code == 0, rep.output
