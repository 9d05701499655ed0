"""The worker process entry point: one strategy, one process, one lock.

Exit codes the supervisor understands: 0 stopped, 75 already running,
77 authentication refused, 78 configuration unusable; anything else is a crash.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import signal
import sys
import time
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Optional

from peewee import PeeweeException

from gridctl.config import ConfigError, load
from gridctl.config.model import AccountConfig, StrategyConfig
from gridctl.config.strategy import engine_config, grid_params, rules_for, settings_hash
from gridctl.core import clientid
from gridctl.core.engine import GridEngine
from gridctl.core.fills import Fill
from gridctl.core.grid import GridError, LevelSpec, Side
from gridctl.core.market import MarketRules
from gridctl.core.plan import build_grid
from gridctl.exchange.venues import quirk
from gridctl.exchange.base import AuthError as ExchangeAuthError, ExchangeError
from gridctl.process.exits import EX_ALREADY_RUNNING, EX_AUTH, EX_CONFIG, EX_DB_UNAVAILABLE
from gridctl.process.heartbeat import Heartbeat
from gridctl.process.paths import StatePaths
from gridctl.process.pidfile import AlreadyRunning, acquire_worker_lock

log = logging.getLogger("gridctl.worker")


class WorkerConfigError(Exception):
    """The strategy cannot run as configured (exit 78)."""


class WorkerAuthError(Exception):
    """The venue refused the account's API keys (exit 77)."""


class WorkerDatabaseError(Exception):
    """The database cannot be opened at start (exit 69): the supervisor retries, never gives up."""


class WorkerVenueError(Exception):
    """The venue could not be used at start (down, rate limited): exit 1, the supervisor retries."""


LIVE_REJECT_COOLDOWN_MS = 5_000  # a level the venue rejected waits this long before it is retried


def required_margin(rules: MarketRules, levels: list[LevelSpec], leverage: int) -> Decimal:
    """The margin the whole grid needs: the larger side's entry notional over the leverage
    (as `gridctl plan` reports it)."""
    side = {Side.BUY: Decimal(0), Side.SELL: Decimal(0)}
    for lv in levels:
        side[lv.side] += rules.notional(lv.entry, lv.size)
    return (max(side.values()) / max(1, leverage)).quantize(Decimal("0.01"))


def _grid_json(rules: MarketRules, levels: list[LevelSpec], start: int, started_ts: int, params) -> str:
    return json.dumps({"start": start, "started_ts": started_ts, "lower": params.lower, "upper": params.upper,
                       "levels": [[lv.index, lv.side.value, lv.entry, lv.exit, lv.size] for lv in levels],
                       "start_price": str(rules.price(start))})


def _levels_from_json(grid: dict) -> list[LevelSpec]:
    return [LevelSpec(i, Side(side), entry, exit_, size) for i, side, entry, exit_, size in grid["levels"]]


def _stored_grid(name: str) -> Optional[dict]:
    """The grid a previous run left, unless that run ended with a full stop."""
    from gridctl.store.models import Strategy

    row = Strategy.get_or_none(Strategy.name == name)
    if row is None or not row.grid_json or row.status == "stopped":
        return None
    return json.loads(row.grid_json)


def _fills_checked_ts(name: str, grid_started_ts: int) -> Optional[int]:
    """Where the grid's last process said every venue trade before it was booked (None: not
    known, an older database); never before the grid's start, whose trades are another grid's."""
    from gridctl.store.models import Strategy

    row = Strategy.get_or_none(Strategy.name == name)
    checked = row.fills_checked_ts if row is not None else None
    return None if checked is None else max(int(checked), grid_started_ts)


def _stored_fills(name: str, since_ts: int, writer) -> list:
    """This grid's fills: the database's, and those still waiting in the writer's journal.

    A worker restarted during a database outage finds the last process's newest fills
    only in the journal; without them they would come back through recovery as missed
    fills and their cycles (trades) would be stored a second time.
    """
    from gridctl.store.models import FillRow

    pending = [r for r in writer.pending_rows("fills")  # first: a row committed meanwhile is then in both
               if r.get("strategy") == name and (r.get("ts") or 0) >= since_ts]
    rows = list(FillRow.select().where((FillRow.strategy == name) & (FillRow.ts >= since_ts))
                .order_by(FillRow.ts, FillRow.id))
    have = {_fill_key(r.trade_id, r.ts, r.client_id, r.qty) for r in rows}
    for r in pending:
        key = _fill_key(r.get("trade_id"), r["ts"], r.get("client_id"), r.get("qty"))
        if key not in have:
            have.add(key)
            rows.append(SimpleNamespace(**{"order_id": None, "intent": None, "trade_id": None, **r}))
    rows.sort(key=lambda r: r.ts)  # stable: the database's order, then the journal's
    return rows


def _stored_funding(name: str, since_ts: int, writer) -> list[tuple[int, Decimal]]:
    """This grid's funding payments booked so far (database and journal): (ts, amount), oldest first."""
    from gridctl.store.models import Funding

    rows = {(int(r["ts"]), Decimal(str(r["amount"]))) for r in writer.pending_rows("funding")  # first, as fills
            if r.get("strategy") == name and (r.get("ts") or 0) >= since_ts}
    rows |= {(int(r.ts), Decimal(str(r.amount))) for r in
             Funding.select().where((Funding.strategy == name) & (Funding.ts >= since_ts))}
    return sorted(rows)


def _fill_key(trade_id, ts, client_id, qty) -> tuple:
    return ("t", trade_id) if trade_id else ("f", ts, str(client_id), str(Decimal(str(qty))))


def _restore_generations(engine: GridEngine, name: str, since_ts: int, writer) -> None:
    """Continue every level's order generation above the ids this grid already used
    (stored, or still in the writer's journal), so a restarted worker never reuses a
    client order id."""
    from gridctl.store.models import Order

    ids = [r["client_id"] for r in writer.pending_rows("orders")
           if r.get("strategy") == name and r.get("client_id")]
    rows = Order.select(Order.client_id).where((Order.strategy == name) & (Order.created_ts >= since_ts))
    for cid in [row.client_id for row in rows] + ids:
        d = engine.decode(_cid(cid))
        lv = engine.levels.get(d.level) if d is not None else None
        if lv is not None and d.gen > lv.gen:
            engine.levels[d.level] = replace(lv, gen=d.gen)


def make_exchange(account: AccountConfig, rules: Optional[MarketRules], s: StrategyConfig, state_dir: Path,
                  owns: Callable[[object], bool]):
    """The account's exchange adapter: ccxt, for a venue (live, test network or local venue)
    and for a paper account alike (its local venue, which the supervisor runs)."""
    from gridctl.exchange.ccxt_adapter import CcxtExchange, Timing

    if account.is_paper:
        from gridctl.exchange.paper_venue import VenueUnavailable, connect_account

        try:
            account = connect_account(StatePaths(state_dir), account)
        except VenueUnavailable as exc:
            raise ExchangeError(str(exc), "temporary") from None  # the supervisor restarts us after back-off
    return CcxtExchange(account, s.symbol, rules, leverage=s.leverage, owns=owns,
                        max_slippage_pct=s.max_slippage_pct, timing=Timing.from_env())


def _stored_fill(rules: MarketRules, r) -> Fill:
    return Fill(r.ts, _cid(r.client_id), r.order_id or "", Side(r.side), rules.price_to_ticks(r.price),
                rules.qty_to_steps(r.qty), Decimal(r.fee), r.maker, r.reduce_only, getattr(r, "trade_id", None) or "",
                kind=r.intent if r.intent in ("liquidation", "deleveraging") else "own")


def _readopt(engine: GridEngine, grid: dict, market: int) -> None:
    """A restarted grid takes over again the position its first start adopted."""
    adopted = grid.get("adopted")
    if not adopted:
        return
    for sign, qty, entry in adopted["legs"]:
        engine.adopt(adopted["ts"], sign, qty, Decimal(entry), grid["start"])


async def _run(name: str, config_path: Path, state_dir: Path, flatten: bool = False,
               report: Optional[dict] = None) -> int:
    """Run one strategy (or, with `flatten`, only close what it holds: emergency-close of a
    strategy that is not running; `report` then gets "held" and "left", the position before
    and after, as decimal strings)."""
    from gridctl.control.worker_server import serve_worker
    from gridctl.store.db import open_database
    from gridctl.store.journal import journal_path
    from gridctl.store.writer import BufferedWriter
    from gridctl.worker.loop import WorkerLoop
    from gridctl.worker.order_rows import StoredOrders
    from gridctl.worker.recorder import Recorder

    try:
        config = load(config_path)
    except ConfigError as exc:
        raise WorkerConfigError("; ".join(str(p) for p in exc.problems)) from None
    if name not in config.strategies:
        raise WorkerConfigError(f"no strategy '{name}' in {config_path}")
    s = config.strategies[name]
    account = config.accounts[s.account]
    rules = rules_for(account, s.symbol)
    if rules is None and account.is_paper:  # a venue without a bundled snapshot: its own rules at connect
        raise WorkerConfigError(f"no market rules for {s.symbol} on {account.venue}")
    try:  # the stored grid is needed before anything trades: without the database, wait outside
        db = open_database(state_dir, config.database)
    except (PeeweeException, OSError) as exc:
        raise WorkerDatabaseError(f"cannot open the database: {' '.join(str(exc).split())}") from None
    from gridctl.process.host import host_name
    from gridctl.store.ownership import OwnedElsewhere, claim

    try:  # a database several hosts may share (a URL): never run another host's strategy
        if config.database:
            claim(db, name, host_name())
    except OwnedElsewhere as exc:
        raise WorkerConfigError(str(exc)) from None
    # orders and fills past the writer's memory bound go to this journal until the database is back
    writer = BufferedWriter(db, strategy=name, journal_path=journal_path(state_dir, name), **_writer_tuning())
    writer.start_background(1.0)
    tag = clientid.strategy_tag(s.name)
    id_format = quirk(account.venue, "client_id")
    owns = functools.partial(clientid.belongs, id_format, tag)  # the adapter cancels only these
    exchange = make_exchange(account, rules, s, state_dir, owns)
    try:
        await exchange.connect()
    except ExchangeAuthError as exc:
        await exchange.close()
        raise WorkerAuthError(f"the exchange refused the API keys of account '{account.name}': {exc}") from None
    except ExchangeError as exc:
        await exchange.close()
        if exc.reason == "configuration":  # the pre-flight: a mismatch the venue will not change
            raise WorkerConfigError(f"account '{account.name}': {exc}") from None
        raise WorkerVenueError(f"account '{account.name}': cannot start on {account.exchange}: {exc}") from None
    rules = await exchange.market_rules()  # the venue's rules win over the bundled snapshot
    now_ms = int(time.time() * 1000)
    grid = _stored_grid(name)
    if grid is None:
        start = exchange.price()
        params = grid_params(rules, s, start)
        try:
            levels = build_grid(rules, params, start)
        except GridError as exc:
            raise WorkerConfigError(f"{name}: {exc} at the start price {rules.price(start)}") from None
        grid = json.loads(_grid_json(rules, levels, start, now_ms, params))
        fresh = True
        if hasattr(exchange, "preflight"):  # before the first order: the balance covers the plan's margin
            try:
                await exchange.preflight(required_margin(rules, levels, s.leverage))
            except ExchangeError as exc:
                await exchange.close()
                if exc.reason == "configuration":
                    raise WorkerConfigError(f"{name}: {exc}") from None
                raise
    else:
        # the stored bounds win: a range_pct grid keeps the range it was started with
        levels, fresh = _levels_from_json(grid), False
        params = replace(grid_params(rules, s, grid["start"]), lower=grid["lower"], upper=grid["upper"])
    engine = GridEngine(rules, levels, engine_config(rules, s, account, params))
    rec = Recorder(writer, engine, name)
    loop = WorkerLoop(name, engine, exchange, rec, account.balance,
                      reject_cooldown_ms=LIVE_REJECT_COOLDOWN_MS)
    if s.risk.exchange_stop and hasattr(exchange, "place_stop"):
        from gridctl.worker.safety_stop import SafetyStop
        loop.safety = SafetyStop(engine, exchange, rec, loop.clock)
    last_ts = grid["started_ts"]
    if not fresh:
        engine.opened = True  # the initial position was taken when this grid started
        _readopt(engine, grid, exchange.price())
        for r in _stored_fills(name, grid["started_ts"], writer):
            f = _stored_fill(rules, r)
            loop.d.remember(f)
            engine.on_fill(f)
            last_ts = max(last_ts, r.ts)
        _restore_generations(engine, name, grid["started_ts"], writer)
        booked = _stored_funding(name, grid["started_ts"], writer)
        for _, amount in booked:
            engine.ledger.add_funding(amount)
        resume = getattr(exchange, "resume_funding_after", None)
        if resume is not None:  # a second's margin past the last one booked: some venues report whole seconds
            resume(max([grid["started_ts"]] + [ts + 1000 for ts, _ in booked]))
    _account_check(loop, config, name, grid["started_ts"])
    stopping = grid.get("stopping") if not fresh else None
    if stopping:  # the previous process was killed in the middle of a stop: this one finishes it
        engine.stop(stopping["reason"], keep=bool(stopping["keep"]))
    if flatten:
        engine.stop("emergency", keep=False)
    rec.strategy(now_ms, config_json=json.dumps({"symbol": s.symbol, "mode": s.mode.value, "account": s.account,
                                             "investment": str(s.investment) if s.investment is not None else None,
                                             "leverage": s.leverage, "grids": s.grids}),
                 config_hash=settings_hash(config, name),
                 status="stopping" if flatten or stopping else "starting",
                 host=host_name(),
                 started_ts=grid["started_ts"],
                 **({"grid_json": json.dumps(grid), "stop_reason": None, "last_error": None} if fresh else {}))
    rec.event(now_ms, "status", ("new grid" if fresh else "continuing grid") +
              f" {rules.price(params.lower)}..{rules.price(params.upper)}, {len(levels)} levels, "
              f"start price {grid['start_price']}")
    _record_config(loop, now_ms, s, settings_hash(config, name))
    # the grid must be stored before its first order exists: a worker killed in its
    # first second would otherwise restart as a new grid beside the old one's orders
    if not _flush_now(writer):
        rec.event(now_ms, "warn", "database unavailable: the grid is not stored yet; trading continues")
    if stopping:
        rec.event(now_ms, "status", f"finishing the stop ({stopping['reason']}) the previous process began")
    loop.stop_started = functools.partial(_mark_stop, rec, writer, grid)
    server = await serve_worker(StatePaths(state_dir).worker_socket(name), loop)
    loop.beat = Heartbeat(StatePaths(state_dir).worker_heartbeat(name)).beat
    loop.beat()  # recovery may take a few requests: the supervisor's timeout counts from here
    stored = None if fresh else StoredOrders.load(name, grid["started_ts"], writer)
    checked = None if fresh else _fills_checked_ts(name, grid["started_ts"])
    adoption = await loop.recover(last_ts, fresh, stored, grid["started_ts"], checked)
    if report is not None:
        report["held"] = str(rules.qty(engine.ledger.position))
    if adoption is not None:  # stored with the grid, so a restart takes the same position over again
        grid["adopted"] = adoption
        rec.strategy(now_ms, grid_json=json.dumps(grid))
        _flush_now(writer)
    # SIGTERM from the supervisor or systemd: stop as configured (on_stop)
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, lambda: asyncio.ensure_future(loop.stop(False)))
    try:
        code = await loop.run()
        if report is not None:
            report["left"] = str(rules.qty(engine.ledger.position))
    finally:
        server.close()
        await exchange.close()
        writer.close()
    return code


def _mark_stop(rec, writer, grid: dict, reason: str, keep: bool) -> None:
    """A stop has begun: stored with the grid at once (not in a second, with the writer), so a
    process killed during its cancels or its close is followed by one that finishes it."""
    grid["stopping"] = {"reason": reason, "keep": bool(keep)}
    rec.strategy(int(time.time() * 1000), status="stopping", stop_reason=reason, grid_json=json.dumps(grid))
    _flush_now(writer)


def _record_config(loop, ts: int, s: StrategyConfig, config_hash: str) -> None:
    """Keep the configuration this run applies (a "config" event; reloads add theirs)."""
    from gridctl.config.live_change import live_settings

    loop.config_applied_ts = ts
    loop.rec.event(ts, "config", f"started with configuration {config_hash}",
                   data={"config_hash": config_hash, "settings": live_settings(s)})


def _account_check(loop, config, name: str, since_ts: int) -> None:
    """Siblings on the account's legs (gridctl.worker.account_check): assignments of this grid
    booked again; GRIDCTL_RECONCILE_EVERY_S, a testing knob, shortens the 60 s check."""
    from gridctl.worker.account_check import AccountCheck, siblings_of

    s = config.strategies[name]
    acc = AccountCheck(name, s.account, s.symbol, s.mode.value, config.accounts[s.account].position_mode == "hedge",
                       siblings_of(name, config), loop.e, loop.rec)
    acc.since_ts = since_ts
    acc.pick_up(0)
    loop.accounts = acc
    loop.d.funding_alone = not any(o.name != name and o.account == s.account and o.symbol == s.symbol
                                   for o in config.strategies.values())
    raw = os.environ.get("GRIDCTL_RECONCILE_EVERY_S")
    if raw:
        loop.reconcile_every_s = max(0.5, float(raw))


def _writer_tuning() -> dict:
    """GRIDCTL_WRITER_MAXSIZE: rows the writer keeps in memory before orders and fills go to
    the journal (default 1,000). A testing/tuning knob: the outage tests make it small so
    the journal is really used."""
    raw = os.environ.get("GRIDCTL_WRITER_MAXSIZE")
    return {"maxsize": max(1, int(raw))} if raw else {}


def _flush_now(writer) -> bool:
    """Flush, waiting briefly if the background thread is flushing at this moment.

    One failed attempt is enough: the database is unavailable and trading must not
    wait for it (the writer keeps the rows; each retry would wait the busy timeout).
    """
    if writer.unavailable_since_ms is not None:  # the journal replay at start just failed
        return writer.flush()  # only if the retry time has passed
    for _ in range(20):
        if writer.flush(force=True):
            return True
        if writer.unavailable_since_ms is not None:
            return False
        time.sleep(0.05)
    return False


def _cid(value: Optional[str]) -> object:
    from gridctl.worker.order_rows import stored_cid

    return stored_cid(value) if value else value


def run_worker(name: str, config_path: Path, state_dir: Path, flatten: bool = False,
               report: Optional[dict] = None) -> int:
    """Run one strategy until it stops; returns the exit code (see module doc).

    `flatten`: cancel the strategy's orders and close its position, then exit
    (emergency-close of a strategy whose worker is not running)."""
    try:
        acquire_worker_lock(Path(state_dir), name)
    except AlreadyRunning as exc:
        print(f"{name} is already running (pid {exc.pid})", file=sys.stderr)
        return EX_ALREADY_RUNNING
    try:
        return asyncio.run(_run(name, Path(config_path), Path(state_dir), flatten, report))
    except WorkerConfigError as exc:
        print(f"{name}: configuration error: {exc}", file=sys.stderr)
        return EX_CONFIG
    except WorkerAuthError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return EX_AUTH
    except WorkerVenueError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 1
    except WorkerDatabaseError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return EX_DB_UNAVAILABLE
