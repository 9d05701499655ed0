"""The local venue's state file and process: restart continuity, refusal of an unreadable
state, and the `gridctl venue` command line."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

from click.testing import CliRunner

from gridctl.cli import cli
from venue_harness import SECRET, LocalVenue, binance_client

BTC = "BTC/USDT:USDT"


def run(url, scenario):
    async def main():
        ex = binance_client(url, pro=False)
        try:
            await ex.load_markets()
            return await scenario(ex)
        finally:
            await ex.close()
    return asyncio.run(main())


def test_restart_continues_orders_fills_balance_and_ids(tmp_path):
    state = tmp_path / "venue.json"

    async def first(ex):
        await ex.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "m-1"})
        rest = await ex.create_order(BTC, "limit", "sell", 0.01, 70000, {"clientOrderId": "g-1"})
        key = (await ex.fapiPrivatePostListenKey())["listenKey"]
        return rest, key, await ex.fetch_balance()

    with LocalVenue(secret=SECRET, state=state) as v:
        v.price(BTC, "65000")
        rest, key, bal = run(v.url, first)

    async def second(ex):
        opened = await ex.fetch_open_orders(BTC)
        trades = await ex.fetch_my_trades(BTC)
        pos = await ex.fetch_positions([BTC])
        again = await ex.fetch_balance()
        key2 = (await ex.fapiPrivatePostListenKey())["listenKey"]
        nxt = await ex.create_order(BTC, "limit", "buy", 0.01, 60000, {"clientOrderId": "g-2"})
        return opened, trades, pos, again, key2, nxt

    with LocalVenue(secret=SECRET, state=state) as v:
        assert v.state()["markets"][BTC]["last"] == "65000.0"  # the price continues too
        opened, trades, pos, again, key2, nxt = run(v.url, second)
    assert [o["clientOrderId"] for o in opened] == ["g-1"] and opened[0]["id"] == rest["id"]
    assert len(trades) == 1 and pos[0]["contracts"] == 0.01
    assert again["info"]["totalWalletBalance"] == bal["info"]["totalWalletBalance"]
    assert key2 == key  # the listen key lives through the restart
    assert int(nxt["id"]) == int(rest["id"]) + 1


def test_unreadable_state_is_refused_with_exit_2(tmp_path):
    state = tmp_path / "venue.json"
    state.write_text("{not json")
    result = CliRunner().invoke(cli, ["venue", "binanceusdm", "--state", str(state)])
    assert result.exit_code == 2
    assert result.output == (
        f"error: cannot read the venue state {state}: not valid JSON (line 1 column 2); refusing to start "
        "with a fresh balance (move the file away to start afresh)\n")
    assert state.read_text() == "{not json"  # left as it was


def test_state_of_another_protocol_is_refused(tmp_path):
    state = tmp_path / "venue.json"
    state.write_text(json.dumps({"version": 1, "like": "backpack"}))
    result = CliRunner().invoke(cli, ["venue", "binanceusdm", "--state", str(state)])
    assert result.exit_code == 2
    assert "it is the state of a backpack venue, not binanceusdm; refusing to start" in result.output


def test_bad_options_exit_2():
    runner = CliRunner()
    assert runner.invoke(cli, ["venue", "binanceusdm", "--speed", "-1"]).exit_code == 2
    bad = runner.invoke(cli, ["venue", "binanceusdm", "--symbol", "NOPE/USDT:USDT"])
    assert bad.exit_code == 2 and bad.output == "error: NOPE/USDT:USDT is not a binanceusdm market\n"
    faults = runner.invoke(cli, ["venue", "binanceusdm", "--faults", "meteor:p=1"])
    assert faults.exit_code == 2 and "unknown fault 'meteor'" in faults.output


def _start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, str]:
    port_file = tmp_path / "venue.url"
    if port_file.exists():
        port_file.unlink()
    proc = subprocess.Popen([sys.executable, "-m", "gridctl", "venue", "binanceusdm", "--port", "0",
                             "--port-file", str(port_file), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    return proc, line


def test_cli_prints_the_listening_line_and_writes_the_port_file(tmp_path):
    proc, line = _start(tmp_path, "--state", str(tmp_path / "st.json"))
    try:
        url = (tmp_path / "venue.url").read_text().strip()
        assert line == f"gridctl venue binanceusdm listening on {url}\n"
        assert url.startswith("http://127.0.0.1:")

        async def buy(ex):
            await ex.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "p-1"})
            return await ex.fetch_positions([BTC])
        assert run(url, buy)[0]["contracts"] == 0.01
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    saved = json.loads((tmp_path / "st.json").read_text())
    assert next(iter(saved["accounts"].values()))["counts"]["fills"] == 1
    history = [json.loads(line) for line in (tmp_path / "st.history.jsonl").read_text().splitlines()]
    assert [r["k"] for r in history] == ["fill", "order"] and history[0]["client_id"] == "p-1"

    # a new process continues from the state file
    proc, line = _start(tmp_path, "--state", str(tmp_path / "st.json"))
    try:
        url = (tmp_path / "venue.url").read_text().strip()

        async def look(ex):
            return await ex.fetch_positions([BTC]), await ex.fetch_order(None, BTC, {"clientOrderId": "p-1"})
        pos, order = run(url, look)
        assert pos[0]["contracts"] == 0.01 and order["status"] == "closed"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0


def test_replayed_data_drives_its_market(tmp_path):
    proc, line = _start(tmp_path, "--data", "builtin:SOLUSDT_1m", "--speed", "600")
    try:
        url = (tmp_path / "venue.url").read_text().strip()

        async def tickers(ex):
            first = (await ex.fetch_ticker("SOL/USDT:USDT"))["last"]
            seen = {first}
            deadline = time.monotonic() + 10
            while len(seen) < 3 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                seen.add((await ex.fetch_ticker("SOL/USDT:USDT"))["last"])
            return first, seen
        first, seen = run(url, tickers)
        with open(Path(__file__).parents[1] / "gridctl" / "data" / "candles" / "SOLUSDT_1m.csv") as fh:
            fh.readline()
            rows = [fh.readline().split(",") for _ in range(2000)]
        replayed = {Decimal(x).quantize(Decimal("0.01")) for r in rows for x in r[1:5]}
        assert {Decimal(str(p)) for p in seen} <= replayed  # every price is one of the file's candles
        assert len(seen) >= 3  # 1 candle every 0.1 s at speed 600
    finally:
        proc.terminate()
        assert proc.wait(20) == 0
    assert os.path.exists(tmp_path / "venue.url")


def test_a_killed_venue_keeps_what_it_acknowledged(tmp_path):
    """Every acknowledged change is on disk before the next request: SIGKILL loses nothing."""
    state = tmp_path / "st.json"
    proc, _ = _start(tmp_path, "--state", str(state))
    try:
        url = (tmp_path / "venue.url").read_text().strip()

        async def place(ex):
            await ex.create_order(BTC, "limit", "buy", 0.01, 60000, {"clientOrderId": "k-1"})
            await ex.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "k-2"})
            return await ex.fetch_balance()  # the answer comes after the save of the orders
        bal = run(url, place)
    finally:
        proc.kill()
        proc.wait(10)
    proc, _ = _start(tmp_path, "--state", str(state))
    try:
        url = (tmp_path / "venue.url").read_text().strip()

        async def look(ex):
            return await ex.fetch_open_orders(BTC), await ex.fetch_my_trades(BTC), await ex.fetch_balance()
        opened, trades, after = run(url, look)
    finally:
        proc.terminate()
        proc.wait(10)
    assert [o["clientOrderId"] for o in opened] == ["k-1"] and len(trades) == 1
    assert after["info"]["totalWalletBalance"] == bal["info"]["totalWalletBalance"]


def test_history_journal_survives_a_crash_between_the_two_writes(tmp_path):
    """The snapshot carries the records the journal has not got yet: none is lost or doubled."""
    state = tmp_path / "venue.json"
    with LocalVenue(state=state) as v:
        v.price(BTC, "65000")

        async def trade(ex):
            for i in range(3):
                await ex.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": f"c-{i}"})
        run(v.url, trade)
    history = tmp_path / "venue.history.jsonl"
    lines = history.read_text().splitlines()
    assert len(lines) == 6  # 3 trades, 3 filled orders
    snap = json.loads(state.read_text())
    snap["tail"] = [json.loads(x) for x in lines[-2:]]  # as if the journal append had not happened
    state.write_text(json.dumps(snap))
    history.write_text("\n".join(lines[:-2]) + "\n" + lines[-2][:10])  # and a line cut mid-write
    with LocalVenue(state=state) as v:
        async def look(ex):
            return await ex.fetch_my_trades(BTC), await ex.fetch_orders(BTC)
        trades, orders = run(v.url, look)
    assert sorted(t["info"]["id"] for t in trades) == [500000001, 500000002, 500000003]
    assert [o["clientOrderId"] for o in orders] == ["c-0", "c-1", "c-2"]
    with LocalVenue(state=state) as v:  # and the repaired journal reads again
        assert run(v.url, lambda ex: ex.fetch_my_trades(BTC))[-1]["info"]["id"] == 500000003


def test_a_history_short_of_the_counted_trades_is_refused(tmp_path):
    state = tmp_path / "venue.json"
    with LocalVenue(state=state) as v:
        v.price(BTC, "65000")

        async def trade(ex):
            await ex.create_order(BTC, "market", "buy", 0.01, None)
        run(v.url, trade)
    (tmp_path / "venue.history.jsonl").write_text("")
    result = CliRunner().invoke(cli, ["venue", "binanceusdm", "--state", str(state)])
    assert result.exit_code == 2
    assert result.output == (
        f"error: cannot read the venue state {state}: the history {tmp_path / 'venue.history.jsonl'} lacks "
        "trades or funding the state counts (0 of 1 trades); refusing to start with a fresh balance "
        "(move the file away to start afresh)\n")
