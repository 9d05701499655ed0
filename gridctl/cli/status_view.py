"""Rendering of `gridctl status`: the dashboard table fitted to the terminal, the detailed view.

Pure: rows in (dicts from `gridctl.store.read.status`, overlaid and derived),
text out. The table picks columns by priority until the terminal's width is
used up; `wide` shows all of them. A reason, an error or a stale database never
goes in a column (it would be cut short): it is a line below the table.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Callable, Optional

from tabulate import tabulate

from gridctl.store.read import iso

STOP_ABBREV = {"stop_loss_below": "SL", "stop_loss_above": "SL", "take_profit_below": "TP",
               "take_profit_above": "TP"}


def d(v: Optional[Decimal]) -> str:
    """A decimal as plain text, '-' for None."""
    return "-" if v is None else format(v, "f")


def money(v: Optional[Decimal]) -> str:
    """Money to 4 decimals (the table's rounding; --json keeps every digit)."""
    return "-" if v is None else format(v.quantize(Decimal("0.0001")), "f")


def pct(v: Optional[Decimal]) -> str:
    return "-" if v is None else f"{v:f}%"


def duration(seconds: Optional[int]) -> str:
    """3d 04h / 2h 05m / 4m 09s; '-' for None."""
    if seconds is None:
        return "-"
    dd, rem = divmod(int(seconds), 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    return f"{dd}d {h:02d}h" if dd else (f"{h}h {m:02d}m" if h else f"{m}m {s:02d}s")


def position(r: dict) -> str:
    """The ledger's position, and the exchange's beside it when they differ (never overwritten)."""
    ex = r.get("exchange_position")
    if ex is None or ex == r["position"]:
        return d(r["position"])
    return f"{d(r['position'])} (exchange {d(ex)})"


def as_of(r: dict, now: int) -> str:
    """'live', or the snapshot's age ('3m ago'); 'stale 3m' when the worker is down."""
    if r.get("as_of_ts") is None:
        return "-"
    if r.get("live"):
        return "live"
    age = duration(max(0, now - r["as_of_ts"]) // 1000).split(" ")[0]
    return f"stale {age}" if r.get("stale") else f"{age} ago"


def grid_range(r: dict) -> str:
    if r.get("lower") is None:
        return "-"
    n = r.get("grids") or r.get("levels")
    return f"{d(r['lower'])}-{d(r['upper'])}" + (f" x{n}" if n else "")


def stop(r: dict) -> str:
    if r.get("nearest_stop") is None:
        return "-"
    return f"{STOP_ABBREV.get(r['nearest_stop'], r['nearest_stop'])} {r['stop_distance_pct']:f}%"


def cycles(r: dict) -> str:
    return "-" if r.get("cycles") is None else f"{r['cycles']}/{r['cycles_24h']}"


def margin(r: dict) -> str:
    return "-" if r.get("margin_ratio") is None else f"{(r['margin_ratio'] * 100).quantize(Decimal('0.1')):f}%"


# (header, cell, priority: lower is shown first when the width is short), in display order
Column = tuple[str, Callable[[dict, int], str], int]
COLUMNS: list[Column] = [
    ("strategy", lambda r, n: r["name"], 0),
    ("state", lambda r, n: r["state"], 0),
    ("price", lambda r, n: d(r["price"]), 1),
    ("range x grids", lambda r, n: grid_range(r), 9),
    ("position", lambda r, n: position(r), 2),
    ("avg entry", lambda r, n: d(r.get("entry_price")), 7),
    ("liq. price", lambda r, n: d(r.get("liquidation_price")), 8),
    ("margin", lambda r, n: margin(r), 13),
    ("buys", lambda r, n: str(r["open_buys"]), 16),
    ("sells", lambda r, n: str(r["open_sells"]), 16),
    ("cycles/24h", lambda r, n: cycles(r), 5),
    ("grid profit", lambda r, n: money(r["grid_profit"]), 10),
    ("unrealized", lambda r, n: money(r["unrealized"]), 12),
    ("fees", lambda r, n: money(r["fees"]), 14),
    ("funding", lambda r, n: money(r["funding"]), 15),
    ("total PnL", lambda r, n: money(r["total_pnl"]), 3),
    ("ROI", lambda r, n: pct(r.get("roi_pct")), 4),
    ("grid APR", lambda r, n: pct(r.get("grid_apr_pct")), 17),
    ("APR", lambda r, n: pct(r.get("total_apr_pct")), 11),
    ("stop", lambda r, n: stop(r), 6),
    ("uptime", lambda r, n: duration(r.get("uptime_s")), 18),
    ("as of", lambda r, n: as_of(r, n), 5),
]


def _render(rows: list[dict], cols: list[Column], now: int) -> str:
    return tabulate([[cell(r, now) for _, cell, _ in cols] for r in rows], headers=[c[0] for c in cols],
                    disable_numparse=True, stralign="right")


# shown when another host runs some of the strategies (a shared PostgreSQL database)
HOST_COLUMN: Column = ("host", lambda r, n: r.get("host") or "-", 0)


def table(rows: list[dict], now: int, width: int, wide: bool = False) -> str:
    """The dashboard: every column with `wide`, else the most important that fit in `width`."""
    columns = [COLUMNS[0], HOST_COLUMN, *COLUMNS[1:]] if any(r.get("remote") for r in rows) else COLUMNS
    if wide:
        return _render(rows, columns, now)
    chosen: set[int] = set()
    for i in sorted(range(len(columns)), key=lambda i: (columns[i][2], i)):
        trial = chosen | {i}
        text = _render(rows, [columns[j] for j in sorted(trial)], now)
        if columns[i][2] > 0 and max(len(line) for line in text.splitlines()) > width:
            continue
        chosen = trial
    return _render(rows, [columns[j] for j in sorted(chosen)], now)


def notes(rows: list[dict]) -> list[str]:
    """The lines below the table: why a strategy is not running, its last error, a database outage."""
    out = []
    for r in rows:
        why = r.get("reason") if r["state"] in ("fatal", "backoff", "exited") else None
        text = why or r.get("last_error") or r.get("stop_reason")
        if text:
            out.append(f"{r['name']}: {' '.join(str(text).split())}")
        if r.get("db_unavailable_since") is not None:
            out.append(f"{r['name']}: database unavailable since {iso(r['db_unavailable_since'])}")
    return out


def detail(r: dict, levels: list[dict], now: int) -> str:
    """`gridctl status NAME`: every figure on its own line, then the grid level by level."""
    stops = ", ".join(f"{k.replace('_', ' ')} {d(v)}" for k, v in (r.get("stops") or {}).items()) or "-"
    nearest = (f"{r['stop_distance_pct']:f}% to {r['nearest_stop'].replace('_', ' ')}"
               if r.get("nearest_stop") else "-")
    as_of_text = ("live" if r.get("live") else
                  (iso(r["as_of_ts"]) + (" (stale: the worker is down)" if r.get("stale") else " (last snapshot)"))
                  if r.get("as_of_ts") is not None else "-")
    pairs = [
        ("state", r["state"] + (f" ({r['reason']})" if r.get("reason") and r["state"] in
                                ("fatal", "backoff", "exited") else "")),
        ("symbol", r.get("symbol") or "-"), ("host", r.get("host") or "-"), ("as of", as_of_text),
        ("price", d(r["price"])), ("range", grid_range(r)), ("mode", r.get("mode") or "-"),
        ("investment", d(r.get("investment"))), ("leverage", str(r.get("leverage") or "-")),
        ("position", position(r)), ("average entry", d(r.get("entry_price"))),
        ("liquidation (est.)", d(r.get("liquidation_price"))), ("margin ratio", margin(r)),
        ("open orders", f"{r['open_buys']} buy, {r['open_sells']} sell"),
        ("cycles", f"{r.get('cycles', 0)} ({r.get('cycles_24h', 0)} in the last 24h)"),
        ("grid profit", money(r["grid_profit"])), ("realized", money(r["realized"])),
        ("unrealized", money(r["unrealized"])), ("fees", money(r["fees"])), ("funding", money(r["funding"])),
        ("total PnL", money(r["total_pnl"])), ("ROI", pct(r.get("roi_pct"))),
        ("grid APR", pct(r.get("grid_apr_pct"))), ("total APR", pct(r.get("total_apr_pct"))),
        ("stops", stops), ("nearest stop", nearest), ("uptime", duration(r.get("uptime_s"))),
    ]
    lines = [f"{r['name']}"] + [f"  {k + ':':<20}{v}" for k, v in pairs]
    lines += [f"  {n}" for n in notes([r])]
    if levels:
        lines += ["", tabulate([[lv["level"], lv["side"], lv["state"], d(lv["entry_price"]), d(lv["exit_price"]),
                                 d(lv["qty"]), lv["open_order"] or "-"] for lv in levels],
                               headers=["line", "side", "state", "entry", "exit", "qty", "open order"],
                               disable_numparse=True, stralign="right")]
    return "\n".join(lines)
