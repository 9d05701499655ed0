"""`gridctl sweep`: many variants of one strategy backtested, ranked by a figure."""

from __future__ import annotations

import csv
import io
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Optional

import click

from gridctl.cli.backtest_cmd import _data_path, parse_date
from gridctl.cli.common import (
    EXIT_CONFIG, EXIT_RUNTIME, complete_strategy_names, config_option, fail, json_option, merge_window,
    positive_number_or_exit, print_json, strategy_market_or_exit,
)
from gridctl.cli.group import cli
from gridctl.sweep.rank import SORT_KEYS


def _load_data(name, rules, account, data_spec, mark_spec, funding_spec, since, until, from_opt, to_opt):
    """The market data and how to name it, exactly as `gridctl backtest` loads it."""
    from gridctl.backtest import BacktestInputError, load_market_data
    from gridctl.backtest.feed import NoBacktestFeed, account_feed

    cwd = Path.cwd()
    funding = _data_path(funding_spec, cwd)
    file_name: Optional[str] = None
    try:
        if data_spec is not None:
            candles: Any = _data_path(data_spec, cwd)
            label = file_name = candles.name
        else:
            fd = account_feed(account, rules)
            candles, label = (fd.candles if fd.candles is not None else fd.synthetic), fd.label
            file_name = fd.candles.name if fd.candles is not None else None
            funding = funding if funding is not None else fd.funding
        data = load_market_data(rules, candles, _data_path(mark_spec, cwd), funding,
                                parse_date(since, from_opt), parse_date(until, to_opt), label)
    except NoBacktestFeed as exc:
        fail(f"{name}: {exc}", EXIT_CONFIG)
    except BacktestInputError as exc:
        fail(str(exc), EXIT_CONFIG)
    except (OSError, ValueError) as exc:
        fail(f"cannot read the data: {exc}", EXIT_CONFIG)
    return data, label, file_name


def _progress(total: int, show: bool):
    """click's progress bar on stderr, or nothing."""
    if not show:
        return nullcontext(None)
    return click.progressbar(length=total, label="backtests", file=sys.stderr, show_pos=True)


@cli.command()
@config_option
@click.argument("name", shell_complete=complete_strategy_names)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUES",
              help="A strategy key and its values: KEY=V1,V2,... or KEY=FROM:TO:STEP (repeat for more keys; "
                   "risk keys as risk.KEY).")
@click.option("--data", "data_spec", help="Candles CSV or builtin:NAME (default: the account's feed).")
@click.option("--mark", "mark_spec", help="Mark-price candles CSV (default: the last price).")
@click.option("--funding", "funding_spec", help="Funding-rate CSV (timestamp_ms,rate).")
@click.option("--since", "date_from", help="First day or time (UTC), e.g. 2024-08-01.")
@click.option("--until", "date_to", help="End (UTC, exclusive), e.g. 2024-08-03.")
@click.option("--from", "from_alias", hidden=True)
@click.option("--to", "to_alias", hidden=True)
@click.option("--balance", type=str, help="Simulated wallet balance (default: the account's).")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Processes to run on (default: one per core).")
@click.option("--cluster", metavar="tcp://HOST:PORT",
              help="Run on a Dask distributed cluster (pip install 'gridctl[cluster]').")
@click.option("--top", type=click.IntRange(min=1), help="Show only the K best.")
@click.option("--sort", "sort_by", type=click.Choice(SORT_KEYS), default="total_pnl", show_default=True,
              help="The figure to rank by: gains high to low, max_drawdown, fees, rejects and positions "
                   "low to high.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV rows instead of a table.")
@json_option
def sweep(config_path: str, name: str, sets: tuple[str, ...], data_spec: Optional[str], mark_spec: Optional[str],
          funding_spec: Optional[str], date_from: Optional[str], date_to: Optional[str], from_alias: Optional[str],
          to_alias: Optional[str], balance: Optional[str], jobs: Optional[int], cluster: Optional[str],
          top: Optional[int], sort_by: str, as_csv: bool, as_json: bool) -> None:
    """Backtest every combination of the given values of a strategy's keys and rank them.

    Each candidate is the strategy NAME with the --set keys changed, validated as
    `gridctl validate` would (an invalid one is listed with its reason and not run),
    then backtested in fast mode on the same data as `gridctl backtest` would use.
    The table shows the main figures; --json (a list of objects with rank, the swept
    keys and every backtest figure) and --csv carry them all. A swept key named like a
    figure (max_position) is written set.max_position there. Sweeping range_pct drops
    lower/upper from the strategy, and investment drops amount (and back).

    \b
    Example:
        gridctl sweep -c strategies.yaml sol-neutral --data builtin:SOLUSDT_1m \\
            --set grids=6:20:2 --set leverage=1,2,3 --top 5
        gridctl sweep sol-neutral --set risk.stop_loss_pct=2,5,10 --sort max_drawdown --json
        gridctl sweep sol-neutral --set spacing=arithmetic,geometric --cluster tcp://scheduler:8786
    """
    from gridctl.sweep.candidates import CandidateBuilder, candidates
    from gridctl.sweep.rank import ranked, row, table_header, table_row
    from gridctl.sweep.run import Market, default_jobs, run_local
    from gridctl.sweep.spec import SweepSpecError, parse_sets

    if as_json and as_csv:
        fail("give only one of --json and --csv", EXIT_CONFIG)
    if cluster and jobs:
        fail("give --jobs or --cluster, not both (the cluster's workers decide how many run at once)", EXIT_CONFIG)
    try:
        axes = parse_sets(list(sets))
    except SweepSpecError as exc:
        fail(str(exc), EXIT_CONFIG)
    from_opt, to_opt = ("--from" if from_alias else "--since"), ("--to" if to_alias else "--until")
    date_from, date_to = merge_window(date_from, date_to, from_alias, to_alias)
    config, s, account, rules = strategy_market_or_exit(config_path, name, "sweep")
    bal = positive_number_or_exit(balance, "--balance") if balance is not None else None
    data, label, file_name = _load_data(name, rules, account, data_spec, mark_spec, funding_spec, date_from, date_to,
                                        from_opt, to_opt)
    for warning in data.warnings:
        click.echo(f"warning: {warning}", err=True)
    builder = CandidateBuilder(Path(config_path), name, bal)
    cands = candidates(builder, axes, rules, int(data.open[0]))
    valid = [c for c in cands if c.strategy is not None]
    market = Market(rules, builder.account(s, config.accounts), label, file_name)
    work = [(c.index, c.strategy) for c in valid]
    processes = jobs or default_jobs()
    with _progress(len(work), sys.stderr.isatty() and not as_json and bool(work)) as bar:
        step = bar.update if bar is not None else None
        if cluster and work:
            from gridctl.sweep.cluster import ClusterError, run_on_cluster
            try:
                outcomes = run_on_cluster(cluster, data, market, work, step)
            except ClusterError as exc:
                fail(str(exc), EXIT_CONFIG)
        else:
            outcomes = run_local(data, market, work, processes, step)
    by_index = {o.index: o for o in outcomes}
    best = ranked(outcomes, sort_by)[:top] if top else ranked(outcomes, sort_by)
    failed = [c for c in valid if by_index[c.index].figures is None]
    not_run = [c for c in cands if c.strategy is None] + failed
    keys = [a.key for a in axes]
    if as_json or as_csv:
        objects = [row(i, cands[o.index], o) for i, o in enumerate(best, 1)]
        objects += [row(None, c, by_index.get(c.index)) for c in not_run]
        if as_json:
            print_json(objects)
        else:
            click.echo(_csv(objects), nl=False)
    else:
        _print_table(best, cands, keys, table_header, table_row, sort_by)
        for o in best:  # the data's own warnings were said before the run
            for w in o.warnings[len(data.warnings):]:
                click.echo(f"warning: {cands[o.index].label()}: {w}", err=True)
        if not_run:
            click.echo(f"{chr(10) if best else ''}not run ({len(not_run)}):")
            for c in not_run:
                reason = c.error if c.error is not None else by_index[c.index].error
                click.echo(f"  {c.label()}: {reason}")
    if not valid:
        fail(f"none of the {len(cands)} candidates is valid", EXIT_CONFIG)
    if failed:
        fail(f"{len(failed)} of {len(valid)} backtests failed", EXIT_RUNTIME)


def _print_table(best, cands, keys, header, table_row, sort_by: str) -> None:
    from tabulate import tabulate

    if not best:
        return
    rows = [table_row(i, cands[o.index], o) for i, o in enumerate(best, 1)]
    click.echo(f"ranked by {sort_by}")
    click.echo(tabulate(rows, headers=header(keys), disable_numparse=True, stralign="right"))


def _csv(objects: list[dict]) -> str:
    """The result objects as CSV: one column per key of any object (nested values as text)."""
    columns: list[str] = []
    for o in objects:
        columns += [k for k in o if k not in columns]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    for o in objects:
        w.writerow({k: _cell(v) for k, v in o.items()})
    return buf.getvalue()


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, dict):
        return "; ".join(f"{k} {n}" for k, n in v.items())
    if isinstance(v, list):
        return " | ".join(map(str, v))
    return v
