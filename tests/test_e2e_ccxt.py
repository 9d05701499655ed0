"""End to end through ccxt: the real supervisor and REAL workers (`gridctl start`) trading a
`binanceusdm` or `backpack` account whose `endpoint:` is a `gridctl venue` process of that protocol. ccxt's own
signing, request building and parsing run; the venue's admin API plays the exchange's UI.

start -> the grid placed with the strategy's client ids -> prices moved -> fills -> exits ->
stop -> nothing left open and the position zero, in one-way and in hedge mode (Binance) and
one-way (Backpack has no hedge mode: asking for it is a configuration error); a worker
whose keys the venue refuses goes fatal with exit 77.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

import pytest

from nacl.signing import SigningKey

from gridctl.core.clientid import decode as decode_cid, same_strategy, strategy_tag
from gridctl.venue.records import fingerprint
from tests.proc_helpers import Paper, wait_until

pytestmark = pytest.mark.slow
KEYS = {"binanceusdm": ("e2e-key", "e2e-secret"),
        # Backpack: the API key is the ED25519 public key of the secret (the venue checks the pair)
        "backpack": (base64.b64encode(bytes(SigningKey(b"\x07" * 32).verify_key)).decode(),
                     base64.b64encode(b"\x07" * 32).decode())}
KEY, SECRET = KEYS["binanceusdm"]
SYMBOL = {"binanceusdm": "SOL/USDT:USDT", "backpack": "SOL/USDC:USDC"}
SOL = SYMBOL["binanceusdm"]
FAST = json.dumps({"reconnect_delays": [0.3, 0.3, 0.3], "safe_retry_s": 1.0, "heartbeat_s": 0.5,
                   "rest_timeout_ms": 2000, "confirm_stream_s": 0.5, "confirm_retry_s": 0.3})


class Venue:
    """`gridctl venue binanceusdm` in its own process (SOL pinned at `start` by the admin API)."""

    def __init__(self, tmp: Path, start: str = "170.00", protocol: str = "binanceusdm", balance: str = "10000"):
        port_file = tmp / "venue.url"
        self.protocol, self.symbol = protocol, SYMBOL[protocol]
        self.key, self.secret = KEYS[protocol]
        self.log = open(tmp / "venue.log", "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "gridctl", "venue", protocol, "--port", "0",
                                      "--port-file", str(port_file), "--api-key", self.key, "--secret", self.secret, "--balance", balance],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.url = wait_until(lambda: port_file.exists() and port_file.read_text().strip(), 20, "the venue listening")
        self.price(start)

    def admin(self, path: str, body=None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method="GET" if body is None else "POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"null")

    def price(self, p) -> None:
        self.admin("/_admin/price", {"symbol": self.symbol, "price": str(p)})

    def account(self) -> dict:
        return self.admin("/_admin/state")["accounts"].get(fingerprint(self.key)) or {}

    def open_orders(self) -> list[dict]:
        return [o for o in self.account().get("open_orders", []) if o["symbol"] == self.symbol]

    def position(self) -> Decimal:
        return Decimal((self.account().get("positions") or {}).get(self.symbol, {}).get("net", "0"))

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def config(tmp: Path, venue: "Venue", hedge: bool, key: str = "") -> Path:
    mode = "    position_mode: hedge\n" if hedge else ""
    text = f"""version: 1
accounts:
  main:
    exchange: {venue.protocol}
    endpoint: {venue.url}
    api_key: "{key or venue.key}"
    secret: "{venue.secret}"
{mode}strategies:
  sol:
    account: main
    symbol: {venue.symbol}
    mode: neutral
    lower: 166
    upper: 174
    grids: 8
    investment: 400
    leverage: 2
"""
    path = tmp / "given.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def venue(tmp_path):
    v = Venue(tmp_path)
    yield v
    v.stop()


@pytest.fixture
def backpack(tmp_path):
    v = Venue(tmp_path, protocol="backpack")
    yield v
    v.stop()


def started(tmp_path: Path, venue: Venue, hedge: bool, key: str = "") -> Paper:
    p = Paper(tmp_path, config(tmp_path, venue, hedge, key))
    # Backpack announces no settlement on its streams: its funding is polled (each funding
    # time, and on a timer that the test makes short)
    p.env["GRIDCTL_CCXT_TIMING"] = FAST if venue.protocol != "backpack" else FAST[:-1] + ', "funding_every_s": 2}'
    return p


def own_orders(venue: Venue) -> dict[str, dict]:
    tag, fmt = strategy_tag("sol"), "backpack" if venue.protocol == "backpack" else "binance"
    out = {}
    for o in venue.open_orders():
        d = decode_cid(fmt, o["client_id"])
        assert d is not None and same_strategy(fmt, d, tag), f"{o['client_id']} on the venue is not sol's"
        out[o["client_id"]] = {**o, "level": d.level, "intent": d.intent.value}
    return out


def grid_cycle(tmp_path: Path, venue: Venue, hedge: bool) -> None:
    p = started(tmp_path, venue, hedge)
    try:
        assert "started sol (pid" in p.start()
        book = wait_until(lambda: len(b := own_orders(venue)) == 8 and b, 30, "8 grid orders on the venue")
        levels = sorted((o["level"], o["side"], o["intent"]) for o in book.values())
        assert [lv for lv, _, _ in levels] == [0, 1, 2, 3, 5, 6, 7, 8]  # level 4 sits at the start price
        assert all(i == "entry" for _, _, i in levels)
        assert {s for lv, s, _ in levels if lv < 4} == {"buy"} and {s for lv, s, _ in levels if lv > 4} == {"sell"}
        if hedge:
            assert {str(o["position_side"]).lower() for o in book.values()} == {"long", "short"}
            assert not any(o["reduce_only"] for o in book.values())

        venue.price("167.50")  # crosses the buys at 169 and 168
        wait_until(lambda: p.count("fills", "sol") >= 2, 20, "two entry fills booked")
        exits = wait_until(lambda: [o for o in own_orders(venue).values() if o["intent"] == "exit"] or None, 20,
                           "exits placed")
        assert {o["side"] for o in exits} == {"sell"}
        if hedge:  # an exit of the long leg: positionSide LONG, no reduceOnly beside it (Binance -1106)
            assert {str(o["position_side"]).lower() for o in exits} == {"long"} and not any(o["reduce_only"] for o in exits)
        size = Decimal(next(iter(book.values()))["qty"])
        assert venue.position() == 2 * size  # two buy levels filled

        # a funding settlement on the venue is fetched and booked to the strategy
        venue.admin("/_admin/funding", {"symbol": venue.symbol, "rate": "0.001"})
        rows = wait_until(lambda: p.sql("SELECT amount FROM funding WHERE strategy = 'sol'"), 20, "funding booked")
        assert len(rows) == 1 and Decimal(str(rows[0][0])) == -(2 * size * Decimal("167.50") * Decimal("0.001"))

        venue.price("169.20")  # the exit at 169 fills: one cycle
        wait_until(lambda: p.count("trades", "sol") >= 1, 20, "a cycle completed")

        out = p.ok("stop", "sol", "-c", str(p.config))
        assert "stopped sol" in out
        assert own_orders(venue) == {} and venue.open_orders() == []
        assert venue.position() == 0
        st = p.status()["sol"]
        assert st["state"] == "stopped" and Decimal(st["position"]) == 0
        assert p.count("fills", "sol", "intent = 'close'") == 1
        # every fill the venue made is in the database once, with its venue trade id
        ids = [r[0] for r in p.sql("SELECT trade_id FROM fills WHERE strategy = 'sol'")]
        assert len(ids) == len(set(ids)) == venue.account()["fills"]
    finally:
        p.cleanup()


def test_one_way_grid_trades_and_stops_flat(tmp_path, venue):
    grid_cycle(tmp_path, venue, hedge=False)


def test_backpack_grid_trades_and_stops_flat(tmp_path, backpack):
    grid_cycle(tmp_path, backpack, hedge=False)


def test_hedge_mode_on_backpack_is_a_configuration_error(tmp_path, backpack):
    p = started(tmp_path, backpack, hedge=True)
    try:
        r = p.gridctl("start", "-c", str(p.config))
        assert r.returncode == 1
        assert "configuration error (exit 78)" in r.stderr and "backpack has no hedge position mode; use " \
               "position_mode: one-way" in r.stderr, r.stderr
        assert backpack.open_orders() == []
    finally:
        p.cleanup()


def test_hedge_mode_grid_trades_and_stops_flat(tmp_path, venue):
    grid_cycle(tmp_path, venue, hedge=True)
    assert venue.account()["hedge"] is True  # the pre-flight switched the account to hedge mode


def test_refused_api_keys_make_the_worker_fatal_with_exit_77(tmp_path, venue):
    p = started(tmp_path, venue, hedge=False, key="not-the-key")
    try:
        r = p.gridctl("start", "-c", str(p.config))
        assert r.returncode == 1
        assert "error: sol failed to start: authentication error (exit 77): sol: the exchange refused the API keys " \
               "of account 'main'" in r.stderr, r.stderr
        w = wait_until(lambda: (w := p.workers()["sol"])["state"] == "fatal" and w, 30, "sol fatal")
        assert "authentication error (exit 77)" in w["reason"], w["reason"]
        assert "refused the API keys" in w["reason"]
        assert "not-the-key" not in w["reason"] and venue.secret not in w["reason"]
    finally:
        p.cleanup()


def test_a_position_mode_the_venue_will_not_change_is_a_configuration_error(tmp_path, venue):
    p = started(tmp_path, venue, hedge=False)
    p2 = None
    try:
        p.start()
        wait_until(lambda: len(own_orders(venue)) == 8, 30, "the one-way grid placed")
        # a second state dir asks for hedge mode on the same account while its orders rest
        (tmp_path / "two").mkdir()
        p2 = Paper(tmp_path / "two", config(tmp_path / "two", venue, hedge=True))
        text = p2.config.read_text().replace("  sol:\n", "  sol2:\n")
        p2.config.write_text(text)
        p2.env["GRIDCTL_CCXT_TIMING"] = FAST
        r = p2.gridctl("start", "-c", str(p2.config))
        assert r.returncode == 1 and "configuration error (exit 78)" in r.stderr, r.stderr
        w = wait_until(lambda: (w := p2.workers()["sol2"])["state"] == "fatal" and w, 30, "sol2 fatal")
        assert "configuration error (exit 78)" in w["reason"] and "position mode hedge" in w["reason"], w["reason"]
        assert len(own_orders(venue)) == 8  # the running grid is untouched
    finally:
        if p2 is not None:
            p2.cleanup()
        p.cleanup()



def test_unknown_placements_and_a_dropped_stream_leave_no_duplicate_and_lose_no_fill(tmp_path, venue):
    # the venue places the first order but answers only after the client gave up, and the
    # second with an empty 200: both must be confirmed by client id, never sent twice
    venue.admin("/_admin/faults", {"timeout": {"count": 1, "delay": 4}, "empty": {"count": 1}})
    p = started(tmp_path, venue, hedge=False)
    try:
        p.start()
        wait_until(lambda: len(own_orders(venue)) == 8, 40, "8 grid orders on the venue")
        assert venue.admin("/_admin/state")["faults"] == {}  # both faults fired
        time.sleep(2)  # a wrongly re-sent order would show up now
        book = own_orders(venue)
        assert len(book) == 8 and len({(o["level"], o["intent"]) for o in book.values()}) == 8
        assert venue.account()["orders"] == 8  # nothing was sent a second time
        logs = p.ok("logs", "sol", "--grep", "placed")
        assert logs.count("placed entry") == 8, logs

        venue.admin("/_admin/drop-streams", {})
        venue.price("168.50")  # fills the buy at 169 while the stream is re-dialled
        wait_until(lambda: p.count("fills", "sol") >= 1, 30, "the fill booked")
        time.sleep(2)
        ids = [r[0] for r in p.sql("SELECT trade_id FROM fills WHERE strategy = 'sol'")]
        assert len(ids) == len(set(ids)) == venue.account()["fills"] == 1
        assert "exchange stream lost" in p.ok("logs", "sol", "--grep", "stream")
        wait_until(lambda: "exchange stream restored" in p.ok("logs", "sol", "--grep", "stream"), 20, "restored")
        exits = wait_until(lambda: [o for o in own_orders(venue).values() if o["intent"] == "exit"], 20, "exit placed")
        assert len(exits) == 1
    finally:
        p.cleanup()


def test_a_killed_worker_restarts_and_adopts_its_orders_on_the_venue(tmp_path, venue):
    p = started(tmp_path, venue, hedge=False)
    try:
        p.start()
        before = wait_until(lambda: len(b := own_orders(venue)) == 8 and b, 30, "8 grid orders on the venue")
        old = p.workers()["sol"]["pid"]
        os.kill(old, signal.SIGKILL)
        venue.price("168.50")  # a fill while no worker runs: found in the trade history at restart
        wait_until(lambda: (w := p.workers()["sol"])["state"] == "running" and w["pid"] != old, 30, "sol restarted")
        logs = wait_until(lambda: (out := p.ok("logs", "sol", "--grep", "recovered")).count("recovered:") >= 2 and out,
                          20, "the restarted worker recovered")
        assert "recovered: 7 open orders adopted, 1 missed fills applied" in logs.splitlines()[-1], logs
        wait_until(lambda: any(o["intent"] == "exit" for o in own_orders(venue).values()), 20, "the exit placed")
        after = own_orders(venue)
        assert {c for c in before if before[c]["level"] != 3} <= set(after)  # the resting ones were kept
        assert len({(o["level"], o["intent"]) for o in after.values()}) == len(after)
        assert p.count("fills", "sol") == venue.account()["fills"] == 1
    finally:
        p.cleanup()


def test_a_rejected_order_waits_its_levels_cooldown_and_is_placed_again(tmp_path, venue):
    venue.admin("/_admin/faults", {"reject": {"count": 1, "reason": "post_only_would_cross"}})
    p = started(tmp_path, venue, hedge=False)
    try:
        p.start()
        wait_until(lambda: len(own_orders(venue)) == 7, 30, "7 of the 8 grid orders placed")
        logs = p.ok("logs", "sol", "--grep", "rejected")
        assert "rejected: post_only; retried when the market or the book changes, not within 5s" in logs, logs
        venue.price("170.50")  # the market changes: the level may be tried again once its 5 s are over
        wait_until(lambda: len(own_orders(venue)) == 8, 20, "the rejected level placed again")
        time.sleep(1.2)  # the writer flushes every second
        (level, rejected_ts), = p.sql("SELECT level, created_ts FROM orders WHERE strategy = 'sol' AND "
                                      "status = 'rejected'")
        (again_ts,), = p.sql("SELECT created_ts FROM orders WHERE strategy = 'sol' AND level = ? AND "
                             "status = 'open'", level)
        assert again_ts - rejected_ts >= 5000  # the level waited its cooldown
    finally:
        p.cleanup()


def test_a_balance_that_does_not_cover_the_grid_is_a_configuration_error(tmp_path):
    poor = Venue(tmp_path, balance="50")
    p = started(tmp_path, poor, hedge=False)
    try:
        r = p.gridctl("start", "-c", str(p.config))
        assert r.returncode == 1
        assert "configuration error (exit 78): sol: configuration error: sol: the binanceusdm account has 50" \
            in r.stderr and "USDT of margin (lower the investment or leverage, or add funds)" in r.stderr, r.stderr
        assert poor.account().get("orders", 0) == 0  # nothing was sent
    finally:
        p.cleanup()
        poor.stop()
