"""A fake worker for the event-feed tests: tests/fake_worker.py's handler, emitting rows in
the recorder's format (gridctl/worker/recorder.py) every 0.1 s, and a moving price.

Every cycle: an order placed, its fill, a completed trade, a risk warning, a warning and
an error, all with `data` as the recorder and the engine write it. Its status answers a
price that changes every tick. The error message carries the account's secret (the
feed must blank it): FEED_SECRET below, also put in the test config as the api secret.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from fake_worker import FakeHandler  # type: ignore[import-not-found]

from gridctl.control.worker_server import serve_worker
from gridctl.process.paths import StatePaths
from gridctl.process.pidfile import acquire_worker_lock

FEED_SECRET = "sEcReT-4f1e-feed-test"


class FeedHandler(FakeHandler):
    def status(self) -> dict:
        return {"paused": self.paused, "price": f"{150 + self.n % 7}.25", "position": "0.5",
                "realized": "1.0", "grid_profit": "1.2", "unrealized": "-0.1", "fees": "0.2", "funding": "0",
                "total_pnl": "0.9"}

    def row(self, kind: str, message: str, level=None, order_id=None, data=None) -> None:
        self.emit({"type": kind, "message": message, "level": level, "order_id": order_id, "data": data})


def cycle(h: FeedHandler) -> None:
    n, pid = h.n, os.getpid()
    h.row("order", "placed entry buy 0.1 @ 149.5 (level 3)", 3, f"oid-{pid}-{n}",
          {"action": "placed", "client_id": f"cid-{n}", "intent": "entry", "side": "buy", "price": "149.5",
           "qty": "0.1", "reduce_only": False, "post_only": True})
    h.row("fill", "level 3 entry buy 0.1 @ 149.5", 3, None,
          {"intent": "entry", "side": "buy", "price": "149.5", "qty": "0.1", "fee": "0.002991", "maker": True,
           "order_id": f"oid-{pid}-{n}", "client_id": f"cid-{n}", "trade_id": f"t-{pid}-{n}"})
    h.row("trade", "level 3 cycle done: 0.0940 net", 3, None,
          {"profit": "0.1", "fees": "0.006", "net_profit": "0.094", "side": "buy", "qty": "0.1",
           "entry_price": "149.5", "exit_price": "150.5", "entry_ts": 1, "exit_ts": 2, "hold_ms": 1})
    h.row("order", "cancelled exit sell @ 150.5 (level 3)", 3, f"oid-{pid}-{n}x",
          {"action": "cancelled", "client_id": f"cidx-{n}", "intent": "exit", "side": "sell", "price": "150.5",
           "qty": "0.1"})
    h.row("risk", "margin ratio 51.0% >= 50%", None, None, {"margin_ratio": "0.51"})
    h.row("warn", "exchange stream lost: timeout")
    h.row("error", f"exchange: binanceusdm GET https://x/fapi?signature=abc123 key {FEED_SECRET}")
    h.row("info", "funding 0.01", None, None, {"amount": "0.01", "rate": None})
    h.row("pnl", "total PnL 0.9000")


async def _trade(name: str, state_dir: Path) -> int:
    ticks = state_dir / "ticks"
    ticks.mkdir(exist_ok=True)
    h = FeedHandler(name, ticks / f"{name}.log")
    server = await serve_worker(StatePaths(state_dir).worker_socket(name), h)
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, h.done.set)
    h.note("started")
    h.row("status", "continuing grid", None, None, {"pid": os.getpid()})
    while not h.done.is_set():
        if not h.paused:
            h.n += 1
            h.note(f"tick {h.n}")
            cycle(h)
        try:
            await asyncio.wait_for(h.done.wait(), 0.1)
        except asyncio.TimeoutError:
            pass
    server.close()
    return 0


def run_worker(name: str, config_path: Path, state_dir: Path) -> int:
    """GRIDCTL_WORKER_MAIN=feed_worker:run_worker."""
    acquire_worker_lock(state_dir, name)
    return asyncio.run(_trade(name, Path(state_dir)))
