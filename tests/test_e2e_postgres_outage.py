"""A PostgreSQL outage under a busy grid with the REAL supervisor and worker (paper exchange):
tests/worker_outage.py's scenario (as tests/test_e2e_db_outage.py runs it on SQLite) with
`database:` on a real server (tests/pg_server.py) that is stopped with `pg_ctl stop -m
immediate` (a crash: every connection dies) while the worker trades, and started again
after the outage. Every venue fill must be stored once by trade id, every order the venue
saw with its row and final state, no cycle twice, the ledger equal to the venue, and
`gridctl stop` flat; meanwhile `status` fails with a clear message that holds no password.

Two variants side by side, each on its own server: the worker trades through the outage;
the worker is killed -9 halfway and restarted at once, inside the outage, where it cannot
open the database: it exits 69 (database unavailable) and the supervisor retries it with
back-off, never giving up as a crash loop, until the server is back.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.pg_server import start_server
from worker_outage import problems, run_worker_outage

pytestmark = pytest.mark.slow  # real processes, about a minute


class ServerDown:
    """The outage: the server crashes (immediate stop) and is started again at the end."""

    def __init__(self, server):
        self.server = server

    def begin(self) -> None:
        self.server.stop("immediate")

    def end(self) -> None:
        self.server.start()


@pytest.fixture(scope="module")
def runs(pg_server, tmp_path_factory):
    second = start_server()  # each variant crashes its own server
    try:
        with ThreadPoolExecutor(2) as pool:
            plan = {"trading": (pg_server, False), "killed-restart-in-outage": (second, "during")}
            futures = {name: pool.submit(run_worker_outage, tmp_path_factory.mktemp(name), outage_s=20.0,
                                         database=server.new_database("outage"), outage=ServerDown(server),
                                         kill=kill)
                       for name, (server, kill) in plan.items()}
            yield {name: (fut.result(), plan[name][0]) for name, fut in futures.items()}
    finally:
        second.destroy()


def _check(r: dict) -> None:
    print(json.dumps(r, indent=1, default=str))  # shown when it fails
    assert r["venue_fills_during_outage"] >= 50, r
    assert problems(r) == [], r
    assert r["fills_stored"] == r["venue_fills"] and r["orders_stored"] >= r["venue_order_ids"]
    assert r["position_ledger_trading"] == r["position_venue_trading"]
    assert r["stop_output"] == "stopped busy" and r["state_after_stop"] == "stopped"
    assert r["db_unavailable_since_after"] is None


def test_a_crashed_server_under_a_busy_grid_loses_no_fill_and_no_order(runs):
    r, _ = runs["trading"]
    assert r["journal_peak"] > r["maxsize"], r  # past the memory bound the journal took the rows
    _check(r)


def test_a_worker_restarted_while_the_server_is_down_waits_for_it_and_loses_nothing(runs):
    r, _ = runs["killed-restart-in-outage"]
    # it could not start inside the outage (no stored grid to read) but was never given up on
    assert r["journal_at_kill"] > 0 and r["restarts"] >= 2 and r.get("restarted_in_outage_s") is None, r
    _check(r)


def test_status_during_the_outage_fails_clearly_without_the_password(runs):
    for r, server in runs.values():
        assert r["status_errors"], r
        for e in r["status_errors"]:
            assert e.startswith("error: cannot open the gridctl database"), e
            assert server.password not in e and "Traceback" not in e
