"""The live event feed (gridctl/control/feed.py) with a REAL websockets client against a real
daemonised supervisor and fake workers (tests/feed_worker.py) in a temporary state dir.
The real paper worker's fields are checked in tests/test_events_feed_paper.py."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import sys
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from gridctl.config import ConfigError, load
from gridctl.config.listen import ListenError, resolve
from gridctl.control.client import supervisor_status
from gridctl.control.feed_events import CHANNELS
from tests.proc_helpers import wait_until
from tests.test_supervisor import Env

sys.path.insert(0, str(Path(__file__).parent))
from feed_worker import FEED_SECRET  # noqa: E402

# one paper account per strategy (same feed): an account keeps one (one-way) position per symbol
ACCOUNT = ("  paper-{name}: {{exchange: paper, like: binanceusdm, feed: {{replay: \"builtin:SOLUSDT_1m\"}}"
           f", secret: {FEED_SECRET}}}}}\n")
STRATEGY = ("  {name}: {{account: paper-{name}, symbol: SOL/USDT:USDT, mode: neutral, lower: 155, upper: 175, "
            "grids: 10, investment: 500, leverage: 2}}\n")


def config_text(names=("alpha", "beta"), events: str = "") -> str:
    return ("version: 1\naccounts:\n" + "".join(ACCOUNT.format(name=n) for n in names) + "strategies:\n"
            + "".join(STRATEGY.format(name=n) for n in names) + events)


class FeedEnv(Env):
    def __init__(self, tmp: Path):
        super().__init__(tmp)
        self.env["GRIDCTL_WORKER_MAIN"] = "feed_worker:run_worker"
        self.config.write_text(config_text())

    def url(self) -> str:
        return supervisor_status(self.state)["supervisor"]["events"]["url"]

    def token(self) -> str:
        return (self.state / "events.token").read_text().strip()


@pytest.fixture
def feed(tmp_path):
    e = FeedEnv(tmp_path)
    r = e.start("--events", "127.0.0.1:0")
    assert r.returncode == 0, r.stderr
    yield e, r
    e.cleanup()


def run(coro, timeout: float = 30.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def collect(url: str, hello: dict, until, headers=None, limit: int = 2000) -> list[dict]:
    """Connect, send hello, return the messages received until until(messages) holds."""
    got: list[dict] = []
    async with connect(url, additional_headers=headers) as ws:
        await ws.send(json.dumps(hello))
        while not until(got) and len(got) < limit:
            got.append(json.loads(await ws.recv()))
    return got


async def refused(url: str, first: object, headers=None) -> tuple[int, str]:
    async with connect(url, additional_headers=headers) as ws:
        if first is not None:
            await ws.send(first if isinstance(first, str) else json.dumps(first))
        with pytest.raises(ConnectionClosed) as info:
            while True:
                await ws.recv()
    return info.value.rcvd.code, info.value.rcvd.reason


def test_start_prints_where_the_feed_is_and_the_token_is_owner_only(feed):
    e, r = feed
    assert f"event feed on {e.url()} (token in {e.state / 'events.token'})" in r.stdout
    mode = stat.S_IMODE((e.state / "events.token").stat().st_mode)
    assert mode == 0o600
    assert len(e.token()) >= 40
    assert e.token() not in r.stdout + r.stderr
    # a second start with the same --events confirms the running feed
    r2 = e.start("--events", "127.0.0.1:0")
    assert r2.returncode == 0 and f"event feed on {e.url()}" in r2.stdout


def test_a_missing_or_wrong_token_is_refused_with_a_reason(feed):
    e, _ = feed
    url = e.url()
    code, reason = run(refused(url, {"subscribe": {}}))
    assert code == 4401 and "token missing" in reason
    code, reason = run(refused(url, {"token": "nope", "subscribe": {}}))
    assert code == 4401 and "wrong token" in reason
    code, reason = run(refused(url, {"subscribe": {}}, headers={"Authorization": "Bearer nope"}))
    assert code == 4401 and "wrong token" in reason
    code, reason = run(refused(url, "not json"))
    assert code == 4400
    code, reason = run(refused(url, {"token": e.token(), "subscribe": {"channels": ["fils"]}}))
    assert code == 4400 and "unknown channel 'fils'" in reason
    # the header is an alternative to the token in the message
    got = run(collect(url, {"subscribe": {"channels": ["fills"]}}, lambda g: len(g) >= 2,
                      headers={"Authorization": f"Bearer {e.token()}"}))
    assert got[0]["event"] == "subscribed" and got[1]["event"] == "order_filled"


def test_subscription_filters_by_strategy_and_channel(feed):
    e, _ = feed
    hello = {"token": e.token(), "subscribe": {"strategies": ["beta"], "channels": ["fills", "trades"]}}
    got = run(collect(e.url(), hello, lambda g: len(g) >= 30))
    assert got[0] == {"event": "subscribed", "strategies": ["beta"], "channels": ["fills", "trades"],
                      "running": ["alpha", "beta"]}
    events = got[1:]
    assert {ev["strategy"] for ev in events} == {"beta"}
    assert {ev["event"] for ev in events} == {"order_filled", "trade_completed"}


def test_every_channel_carries_its_documented_fields_and_no_secret(feed):
    e, _ = feed
    hello = {"token": e.token(), "subscribe": {"strategies": ["alpha"]}}
    wanted = {"price", "pnl", "order_created", "order_cancelled", "order_filled", "trade_completed",
              "risk_warning", "warning", "error"}
    got = run(collect(e.url(), hello, lambda g: wanted <= {m["event"] for m in g}))
    assert got[0]["channels"] == list(CHANNELS)
    by = {m["event"]: m for m in got[1:]}
    common = {"event", "strategy", "ts", "level", "message"}
    assert set(by["order_created"]) == common | {"order_id", "client_id", "intent", "side", "price", "qty",
                                                 "reduce_only", "post_only", "type"}
    assert by["order_created"]["price"] == "149.5" and by["order_created"]["type"] == "limit"
    assert set(by["order_filled"]) == common | {"order_id", "client_id", "intent", "side", "price", "qty", "fee",
                                                "maker", "trade_id"}
    assert by["order_filled"]["side"] == "buy" and by["order_filled"]["qty"] == "0.1"
    assert set(by["trade_completed"]) == common | {"side", "entry_price", "exit_price", "qty", "profit", "fees",
                                                   "net_profit", "entry_ts", "exit_ts", "hold_ms"}
    assert (by["trade_completed"]["entry_price"], by["trade_completed"]["exit_price"]) == ("149.5", "150.5")
    assert set(by["price"]) == {"event", "strategy", "ts", "price"}
    assert by["pnl"]["total_pnl"] == "0.9" and by["pnl"]["position"] == "0.5"
    assert by["risk_warning"]["margin_ratio"] == "0.51"
    text = json.dumps(got)
    assert FEED_SECRET not in text and "abc123" not in text
    assert "signature=***" in by["error"]["message"]
    # price: at most one per strategy per second
    prices = [m["ts"] for m in got if m["event"] == "price"]
    assert all(b - a >= 900 for a, b in zip(prices, prices[1:]))


def test_a_worker_restart_does_not_end_the_feed(feed):
    e, _ = feed
    old = e.workers()["alpha"]["pid"]

    async def scenario() -> list[dict]:
        got: list[dict] = []
        async with connect(e.url()) as ws:
            await ws.send(json.dumps({"token": e.token(), "subscribe": {"strategies": ["alpha"],
                                                                        "channels": ["fills", "status"]}}))
            while not any(m.get("event") == "order_filled" for m in got):
                got.append(json.loads(await ws.recv()))
            os.kill(old, signal.SIGKILL)
            while not any(m.get("event") == "order_filled" and f"-{old}-" not in m["order_id"]
                          for m in got if m.get("order_id")):
                got.append(json.loads(await ws.recv()))
        return got

    got = run(scenario())
    states = [m["state"] for m in got if m["event"] == "status_changed" and m["source"] == "supervisor"]
    assert "backoff" in states and states[-1] == "running"
    new = e.workers()["alpha"]["pid"]
    assert new != old
    # the new process's first events arrive too (it is attached with its recent events)
    assert any(m["event"] == "status_changed" and m["source"] == "worker" and m["message"] == "continuing grid"
               for m in got)


def test_a_non_loopback_address_needs_the_explicit_opt_in(tmp_path):
    e = FeedEnv(tmp_path)
    try:
        r = e.start("--events", "0.0.0.0:8765")
        assert r.returncode == 2
        assert "--events: 0.0.0.0:8765 is not a loopback address" in r.stderr
        assert "allow_remote: true" in r.stderr
        assert supervisor_status(e.state) is None  # nothing started
        e.config.write_text(config_text(events="events: {listen: 0.0.0.0:8765}\n"))
        r = e.gridctl("validate", "-c", str(e.config))
        assert r.returncode == 2, r.stderr
        r = e.start()  # the YAML alone is refused the same way, naming the field
        assert r.returncode == 2 and "events.listen" in r.stderr and supervisor_status(e.state) is None
        assert r.returncode == 2 and "events.listen (line 8): 0.0.0.0:8765 is not a loopback address" in r.stderr
    finally:
        e.cleanup()


def test_the_option_wins_over_the_yaml_and_allow_remote_comes_from_the_yaml(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(config_text(events="events: {listen: 127.0.0.1:9001}\n"))
    cfg = load(path, check_markets=False)
    assert cfg.events is not None and cfg.events.listen == "127.0.0.1:9001"
    assert resolve(None, cfg.events) == cfg.events
    assert resolve("[::1]:9002", cfg.events).listen == "[::1]:9002"
    with pytest.raises(ListenError, match="--events: 10.0.0.1:9002 is not a loopback"):
        resolve("10.0.0.1:9002", cfg.events)
    path.write_text(config_text(events="events: {listen: 0.0.0.0:9001, allow_remote: true}\n"))
    cfg = load(path, check_markets=False)
    assert resolve("10.0.0.1:9002", cfg.events).allow_remote
    path.write_text(config_text(events="events: {listen: nowhere}\n"))
    with pytest.raises(ConfigError) as info:
        load(path, check_markets=False)
    assert "events.listen" in str(info.value.problems[0]) and "not HOST:PORT" in str(info.value.problems[0])


def test_the_yaml_alone_starts_the_feed_and_a_busy_port_is_reported(tmp_path):
    import socket

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    e = FeedEnv(tmp_path)
    e.config.write_text(config_text(events=f"events: {{listen: 127.0.0.1:{port}}}\n"))
    try:
        r = e.start()
        assert r.returncode == 1
        assert f"error: event feed: cannot listen on 127.0.0.1:{port}" in r.stderr
        assert "started alpha" in r.stdout  # trading does not depend on the dashboard
        busy.close()
        r = e.start()
        assert r.returncode == 0 and f"event feed on ws://127.0.0.1:{port}" in r.stdout
        assert (e.state / "events.token").exists()
        assert e.gridctl("shutdown").returncode == 0
        wait_until(lambda: not (e.state / "supervisor.pid").exists(), what="the supervisor gone")
        assert not (e.state / "events.token").exists()  # removed when the supervisor ends
    finally:
        busy.close()
        e.cleanup()
