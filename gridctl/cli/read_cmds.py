"""`gridctl status`, `logs`, `export` and `report`: read the database, never an exchange.

They work with no supervisor running. The database is found through the
config's state_dir/database (`-c FILE`) or the global `--state-dir`.
"""

from __future__ import annotations

import csv
import re
import sys
import time
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Iterable, Optional

import click
from click.core import ParameterSource
from tabulate import tabulate

from gridctl.cli.group import cli
from gridctl.cli.common import AppContext, config_option, fail, json_option, load_config_or_exit, print_json

FOLLOW_POLL_S = 0.5
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
# A plain decimal number: left alone by the formula escaping, so -1.5 stays a number.
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def parse_when(text: str, now_ms: int) -> int:
    """A duration ago (30m, 1h, 7d; also s, ms, w) or an ISO date/time (UTC unless it has an offset)."""
    text = text.strip()
    m = _DURATION.match(text)
    if m:
        return now_ms - int(Decimal(m.group(1)) * _UNIT_MS[m.group(2)])
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{text!r} is neither a duration like 30m, 1h, 7d nor an ISO date/time "
                                 f"like 2024-08-01 or 2024-08-01T12:00") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


def escape_cell(value: Any) -> str:
    """A CSV cell that a spreadsheet will not run as a formula.

    Text starting with = + - @ TAB or CR gets a leading single quote, except a plain
    decimal number (-1.5, +2, 1E-8): those stay numbers, since a negative PnL is
    common and harmless, and quoting it would break every sum in the sheet.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    s = format(value, "f") if isinstance(value, Decimal) else str(value)
    if s.startswith(_FORMULA_START) and not _NUMBER.match(s):
        return "'" + s
    return s


def _locate(app: AppContext, config_path: str):
    """(state dir, database URL) for this invocation."""
    ctx = click.get_current_context()
    explicit = ctx.get_parameter_source("config_path") not in (ParameterSource.DEFAULT, None)
    config = None
    # --state-dir alone is enough; the config is read when given or when ./strategies.yaml is there.
    if explicit or (not app.state_dir_option and _exists(config_path)):
        config = load_config_or_exit(config_path, check_markets=False)
    return app.state_dir(config), (config.database if config is not None else None)


def _open_db(app: AppContext, config_path: str):
    """The database for this invocation, or a clear error and exit 1."""
    from peewee import PeeweeException

    from gridctl.store.db import NoDatabase, open_database

    state_dir, url = _locate(app, config_path)
    try:
        return open_database(state_dir, url=url, create=False)
    except NoDatabase as exc:
        fail(str(exc))
    except (PeeweeException, OSError) as exc:
        fail(f"cannot open the gridctl database in {state_dir if not url else 'the configured database'}: {exc}")


def _exists(path: str) -> bool:
    import os

    return os.path.isfile(path)


def _unknown(fn, *args, **kw):
    """Call a read function, turning an unknown strategy into a clear error."""
    from gridctl.store.read import UnknownStrategy

    try:
        return fn(*args, **kw)
    except UnknownStrategy as exc:
        fail(str(exc))


def _quiet_broken_pipe() -> None:
    import os

    # Point stdout at /dev/null so the interpreter's final flush does not complain.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(0)


def _uptime(seconds: Optional[int]) -> str:
    if seconds is None:
        return "-"
    d, rem = divmod(seconds, 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    return f"{d}d {h:02d}h" if d else (f"{h}h {m:02d}m" if h else f"{m}m {s:02d}s")


def _short(text: Optional[str], width: int = 48) -> str:
    if not text:
        return ""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


@cli.command()
@config_option
@click.argument("name", required=False)
@json_option
@click.pass_obj
def status(app: AppContext, config_path: str, name: Optional[str], as_json: bool) -> None:
    """State, price, position, open orders and PnL of every strategy (or NAME).

    Read from the database: works with the supervisor down. PnL is as of the
    latest equity snapshot (written every minute). A running worker that cannot
    write to the database says since when (its orders and fills wait in memory or
    in the state dir's journal). --json prints a list of objects with decimals as
    strings and db_unavailable_since as ISO time or null.

    \b
    Example:
        gridctl status -c strategies.yaml
        gridctl --state-dir /var/lib/gridctl status sol-neutral --json
    """
    from gridctl.store.read import status as read_status

    db = _open_db(app, config_path)
    rows = _unknown(read_status, db, [name] if name else None)
    _overlay_live(rows, _locate(app, config_path)[0])
    if as_json:
        from gridctl.store.read import iso

        for r in rows:
            r["db_unavailable_since"] = iso(r["db_unavailable_since"]) or None
        print_json(rows)
        return
    if not rows:
        click.echo("no strategies in the database yet")
        return
    def d(v: Optional[Decimal]) -> str:
        return "-" if v is None else format(v, "f")

    def money(v: Optional[Decimal]) -> str:
        # the table shows money to 4 decimals; --json keeps every digit
        return "-" if v is None else format(v.quantize(Decimal("0.0001")), "f")

    def position(r: dict) -> str:
        # the ledger's position, and the exchange's beside it when they differ (never overwritten)
        ex = r.get("exchange_position")
        if ex is None or ex == r["position"]:
            return d(r["position"])
        return f"{d(r['position'])} (exchange {d(ex)})"

    table = [[r["name"], r["state"], d(r["price"]), position(r), r["open_buys"], r["open_sells"],
              money(r["grid_profit"]), money(r["realized"]), money(r["unrealized"]), money(r["fees"]),
              money(r["funding"]), money(r["total_pnl"]), _uptime(r["uptime_s"]),
              _short(r["last_error"] or r["stop_reason"])] for r in rows]
    click.echo(tabulate(table, headers=["strategy", "state", "price", "position", "buys", "sells", "grid profit",
                                        "realized", "unrealized", "fees", "funding", "total PnL", "uptime",
                                        "last error / stop reason"],
                        disable_numparse=True, stralign="right"))
    # below the table, not a column: rare, and it must not be cut short like the last error
    from gridctl.store.read import iso

    for r in rows:
        if r["db_unavailable_since"] is not None:
            click.echo(f"{r['name']}: database unavailable since {iso(r['db_unavailable_since'])}")


LIVE_MONEY = ("price", "position", "exchange_position", "grid_profit", "realized", "unrealized", "fees", "funding", "total_pnl")
SUPERVISOR_STATES = ("starting", "backoff", "stopping", "exited", "fatal")


def _overlay_live(rows: list[dict], state_dir) -> None:
    """With the supervisor up, show its process states and the workers' live figures.

    The database holds the last snapshot (every minute); a running worker knows
    the current price and PnL. A worker in backoff or fatal shows why.
    """
    from gridctl.control.client import supervisor_status

    for row in rows:
        row.setdefault("exchange_position", None)
    sup = supervisor_status(state_dir, timeout=2.0)
    if not sup:
        _mark_dead_workers(rows, state_dir)
        return
    by_name = {r["name"]: r for r in rows}
    for w in sup.get("workers", []):
        row = by_name.get(w.get("name"))
        if row is None:
            continue
        live = w.get("worker") or {}
        if w.get("state") in SUPERVISOR_STATES or not live:
            row["state"] = w.get("state", row["state"])
            if w.get("reason") and w.get("state") in ("backoff", "fatal", "exited"):
                row["last_error"] = w["reason"]
        else:
            row["state"] = live.get("state", row["state"])
        for key in LIVE_MONEY:
            if live.get(key) is not None:
                row[key] = Decimal(str(live[key]))
        for key in ("open_buys", "open_sells", "uptime_s"):
            if live.get(key) is not None:
                row[key] = live[key]
        since = live.get("db_unavailable_since")
        if isinstance(since, (int, float)) and not isinstance(since, bool):
            row["db_unavailable_since"] = int(since)


def _mark_dead_workers(rows: list[dict], state_dir) -> None:
    """Supervisor down: a strategy the database calls active whose worker process is
    gone is shown as 'down' (workers keep trading without the supervisor; this tells
    the operator which ones do not)."""
    from gridctl.process.paths import StatePaths
    from gridctl.process.pidfile import pid_alive, read_pid

    paths = StatePaths(state_dir)
    for row in rows:
        if row["state"] in ("starting", "running", "paused", "stopping"):
            pid = read_pid(paths.worker_pid(row["name"]))
            if not (pid and pid_alive(pid)):
                row["state"] = "down"


def _types(values: Iterable[str]) -> list[str]:
    from gridctl.store.models import EVENT_TYPES

    out = [t.strip().lower() for v in values for t in v.split(",") if t.strip()]
    bad = [t for t in out if t not in EVENT_TYPES]
    if bad:
        raise click.BadParameter(f"unknown type {', '.join(bad)}; types: {', '.join(EVENT_TYPES)}",
                                 param_hint="--type")
    return out


def _event_line(e: dict) -> str:
    from gridctl.store.read import iso

    lvl = f"L{e['level']}" if e["level"] is not None else "-"
    return f"{iso(e['ts'])}  {e['type']:<6} {lvl:>4}  {e['message']}"


@cli.command()
@config_option
@click.argument("name")
@click.option("--since", help="Only events since a duration ago (30m, 1h, 7d) or an ISO date/time (UTC).")
@click.option("--type", "types", multiple=True,
              help="Only these types (repeat or comma-separate): info, warn, error, order, fill, trade, "
                   "status, risk, price, pnl.")
@click.option("--grep", help="Only events whose message contains TEXT (case-insensitive).")
@click.option("-n", "--lines", type=click.IntRange(min=0),
              help="Show the last N events (default: 100 without --since, all with it).")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new events until Ctrl-C.")
@click.pass_obj
def logs(app: AppContext, config_path: str, name: str, since: Optional[str], types: tuple[str, ...],
         grep: Optional[str], lines: Optional[int], follow: bool) -> None:
    """A strategy's events (orders, fills, trades, risk, errors) in time order.

    \b
    Example:
        gridctl logs sol-neutral --since 1h --type fill
        gridctl logs sol-neutral --grep rejected --follow
    """
    from gridctl.store.read import events, last_event_id, now_ms

    type_list = _types(types)
    since_ms = parse_when(since, now_ms()) if since else None
    limit = lines if lines is not None else (None if since else 100)
    db = _open_db(app, config_path)
    last_id = _unknown(last_event_id, db, name)
    rows = _unknown(events, db, name, since_ms=since_ms, types=type_list, grep=grep, limit=limit)
    for e in rows:
        if e["id"] <= last_id:
            click.echo(_event_line(e))
    if not follow:
        return
    try:
        while True:
            sys.stdout.flush()
            time.sleep(FOLLOW_POLL_S)
            for e in events(db, name, types=type_list, grep=grep, after_id=last_id):
                click.echo(_event_line(e))
                last_id = max(last_id, e["id"])
    except KeyboardInterrupt:
        return
    except BrokenPipeError:
        _quiet_broken_pipe()


@cli.command()
@config_option
@click.argument("name")
@click.argument("kind", type=click.Choice(["orders", "fills", "trades", "events", "equity", "funding"]))
@click.option("--since", help="From a duration ago (30m, 1h, 7d) or an ISO date/time (UTC).")
@click.option("--until", help="Up to (not including) a duration ago or an ISO date/time (UTC).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True),
              help="Write to FILE instead of stdout.")
@click.pass_obj
def export(app: AppContext, config_path: str, name: str, kind: str, since: Optional[str], until: Optional[str],
           output: Optional[str]) -> None:
    """Export one table of a strategy as CSV (stdout by default).

    Times are epoch ms plus ISO 8601 UTC columns; money, prices and quantities are
    exact decimals. Text cells that start with = + - @ are prefixed with ' so a
    spreadsheet does not run them as formulas; plain numbers such as -1.5 are not.

    \b
    Example:
        gridctl export sol-neutral fills --since 7d -o fills.csv
        gridctl export sol-neutral trades --since 2024-08-01 --until 2024-08-02
    """
    from gridctl.store.read import export as read_export, now_ms

    now = now_ms()
    since_ms = parse_when(since, now) if since else None
    until_ms = parse_when(until, now) if until else None
    db = _open_db(app, config_path)
    header, rows = _unknown(read_export, db, name, kind, since_ms, until_ms)
    out = open(output, "w", newline="", encoding="utf-8") if output else sys.stdout
    n = 0
    try:
        w = csv.writer(out, lineterminator="\n")
        w.writerow(header)
        for row in rows:
            w.writerow([escape_cell(v) for v in row])
            n += 1
        out.flush()
    except BrokenPipeError:  # `gridctl export ... | head`: the reader is done, so are we
        _quiet_broken_pipe()
    finally:
        if output:
            out.close()
    if output:
        click.echo(f"wrote {n} {kind} rows to {output}", err=True)


@cli.command()
@config_option
@click.argument("names", nargs=-1)
@click.option("--period", type=click.Choice(["1h", "1d", "7d", "30d", "all"]), default="1d", show_default=True,
              help="The time window ending now.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "md"]), default="table",
              show_default=True, help="Output format.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True),
              help="Write to FILE instead of stdout.")
@click.pass_obj
def report(app: AppContext, config_path: str, names: tuple[str, ...], period: str, fmt: str,
           output: Optional[str]) -> None:
    """Performance of strategies (default: all) over a period.

    Trades, fills, cancels, fill rate, time to fill, win rate, cycle profits, hold
    time, grid profit, realized/unrealized PnL, fees, funding, total, grid yield
    per day, max drawdown, position size, stop-losses and position by level.

    \b
    Example:
        gridctl report --period 7d
        gridctl report sol-neutral sol-long --period 30d --format csv -o month.csv
    """
    from gridctl.report import render, report as build

    db = _open_db(app, config_path)
    text = render(_unknown(build, db, list(names) or None, period), fmt)
    if output:
        with open(output, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        click.echo(f"wrote the report to {output}", err=True)
    else:
        click.echo(text, nl=False)
