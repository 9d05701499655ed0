"""`gridctl logs`, `export` and `report` (and `status`, in status_cmd.py): read the database, never an exchange.

They work with no supervisor running. The database is found through the
config's state_dir/database (`-c FILE`) or the global `--state-dir`.
"""

from __future__ import annotations

import csv
import re
import sys
import time
from decimal import Decimal
from typing import Any, Iterable, Optional

import click

from gridctl.cli.group import cli
from gridctl.cli.common import (
    EXIT_USAGE, AppContext, complete_strategy_names, config_option, fail, json_option, merge_window, parse_when, time_window_options, window_ms,
)
from gridctl.cli.read_db import _exists, _locate, _open_db, _unknown  # noqa: F401

FOLLOW_POLL_S = 0.5
# A plain decimal number: left alone by the formula escaping, so -1.5 stays a number.
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


__all__ = ["parse_when", "escape_cell"]  # parse_when lives in cli/common.py now


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


def _quiet_broken_pipe() -> None:
    import os

    # Point stdout at /dev/null so the interpreter's final flush does not complain.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(0)


def _types(values: Iterable[str]) -> list[str]:
    from gridctl.store.models import EVENT_TYPES

    out = [t.strip().lower() for v in values for t in v.split(",") if t.strip()]
    bad = [t for t in out if t not in EVENT_TYPES]
    if bad:
        raise click.BadParameter(f"unknown type {', '.join(bad)}; types: {', '.join(EVENT_TYPES)}",
                                 param_hint="--type")
    return out


def _event_json(e: dict) -> str:
    """One event as a JSON line (decimals as strings, ts in epoch ms plus ISO time)."""
    import json

    from gridctl.cli.common import _default
    from gridctl.store.read import iso

    return json.dumps({**e, "time": iso(e["ts"])}, default=_default)


def _event_line(e: dict) -> str:
    from gridctl.store.read import iso

    lvl = f"L{e['level']}" if e["level"] is not None else "-"
    return f"{iso(e['ts'])}  {e['type']:<6} {lvl:>4}  {e['message']}"


@cli.command()
@config_option
@click.argument("name", shell_complete=complete_strategy_names)
@time_window_options
@click.option("--type", "types", multiple=True,
              help="Only these types (repeat or comma-separate): info, warn, error, order, fill, trade, "
                   "status, risk, price, pnl, config.")
@click.option("--grep", help="Only events whose message contains TEXT (case-insensitive).")
@click.option("-n", "--lines", type=click.IntRange(min=0),
              help="Show the last N events (default: 100 without --since, all with it).")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new events until Ctrl-C.")
@json_option
@click.pass_obj
def logs(app: AppContext, config_path: str, name: str, since: Optional[str], until: Optional[str],
         since_alias: Optional[str], until_alias: Optional[str], types: tuple[str, ...],
         grep: Optional[str], lines: Optional[int], follow: bool, as_json: bool) -> None:
    """A strategy's events (orders, fills, trades, risk, config, errors) in time order.

    --json prints one JSON object per line (JSON Lines, also with --follow).

    \b
    Example:
        gridctl logs sol-neutral --since 1h --type fill
        gridctl logs sol-neutral --grep rejected --follow
    """
    from gridctl.store.read import events, last_event_id, now_ms

    type_list = _types(types)
    since, until = merge_window(since, until, since_alias, until_alias)
    since_ms, until_ms = window_ms(since, until, now_ms())
    limit = lines if lines is not None else (None if since else 100)
    db = _open_db(app, config_path)
    last_id = _unknown(last_event_id, db, name)
    rows = _unknown(events, db, name, since_ms=since_ms, types=type_list, grep=grep, limit=limit,
                    until_ms=until_ms)
    show = _event_json if as_json else _event_line
    for e in rows:
        if e["id"] <= last_id:
            click.echo(show(e))
    if not follow:
        return
    try:
        while True:
            sys.stdout.flush()
            time.sleep(FOLLOW_POLL_S)
            for e in events(db, name, types=type_list, grep=grep, after_id=last_id):
                click.echo(show(e))
                last_id = max(last_id, e["id"])
    except BrokenPipeError:
        _quiet_broken_pipe()


@cli.command()
@config_option
@click.argument("name", shell_complete=complete_strategy_names)
@click.argument("kind", type=click.Choice(["orders", "fills", "trades", "events", "equity", "funding"]))
@time_window_options
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True),
              help="Write to FILE instead of stdout.")
@click.pass_obj
def export(app: AppContext, config_path: str, name: str, kind: str, since: Optional[str], until: Optional[str],
           since_alias: Optional[str], until_alias: Optional[str], output: Optional[str]) -> None:
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

    since_ms, until_ms = window_ms(*merge_window(since, until, since_alias, until_alias), now_ms())
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
@click.argument("names", nargs=-1, shell_complete=complete_strategy_names)
@click.option("--since", help="Start of the window: 1h, 1d, 7d, 30d, all, any duration ago (2h, 14d) or an "
                              "ISO date/time (UTC).  [default: 1d]")
@click.option("--until", help="End of the window (default: now): a duration ago or an ISO date/time (UTC).")
@click.option("--period", type=click.Choice(["1h", "1d", "7d", "30d", "all"]), hidden=True)  # old name of --since
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "md"]), default="table",
              show_default=True, help="Output format.")
@json_option
@click.option("--by", "by", type=click.Choice(["day"]),
              help="One row per strategy and UTC day: PnL split, cycles, end-of-day position.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True),
              help="Write to FILE instead of stdout.")
@click.option("--html", "html_out", type=click.Path(dir_okay=False),
              help="Also write a self-contained HTML chart of ONE strategy (price, grid, fills, PnL, drawdown, "
                   "position per level).")
@click.pass_obj
def report(app: AppContext, config_path: str, names: tuple[str, ...], since: Optional[str], until: Optional[str],
           period: Optional[str], fmt: str, as_json: bool, by: Optional[str], output: Optional[str],
           html_out: Optional[str]) -> None:
    """Performance of strategies (default: all) over a window (default: the last day).

    Trades, fills, cancels, fill rate, time to fill, win rate, cycle profits, hold
    time, grid profit, realized/unrealized PnL, fees, funding, total, grid yield
    per day, max drawdown, position size, stop-losses and position by level.
    --json is --format json. --by day: one row per strategy and UTC day instead
    (grid profit, other realized, fees, funding, unrealized change, total,
    cycles, end position; fixed windows 1h/1d/7d/30d/all).

    \b
    Example:
        gridctl report --since 7d
        gridctl report sol-neutral sol-long --since 30d --format csv -o month.csv
        gridctl report sol-neutral --since all --html sol.html
        gridctl report --since 30d --by day
    """
    from gridctl.report import PERIODS, render, report as build
    from gridctl.store.read import now_ms

    since, _ = merge_window(since, None, period, None)
    now = now_ms()
    until_ms = parse_when(until, now) if until else None
    since = since or "1d"
    fixed = since in PERIODS
    since_ms = None if fixed else parse_when(since, now)
    if html_out is not None:
        from gridctl.charts import ChartsUnavailable, require_plotly
        if len(names) != 1:
            fail("--html draws one strategy: name it, e.g. gridctl report sol-neutral --html sol.html", EXIT_USAGE)
        try:
            require_plotly()
        except ChartsUnavailable as exc:
            fail(str(exc), EXIT_USAGE)
    db = _open_db(app, config_path)
    if by == "day":
        from gridctl.report_daily import daily, render_daily

        if not fixed or until_ms is not None:
            fail("--by day takes a fixed window: --since 1h, 1d, 7d, 30d or all", EXIT_USAGE)
        rep = _unknown(daily, db, list(names) or None, since)
        text = render_daily(rep, "json" if as_json else fmt)
    else:
        rep = _unknown(build, db, list(names) or None, since if fixed else "1d", until_ms, since_ms=since_ms)
        text = render(rep, "json" if as_json else fmt)
    if html_out is not None:
        from gridctl.charts.report import report_chart
        from gridctl.report import title
        if by == "day":
            fail("--html goes with the plain report, not --by day", EXIT_USAGE)
        try:
            with open(html_out, "w", encoding="utf-8") as f:
                f.write(report_chart(db, names[0], rep["from_ts"], rep["to_ts"], f"{names[0]} · {title(rep)}"))
        except OSError as exc:
            fail(f"cannot write {html_out}: {exc.strerror}", EXIT_USAGE)
        click.echo(f"wrote the chart to {html_out}", err=True)
    if output:
        with open(output, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        click.echo(f"wrote the report to {output}", err=True)
    else:
        click.echo(text, nl=False)


# `status` lives in its own module; importing it here registers it with the other read commands.
from gridctl.cli import status_cmd  # noqa: E402,F401
