"""Queued rows and the SQL that writes them: the database half of the buffered writer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Any, Iterable, Iterator, Optional

from gridctl.store.models import INSERT_ONCE_KEYS, TABLES, UPSERT_KEYS


def json_default(o: Any) -> Any:
    """json.dumps `default`: Decimal -> exact string, Enum -> its value, anything else -> str."""
    if isinstance(o, Decimal):
        return str(o)
    if hasattr(o, "value"):
        return o.value
    return str(o)


def to_json(value: Any) -> str:
    """JSON text for a *_json column (Decimals as strings, keys sorted)."""
    return json.dumps(value, default=json_default, sort_keys=True, separators=(",", ":"))


@dataclass
class Item:
    """One queued row: `seq` orders every row a writer was given, journal included."""

    seq: int
    op: str  # "add" | "upsert"
    table: str
    row: dict
    journaled: bool = False  # read back from the journal (so it leaves the journal once written)


def _prepare(table: str, row: dict) -> dict:
    """Database-ready copy: `data` -> data_json, dict/list *_json values -> text."""
    out = dict(row)
    if table == "events" and "data" in out:
        data = out.pop("data")
        out["data_json"] = None if data is None else to_json(data)
    for k, v in out.items():
        if isinstance(v, Enum):
            out[k] = v.value
        elif k.endswith("_json") and v is not None and not isinstance(v, str):
            out[k] = to_json(v)
    return out


def write_items(items: list[Item]) -> None:
    """Write rows in order inside the caller's transaction; raises what the database raises.

    Fills with a `trade_id` already stored are skipped (see models.INSERT_ONCE_KEYS).
    """
    # Consecutive rows of the same table, operation and columns go out as one statement.
    for op, table, rows in _groups(items):
        model = TABLES[table]
        prepared = [_prepare(table, r) for r in rows]
        cols = list(prepared[0])
        size = max(1, 900 // max(1, len(cols)))  # stay under old SQLite's 999 variables
        if op == "upsert":
            keys = UPSERT_KEYS[table]
            last = {tuple(r.get(k) for k in keys): r for r in prepared}  # later rows win
            prepared = list(last.values())
            key_fields = [model._meta.fields[k] for k in keys]
            update = [model._meta.fields[c] for c in cols if c not in keys]
        for i in range(0, len(prepared), size):
            q = model.insert_many(prepared[i:i + size])
            if op == "upsert":
                q = (q.on_conflict(conflict_target=key_fields, preserve=update) if update
                     else q.on_conflict_ignore())
            elif table in INSERT_ONCE_KEYS:
                # ON CONFLICT (key) DO NOTHING, not INSERT OR IGNORE: a NOT NULL violation
                # must still be refused (and reported), only a duplicate key is skipped
                q = q.on_conflict(action="NOTHING",
                                  conflict_target=[model._meta.fields[k] for k in INSERT_ONCE_KEYS[table]])
            q.execute()


def _groups(items: Iterable[Item]) -> Iterator[tuple[str, str, list[dict]]]:
    cur: Optional[tuple] = None
    rows: list[dict] = []
    for it in items:
        key = (it.op, it.table, tuple(it.row))
        if key != cur and rows:
            yield cur[0], cur[1], rows
            rows = []
        cur = key
        rows.append(it.row)
    if rows:
        yield cur[0], cur[1], rows
