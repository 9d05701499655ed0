"""Live-path latency benchmark: real workers (`gridctl start`) trading a `gridctl venue
binanceusdm` process on 127.0.0.1 through ccxt, timed in the venue's own clock.

The venue runs with GRIDCTL_VENUE_TIMING (gridctl/venue/timing.py): it logs, in
time.monotonic_ns() of its process, each admin price move, each ORDER_TRADE_UPDATE it is
about to publish and each order request it is about to answer.

1. Fill -> replacement. A neutral grid (SOL, 168-172, 16 levels of 0.25) on an account whose
   `endpoint:` is the venue. The price is moved through the admin API alternately just
   below the nearest buy and back above it, so each move fills exactly one order; per fill:
   venue time from publishing the TRADE to answering the worker's next order (the exit, or
   the re-entry at that level). The next move waits --gap s (default 0.25) after the
   replacement: longer than ccxt's pacing of binanceusdm orders (4 units of 50 ms), which
   a worker honours, so each fill finds the worker idle as a live one mostly is. Between
   fills the bench sends one plain ccxt
   `create_order` (post-only, far from the price, ETH, the same account) and times its
   round trip on its own clock (then cancels it, untimed). Prints p50/p99 of both and
   their ratio (target <= 1.5).
2. Stop-loss -> flat. A long grid with initial_position (40 sells resting above the price,
   SOL at the grid's lower bound) and stop_loss_price below it; the price is moved through
   the stop; venue time from the price move to the first moment the account has no open
   SOL order and a zero SOL position (target < 1 s). Repeated --stops times.

    python tests/bench/bench_live.py [--fills 1000] [--gap 0.25] [--stops 5]

Everything it starts is shut down (and killed if need be) on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # tests.*

from gridctl.core.clientid import decode as decode_cid  # noqa: E402
from gridctl.venue.records import fingerprint  # noqa: E402
from tests.proc_helpers import Paper, wait_until  # noqa: E402
from tests.venue_harness import binance_client  # noqa: E402

KEY, SECRET = "bench-key", "bench-secret"
SOL, ETH = "SOL/USDT:USDT", "ETH/USDT:USDT"
TARGET_RATIO = 1.5
TARGET_FLAT_S = 1.0


# ---- the venue -------------------------------------------------------------------------------
class Venue:
    """`gridctl venue binanceusdm` in its own process, timing log on."""

    def __init__(self, root: Path):
        self.timing = root / "venue-timing.jsonl"
        port_file = root / "venue.url"
        self.log = open(root / "venue.log", "w")
        env = dict(os.environ, GRIDCTL_VENUE_TIMING=str(self.timing))
        self.proc = subprocess.Popen([sys.executable, "-m", "gridctl", "venue", "binanceusdm", "--port", "0",
                                      "--port-file", str(port_file), "--api-key", KEY, "--secret", SECRET,
                                      "--balance", "100000"], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = wait_until(lambda: port_file.exists() and port_file.read_text().strip(), 20, "the venue listening")
        self.fp = fingerprint(KEY)
        self._offset = 0

    def admin(self, path: str, body=None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method="GET" if body is None else "POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"null")

    def price(self, symbol: str, p) -> None:
        self.admin("/_admin/price", {"symbol": symbol, "price": str(p)})

    def account(self) -> dict:
        return self.admin("/_admin/state")["accounts"].get(self.fp) or {}

    def open_orders(self, symbol: str = SOL) -> list[dict]:
        return [o for o in self.account().get("open_orders", []) if o["symbol"] == symbol]

    def position(self, symbol: str = SOL) -> Decimal:
        return Decimal((self.account().get("positions") or {}).get(symbol, {}).get("net", "0"))

    def records(self) -> list[dict]:
        """Timing records written since the last call (whole lines only)."""
        with open(self.timing, "rb") as f:
            f.seek(self._offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self._offset += end
        return [json.loads(line) for line in data[:end].splitlines() if line]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def account_yaml(venue: Venue) -> str:
    return (f"version: 1\naccounts:\n  main:\n    exchange: binanceusdm\n    endpoint: {venue.url}\n"
            f"    api_key: \"{KEY}\"\n    secret: \"{SECRET}\"\nstrategies:\n")


def pct(xs: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of xs."""
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, int(round(q / 100 * len(s) + 0.5)) - 1))]


# ---- 1. fill -> replacement ------------------------------------------------------------------
GRID = "    symbol: SOL/USDT:USDT\n    mode: neutral\n    lower: 168\n    upper: 172\n    grids: 16\n" \
       "    investment: 400\n    leverage: 2\n"
LOW, HIGH = "169.70", "170.05"  # just through the buy at 169.75, then through the exit at 170.00


def wait_records(venue: Venue, pred, timeout: float, what: str) -> list[dict]:
    """Records until pred(all records so far) is truthy (polled every 2 ms)."""
    got: list[dict] = []
    deadline = time.monotonic() + timeout
    while True:
        got += venue.records()
        if pred(got):
            return got
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}; last records {got[-5:]}")
        time.sleep(0.002)


def reaction(recs: list[dict], fp: str) -> Optional[tuple[int, dict, dict]]:
    """(ns from the first TRADE published to the next successful order answered, trade, ack)."""
    trade = next((r for r in recs if r["e"] == "publish" and r["x"] == "TRADE" and r.get("acct") == fp), None)
    if trade is None:
        return None
    ack = next((r for r in recs if r["e"] == "ack" and r["kind"] == "place" and r["status"] == 200
                and r["t"] > trade["t"] and r.get("acct") == fp), None)
    return None if ack is None else (ack["t"] - trade["t"], trade, ack)


async def baseline_once(client) -> float:
    """One plain ccxt create_order round trip (s), the order then cancelled untimed."""
    t = time.perf_counter()
    o = await client.create_order(ETH, "limit", "buy", 0.05, 1000, {"timeInForce": "GTX"})
    took = time.perf_counter() - t
    await client.cancel_order(o["id"], ETH)
    return took


async def bench_fills(root: Path, venue: Venue, n: int, gap: float) -> dict:
    venue.price(SOL, "170.00")
    venue.price(ETH, "3000")
    d = root / "fills"
    d.mkdir()
    (d / "given.yaml").write_text(account_yaml(venue) + "  sol:\n    account: main\n" + GRID)
    p = Paper(d, d / "given.yaml")
    client = binance_client(venue.url, KEY, SECRET, pro=False)
    reactions: list[float] = []
    rtts: list[float] = []
    levels: dict[tuple, int] = {}
    try:
        await client.load_markets()
        for _ in range(5):  # warm the connection pool and ccxt's caches, untimed
            await baseline_once(client)
        p.start()
        wait_until(lambda: len(venue.open_orders()) == 16, 60, "16 grid orders on the venue")
        time.sleep(1)
        venue.records()
        for i in range(n):
            venue.price(SOL, LOW if i % 2 == 0 else HIGH)
            recs = wait_records(venue, lambda rs: reaction(rs, venue.fp), 20, f"fill {i + 1}'s replacement")
            ns, trade, ack = reaction(recs, venue.fp)
            reactions.append(ns / 1e9)
            dec = decode_cid("binance", ack["c"])
            key = (dec.level, dec.intent.value) if dec else (None, ack["c"])
            levels[key] = levels.get(key, 0) + 1
            time.sleep(0.005)  # let the worker finish booking the fill before the baseline request
            venue.records()  # anything else the worker did for this fill is not the next fill's
            rtts.append(await baseline_once(client))
            time.sleep(gap)
        fills = p.count("fills", "sol")
        p.ok("stop", "sol", "-c", str(p.config))
    finally:
        await client.close()
        p.cleanup()
    return {"reactions": reactions, "rtts": rtts, "levels": levels, "fills_booked": fills, "gap": gap}


def report_fills(m: dict) -> bool:
    r, b = m["reactions"], m["rtts"]
    r50, r99, b50, b99 = (pct(r, 50), pct(r, 99), pct(b, 50), pct(b, 99))
    q50, q99 = r50 / b50, r99 / b99
    ok = q50 <= TARGET_RATIO and q99 <= TARGET_RATIO
    print(f"\n== fill published -> replacement order acknowledged ({len(r)} fills, {m['gap']:g} s apart, "
          f"venue clock) ==")
    print(f"  fill -> replacement ack         p50 {r50 * 1000:7.2f} ms   p99 {r99 * 1000:7.2f} ms   "
          f"max {max(r) * 1000:.2f} ms   mean {statistics.mean(r) * 1000:.2f} ms")
    print(f"  plain ccxt create_order RTT     p50 {b50 * 1000:7.2f} ms   p99 {b99 * 1000:7.2f} ms   "
          f"max {max(b) * 1000:.2f} ms   ({len(b)} orders, same venue, same run)")
    print(f"  ratio                           p50 {q50:7.2f}      p99 {q99:7.2f}      "
          f"(target <= {TARGET_RATIO}: {'met' if ok else 'NOT met'})")
    print(f"  replacements by (level, intent): {dict(sorted(m['levels'].items(), key=str))}; "
          f"fills booked by the worker {m['fills_booked']}")
    return ok


# ---- 2. stop-loss -> flat ----------------------------------------------------------------------
STOP_GRID = "    symbol: SOL/USDT:USDT\n    mode: long\n    lower: 150\n    upper: 190\n    grids: 40\n" \
            "    investment: 2000\n    leverage: 2\n    initial_position: true\n" \
            "    risk: {stop_loss_price: 149.5, on_stop: close}\n"


def flat_after(recs: list[dict], fp: str, t0: int) -> Optional[dict]:
    """The first record at or after t0 showing the account with no open SOL order and no SOL position."""
    for r in recs:
        if r["t"] >= t0 and r.get("acct") == fp and r.get("open") == 0 and "pos" in r and Decimal(r["pos"]) == 0:
            return r
    return None


def bench_stop(root: Path, venue: Venue, k: int) -> dict:
    venue.price(SOL, "150.00")
    d = root / f"stop{k}"
    d.mkdir()
    (d / "given.yaml").write_text(account_yaml(venue) + "  sl:\n    account: main\n" + STOP_GRID)
    p = Paper(d, d / "given.yaml")
    try:
        p.start()
        wait_until(lambda: len(venue.open_orders()) == 40 and venue.position() > 0, 60,
                   "40 sells resting and the initial position open")
        time.sleep(1)
        orders, position = len(venue.open_orders()), venue.position()
        venue.records()
        venue.price(SOL, "149.40")  # through the stop at 149.50
        recs = wait_records(venue, lambda rs: any(r["e"] == "price" for r in rs)
                            and flat_after(rs, venue.fp, next(r["t"] for r in rs if r["e"] == "price")), 30,
                            "the position flat with no open order")
        t0 = next(r["t"] for r in recs if r["e"] == "price")
        flat = flat_after(recs, venue.fp, t0)
        mine = [r for r in recs if r.get("acct") == venue.fp and r["t"] >= t0]
        cancels = [r for r in mine if r["e"] == "ack" and r["kind"] == "cancel"]
        closes = [r for r in mine if r["e"] == "ack" and r["kind"] == "place"]  # the closing market order
        first = min((r["t"] for r in mine if r["e"] == "ack"), default=flat["t"])
        assert venue.open_orders() == [] and venue.position() == 0, "not flat on the venue"
    finally:
        p.cleanup()
    return {"orders": orders, "position": position, "flat_s": (flat["t"] - t0) / 1e9,
            "first_request_s": (first - t0) / 1e9, "cancel_acks": len(cancels),
            "closes": len(closes),
            "last_cancel_s": (max(r["t"] for r in cancels) - t0) / 1e9 if cancels else None,
            "close_s": (max(r["t"] for r in closes) - t0) / 1e9 if closes else None}


def report_stops(runs: list[dict]) -> bool:
    print("\n== stop-loss crossed -> flat (no open order, position zero), venue clock ==")
    for i, m in enumerate(runs, 1):
        ok = "met" if m["flat_s"] < TARGET_FLAT_S else "NOT met"
        last_c = "-" if m["last_cancel_s"] is None else f"{m['last_cancel_s'] * 1000:.0f} ms"
        close = "-" if m["close_s"] is None else f"{m['close_s'] * 1000:.0f} ms"
        print(f"  run {i}: {m['orders']} open orders, position {m['position']} SOL -> flat after "
              f"{m['flat_s'] * 1000:7.1f} ms (target < {TARGET_FLAT_S * 1000:.0f} ms: {ok}); first request answered "
              f"{m['first_request_s'] * 1000:.0f} ms, {m['cancel_acks']} cancel requests (last {last_c}), "
              f"close order answered {close}")
    worst = max(m["flat_s"] for m in runs)
    print(f"  worst {worst * 1000:.1f} ms, median {statistics.median(m['flat_s'] for m in runs) * 1000:.1f} ms")
    return worst < TARGET_FLAT_S


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fills", type=int, default=1000, help="fills to time (default 1000)")
    ap.add_argument("--gap", type=float, default=0.25, help="seconds between a replacement and the next move")
    ap.add_argument("--stops", type=int, default=5, help="stop-loss runs (default 5)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary dirs")
    args = ap.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    root = Path(tempfile.mkdtemp(prefix="gxl-"))  # short: socket paths have a 107-byte limit
    print(f"bench_live: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, Python "
          f"{sys.version.split()[0]}, state under {root}")
    venue = Venue(root)
    try:
        if args.fills:
            report_fills(asyncio.run(bench_fills(root, venue, args.fills, args.gap)))
        if args.stops:
            report_stops([bench_stop(root, venue, k) for k in range(args.stops)])
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        venue.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
