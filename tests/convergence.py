"""Has a strategy converged with its venue? The checks of issue 9 ("crash anywhere") as one
function that returns the violations it finds (an empty list: converged), for the
kill-anywhere tests and the soak.

The venue's side is read where a trader's exchange UI would show it: the paper account's
state and history journal (every order of any status, every fill; tests/venue_view.py).
The store's side is the SQLite database (orders, fills, the stored grid). Checked:

- every order row of the strategy equals the venue's order with its client id: status,
  filled quantity, side, price, and the level and intent its client id encodes; a row
  the venue never saw is a rejected placement or a row closed as not on the venue (a
  market request, stored with no price, may rest on the venue as an IOC limit: its
  protection against slippage);
- every venue order of the strategy has a row;
- every venue fill of the strategy is booked exactly once, by trade id, with its
  quantity and price; no stored fill the venue does not have;
- the venue's open orders of the strategy are exactly the orders the strategy desires,
  (adopted, no orphans, nothing missing): the engine rebuilt from the stored grid and fills,
  as a restarted worker rebuilds it, asked at the venue's price;
- a strategy stored as stopped with `on_stop: close` ended flat with nothing open.

Timing: a running worker writes through a buffered writer (1 s) and the venue saves
each change at once; call it in a wait loop (`wait_until(lambda: not violations(...))`),
ideally with the price pinned so the desired orders hold still.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Optional

from gridctl.config.strategy import engine_config, grid_params
from gridctl.config.validate import load
from gridctl.core.clientid import decode as decode_cid, strategy_tag
from gridctl.core.engine import GridEngine
from gridctl.core.orders import Intent
from gridctl.venue.records import OPEN_STATUSES
from tests.venue_view import VenueAccountView, _json_lines

VENUE_STATUS = {"new": "open", "partially_filled": "open", "filled": "filled", "cancelled": "cancelled",
                "expired": "expired"}


def venue_records(view: VenueAccountView) -> tuple[dict[str, dict], dict[str, dict], int, Optional[int]]:
    """(orders by client id (the newest of each), fills by trade id, net position in steps,
    the market's last price in ticks) of the view's symbol, from one save of the venue."""
    snap = json.loads(view.state_path.read_text(encoding="utf-8"))
    fp = view.fingerprint
    acc = snap.get("accounts", {}).get(fp, {})
    records = [r for r in snap.get("tail", []) + _json_lines(view.journal_path) if r.get("a") == fp]
    upto = int(snap.get("ids", {}).get("trade", 0))
    fills = {str(r["trade_id"]): r for r in records
             if r.get("k") == "fill" and r["symbol"] == view.symbol and int(r["trade_id"]) <= upto}
    orders: dict[str, dict] = {}
    for o in [r for r in records if r.get("k") == "order"] + list(acc.get("orders", [])):
        if o["symbol"] != view.symbol:
            continue
        cid = str(o["client_id"])
        old = orders.get(cid)
        if old is None or (int(o["order_id"]), int(o.get("updated_ms") or 0)) >= \
                (int(old["order_id"]), int(old.get("updated_ms") or 0)):
            orders[cid] = o
    sim = acc.get("sims", {}).get(view.symbol)
    position = sum(int(leg["qty"]) for leg in (sim["account"]["legs"] if sim else {}).values())
    last = snap.get("markets", {}).get(view.symbol, {}).get("last")
    return orders, fills, position, None if last is None else int(last)


def _rows(db: Path, query: str, *params) -> list[dict]:
    con = sqlite3.connect(db, timeout=10)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(query, params).fetchall()]
    finally:
        con.close()


def _dec(value) -> Optional[Decimal]:
    return None if value is None else Decimal(str(value))


def violations(view: VenueAccountView, db: Path, config: Path, name: str, id_format: str = "binance",
               check_desired: bool = True) -> list[str]:
    """Everything on which the store and the venue disagree for strategy `name` (see module docs)."""
    out: list[str] = []
    tag = strategy_tag(name)
    rules = view.rules
    v_orders, v_fills, position, _ = venue_records(view)

    def ours(cid) -> bool:
        d = decode_cid(id_format, _cid(cid))
        return d is not None and d.tag == tag

    v_orders = {c: o for c, o in v_orders.items() if ours(c)}
    v_fills = {t: f for t, f in v_fills.items() if ours(f["client_id"])}
    rows = {str(r["client_id"]): r for r in _rows(db, "SELECT * FROM orders WHERE strategy = ?", name)}

    # -- order rows == the venue's orders ---------------------------------------------------
    for cid, row in rows.items():
        o = v_orders.get(cid)
        if o is None:
            if row["status"] not in ("rejected", "cancelled") or (_dec(row["filled"]) or 0) != 0:
                out.append(f"order {cid}: row says {row['status']} (filled {row['filled']}) but the venue never had it")
            continue
        want = VENUE_STATUS[o["status"]]
        if row["status"] != want:
            out.append(f"order {cid}: row status {row['status']}, venue {o['status']}")
        if _dec(row["filled"]) != Decimal(o["filled"]):
            out.append(f"order {cid}: row filled {row['filled']}, venue {o['filled']}")
        if row["side"] != o["side"]:
            out.append(f"order {cid}: row side {row['side']}, venue {o['side']}")
        market = row["price"] is None and (o["type"] == "market" or o.get("time_in_force") in ("IOC", "FOK"))
        if _dec(row["price"]) != _dec(o["price"]) and not market:  # (a market request goes out as an IOC limit)
            out.append(f"order {cid}: row price {row['price']}, venue {o['price']}")
        d = decode_cid(id_format, _cid(cid))
        level = None if d.intent is Intent.CLOSE else d.level
        if row["level"] != level or row["intent"] != d.intent.value:
            out.append(f"order {cid}: row level/intent {row['level']}/{row['intent']}, client id {level}/"
                       f"{d.intent.value}")
    for cid, o in v_orders.items():
        if cid not in rows:
            out.append(f"order {cid}: {o['status']} on the venue, no row in the store")

    # -- fills booked once by trade id --------------------------------------------------------
    stored = _rows(db, "SELECT trade_id, client_id, qty, price FROM fills WHERE strategy = ?", name)
    by_tid: dict[str, list[dict]] = {}
    for f in stored:
        by_tid.setdefault(str(f["trade_id"]), []).append(f)
    for tid, f in v_fills.items():
        got = by_tid.get(tid, [])
        if len(got) != 1:
            out.append(f"fill {tid} ({f['client_id']}): booked {len(got)} times")
        elif _dec(got[0]["qty"]) != Decimal(f["qty"]) or _dec(got[0]["price"]) != Decimal(f["price"]):
            out.append(f"fill {tid}: stored {got[0]['qty']} @ {got[0]['price']}, venue {f['qty']} @ {f['price']}")
    for tid in by_tid:
        if tid not in v_fills:
            out.append(f"fill {tid}: in the store, not a fill of the venue")

    # -- the strategy's state ----------------------------------------------------------------
    st = _rows(db, "SELECT status, stop_reason, grid_json FROM strategies WHERE name = ?", name)
    open_now = {c: o for c, o in v_orders.items() if o["status"] in OPEN_STATUSES}
    if st and st[0]["status"] == "stopped":
        cfg = load(config, check_markets=False).strategies.get(name)
        if open_now:
            out.append(f"stopped with orders open on the venue: {sorted(open_now)}")
        if cfg is not None and cfg.risk.on_stop == "close" and position != 0:
            out.append(f"stopped (on_stop close) but the venue holds {position} steps")
    elif check_desired and st and st[0]["grid_json"]:
        out += _desired_vs_open(config, name, json.loads(st[0]["grid_json"]), db, open_now, rules, id_format,
                                view)
    return out


def _desired_vs_open(config: Path, name: str, grid: dict, db: Path, open_now: dict[str, dict], rules,
                     id_format: str, view: VenueAccountView) -> list[str]:
    """The venue's open orders against what the engine, rebuilt from the store, desires."""
    from gridctl.worker.main import _levels_from_json, _readopt, _stored_fill

    cfg = load(config, check_markets=False)
    s = cfg.strategies[name]
    account = cfg.accounts[s.account]
    params = replace(grid_params(rules, s, grid["start"]), lower=grid["lower"], upper=grid["upper"])
    engine = GridEngine(rules, _levels_from_json(grid), engine_config(rules, s, account, params))
    engine.opened = True
    _, _, _, last = venue_records(view)
    market = last if last is not None else grid["start"]
    _readopt(engine, grid, market)
    for r in _rows(db, "SELECT * FROM fills WHERE strategy = ? AND ts >= ? ORDER BY ts, id", name,
                   grid["started_ts"]):
        r = SimpleNamespace(**{**r, "price": _dec(r["price"]), "qty": _dec(r["qty"]), "fee": _dec(r["fee"]),
                               "maker": bool(r["maker"]), "reduce_only": bool(r["reduce_only"])})
        engine.on_fill(_stored_fill(rules, r))
    if engine.status not in ("running",):
        return []  # waiting for a trigger or paused: the worker leaves the book alone
    actual: dict[tuple, str] = {}
    for cid, o in open_now.items():
        d = decode_cid(id_format, _cid(cid))
        key = (d.intent.value, o["side"], None if o["price"] is None else rules.price_to_ticks(Decimal(o["price"])),
               d.level, rules.qty_to_steps(Decimal(o["qty"]) - Decimal(o["filled"])))
        actual[key] = cid
    working = [k[3] for k in actual if k[0] == "entry"]
    desired = {(d.intent.value, d.side.value, d.price, d.level, d.qty) for d in engine.desired(market, working)}
    out = []
    for key in sorted(set(actual) - desired, key=str):
        out.append(f"open on the venue, not desired: {actual[key]} {key}")
    for key in sorted(desired - set(actual), key=str):
        out.append(f"desired, not on the venue: {key}")
    return out


def _cid(value) -> object:
    text = str(value)
    return int(text) if text.isdigit() else text
