"""End to end: the exchange's position is the truth at start (issue "The exchange's position
is the truth at start"), through the real CLI, supervisor, worker and paper venue.

A position left by `stop --keep-position` or `on_stop: keep` is adopted by the next start
(never bought twice), a crash-restart adopts it again from the stored grid (never counted
twice), `emergency-close` closes it while the strategy is stopped, and a difference nobody
can explain is shown beside the ledger, never written over it.

The strategies are those of strategies.yaml.example (copied into a temporary dir, its
replays sped up: SOL 1m at 600x, XRP 5m at 3000x, 10 candles a second); what is checked
is what a user sees: `gridctl status/logs`, and the paper account's local venue (its
book, position and trade history, read by tests/venue_view.py).
"""

from __future__ import annotations

import json
import os
import signal
import time
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from gridctl.core.clientid import decode as decode_cid
from gridctl.process.pidfile import pid_alive as alive
from tests.proc_helpers import Paper, wait_until

EXAMPLE = Path(__file__).resolve().parent.parent / "strategies.yaml.example"
SOL, XRP = Decimal("0.01"), Decimal("0.1")  # lot steps of SOL/USDT:USDT and XRP/USDT:USDT (binanceusdm)

pytestmark = pytest.mark.slow  # real processes


def _config(tmp: Path) -> Path:
    """strategies.yaml.example with its replays sped up to 10 candles a second."""
    cfg = yaml.safe_load(EXAMPLE.read_text())
    cfg["accounts"]["paper"]["feed"]["speed"] = 600
    cfg["accounts"]["paper-long"]["feed"]["speed"] = 600  # sol-long's own SOLUSDT account
    cfg["accounts"]["paper-xrp"]["feed"]["speed"] = 3000
    cfg.pop("reports", None)
    path = tmp / "example.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture
def paper(tmp_path):
    p = Paper(tmp_path, _config(tmp_path), backoff=0.3)
    yield p
    p.cleanup()


def step(name: str) -> Decimal:
    return SOL if name.startswith("sol") else XRP


def venue(p: Paper, name: str) -> Decimal:
    """The venue's net position in coins."""
    return p.venue_position(name) * step(name)


def status(p: Paper, name: str) -> dict:
    return p.status()[name]


def logs(p: Paper, name: str, grep: str) -> str:
    return p.ok("logs", name, "-n", "100000", "--grep", grep)


def steady(p: Paper, name: str, timeout: float = 15) -> dict:
    """`status --json` at a moment the venue's position did not move around it: (status, venue)."""
    def look():
        before = venue(p, name)
        st = status(p, name)
        after = venue(p, name)
        return (st, after) if before == after else None
    return wait_until(look, timeout, f"{name}: a status read while the venue's position stands still")


def market_entries(p: Paper, name: str, since_ms: int) -> list[dict]:
    """Entry fills the venue made at market (taker) since a moment: an initial-position buy."""
    out = []
    for j in p.trades(name):
        d = decode_cid("binance", j["cid"])
        if j["ts"] >= since_ms and not j["maker"] and d is not None and d.intent.value == "entry":
            out.append(j)
    return out


def keep_stopped_sol(p: Paper) -> Decimal:
    """sol-long started, holding its initial position, stopped with --keep-position; returns what it kept."""
    p.start("sol-long")
    wait_until(lambda: venue(p, "sol-long") > 0, 20, "sol-long's initial position on the venue")
    out = p.ok("stop", "sol-long", "--keep-position")
    assert "stopped sol-long (position kept)" in out, out
    kept = venue(p, "sol-long")
    assert kept > 0 and p.book("sol-long") == {}
    st = status(p, "sol-long")
    assert st["state"] == "stopped" and Decimal(st["position"]) == kept
    return kept


def restart_adopting(p: Paper, name: str, kept: Decimal) -> int:
    """Start the stopped strategy again; returns the start's wall-clock ms. The log says it adopted."""
    t0 = int(time.time() * 1000)
    out = p.start(name)
    assert f"started {name} (pid" in out, out
    text = wait_until(lambda: logs(p, name, "adopted the exchange's position"), 15, f"{name}: adoption logged")
    assert f"adopted the exchange's position {kept}" in text, text
    return t0


def test_stop_keep_position_then_start_adopts_it_and_never_buys_it_twice(paper):
    kept = keep_stopped_sol(paper)
    t0 = restart_adopting(paper, "sol-long", kept)
    rec = wait_until(lambda: logs(paper, "sol-long", "recovered:").strip().splitlines()[-1:], 10, "recovered")
    assert f"position {kept}" in rec[-1], rec  # the recovery reports the adopted position, not 0.00
    # no second initial-position buy: no market entry on the venue since the restart
    time.sleep(1.5)
    assert market_entries(paper, "sol-long", t0) == []
    st, held = steady(paper, "sol-long")
    assert st["state"] == "running"
    assert Decimal(st["position"]) == Decimal(st["exchange_position"]) == held
    assert "position differs" not in paper.ok("logs", "sol-long", "-n", "100000")

    out = paper.ok("stop", "sol-long")  # on_stop: close
    assert "stopped sol-long" in out and "position kept" not in out
    assert paper.venue_position("sol-long") == 0 and paper.book("sol-long") == {}
    st = status(paper, "sol-long")
    assert st["state"] == "stopped" and Decimal(st["position"]) == 0


def test_on_stop_keep_short_is_adopted_by_the_next_start(paper):
    name = "xrp-short"
    paper.start(name)
    wait_until(lambda: venue(paper, name) < 0, 30, "xrp-short sold at least once")
    out = paper.ok("stop", name)  # on_stop: keep
    assert f"stopped {name}" in out, out
    kept = venue(paper, name)
    assert kept < 0 and paper.book(name) == {}
    st = status(paper, name)
    assert st["state"] == "stopped" and Decimal(st["position"]) == kept

    restart_adopting(paper, name, kept)
    st, held = steady(paper, name)
    assert Decimal(st["position"]) == Decimal(st["exchange_position"]) == held


def test_emergency_close_of_a_stopped_strategy_closes_what_it_kept(paper):
    kept = keep_stopped_sol(paper)
    r = paper.gridctl("emergency-close", "sol-long", "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"emergency-closed sol-long: it was not running; closed its position {kept} at market" in r.stdout, \
        r.stdout
    assert paper.venue_position("sol-long") == 0 and paper.book("sol-long") == {}
    st = status(paper, "sol-long")
    assert st["state"] == "stopped" and Decimal(st["position"]) == 0
    closes = [j for j in paper.trades("sol-long") if decode_cid("binance", j["cid"]).intent.value == "close"]
    assert len(closes) == 1 and Decimal(closes[0]["qty"]) * SOL == kept
    # a second one has nothing to close and says so, still with exit 0
    r = paper.gridctl("emergency-close", "sol-long", "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "sol-long is not running and holds no position: nothing to close" in r.stdout, r.stdout
    assert paper.venue_position("sol-long") == 0


def test_emergency_close_of_a_stopped_strategy_with_the_supervisor_down(paper):
    kept = keep_stopped_sol(paper)
    assert kept > 0
    paper.ok("shutdown")
    r = paper.gridctl("emergency-close", "-c", str(paper.config), "sol-long", "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "emergency-closed sol-long" in r.stdout
    assert paper.venue_position("sol-long") == 0
    assert Decimal(status(paper, "sol-long")["position"]) == 0


def test_a_crash_after_an_adoption_adopts_it_again_exactly_once(paper):
    kept = keep_stopped_sol(paper)
    t0 = restart_adopting(paper, "sol-long", kept)
    wait_until(lambda: "adopted" in (paper.sql("SELECT grid_json FROM strategies WHERE name = 'sol-long'")[0][0]
                                     or ""), 10, "the adoption stored with the grid")
    grid = json.loads(paper.sql("SELECT grid_json FROM strategies WHERE name = 'sol-long'")[0][0])
    assert Decimal(grid["adopted"]["legs"][0][1]) * SOL == kept
    def recovered() -> list[str]:
        return logs(paper, "sol-long", "recovered:").strip().splitlines()
    wait_until(lambda: len(recovered()) == 2, 10, "the adopting start recovered")  # first start, restart
    old = paper.workers()["sol-long"]["pid"]
    os.kill(old, signal.SIGKILL)
    wait_until(lambda: (w := paper.workers()["sol-long"])["state"] == "running" and w["pid"] != old, 20, "restart")
    wait_until(lambda: "continuing grid" in logs(paper, "sol-long", "continuing grid"), 10, "continuing grid")
    wait_until(lambda: len(recovered()) == 3, 10, "the crash-restart recovered")
    st, held = steady(paper, "sol-long")
    assert Decimal(st["position"]) == Decimal(st["exchange_position"]) == held  # not kept + held
    assert logs(paper, "sol-long", "adopted the exchange's position").count("adopted") == 1
    assert "position differs" not in paper.ok("logs", "sol-long", "-n", "100000")
    assert market_entries(paper, "sol-long", t0) == []


def test_an_unexplained_difference_is_shown_beside_the_ledger_and_never_overwrites_it(tmp_path):
    p = Paper(tmp_path, _config(tmp_path), backoff=3)  # time to trade by hand before the restart
    try:
        name = "sol-long"
        p.start(name)
        wait_until(lambda: venue(p, name) > 0 and p.book(name), 20, "sol-long holding and trading")
        wait_until(lambda: p.sql("SELECT COUNT(*) FROM strategies WHERE name = ? AND grid_json IS NOT NULL",
                                 name)[0][0], 10, "grid stored")
        old = p.workers()[name]["pid"]
        os.kill(old, signal.SIGKILL)
        wait_until(lambda: not alive(old), 5, "worker gone")
        # someone trades on the account by hand: a market buy of 0.50 SOL in the venue's app
        # (the account's keys, a client id that is not gridctl's), no fill of ours
        p.where(name).manual_order("buy", Decimal("0.50"), "web-manual-buy-1")
        wait_until(lambda: (w := p.workers()[name])["state"] == "running" and w["pid"] != old, 20, "restart")
        wait_until(lambda: logs(p, name, "position differs"), 10, "the difference logged")

        def shown():
            st = status(p, name)
            return st if Decimal(st["exchange_position"]) != Decimal(st["position"]) else None
        st = wait_until(shown, 10, "status showing the exchange's position beside the ledger's")
        ledger = Decimal(st["position"])
        assert Decimal(st["exchange_position"]) == venue(p, name)
        assert ledger == Decimal(st["exchange_position"]) - Decimal("0.50")  # the ledger kept its own
        table = p.ok("status", "-c", str(p.config), name)
        assert "(exchange " in table, table
        # with the supervisor and worker gone, the database still says both (the snapshot
        # after a new difference is written at once, not a minute later)
        def stored() -> bool:
            # the grid trades on, so the figures move; what must be stored is the difference
            rows = p.sql("SELECT position, exchange_position FROM equity WHERE strategy = ? "
                         "ORDER BY ts DESC, id DESC LIMIT 1", name)  # none yet: the killed worker wrote no snapshot
            return bool(rows) and rows[0][1] is not None and Decimal(rows[0][1]) - Decimal(rows[0][0]) == Decimal("0.50")
        wait_until(stored, 10, "the difference stored")
        p.kill_all()
        st = status(p, name)
        assert st["exchange_position"] is not None and Decimal(st["exchange_position"]) != Decimal(st["position"])
        table = p.ok("status", "-c", str(p.config), name)
        assert "(exchange " in table, table
    finally:
        p.cleanup()
