"""Fills the stream missed are booked once, also when the worker is killed before it read them.

The soak found venue trades no strategy ever booked (tests/bench/soak.py, fills_once): a fill
made while the stream was down waits for the next reconcile's trade-history read, but the
stream brings the NEWER fills at once; a worker killed before that read (or whose rows of it
were lost with its writer's memory in a database outage) restarted from its newest stored
fill, after the missed one, and the new process's reconcile looks only from its own connect.

In process, on the paper exchange with a clock the test moves (tests/test_worker_loop.py).
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from gridctl.config import load
from gridctl.config.strategy import engine_config, grid_params, rules_for
from gridctl.core.engine import GridEngine
from gridctl.core.fills import Fill, PriceUpdate
from gridctl.core.plan import build_grid
from gridctl.exchange.base import Temporary
from gridctl.exchange.paper import PaperExchange
from gridctl.store.db import db_path, open_database
from gridctl.store.writer import BufferedWriter
from gridctl.worker import main as worker_main
from gridctl.worker.loop import RECONCILE_RETRY_S, WorkerLoop
from gridctl.worker.recorder import Recorder

EXAMPLE = Path(__file__).resolve().parents[1] / "strategies.yaml.example"
NAME = "sol-neutral"


class Clock:
    def __init__(self, t: float = 1_800_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


class World:
    """The strategy's grid, the paper venue (its state file survives a 'kill') and the database."""

    def __init__(self, tmp: Path):
        self.tmp, self.clock = tmp, Clock()
        config = load(EXAMPLE)
        self.s = config.strategies[NAME]
        self.account = config.accounts[self.s.account]
        self.rules = rules_for(self.account, self.s.symbol)
        self.ex = self.exchange()
        self.start = self.ex.price()
        self.params = grid_params(self.rules, self.s, self.start)
        self.levels = build_grid(self.rules, self.params, self.start)
        self.started_ts = int(self.clock() * 1000)

    def exchange(self) -> PaperExchange:
        return PaperExchange(self.rules, self.account, self.s.leverage, self.tmp / "paper.json", clock=self.clock)

    def process(self, ex: PaperExchange) -> tuple[WorkerLoop, BufferedWriter]:
        """A worker process's loop and writer (nothing booked yet)."""
        engine = GridEngine(self.rules, self.levels, engine_config(self.rules, self.s, self.account, self.params))
        writer = BufferedWriter(open_database(self.tmp), strategy=NAME)
        loop = WorkerLoop(NAME, engine, ex, Recorder(writer, engine, NAME), self.account.balance, clock=self.clock)
        return loop, writer

    def restart(self) -> tuple[WorkerLoop, BufferedWriter, int]:
        """What gridctl.worker.main does before `recover`: a new adapter on the same venue, the
        stored fills replayed into a new engine; returns the newest stored fill's time too."""
        loop, writer = self.process(self.exchange())
        loop.e.opened = True
        last_ts = self.started_ts
        for r in worker_main._stored_fills(NAME, self.started_ts, writer):
            f = worker_main._stored_fill(self.rules, r)
            loop.d.remember(f)
            loop.e.on_fill(f)
            last_ts = max(last_ts, r.ts)
        return loop, writer, last_ts

    def stored_trade_ids(self) -> list[str]:
        with sqlite3.connect(db_path(self.tmp)) as con:
            return [t for (t,) in con.execute("SELECT trade_id FROM fills WHERE strategy = ?", (NAME,))]


async def trade_until_two_moments(w: World, loop: WorkerLoop) -> list[Fill]:
    """Play candles (one second apart) until fills happened at two different times."""
    fills: list[Fill] = []
    for _ in range(20_000):
        w.clock.t += 1
        for ev in await w.ex.events():
            if isinstance(ev, Fill):
                fills.append(ev)
            elif isinstance(ev, PriceUpdate):
                loop.apply(ev)
        if len({f.ts for f in fills}) >= 2:
            return fills
    raise AssertionError("the replay never filled the grid at two moments")


def test_a_fill_older_than_the_newest_booked_one_is_booked_by_the_restarted_worker(tmp_path: Path):
    """Fill X is missed by the stream, newer fill Y is booked; the worker dies before its
    reconcile reads X. The next process books X (once), and its position is the venue's."""
    w = World(tmp_path)

    async def first_process() -> list[Fill]:
        loop, writer = w.process(w.ex)
        await loop.recover(w.started_ts, fresh=True)
        await loop.sync()  # the grid is placed
        fills = await trade_until_two_moments(w, loop)
        missed_ts = min(f.ts for f in fills)
        for f in fills:
            if f.ts != missed_ts:  # the stream brought the newer ones
                loop.apply(f)
        assert writer.flush(force=True)
        w.ex.save()
        return [f for f in fills if f.ts == missed_ts]  # killed: its reconcile never ran

    missed = asyncio.run(first_process())
    assert missed and not set(f.trade_id for f in missed) & set(w.stored_trade_ids())

    async def second_process():
        w.clock.t += 5
        loop, writer, last_ts = w.restart()
        assert last_ts > max(f.ts for f in missed)  # the gap lies before the newest stored fill
        checked = worker_main._fills_checked_ts(NAME, w.started_ts)
        await loop.recover(last_ts, False, None, w.started_ts, checked)
        assert writer.flush(force=True)
        venue = sum(p.qty for p in await loop.ex.positions())
        return loop.e.ledger.position, venue

    ledger, venue = asyncio.run(second_process())
    stored = w.stored_trade_ids()
    for f in missed:
        assert stored.count(f.trade_id) == 1, f"trade {f.trade_id} booked {stored.count(f.trade_id)} times"
    assert len(stored) == len(set(stored))
    assert ledger == venue


def test_a_reconcile_the_venue_refused_is_tried_again_within_seconds(tmp_path: Path):
    """After a reconnect the reconcile reads what the stream missed; when the venue refuses
    that read (a 5xx), it is tried again a few seconds later, not at the next minute's timer."""
    w = World(tmp_path)
    loop, _ = w.process(w.ex)
    calls: list[float] = []
    reconcile = w.ex.reconcile_orders

    async def refused_once():
        calls.append(w.clock())
        if len(calls) == 1:
            raise Temporary("binanceusdm: 503 Service Unavailable")
        return await reconcile()

    async def scenario():
        await loop.recover(w.started_ts, fresh=True)
        w.ex.reconcile_orders = refused_once
        loop.last_reconcile = 0.0  # as after a "restored" stream state
        try:
            await loop.reconcile()
        except Temporary:
            pass
        w.clock.t += RECONCILE_RETRY_S + 0.1
        await loop.reconcile()

    asyncio.run(scenario())
    assert len(calls) == 2 and calls[1] - calls[0] < 10
