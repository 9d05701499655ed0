"""End to end: `risk: {exchange_stop: true}` keeps a reduce-only stop-market order on the venue
for the strategy's whole position, and it flattens the position while no gridctl process runs.

The real supervisor and worker (`gridctl start`) trade a binanceusdm / backpack account whose
`endpoint:` is a `gridctl venue` process (it stands for the exchange and keeps running);
every gridctl process is SIGKILLed, the venue's admin API drives the price through the stop,
and the venue alone closes the position. A restart books the stop's fill once and ends the
grid stopped with reason exchange_stop; a restart after the position changed re-arms the
stop for the new size.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from tests.proc_helpers import Paper, wait_until
from tests.test_e2e_ccxt import FAST, Venue, own_orders

pytestmark = pytest.mark.slow


def config(tmp: Path, venue: Venue, exchange_stop: bool = True) -> Path:
    text = f"""version: 1
accounts:
  main:
    exchange: {venue.protocol}
    endpoint: {venue.url}
    api_key: "{venue.key}"
    secret: "{venue.secret}"
strategies:
  sol:
    account: main
    symbol: {venue.symbol}
    mode: long
    lower: 166
    upper: 174
    grids: 8
    investment: 400
    leverage: 2
    risk: {{stop_loss_price: 164, exchange_stop: {str(exchange_stop).lower()}}}
"""
    path = tmp / "given.yaml"
    path.write_text(text)
    return path


def stops(venue: Venue) -> list[dict]:
    return [t for t in venue.account().get("triggers", []) if t["symbol"] == venue.symbol]


def started(tmp_path: Path, venue: Venue) -> Paper:
    p = Paper(tmp_path, config(tmp_path, venue))
    p.env["GRIDCTL_CCXT_TIMING"] = FAST if venue.protocol != "backpack" else FAST[:-1] + ', "funding_every_s": 2}'
    return p


def open_two_levels(p: Paper, venue: Venue) -> Decimal:
    """Start the grid, fill two buys, wait for the stop on the venue; the size of one lot.

    The stop covers the two lots held and the two buys still resting above it (at 167 and
    166: with nobody running they fill on the way down)."""
    assert "started sol (pid" in p.start()
    book = wait_until(lambda: len(b := own_orders(venue)) >= 4 and b, 30, "the grid's buys on the venue")
    size = Decimal(next(iter(book.values()))["qty"])
    venue.price("167.50")  # crosses the buys at 169 and 168
    wait_until(lambda: venue.position() == 2 * size, 20, "two buys filled")
    rest = wait_until(lambda: [t for t in stops(venue) if Decimal(t["qty"]) == 4 * size] or None, 20,
                      "the stop for the whole position on the venue")
    assert len(stops(venue)) == 1
    (t,) = rest
    assert t["side"] == "sell" and t["reduce_only"] and Decimal(t["trigger_price"]) == 164
    return size


@pytest.mark.parametrize("protocol", ["binanceusdm", "backpack"])
def test_the_stop_flattens_the_position_while_every_gridctl_process_is_killed(tmp_path, protocol):
    venue = Venue(tmp_path, protocol=protocol)
    p = started(tmp_path, venue)
    try:
        open_two_levels(p, venue)
        p.kill_all()  # SIGKILL: the supervisor and the worker; the venue keeps running
        venue.price("163.50")  # through the stop (and the buys at 167, 166) with no gridctl process alive
        assert venue.position() == 0
        assert stops(venue) == []

        # a restart books the stop's fill once and the grid ends stopped by it
        p.start()
        # ended on its own, as after any stop-loss: the supervisor calls it exited
        st = wait_until(lambda: (s := p.status()["sol"])["state"] in ("stopped", "exited") and s, 40, "sol stopped")
        assert st["stop_reason"] == "exchange_stop" and Decimal(st["position"]) == 0
        assert own_orders(venue) == {} and venue.open_orders() == [] and stops(venue) == []
        ids = [r[0] for r in p.sql("SELECT trade_id FROM fills WHERE strategy = 'sol'")]
        assert len(ids) == len(set(ids)) == venue.account()["fills"] == 5
        assert p.count("fills", "sol", "intent = 'close'") == 1
    finally:
        p.cleanup()
        venue.stop()


def cancel_on_the_venue(venue: Venue, cid: str) -> None:
    """The user deletes the stop in the venue's app (ccxt's own client, as any other)."""
    import asyncio

    from tests.venue_harness import binance_client

    async def main():
        ex = binance_client(venue.url, venue.key, venue.secret, pro=False)
        try:
            await ex.load_markets()
            await ex.cancel_order(None, venue.symbol, {"trigger": True, "clientOrderId": cid})
        finally:
            await ex.close()
    asyncio.run(main())


def test_a_restart_re_arms_the_stop_flat_cancels_it_and_stop_cancels_it(tmp_path):
    venue = Venue(tmp_path)
    p = started(tmp_path, venue)
    try:
        size = open_two_levels(p, venue)
        (before,) = stops(venue)
        p.kill_all()
        cancel_on_the_venue(venue, before["client_id"])  # gone while nothing runs
        assert stops(venue) == []
        p.start()
        (after,) = wait_until(lambda: stops(venue) or None, 40, "the stop armed again by the restarted worker")
        assert Decimal(after["qty"]) == 4 * size and after["client_id"] != before["client_id"]

        venue.price("171.50")  # the exits at 169 and 170 fill: flat, so the stop goes
        wait_until(lambda: venue.position() == 0 and not stops(venue), 20, "flat and no stop on the venue")
        venue.price("169.50")  # the buys at 171 and 170 fill: armed again
        wait_until(lambda: len(stops(venue)) == 1, 20, "the stop armed for the new position")

        assert "stopped sol" in p.ok("stop", "sol", "-c", str(p.config))
        assert stops(venue) == [] and venue.position() == 0 and venue.open_orders() == []
        assert p.status()["sol"]["stop_reason"] == "user"
        logs = p.ok("logs", "sol", "--grep", "exchange stop")
        assert "exchange stop armed: sell" in logs and "exchange stop cancelled (flat)" in logs, logs
        assert "exchange stop cancelled (stopping)" in logs, logs
    finally:
        p.cleanup()
        venue.stop()


def test_a_paper_account_s_venue_fires_the_stop_after_the_supervisor_and_worker_are_killed(tmp_path):
    """Paper: the venue process the supervisor started outlives it (and the worker) and fires the stop."""
    import os
    import signal

    from gridctl.process.pidfile import read_pid

    sym = "SOL/USDT:USDT"
    text = f"""version: 1
accounts:
  paper:
    exchange: paper
    like: binanceusdm
    balance: 10000
    feed: {{synthetic: {{seed: 3, price: 170, volatility: 0.00001}}}}
strategies:
  sol:
    account: paper
    symbol: {sym}
    mode: long
    lower: 166
    upper: 174
    grids: 8
    investment: 400
    leverage: 2
    risk: {{stop_loss_price: 164, exchange_stop: true}}
"""
    (tmp_path / "given.yaml").write_text(text)
    p = Paper(tmp_path, tmp_path / "given.yaml")
    p.env["GRIDCTL_CCXT_TIMING"] = FAST

    def admin_account() -> dict:
        accounts = p.venue_admin("sol", "/_admin/state")["accounts"]
        return next(iter(accounts.values()), {})

    def net() -> Decimal:
        return Decimal(admin_account().get("positions", {}).get(sym, {}).get("net", "0"))

    try:
        p.start()
        wait_until(lambda: len(p.book("sol")) >= 4, 30, "the grid's buys on the venue")
        p.venue_admin("sol", "/_admin/price", {"symbol": sym, "price": "167.50"})  # pinned: two buys fill
        wait_until(lambda: net() > 0 and admin_account().get("triggers"), 30, "the stop on the venue")
        venue_pids = {read_pid(f) for f in (p.state / "run" / "venue").glob("*.pid")}
        for pid in (read_pid(p.state / "supervisor.pid"), p.workers()["sol"]["pid"]):
            os.kill(pid, signal.SIGKILL)
        p.venue_admin("sol", "/_admin/price", {"symbol": sym, "price": "163.50"})
        assert net() == 0 and admin_account()["triggers"] == []
        assert all(pid and os.path.exists(f"/proc/{pid}") for pid in venue_pids)  # the venue did it alone
    finally:
        p.kill_all()
        p.cleanup()
