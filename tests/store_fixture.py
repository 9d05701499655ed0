"""Fill a gridctl database with many rows quickly (tests and the fleet benchmark).

    from gridctl.store.db import open_database
    from tests.store_fixture import populate
    db = open_database(state_dir)
    populate(db, ["s1", "s2"], events=1_000_000, fills=100_000)

Rows go in with executemany in batches inside transactions (about 1 s per
200,000 events on SQLite), bypassing peewee's per-row conversions; values are
the same TEXT decimal strings the store writes.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Sequence

from peewee import Database

from gridctl.store.db import bind
from gridctl.store.models import EVENT_TYPES

START_MS = 1_722_470_400_000  # 2024-08-01T00:00:00Z


def _executemany(db: Database, table: str, cols: Sequence[str], rows, batch: int) -> None:
    p = db.param
    sql = (f'INSERT INTO "{table}" ({", ".join(cols)}) VALUES ({", ".join([p] * len(cols))})')
    chunk: list[tuple] = []
    conn = db.connection()

    def put() -> None:
        with db.atomic():
            cur = conn.cursor()
            cur.executemany(sql, chunk)
        chunk.clear()

    for r in rows:
        chunk.append(r)
        if len(chunk) >= batch:
            put()
    if chunk:
        put()


def populate(db: Database, names: Sequence[str] = ("bench",), events: int = 0, fills: int = 0,
             levels: int = 20, start_ms: int = START_MS, batch: int = 20_000, equity_rows: int = 10_000) -> None:
    """Running strategies with levels and open orders, one equity row per minute (at most
    `equity_rows` per strategy), and `events` events and `fills` fills (one a second)
    spread round-robin over `names`."""
    bind(db)
    now = int(time.time() * 1000)
    n = len(names)
    span_ms = max(events, fills, 1) * 1000  # one row per second of history
    _executemany(db, "strategies", ["name", "config_json", "config_hash", "grid_json", "status", "pid",
                                    "started_ts", "updated_ts"],
                 ((nm, json.dumps({"symbol": "SOL/USDT:USDT", "investment": "500", "leverage": 2}), "h",
                   json.dumps({"lower": "140", "upper": "160", "grids": levels}), "running", 1000 + i,
                   start_ms, now) for i, nm in enumerate(names)), batch)
    _executemany(db, "levels", ["strategy", "idx", "side", "entry_price", "exit_price", "size", "held",
                                "exiting", "gen", "updated_ts"],
                 ((nm, i, "buy" if i < levels // 2 else "sell", f"{140 + i}.00", f"{141 + i}.00", "0.3",
                   "0.3" if i == levels // 2 - 1 else "0", "0", 1, start_ms)
                  for nm in names for i in range(levels)), batch)
    _executemany(db, "orders", ["strategy", "client_id", "order_id", "level", "intent", "side", "price", "qty",
                                "filled", "status", "reduce_only", "post_only", "created_ts", "updated_ts"],
                 ((nm, f"gx-{k}-{i:03d}e1", f"{k}{i}", i, "entry", "buy" if i < levels // 2 else "sell",
                   f"{140 + i}.00", "0.3", "0", "open", 0, 1, start_ms, start_ms)
                  for k, nm in enumerate(names) for i in range(levels)), batch)
    minutes = min(span_ms // 60_000 + 1, equity_rows)
    _executemany(db, "equity", ["strategy", "ts", "price", "position", "realized", "grid_profit", "unrealized",
                                "fees", "funding", "total_pnl", "equity", "open_buys", "open_sells"],
                 ((nm, start_ms + m * 60_000, f"{150 + (m % 7) / 10:.2f}", "0.3", f"{m * 0.01:.2f}",
                   f"{m * 0.01:.2f}", "-0.12", f"{m * 0.002:.3f}", "0", f"{m * 0.008 - 0.12:.3f}", None,
                   levels // 2, levels // 2) for m in range(minutes) for nm in names), batch)
    types = EVENT_TYPES
    _executemany(db, "events", ["strategy", "ts", "type", "message", "level", "order_id", "data_json"],
                 ((names[j % n], start_ms + j * 1000, types[(j // n) % len(types)], f"event {j} at level {j % levels}", j % levels, None, None)
                  for j in range(events)), batch)
    _executemany(db, "fills", ["strategy", "ts", "client_id", "order_id", "level", "intent", "side", "price",
                               "qty", "fee", "maker", "reduce_only", "realized_pnl"],
                 ((names[j % n], start_ms + j * 1000, f"gx-f-{j}", str(j), j % levels,
                   "entry" if j % 2 == 0 else "exit", "buy" if j % 2 == 0 else "sell", "150.00", "0.3", "0.009",
                   1, 0, "0" if j % 2 == 0 else "0.3") for j in range(fills)), batch)


# ---- a small, hand-checked dataset for the CLI and report tests ---------------------------
NOW = 1_722_643_200_000  # 2024-08-03T00:00:00Z: "now" for the realistic dataset
H = 3_600_000
T0 = NOW - 48 * H  # sol-neutral started
CODE = {"entry": "e", "exit": "x", "close": "c"}


def realistic(db: Database) -> None:
    """Two strategies as a worker would have written them, through the BufferedWriter.

    sol-neutral (running since NOW-48h, investment 500, 2x): two completed cycles on
    level 1 (NOW-30h, net 0.4697; NOW-2h, net 0.28182), level 0 holding 0.5 bought at
    150.00, one buy and two sells open, three funding payments, five equity snapshots.
    sol-long (stopped by its stop-loss at NOW-6h, closed at a loss).
    """
    from gridctl.store.writer import BufferedWriter

    w = BufferedWriter(db)
    cfg = {"symbol": "SOL/USDT:USDT", "investment": "500", "leverage": 2, "mode": "neutral"}
    w.upsert("strategies", {"name": "sol-neutral", "config_json": cfg, "config_hash": "abc123",
                            "grid_json": {"lower": "148", "upper": "156", "lines": ["150.00", "151.00", "152.00",
                                                                                    "153.00", "154.00"]},
                            "status": "running", "pid": 4242, "started_ts": T0, "updated_ts": NOW - 60_000})
    for idx, side, entry, exit_, held in [(0, "buy", "150.00", "151.00", "0.5"), (1, "buy", "151.00", "152.00", "0"),
                                          (2, "sell", "153.00", "152.00", "0"), (3, "sell", "154.00", "153.00", "0")]:
        w.upsert("levels", {"strategy": "sol-neutral", "idx": idx, "side": side, "entry_price": Decimal(entry),
                            "exit_price": Decimal(exit_), "size": Decimal("0.5"), "held": Decimal(held),
                            "exiting": Decimal(0), "gen": 1, "updated_ts": NOW - H})
    orders = [  # client_id, level, intent, side, price, qty, status, created, updated
        ("A", 1, "entry", "buy", "151.00", "0.5", "filled", NOW - 36 * H, NOW - 35 * H),
        ("B", 1, "exit", "sell", "152.00", "0.5", "filled", NOW - 35 * H, NOW - 30 * H),
        ("C", 0, "entry", "buy", "150.00", "0.5", "filled", NOW - 20 * H, NOW - 39 * H // 2),
        ("D", 0, "exit", "sell", "151.00", "0.5", "open", NOW - 39 * H // 2, NOW - 39 * H // 2),
        ("E", 2, "entry", "sell", "153.00", "0.5", "cancelled", NOW - 10 * H, NOW - 9 * H),
        ("F", 2, "entry", "sell", "153.00", "0.5", "open", NOW - 9 * H, NOW - 9 * H),
        ("G", 1, "entry", "buy", "151.00", "0.3", "filled", NOW - 5 * H, NOW - 4 * H),
        ("I", 1, "exit", "sell", "152.00", "0.3", "filled", NOW - 4 * H, NOW - 2 * H),
        ("J", 1, "entry", "buy", "151.00", "0.5", "open", NOW - 2 * H, NOW - 2 * H),
    ]
    for cid, lvl, intent, side, price, qty, st, created, updated in orders:
        w.upsert("orders", {"strategy": "sol-neutral", "client_id": f"gx-abc123-{lvl:03d}{CODE[intent]}{cid}",
                            "order_id": f"9{ord(cid)}", "level": lvl, "intent": intent, "side": side,
                            "price": Decimal(price), "qty": Decimal(qty),
                            "filled": Decimal(qty) if st == "filled" else Decimal(0), "status": st,
                            "reduce_only": intent == "exit", "post_only": True, "created_ts": created,
                            "updated_ts": updated})
    fills = [  # order, ts, side, price, qty, fee, realized
        ("A", NOW - 35 * H, "buy", "151.00", "0.5", "0.0151", "0"), ("B", NOW - 30 * H, "sell", "152.00", "0.5",
                                                                     "0.0152", "0.50"),
        ("C", NOW - 39 * H // 2, "buy", "150.00", "0.5", "0.0150", "0"),
        ("G", NOW - 4 * H, "buy", "151.00", "0.3", "0.00906", "0"),
        ("I", NOW - 2 * H, "sell", "152.00", "0.3", "0.00912", "0.30"),
    ]
    by_id = {o[0]: o for o in orders}
    for cid, ts, side, price, qty, fee, realized in fills:
        o = by_id[cid]
        w.add("fills", {"strategy": "sol-neutral", "ts": ts, "client_id": f"gx-abc123-{o[1]:03d}{CODE[o[2]]}{cid}",
                        "order_id": f"9{ord(cid)}", "level": o[1], "intent": o[2], "side": side,
                        "price": Decimal(price), "qty": Decimal(qty), "fee": Decimal(fee), "maker": True,
                        "reduce_only": o[2] == "exit", "realized_pnl": Decimal(realized)})
    for entry_ts, exit_ts, qty, profit, fees, net in [(NOW - 35 * H, NOW - 30 * H, "0.5", "0.50", "0.0303", "0.4697"),
                                                      (NOW - 4 * H, NOW - 2 * H, "0.3", "0.30", "0.01818", "0.28182")]:
        w.add("trades", {"strategy": "sol-neutral", "level": 1, "side": "buy", "entry_ts": entry_ts,
                         "exit_ts": exit_ts, "entry_price": Decimal("151.00"), "exit_price": Decimal("152.00"),
                         "qty": Decimal(qty), "profit": Decimal(profit), "fees": Decimal(fees),
                         "net_profit": Decimal(net), "hold_ms": exit_ts - entry_ts})
    for ts, rate, mark, amount in [(NOW - 32 * H, "0.0001", "150.50", "-0.007525"),
                                   (NOW - 16 * H, "0.0001", "150.20", "-0.00751"),
                                   (NOW - 8 * H, "-0.00005", "151.00", "0.003775")]:
        w.add("funding", {"strategy": "sol-neutral", "ts": ts, "rate": Decimal(rate), "mark_price": Decimal(mark),
                          "position": Decimal("0.5"), "amount": Decimal(amount)})
    snaps = [  # ts, price, position, realized(=grid), unrealized, fees, funding, total, equity, buys, sells
        (NOW - 47 * H, "150.00", "0", "0", "0", "0", "0", "0", "500.00", 2, 2),
        (NOW - 30 * H, "152.00", "0", "0.50", "0", "0.0303", "-0.007525", "0.462175", "500.462175", 2, 2),
        (NOW - 19 * H, "149.00", "0.5", "0.50", "-0.50", "0.0453", "-0.007525", "-0.052825", "499.947175", 1, 3),
        (NOW - 12 * H, "148.00", "0.5", "0.50", "-1.00", "0.0453", "-0.015035", "-0.560335", "499.439665", 1, 2),
        (NOW - H, "151.50", "0.5", "0.80", "0.75", "0.06348", "-0.01126", "1.47526", "501.47526", 1, 2),
    ]
    for ts, price, pos, realized, unr, fees, funding, total, equity, buys, sells in snaps:
        w.add("equity", {"strategy": "sol-neutral", "ts": ts, "price": Decimal(price), "position": Decimal(pos),
                         "realized": Decimal(realized), "grid_profit": Decimal(realized),
                         "unrealized": Decimal(unr), "fees": Decimal(fees), "funding": Decimal(funding),
                         "total_pnl": Decimal(total), "equity": Decimal(equity), "open_buys": buys,
                         "open_sells": sells})
    for ts, typ, msg, lvl in [
            (T0, "status", "started: 4 levels, 148..156", None),
            (NOW - 36 * H, "order", "placed buy 0.5 @ 151.00", 1),
            (NOW - 35 * H, "fill", "buy 0.5 @ 151.00 filled", 1),
            (NOW - 30 * H, "trade", "cycle closed: net +0.4697", 1),
            (NOW - 10 * H, "warn", "order rejected: post-only would cross the book", 2),
            (NOW - 3 * H, "error", '=HYPERLINK("http://x.example","click") from the venue', None),
            (NOW - 2 * H, "fill", "sell 0.3 @ 152.00 filled", 1),
            (NOW - 2 * H + 1, "trade", "cycle closed: net +0.28182", 1),
            (NOW - 90 * 60_000, "info", "-2+3 is not a number", None),
            (NOW - H, "info", "@SUM(A1:A9) note", None)]:
        w.event("sol-neutral", typ, msg, ts=ts, level=lvl, data={"n": 1} if typ == "trade" else None)

    w.upsert("strategies", {"name": "sol-long", "config_json": {"symbol": "SOL/USDT:USDT", "investment": "400",
                                                                 "leverage": 1}, "status": "stopped",
                            "stop_reason": "stop-loss: price 138.10 left the range by 0.5%",
                            "started_ts": T0 + H, "updated_ts": NOW - 6 * H})
    w.upsert("orders", {"strategy": "sol-long", "client_id": "gx-def456-000c1", "level": None, "intent": "close",
                        "side": "sell", "price": Decimal("138.10"), "qty": Decimal("1.0"), "filled": Decimal("1.0"),
                        "status": "filled", "reduce_only": True, "post_only": False,
                        "created_ts": NOW - 6 * H, "updated_ts": NOW - 6 * H + 800})
    w.add("fills", {"strategy": "sol-long", "ts": NOW - 6 * H + 800, "client_id": "gx-def456-000c1",
                    "order_id": "77", "level": None, "intent": "close", "side": "sell", "price": Decimal("138.10"),
                    "qty": Decimal("1.0"), "fee": Decimal("0.05524"), "maker": False, "reduce_only": True,
                    "realized_pnl": Decimal("-12.90")})
    w.add("equity", {"strategy": "sol-long", "ts": NOW - 6 * H + 1000, "price": Decimal("138.10"),
                     "position": Decimal("0"), "realized": Decimal("-12.50"), "grid_profit": Decimal("0.40"),
                     "unrealized": Decimal("0"), "fees": Decimal("0.22"), "funding": Decimal("0"),
                     "total_pnl": Decimal("-12.72"), "equity": Decimal("387.28")})
    w.event("sol-long", "risk", "margin ratio 0.55 above warn 0.5", ts=NOW - 7 * H, data={"margin_ratio": "0.55"})
    w.event("sol-long", "risk", "stop-loss: price 138.10 left the range by 0.5%", ts=NOW - 6 * H,
            data={"stop_reason": "stop_loss_pct", "price": "138.10"})
    assert w.flush() and w.stats()["rejected"] == 0
