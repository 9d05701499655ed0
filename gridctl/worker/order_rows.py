"""Recovery's last step: every stored order row ends equal to the venue's order.

A worker killed with rows still in its writer's memory loses them (orders are journaled
only past the memory bound): an order placed, filled or cancelled in its last moments may
have no row, or a row that still says `open`. The venue's record is the truth (as in
NautilusTrader's reconciliation: reports turned into state on the one recovery path), so
at start the rows of this grid are compared with the venue's own orders from the newest
stored row on, and with a lookup by client id for any row still `open` that the venue no
longer lists as open: a missing row is written whole, a stale status or filled quantity is
corrected, and a row for an order the venue never kept is closed as such.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Optional

from gridctl.core.engine import GridEngine
from gridctl.core.orders import Intent
from gridctl.exchange.base import ExchangeError
from gridctl.worker.recorder import Recorder

OVERLAP_MS = 60_000  # the venue's history is read from a minute before the newest stored row
TERMINAL = ("filled", "cancelled", "expired", "rejected")


class StoredOrders:
    """The grid's order rows as the store and the writer's queue hold them: client id ->
    {status, filled (Decimal), created_ts}."""

    def __init__(self, rows: dict[str, dict[str, Any]]):
        self.rows = rows

    @classmethod
    def load(cls, name: str, since_ts: int, writer) -> Optional["StoredOrders"]:
        """Rows in the database from `since_ts`, then the queued upserts on top (newest wins);
        None when the database cannot be read (the rows are then left as they are)."""
        import peewee

        from gridctl.store.models import Order

        rows: dict[str, dict[str, Any]] = {}
        query = Order.select(Order.client_id, Order.status, Order.filled, Order.created_ts).where(
            (Order.strategy == name) & (Order.created_ts >= since_ts))
        try:
            for r in query:
                rows[r.client_id] = {"status": r.status, "filled": Decimal(str(r.filled or 0)),
                                     "created_ts": r.created_ts}
        except peewee.DatabaseError:
            return None
        for p in writer.pending_rows("orders"):
            if p.get("strategy") != name or not p.get("client_id"):
                continue
            row = rows.setdefault(str(p["client_id"]), {"status": "open", "filled": Decimal(0), "created_ts": None})
            for key in ("status", "created_ts"):
                if p.get(key) is not None:
                    row[key] = p[key]
            if p.get("filled") is not None:
                row["filled"] = Decimal(str(p["filled"]))
        return cls(rows)

    def history_since(self, grid_started_ts: int) -> int:
        """Where the venue's order history must be read from: orders whose rows were lost are
        younger than the newest row that was stored."""
        newest = max((r["created_ts"] for r in self.rows.values() if r.get("created_ts")), default=grid_started_ts)
        return max(grid_started_ts, newest - OVERLAP_MS)


async def settle(ts: int, stored: Optional[StoredOrders], exchange, engine: GridEngine, rec: Recorder,
                 grid_started_ts: int) -> Optional[str]:
    """Correct the stored rows from the venue's orders; a summary line when anything changed."""
    history = getattr(exchange, "orders_since", None)
    if stored is None or history is None:
        return None
    try:
        venue = {str(o.client_id): o for o in await history(stored.history_since(grid_started_ts))}
        for cid, row in stored.rows.items():  # open rows the venue's recent record does not show
            if (row["status"] == "open" or row.get("from_fills")) and cid not in venue:
                found = await exchange.fetch_order(stored_cid(cid))
                if found is not None:
                    venue[cid] = found
    except ExchangeError as exc:
        return f"order rows not checked against the venue: {exc}"
    written = corrected = closed = 0
    qty = engine.rules.qty
    for cid, o in venue.items():
        d = engine.decode(o.client_id)
        if d is None:
            continue
        engine.continue_generations(d.level, d.gen)  # an id the venue has seen is never sent again
        row = stored.rows.get(cid)
        status = o.status if o.status in TERMINAL else "open"
        if row is None or row.get("from_fills"):
            # lost, or just rebuilt from its fills alone (which know neither a taker's limit
            # price nor a partial order's size): written whole from the venue's record
            level = d.level if d.intent is not Intent.CLOSE else None
            rec.order_recovered(ts, o, level, d.intent.value, status)
            written += row is None
        elif row["status"] != status or (row["filled"] is not None and row["filled"] != qty(o.filled)):
            rec.order_status(ts, o.client_id, status, filled=o.filled)
            corrected += 1
    for cid, row in stored.rows.items():
        if row["status"] == "open" and cid not in venue:
            rec.order_status(ts, stored_cid(cid), "cancelled", "not on the venue")
            closed += 1
    if not (written or corrected or closed):
        return None
    return (f"order rows settled against the venue: {written} written, {corrected} corrected, "
            f"{closed} closed as not on the venue")


def stored_cid(value: str) -> object:
    """A stored client id as the venue knows it (Backpack's are integers)."""
    return int(value) if value.isdigit() else value
