"""`gridctl backtest`."""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import click

from gridctl import datasets
from gridctl.cli.group import cli
from gridctl.cli.common import (
    EXIT_CONFIG, complete_strategy_names, config_option, fail, json_option, merge_window, positive_number_or_exit,
    print_json, strategy_market_or_exit,
)
from gridctl.core.grid import GridError


def parse_date(value: Optional[str], option: str) -> Optional[int]:
    """YYYY-MM-DD or an ISO date-time (UTC unless it says otherwise) → epoch ms."""
    if value is None:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        fail(f"{option} must be a date like 2024-08-01 or 2024-08-01T12:00, got {value!r}", EXIT_CONFIG)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


class Progress:
    """A one-line progress bar on stderr, shown only on a terminal after the first second."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.shown = False
        self.tty = sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        if not self.tty or time.monotonic() - self.t0 < 1:
            return
        self.shown = True
        width = 30
        filled = width * done // max(total, 1)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,} candles")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _check_writable(option: str, path: Path) -> None:
    """Refuse an output path before the run rather than fail after it."""
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir() or not folder.is_dir() or not os.access(folder, os.W_OK):
        fail(f"{option}: cannot write {path} (no such folder, or not writable)", EXIT_CONFIG)


def _data_path(spec: Optional[str], base: Path) -> Optional[Path]:
    if spec is None:
        return None
    p = datasets.resolve(spec, base)
    if not p.is_file():
        fail(f"file not found: {spec}", EXIT_CONFIG)
    return p


def _require_charts() -> None:
    """--html needs plotly (the `charts` extra): say how to install it, before the run."""
    from gridctl.charts import ChartsUnavailable, require_plotly
    try:
        require_plotly()
    except ChartsUnavailable as exc:
        fail(str(exc), EXIT_CONFIG)


@cli.command()
@config_option
@click.argument("name", shell_complete=complete_strategy_names)
@click.option("--data", "data_spec", help="Candles CSV (timestamp_ms,open,high,low,close,volume) or builtin:NAME "
              "(default: the account's feed).")
@click.option("--mark", "mark_spec", help="Mark-price candles CSV (default: the last price).")
@click.option("--funding", "funding_spec", help="Funding-rate CSV (timestamp_ms,rate); default: the account "
              "feed's funding when --data is not given.")
@click.option("--since", "date_from", help="First day or time (UTC), e.g. 2024-08-01.")
@click.option("--until", "date_to", help="End (UTC, exclusive), e.g. 2024-08-03.")
@click.option("--from", "from_alias", hidden=True)  # the old names of --since/--until
@click.option("--to", "to_alias", hidden=True)
@click.option("--balance", type=str, help="Simulated wallet balance (default: the account's).")
@click.option("--reference", is_flag=True, help="Visit every candle (slow; for checking the fast mode).")
@click.option("--trades-csv", type=click.Path(dir_okay=False), help="Write one row per completed cycle.")
@click.option("--fills-csv", type=click.Path(dir_okay=False), help="Write one row per fill.")
@click.option("--html", "html_out", type=click.Path(dir_okay=False),
              help="Write a self-contained HTML chart (price, grid, fills, PnL, drawdown, position per level).")
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False),
              help="Write fills.csv and trades.csv into DIR (created if missing).")
@json_option
def backtest(config_path: str, name: str, data_spec: Optional[str], mark_spec: Optional[str],
             funding_spec: Optional[str], date_from: Optional[str], date_to: Optional[str],
             from_alias: Optional[str], to_alias: Optional[str], balance: Optional[str], reference: bool,
             trades_csv: Optional[str], fills_csv: Optional[str], html_out: Optional[str], out_dir: Optional[str],
             as_json: bool) -> None:
    """Run a strategy exactly as configured over historical candles.

    Within a candle the price path is open→low→high→close for a rising candle and
    open→high→low→close for a falling one; resting orders fill at their price.

    By default the data is the account's feed (its replay file and funding, or the
    same seeded candles a synthetic feed generates); --data overrides it.

    \b
    Example:
        gridctl backtest -c strategies.yaml sol-neutral --json
        gridctl backtest -c strategies.yaml sol-neutral --data builtin:SOLUSDT_1h --html sol.html
        gridctl backtest sol-neutral --data builtin:SOLUSDT_1m --since 2024-08-02 -o out/
    """
    from gridctl.backtest import BacktestInputError, fit_warnings, load_market_data, prepare
    from gridctl.backtest.feed import NoBacktestFeed, account_feed
    from gridctl.backtest.summary import render, summarize, write_fills_csv, write_trades_csv

    from_opt, to_opt = ("--from" if from_alias else "--since"), ("--to" if to_alias else "--until")
    date_from, date_to = merge_window(date_from, date_to, from_alias, to_alias)
    if out_dir is not None:
        try:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            fail(f"-o: cannot create {out_dir}: {exc.strerror}", EXIT_CONFIG)
        fills_csv = fills_csv or str(Path(out_dir) / "fills.csv")
        trades_csv = trades_csv or str(Path(out_dir) / "trades.csv")
    _, s, account, rules = strategy_market_or_exit(config_path, name, "backtest")
    for option, out in (("--fills-csv", fills_csv), ("--trades-csv", trades_csv), ("--html", html_out)):
        if out is not None:
            _check_writable(option, Path(out))
    if html_out is not None:
        _require_charts()
    cwd = Path.cwd()
    bal = positive_number_or_exit(balance, "--balance") if balance is not None else None
    funding = _data_path(funding_spec, cwd)
    file_name: Optional[str] = None
    try:
        if data_spec is not None:
            candles: object = _data_path(data_spec, cwd)
            label = file_name = candles.name  # type: ignore[attr-defined]
        else:
            fd = account_feed(account, rules)
            candles, label = (fd.candles if fd.candles is not None else fd.synthetic), fd.label
            file_name = fd.candles.name if fd.candles is not None else None
            funding = funding if funding is not None else fd.funding
        data = load_market_data(rules, candles, _data_path(mark_spec, cwd),  # type: ignore[arg-type]
                                funding, parse_date(date_from, from_opt), parse_date(date_to, to_opt), label)
        prepared = prepare(rules, s, account, data, bal)
        data.warnings += fit_warnings(prepared, s.symbol, label, file_name)
    except NoBacktestFeed as exc:
        fail(f"{name}: {exc}", EXIT_CONFIG)
    except BacktestInputError as exc:
        fail(str(exc), EXIT_CONFIG)
    except GridError as exc:
        fail(f"{name}: {exc} at the first price of the data", EXIT_CONFIG)
    except (OSError, ValueError) as exc:
        fail(f"cannot read the data: {exc}", EXIT_CONFIG)
    # said before the run (it can take a while), on stderr so --json output stays clean
    for warning in data.warnings:
        click.echo(f"warning: {warning}", err=True)
    bt = prepared.backtest
    bt.run(fast=not reference, progress=Progress())
    figures = summarize(bt, prepared.investment, prepared.interval_ms, prepared.mode, prepared.leverage)
    try:
        if fills_csv:
            write_fills_csv(bt, Path(fills_csv))
        if trades_csv:
            write_trades_csv(bt, Path(trades_csv))
        if html_out:
            from gridctl.charts.backtest import backtest_chart
            Path(html_out).write_text(backtest_chart(name, s.symbol, bt, figures), encoding="utf-8")
            click.echo(f"wrote the chart to {html_out}", err=True)
    except OSError as exc:
        fail(f"cannot write {exc.filename}: {exc.strerror}", EXIT_CONFIG)
    if as_json:
        print_json({"strategy": name, **figures, "warnings": list(data.warnings)})
    else:
        click.echo(render(name, figures))
