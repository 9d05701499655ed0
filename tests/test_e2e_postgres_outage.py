"""A PostgreSQL outage under a busy grid with the REAL supervisor and worker (paper exchange):
tests/worker_outage.py's scenario (as tests/test_e2e_db_outage.py runs it on SQLite) with
`database:` on a real server (tests/pg_server.py) that is stopped with `pg_ctl stop -m
immediate` (a crash: every connection dies) while the worker trades, and started again
after the outage. Every venue fill must be stored once by trade id, every order the venue
saw with its row and final state, no cycle twice, the ledger equal to the venue, and
`gridctl stop` flat; meanwhile `status` fails with a clear message that holds no password.
"""

from __future__ import annotations

import json

import pytest

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
def run(pg_server, tmp_path_factory):
    url = pg_server.new_database("outage")
    return run_worker_outage(tmp_path_factory.mktemp("pg-outage"), outage_s=20.0, database=url,
                             outage=ServerDown(pg_server))


def test_a_crashed_server_under_a_busy_grid_loses_no_fill_and_no_order(run, pg_server):
    r = run
    print(json.dumps(r, indent=1, default=str))  # shown when it fails
    assert r["venue_fills_during_outage"] >= 50, r
    assert r["journal_peak"] > r["maxsize"], r  # past the memory bound the journal took the rows
    assert problems(r) == [], r
    assert r["fills_stored"] == r["venue_fills"] and r["orders_stored"] >= r["venue_order_ids"]
    assert r["position_ledger_trading"] == r["position_venue_trading"]
    assert r["stop_output"] == "stopped busy" and r["state_after_stop"] == "stopped"
    assert r["db_unavailable_since_after"] is None


def test_status_during_the_outage_fails_clearly_without_the_password(run, pg_server):
    errors = run["status_errors"]
    assert errors, run
    for e in errors:
        assert e.startswith("error: cannot open the gridctl database"), e
        assert pg_server.password not in e and "Traceback" not in e
