"""The worker loop in-process, on the paper exchange: stops that must flatten do."""

import asyncio
from pathlib import Path

from gridctl.config import load
from gridctl.core.engine import GridEngine
from gridctl.core.plan import build_grid
from gridctl.exchange.paper import PaperExchange
from gridctl.store.db import open_database
from gridctl.store.writer import BufferedWriter
from gridctl.config.strategy import engine_config, grid_params, rules_for
from gridctl.worker.loop import WorkerLoop
from gridctl.worker.recorder import Recorder

EXAMPLE = Path(__file__).resolve().parents[1] / "strategies.yaml.example"


def make_loop(tmp_path: Path, name: str) -> tuple[WorkerLoop, PaperExchange, BufferedWriter]:
    config = load(EXAMPLE)
    s = config.strategies[name]
    account = config.accounts[s.account]
    rules = rules_for(account, s.symbol)
    ex = PaperExchange(rules, account, s.leverage, tmp_path / "paper.json")
    start = ex.price()
    params = grid_params(rules, s, start)
    engine = GridEngine(rules, build_grid(rules, params, start), engine_config(rules, s, account, params))
    writer = BufferedWriter(open_database(tmp_path), strategy=name)
    return WorkerLoop(name, engine, ex, Recorder(writer, engine, name), account.balance), ex, writer


async def _emergency_while_waiting(loop: WorkerLoop) -> int:
    task = asyncio.create_task(loop.run())
    await asyncio.sleep(0.3)  # the loop now sleeps in events() until the next candle
    assert loop.e.ledger.position > 0  # sol-long opened its initial position at market
    await loop.emergency_close()
    return await asyncio.wait_for(task, 10)


def test_emergency_close_flattens_even_while_the_loop_waits_for_a_candle(tmp_path):
    # regression: the close's fill was taken at placement but reported by the paper
    # exchange only before a wait, so the worker stopped with the position still open
    loop, ex, writer = make_loop(tmp_path, "sol-long")
    assert asyncio.run(_emergency_while_waiting(loop)) == 0
    writer.flush(force=True)
    assert loop.e.status == "stopped" and loop.e.stop_reason == "emergency"
    assert loop.e.ledger.position == 0 and ex.sim.position == 0
    assert ex.sim.open_orders() == []


async def _stop_keep(loop: WorkerLoop) -> int:
    task = asyncio.create_task(loop.run())
    await asyncio.sleep(0.3)
    await loop.stop(keep_position=True)
    return await asyncio.wait_for(task, 10)


def test_stop_keep_position_leaves_the_position_and_no_orders(tmp_path):
    loop, ex, _ = make_loop(tmp_path, "sol-long")
    assert asyncio.run(_stop_keep(loop)) == 0
    assert loop.e.ledger.position == ex.sim.position > 0
    assert ex.sim.open_orders() == []


class LosesReplies(PaperExchange):
    """The paper exchange, but the reply to some placements is lost (a timeout)."""

    lose = 0

    async def place(self, request):
        order = await super().place(request)
        if self.lose:
            self.lose -= 1
            from gridctl.exchange.base import UnknownOutcome

            raise UnknownOutcome("read timeout")
        return order


def test_a_placement_whose_reply_was_lost_is_confirmed_not_sent_twice(tmp_path):
    loop, ex, _ = make_loop(tmp_path, "sol-neutral")
    ex.__class__ = LosesReplies
    ex.lose = 3  # the first three entries reach the book but their replies are lost

    async def scenario():
        await loop.sync()
        await loop.sync()  # a second pass must find nothing missing

    asyncio.run(scenario())
    levels = [loop.e.decode(o.client_id).level for o in ex.sim.open_orders()]
    assert len(levels) == len(set(levels)) == 10  # every level once, none twice
    assert len(loop.placed) == 10  # the three unconfirmed-by-reply orders are tracked too


class RefusesKeys(PaperExchange):
    async def events(self):
        from gridctl.exchange.base import AuthError

        raise AuthError("invalid API-key, IP, or permissions for action")


def test_refused_api_keys_end_the_worker_with_the_auth_exit_code(tmp_path):
    loop, ex, writer = make_loop(tmp_path, "sol-neutral")
    ex.__class__ = RefusesKeys
    assert asyncio.run(asyncio.wait_for(loop.run(), 10)) == 77  # fatal in the supervisor, not restarted
    assert "refused the API keys" in loop.last_error


def test_a_replayed_funding_file_pays_again_on_every_loop_of_the_candles(tmp_path):
    # regression: after the replay wrapped around, no funding was ever paid again
    from gridctl.config.model import AccountConfig, FeedConfig
    from gridctl.exchange.paper import CandleFeed
    from gridctl.markets import load_snapshot

    candles = tmp_path / "c.csv"
    candles.write_text("timestamp_ms,open,high,low,close,volume\n"
                       + "".join(f"{t * 60000},1.10,1.11,1.09,1.10,1\n" for t in range(3)))
    funding = tmp_path / "f.csv"
    funding.write_text("timestamp_ms,rate\n60000,0.0001\n")
    account = AccountConfig("p", "paper", feed=FeedConfig(replay=candles, funding=funding))
    feed = CandleFeed(account, load_snapshot("binanceusdm")["XRP/USDT:USDT"])
    paid = []
    for _ in range(9):  # three loops of three candles
        ts, _ohlc = feed.next()
        paid += feed.due_funding(ts)
    assert len(paid) == 3
