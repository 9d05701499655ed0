"""The read model: what `status`, `logs` and `export` show, straight from the database.

Never touches an exchange and needs no running supervisor. Every function takes
an open database (see `gridctl.store.db.open_database`) and returns plain dicts
or tuples; money, prices and quantities are Decimal.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Iterable, Iterator, Optional, Sequence

from peewee import Database, fn

from gridctl.store.dashboard import grid_facts
from gridctl.store.db import bind
from gridctl.store.models import Equity, Event, FillRow, Funding, Level, Order, Strategy, Trade

ZERO = Decimal(0)
LIVE_STATES = ("starting", "running", "paused", "backoff", "stopping")


class UnknownStrategy(LookupError):
    """A strategy name the database has never seen."""


def now_ms() -> int:
    """The wall clock in epoch ms."""
    return int(time.time() * 1000)


def iso(ts: Optional[int]) -> str:
    """Epoch ms as ISO 8601 UTC with milliseconds ('' for None)."""
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts % 1000:03d}Z"


def strategy_names(db: Database) -> list[str]:
    """Every strategy the database knows, by name."""
    bind(db)
    return [r[0] for r in Strategy.select(Strategy.name).order_by(Strategy.name).tuples()]


def check_names(db: Database, names: Optional[Iterable[str]]) -> list[str]:
    """The given names (all when empty/None); UnknownStrategy names the missing ones and the known."""
    known = strategy_names(db)
    if not names:
        return known
    names = list(dict.fromkeys(names))
    missing = [n for n in names if n not in known]
    if missing:
        from gridctl.config.reader import did_you_mean

        have = ", ".join(known) if known else "none yet"
        raise UnknownStrategy("; ".join(f"no strategy '{m}'{did_you_mean(m, known)}" for m in missing)
                              + f" in the database (strategies: {have})")
    return names


def _json(text: Optional[str]) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def status(db: Database, names: Optional[Sequence[str]] = None, now: Optional[int] = None) -> list[dict]:
    """One dict per strategy: state, price, position, open orders, PnL parts, uptime, last error.

    PnL figures come from the latest equity snapshot (the worker writes one every
    60 s), open orders from the orders table, range, grid count, investment and
    cycles from `gridctl.store.dashboard.grid_facts`. `uptime_s` is None unless running.
    """
    names = check_names(db, names)
    now = now_ms() if now is None else now
    open_counts: dict[tuple[str, str], int] = {}
    q = (Order.select(Order.strategy, Order.side, fn.COUNT(Order.id))
         .where((Order.status == "open") & (Order.strategy.in_(names)))
         .group_by(Order.strategy, Order.side).tuples())
    for strategy, side, n in q:
        open_counts[(strategy, side)] = n
    strategies = {s.name: s for s in Strategy.select().where(Strategy.name.in_(names))}
    out = []
    for name in names:
        s = strategies[name]
        # One indexed lookup per strategy: (strategy, ts) DESC LIMIT 1.
        eq = Equity.select().where(Equity.strategy == name).order_by(Equity.ts.desc(), Equity.id.desc()).first()
        cfg = _json(s.config_json) or {}
        live = s.status in LIVE_STATES and s.started_ts is not None
        out.append({
            "name": name,
            "symbol": cfg.get("symbol") if isinstance(cfg, dict) else None,
            "state": s.status,
            "price": eq.price if eq else None,
            "position": eq.position if eq else ZERO,
            # the exchange's position at that snapshot; it differs from `position` only when
            # the two disagree (shown, never written over the ledger); None: not known
            "exchange_position": eq.exchange_position if eq else None,
            "open_buys": open_counts.get((name, "buy"), 0),
            "open_sells": open_counts.get((name, "sell"), 0),
            "grid_profit": eq.grid_profit if eq else ZERO,
            "realized": eq.realized if eq else ZERO,
            "unrealized": eq.unrealized if eq else ZERO,
            "fees": eq.fees if eq else ZERO,
            "funding": eq.funding if eq else ZERO,
            "total_pnl": eq.total_pnl if eq else ZERO,
            "equity": eq.equity if eq else None,
            # when the figures above were true: the snapshot's time (the live overlay: now)
            "as_of_ts": eq.ts if eq else None,
            "stale": False,
            "entry_price": None,
            **grid_facts(s, now),
            "uptime_s": max(0, (now - s.started_ts) // 1000) if live else None,
            "pid": s.pid,
            # the host whose supervisor runs it (several hosts may share a PostgreSQL database)
            "host": s.host,
            "started_ts": s.started_ts,
            # the configuration in force: its hash, and when it was applied (start or `gridctl reload`)
            "config_hash": s.config_hash,
            "config_applied_ts": _config_applied_ts(name),
            "stop_reason": s.stop_reason,
            "last_error": s.last_error,
            # epoch ms; only a running worker knows (the live overlay of `gridctl status` fills it in)
            "db_unavailable_since": None,
        })
    return out


def _config_applied_ts(name: str) -> Optional[int]:
    """The time of the latest "config" event: when the running settings were applied."""
    return (Event.select(fn.MAX(Event.ts)).where((Event.strategy == name) & (Event.type == "config")).scalar())


def events(db: Database, name: str, since_ms: Optional[int] = None, types: Optional[Sequence[str]] = None,
           grep: Optional[str] = None, limit: Optional[int] = None, after_id: Optional[int] = None,
           until_ms: Optional[int] = None) -> list[dict]:
    """A strategy's events in time order, filtered; with `limit`, the latest `limit` of them.

    `grep` is a case-insensitive substring of the message; `after_id` returns only
    rows newer than an event id already seen (for following).
    """
    check_names(db, [name])
    q = Event.select().where(Event.strategy == name)
    if since_ms is not None:
        q = q.where(Event.ts >= since_ms)
    if until_ms is not None:
        q = q.where(Event.ts < until_ms)
    if types:
        q = q.where(Event.type.in_(list(types)))
    if after_id is not None:
        q = q.where(Event.id > after_id)
    if grep:
        q = q.where(Event.message.contains(grep))  # ILIKE '%..%' (LIKE on SQLite: ASCII case-insensitive)
    if limit is not None:
        rows = list(q.order_by(Event.ts.desc(), Event.id.desc()).limit(limit))[::-1]
    else:
        rows = list(q.order_by(Event.ts, Event.id))
    if grep:
        # LIKE treats % and _ as wildcards: keep only literal matches.
        g = grep.lower()
        rows = [r for r in rows if g in r.message.lower()]
    return [{"id": r.id, "ts": r.ts, "type": r.type, "message": r.message, "level": r.level,
             "order_id": r.order_id, "data": _json(r.data_json)} for r in rows]


def last_event_id(db: Database, name: str) -> int:
    """The newest event id of a strategy (0 when it has none)."""
    bind(db)
    return Event.select(fn.MAX(Event.id)).where(Event.strategy == name).scalar() or 0


# kind -> (model, time column for --since/--until and ordering, columns). "*_time" columns
# are ISO renderings of the epoch-ms column of the same stem, first for spreadsheets.
EXPORTS: dict[str, tuple[Any, str, list[str]]] = {
    "orders": (Order, "created_ts", ["created_time", "updated_time", "client_id", "order_id", "level", "intent",
                                     "side", "price", "qty", "filled", "status", "reduce_only", "post_only",
                                     "reason", "created_ts", "updated_ts"]),
    "fills": (FillRow, "ts", ["time", "client_id", "order_id", "level", "intent", "side", "price", "qty", "fee",
                              "maker", "reduce_only", "realized_pnl", "ts"]),
    "trades": (Trade, "exit_ts", ["entry_time", "exit_time", "level", "side", "entry_price", "exit_price", "qty",
                                  "profit", "fees", "net_profit", "hold_ms", "entry_ts", "exit_ts"]),
    "events": (Event, "ts", ["time", "type", "level", "order_id", "message", "data_json", "ts"]),
    "equity": (Equity, "ts", ["time", "price", "position", "realized", "grid_profit", "unrealized", "fees",
                              "funding", "total_pnl", "equity", "open_buys", "open_sells", "ts"]),
    "funding": (Funding, "ts", ["time", "rate", "mark_price", "position", "amount", "ts"]),
}


def export(db: Database, name: str, kind: str, since_ms: Optional[int] = None,
           until_ms: Optional[int] = None) -> tuple[list[str], Iterator[tuple]]:
    """(header, rows) of one table of one strategy, oldest first, in [since_ms, until_ms).

    Values are Decimal/int/bool/str/None; the header never changes for a kind.
    Rows are streamed, so exporting millions of events does not load them all.
    """
    if kind not in EXPORTS:
        raise ValueError(f"unknown export {kind!r}; one of {', '.join(EXPORTS)}")
    check_names(db, [name])
    model, tcol, header = EXPORTS[kind]
    tfield = getattr(model, tcol)
    db_cols = [c for c in header if not c.endswith("_time") and c != "time"]
    q = model.select(*[getattr(model, c) for c in db_cols]).where(model.strategy == name)
    if since_ms is not None:
        q = q.where(tfield >= since_ms)
    if until_ms is not None:
        q = q.where(tfield < until_ms)
    q = q.order_by(tfield, model.id)

    def rows() -> Iterator[tuple]:
        for rec in q.dicts().iterator():
            out = []
            for c in header:
                if c == "time":
                    out.append(iso(rec["ts"]))
                elif c.endswith("_time"):
                    out.append(iso(rec[c[:-5] + "_ts"]))
                else:
                    out.append(rec[c])
            yield tuple(out)

    return list(header), rows()


def levels_detail(db: Database, name: str) -> list[dict]:
    """The grid of one strategy line by line: side, state, entry, exit, size, held, its open order.

    state: `holding` (the entry filled, its exit is wanted), `waiting` (an entry
    order rests), `idle` (nothing on the book for this line).
    """
    check_names(db, [name])
    open_by_level: dict[int, Order] = {}
    for o in (Order.select().where((Order.strategy == name) & (Order.status == "open"))
              .order_by(Order.created_ts, Order.id)):
        if o.level is not None:
            open_by_level[o.level] = o
    out = []
    for lv in Level.select().where(Level.strategy == name).order_by(Level.idx):
        o = open_by_level.get(lv.idx)
        state = "holding" if lv.held else ("waiting" if o is not None and o.intent == "entry" else "idle")
        out.append({"level": lv.idx, "side": lv.side, "state": state, "entry_price": lv.entry_price,
                    "exit_price": lv.exit_price, "qty": lv.size, "held": lv.held,
                    "open_order": f"{o.intent} {o.side} {format(o.qty, 'f')} @ {format(o.price, 'f')}"
                    if o is not None and o.price is not None else None})
    return out
