"""`gridctl status`: the trader's dashboard, from the database and the running workers.

Database figures are the latest snapshot (written every minute) and say so; with
the supervisor up, its process states (fatal and back-off with their reasons)
and the workers' live figures replace them, and strategies the supervisor knows
but the database does not yet are shown too.
"""

from __future__ import annotations

import os
import shutil
from decimal import Decimal
from typing import Optional

import click

from gridctl.cli.common import (
    EXIT_USAGE, AppContext, complete_strategy_names, config_option, fail, json_option, print_json,
)
from gridctl.cli.group import cli
from gridctl.cli.read_db import _locate, _open_db
from gridctl.store.dashboard import decimal_or_none, derive

LIVE_MONEY = ("price", "position", "exchange_position", "grid_profit", "realized", "unrealized", "fees", "funding",
              "total_pnl", "entry_price", "maintenance_margin_rate", "contract_size", "lower", "upper")
SUPERVISOR_STATES = ("starting", "backoff", "stopping", "exited", "fatal")
ACTIVE = ("starting", "running", "paused", "stopping")
ZERO = Decimal(0)


def _width() -> int:
    """The terminal's width: COLUMNS when set (as a shell exports it), else the tty's, else 80."""
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return shutil.get_terminal_size((80, 24)).columns


@cli.command()
@config_option
@click.argument("name", required=False, shell_complete=complete_strategy_names)
@json_option
@click.option("--wide", is_flag=True, help="Every column, whatever the terminal's width.")
@click.pass_obj
def status(app: AppContext, config_path: str, name: Optional[str], as_json: bool, wide: bool) -> None:
    """State, price, range, position, risk, cycles, PnL, ROI and APR of every strategy (or NAME in detail).

    Read from the database: works with the supervisor down; then every figure is
    the latest snapshot (written every minute) and says how old it is, and a
    worker that is gone shows `down` with stale figures. With the supervisor up,
    figures are live, and fatal / back-off strategies show why. The table fits
    the terminal (COLUMNS honoured; --wide: every column); NAME shows every figure
    and the grid line by line. APR needs a day of history (null before). --json
    prints a list of objects with decimals as strings and times as ISO.

    \b
    Example:
        gridctl status -c strategies.yaml
        gridctl --state-dir /var/lib/gridctl status sol-neutral --json
    """
    from gridctl.store.read import UnknownStrategy, levels_detail, now_ms, status as read_status

    db = _open_db(app, config_path)
    state_dir = _locate(app, config_path)[0]
    now = now_ms()
    sup = _supervisor(state_dir)
    try:
        rows = read_status(db, [name] if name else None, now=now)
    except UnknownStrategy as exc:
        known = {w.get("name") for w in (sup or {}).get("workers", [])}
        if not name or name not in known:
            fail(str(exc), EXIT_USAGE)  # a misspelled name is a usage error
        rows = []
    _mark_remote(rows)
    _overlay_live(rows, state_dir, sup, now, only=name)
    for r in rows:
        derive(r, now)
    legs, resets = _shared_legs(db, rows)
    if as_json:
        print_json([_json_row(r) for r in rows])
        return
    from gridctl.cli import status_view

    if not rows:
        click.echo("no strategies in the database yet")
        return
    if name:
        in_db = rows[0].get("in_database", True)
        click.echo(status_view.detail(rows[0], levels_detail(db, name) if in_db else [], now))
        return
    click.echo(status_view.table(rows, now, _width(), wide))
    for line in status_view.notes(rows):
        click.echo(line)
    from gridctl.cli.legs_view import legs_table, reset_note

    for r in rows:
        if r["name"] in resets:
            click.echo(reset_note(r["name"], resets[r["name"]]))
    for line in legs_table(legs):
        click.echo(line)


def _shared_legs(db, rows: list[dict]) -> tuple[list[dict], dict]:
    """Several strategies on one account's leg (gridctl.core.virtual): the legs checked, and the
    strategies' reset marks; put on each row too (`shared_legs`, `position_reset`, for --json)."""
    from gridctl.store.virtual_read import account_legs, accounts_of, resets as read_resets

    try:
        legs, resets, accounts = account_legs(db), read_resets(db), accounts_of([r["name"] for r in rows])
    except Exception:  # an older database, or one that is busy: the table above is the status
        return [], {}
    for r in rows:
        r["position_reset"] = resets.get(r["name"])
        r["shared_legs"] = [g for g in legs if g["symbol"] == r.get("symbol") and g["account"] == accounts.get(r["name"])]
    return legs, resets


def _json_row(r: dict) -> dict:
    """A row for --json: times also as ISO (as_of, started), db_unavailable_since as ISO or null."""
    from gridctl.store.read import iso

    out = {k: v for k, v in r.items() if k != "in_database"}
    out["as_of"] = iso(r.get("as_of_ts")) or None
    out["started"] = iso(r.get("started_ts")) or None
    out["db_unavailable_since"] = iso(r.get("db_unavailable_since")) or None
    return out


def _mark_remote(rows: list[dict]) -> None:
    """A strategy another host runs (a shared database): `remote`, shown from the database as
    it is, never judged by this host's supervisor or PID files."""
    from gridctl.process.host import host_name

    here = host_name()
    for r in rows:
        r["remote"] = bool(r.get("host")) and r["host"] != here


def _supervisor(state_dir) -> Optional[dict]:
    from gridctl.control import client

    return client.supervisor_status(state_dir, timeout=2.0)


def _empty_row(w: dict) -> dict:
    """A strategy the supervisor knows and the database does not (it failed before writing)."""
    return {"name": w["name"], "symbol": None, "state": w.get("state", "unknown"), "price": None,
            "position": ZERO, "exchange_position": None, "open_buys": 0, "open_sells": 0, "grid_profit": ZERO,
            "realized": ZERO, "unrealized": ZERO, "fees": ZERO, "funding": ZERO, "total_pnl": ZERO,
            "equity": None, "as_of_ts": None, "stale": False, "entry_price": None, "mode": None, "lower": None,
            "upper": None, "grids": None, "levels": 0, "investment": None, "leverage": None, "cycles": 0,
            "cycles_24h": 0, "uptime_s": None, "pid": w.get("pid"), "started_ts": None, "stop_reason": None,
            "last_error": None, "db_unavailable_since": None, "in_database": False, "host": _here(),
            "remote": False}


def _here() -> str:
    from gridctl.process.host import host_name

    return host_name()


def _overlay_live(rows: list[dict], state_dir, sup: Optional[dict], now: int, only: Optional[str] = None) -> None:
    """With the supervisor up, its process states and the workers' live figures; else mark dead workers.

    The database holds the last snapshot (every minute); a running worker knows
    the current price and PnL (as of now). A worker in backoff or fatal shows why.
    """
    for row in rows:
        row.setdefault("exchange_position", None)  # known only from a running worker
        row.update(live=False, reason=None, restarts=None)
    if not sup:
        _mark_dead_workers(rows, state_dir)
        return
    by_name = {r["name"]: r for r in rows}
    for w in sup.get("workers", []):
        if not w.get("name") or (only and w["name"] != only):
            continue
        row = by_name.get(w["name"])
        if row is not None and row.get("remote"):
            continue  # the same name on another host (this host's worker refused to run it)
        if row is None:
            row = by_name[w["name"]] = _empty_row(w)
            row.update(live=False, reason=None)
            rows.append(row)
        row["restarts"] = w.get("restarts")
        row["pid"] = w.get("pid") or row.get("pid")
        live = w.get("worker") or {}
        state = w.get("state", row["state"])
        if state in SUPERVISOR_STATES or not live:
            row["state"] = state
            if w.get("reason") and state in ("backoff", "fatal", "exited"):
                row["reason"] = row["last_error"] = w["reason"]
            if state not in ACTIVE:
                row["uptime_s"] = None  # no process: nothing is up
        else:
            row["state"] = live.get("state", row["state"])
        if live:
            row["live"] = True
            row["as_of_ts"] = live.get("as_of_ts") or now
        for key in LIVE_MONEY:
            if live.get(key) is not None:
                row[key] = decimal_or_none(live[key])
        if isinstance(live.get("stops"), dict):
            row["stops"] = live["stops"]
        for key in ("open_buys", "open_sells", "uptime_s"):
            if live.get(key) is not None:
                row[key] = live[key]
        since = live.get("db_unavailable_since")
        if isinstance(since, (int, float)) and not isinstance(since, bool):
            row["db_unavailable_since"] = int(since)
    rows.sort(key=lambda r: r["name"])


def _mark_dead_workers(rows: list[dict], state_dir) -> None:
    """Supervisor down: a strategy the database calls active whose worker process is
    gone is shown as 'down' (workers keep trading without the supervisor; this tells
    the operator which ones do not). Its figures are stale, and its uptime stops at
    its last snapshot (the last sign of life) instead of counting on."""
    from gridctl.process.paths import StatePaths
    from gridctl.process.pidfile import lock_owner

    paths = StatePaths(state_dir)
    for row in rows:
        if row["state"] in ACTIVE and not row.get("remote"):
            # alive only if some process is proven to hold its lock: the PID file may name anyone
            if not lock_owner(paths.worker_pid(row["name"])):
                row["state"] = "down"
                row["stale"] = True
                start, seen = row.get("started_ts"), row.get("as_of_ts")
                row["uptime_s"] = max(0, (seen - start) // 1000) if start is not None and seen is not None else None
