"""The event feed end to end with the REAL worker on the paper exchange (tests/configs/e2e_paper.yaml,
SOLUSDT 1m candles at 600x): a real websockets client sees real orders, fills and completed
trades with the documented fields, and the figures agree with the database."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import pytest
from websockets.asyncio.client import connect

from gridctl.control.client import supervisor_status
from tests.proc_helpers import wait_until
from tests.test_e2e_paper import Paper

pytestmark = pytest.mark.slow

ORDER = {"event", "strategy", "ts", "level", "message", "order_id", "client_id", "intent", "side", "price", "qty",
         "reduce_only", "post_only", "type"}
FILL = {"event", "strategy", "ts", "level", "message", "order_id", "client_id", "intent", "side", "price", "qty",
        "fee", "maker", "trade_id"}
TRADE = {"event", "strategy", "ts", "level", "message", "side", "entry_price", "exit_price", "qty", "profit", "fees",
         "net_profit", "entry_ts", "exit_ts", "hold_ms"}


@pytest.fixture
def paper(tmp_path):
    p = Paper(tmp_path)
    yield p
    p.cleanup()


def test_real_orders_fills_and_trades_arrive_with_the_documented_fields(paper):
    out = paper.start("n-main", "--events", "127.0.0.1:0")
    info = supervisor_status(paper.state)["supervisor"]["events"]
    assert f"event feed on {info['url']}" in out
    token = (paper.state / "events.token").read_text().strip()

    async def scenario() -> list[dict]:
        got: list[dict] = []
        async with connect(info["url"]) as ws:
            await ws.send(json.dumps({"token": token, "subscribe": {
                "strategies": ["n-main"], "channels": ["orders", "fills", "trades", "price", "pnl"]}}))
            while not {"order_created", "order_filled", "trade_completed", "price", "pnl"} <= {m["event"] for m in got}:
                got.append(json.loads(await ws.recv()))
        return got

    got = asyncio.run(asyncio.wait_for(scenario(), 90))
    by = {}
    for m in got[1:]:
        by.setdefault(m["event"], m)
    assert set(by["order_created"]) == ORDER and by["order_created"]["strategy"] == "n-main"
    assert set(by["order_filled"]) == FILL and set(by["trade_completed"]) == TRADE
    for ev, keys in (("order_created", ("price", "qty")), ("order_filled", ("price", "qty", "fee")),
                     ("trade_completed", ("entry_price", "exit_price", "qty", "profit", "fees", "net_profit")),
                     ("price", ("price",)), ("pnl", ("position", "total_pnl"))):
        for k in keys:
            assert isinstance(by[ev][k], str) and Decimal(by[ev][k]) is not None, (ev, k, by[ev][k])
    fill = by["order_filled"]
    assert fill["side"] in ("buy", "sell") and fill["intent"] in ("entry", "exit") and fill["trade_id"]
    t = by["trade_completed"]
    assert Decimal(t["net_profit"]) == Decimal(t["profit"]) - Decimal(t["fees"])
    # the same fill, as the database has it
    q = "SELECT side, price, qty FROM fills WHERE strategy = ? AND trade_id = ?"
    rows = wait_until(lambda: paper.sql(q, "n-main", fill["trade_id"]), 20, "the fill in the database")
    assert [(r[0], Decimal(r[1]), Decimal(r[2])) for r in rows] == [
        (fill["side"], Decimal(fill["price"]), Decimal(fill["qty"]))]
