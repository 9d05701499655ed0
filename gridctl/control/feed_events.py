"""The live event feed's vocabulary: worker and supervisor rows -> stable feed events.

A worker's recorder emits rows ``{strategy, ts, type, message, level, order_id, data}``
(types in gridctl.store.models.EVENT_TYPES); the supervisor adds its own process
state changes (``{"type": "status", "source": "supervisor", "state", "reason", "pid"}``).
`to_feed` turns each into one feed event with a fixed name and fixed fields read from
the row's structured `data` (never parsed out of the message). Prices, quantities and
money are decimal strings; timestamps integer epoch ms. docs/events.md documents them.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Optional

# channel -> the feed events it carries
CHANNELS: dict[str, tuple[str, ...]] = {
    "price": ("price",),
    "pnl": ("pnl",),
    "orders": ("order_created", "order_cancelled"),
    "fills": ("order_filled",),
    "trades": ("trade_completed",),
    "status": ("status_changed",),
    "risk": ("risk_warning",),
    "errors": ("warning", "error"),
}
EVENT_CHANNEL = {ev: ch for ch, evs in CHANNELS.items() for ev in evs}

ORDER_FIELDS = ("client_id", "intent", "side", "price", "qty", "reduce_only", "post_only")
FILL_FIELDS = ("order_id", "client_id", "intent", "side", "price", "qty", "fee", "maker", "trade_id")
TRADE_FIELDS = ("side", "entry_price", "exit_price", "qty", "profit", "fees", "net_profit", "entry_ts",
                "exit_ts", "hold_ms")
PNL_FIELDS = ("position", "realized", "grid_profit", "unrealized", "fees", "funding", "total_pnl")


def _base(name: str, row: dict) -> dict:
    return {"event": name, "strategy": row.get("strategy"), "ts": row.get("ts"), "level": row.get("level"),
            "message": row.get("message")}


def _pick(data: dict, fields: Iterable[str]) -> dict:
    return {k: data.get(k) for k in fields}


def to_feed(row: dict) -> Optional[dict]:
    """The feed event for one row, or None for rows the feed does not carry (info, pnl text, unknown)."""
    kind = row.get("type")
    data = row.get("data") if isinstance(row.get("data"), dict) else {}
    if kind == "status" and row.get("source") == "supervisor":
        ev = _base("status_changed", row)
        ev.update(source="supervisor", state=row.get("state"), reason=row.get("reason") or None,
                  pid=row.get("pid") or None, stop_reason=None)
        ev["message"] = f"{row.get('state')}" + (f": {row['reason']}" if row.get("reason") else "")
        return ev
    if kind == "order":
        action = data.get("action")
        if action not in ("placed", "cancelled"):
            return None  # rows written before orders carried data
        ev = _base("order_created" if action == "placed" else "order_cancelled", row)
        ev["order_id"] = row.get("order_id")
        ev.update(_pick(data, ORDER_FIELDS))
        ev["type"] = "limit" if data.get("price") is not None else "market"
        return ev
    if kind == "fill":
        ev = _base("order_filled", row)
        ev.update(_pick(data, FILL_FIELDS))
        return ev
    if kind == "trade":
        ev = _base("trade_completed", row)
        ev.update(_pick(data, TRADE_FIELDS))
        return ev
    if kind == "status":
        ev = _base("status_changed", row)
        ev.update(source="worker", state=None, reason=None, pid=None, stop_reason=data.get("stop_reason"))
        return ev
    if kind == "risk":
        ev = _base("risk_warning", row)
        ev.update(margin_ratio=data.get("margin_ratio"), stop_reason=data.get("stop_reason"))
        return ev
    if kind in ("warn", "error"):
        return _base("warning" if kind == "warn" else "error", row)
    return None


def price_event(name: str, ts: int, status: dict) -> dict:
    """`price` from a worker's status reply (sampled by the feed, at most once a second)."""
    return {"event": "price", "strategy": name, "ts": ts, "price": status.get("price")}


def pnl_event(name: str, ts: int, status: dict) -> dict:
    """`pnl` from a worker's status reply: position and the PnL split, decimal strings."""
    return {"event": "pnl", "strategy": name, "ts": ts, **_pick(status, PNL_FIELDS)}


# key=value / "key": "value" pairs whose value is a credential (ccxt puts signed URLs in errors)
_SECRET_PAIR = re.compile(r"(?i)\b(signature|api[_-]?key|apikey|secret|passphrase|password|token|x-mbx-apikey)"
                          r"([\"']?\s*[=:]\s*[\"']?)([^&\s\"',}]+)")


class Redactor:
    """Blanks credentials out of every string of a feed event before it leaves the supervisor."""

    def __init__(self, secrets: Iterable[str] = ()):
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def text(self, s: str) -> str:
        for secret in self.secrets:
            s = s.replace(secret, "***")
        return _SECRET_PAIR.sub(lambda m: m.group(1) + m.group(2) + "***", s)

    def event(self, ev: dict) -> dict:
        return {k: self.text(v) if isinstance(v, str) and k not in ("event", "strategy") else v
                for k, v in ev.items()}


def secrets_of(config: Any) -> list[str]:
    """Every API key, secret and password of the config's accounts, revealed (for the Redactor only)."""
    out = []
    for acc in getattr(config, "accounts", {}).values():
        for s in (acc.api_key, acc.secret, acc.password):
            if s is not None:
                out.append(s.reveal())
    return out
