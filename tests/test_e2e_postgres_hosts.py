"""Two hosts, one PostgreSQL database: two real supervisors with their own state dirs (and
GRIDCTL_HOST alpha / beta) run their own paper strategies against one shared database on a
real server (tests/pg_server.py). Each owns its strategies: `status` from either shows all
of them with their host, the other host's from the database; the read commands work on
all; a strategy the other host owns is never started, stopped or signalled here; the
URL's password appears in no process title, log or output.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.proc_helpers import Paper, wait_until

pytestmark = pytest.mark.slow  # real processes, about a minute


def account() -> dict:
    return {"exchange": "paper", "like": "binanceusdm", "balance": 10000,
            "feed": {"replay": "builtin:SOLUSDT_1m", "speed": 600}}


def strategy(acct: str) -> dict:
    return {"account": acct, "symbol": "SOL/USDT:USDT", "mode": "neutral", "lower": 165, "upper": 178,
            "grids": 26, "investment": 400, "leverage": 2, "risk": {"on_stop": "close"}}


def host(tmp: Path, name: str, url: str, strategies: list[str]) -> Paper:
    (tmp / name).mkdir()
    cfg = {"version": 1, "database": url,
           "accounts": {f"paper-{s}": account() for s in strategies},
           "strategies": {s: strategy(f"paper-{s}") for s in strategies}}
    src = tmp / f"{name}.yaml"
    src.write_text(yaml.safe_dump(cfg, sort_keys=False))
    p = Paper(tmp / name, src)
    p.env["GRIDCTL_HOST"] = name
    return p


def status(p: Paper) -> dict[str, dict]:
    return {r["name"]: r for r in json.loads(p.ok("status", "-c", str(p.config), "--json"))}


@pytest.fixture(scope="module")
def hosts(pg_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hosts")
    url = pg_server.new_database("hosts")
    alpha = host(tmp, "alpha", url, ["a1", "a2"])
    # beta's file also names a1: alpha owns it, beta must refuse to run it
    beta = host(tmp, "beta", url, ["b1", "a1"])
    try:
        out = alpha.start()
        assert "started a1" in out and "started a2" in out, out
        out = beta.start("b1")
        assert "started b1" in out, out
        yield alpha, beta, pg_server
    finally:
        alpha.cleanup()
        beta.cleanup()


def test_status_from_either_host_shows_every_strategy_with_its_host(hosts):
    alpha, beta, _ = hosts

    def all_running(p: Paper):
        rows = status(p)
        return rows if {n: r["state"] for n, r in rows.items()} == {"a1": "running", "a2": "running",
                                                                    "b1": "running"} else None

    for p, mine in ((alpha, {"a1", "a2"}), (beta, {"b1"})):
        rows = wait_until(lambda: all_running(p), 60, f"every strategy running in {p.env['GRIDCTL_HOST']}'s status")
        assert {n: r["host"] for n, r in rows.items()} == {"a1": "alpha", "a2": "alpha", "b1": "beta"}
        # this host's strategies are live from its workers; the other's come from the database
        assert {n for n, r in rows.items() if r["live"]} == mine
        assert {n for n, r in rows.items() if r["remote"]} == {"a1", "a2", "b1"} - mine
    table = alpha.ok("status", "-c", str(alpha.config), "--wide")
    head, *lines = table.splitlines()
    assert head.split()[:3] == ["strategy", "host", "state"], table
    assert any(ln.split()[:3] == ["b1", "beta", "running"] for ln in lines), table
    detail = beta.ok("status", "-c", str(beta.config), "a2")
    assert any(ln.split() == ["host:", "alpha"] for ln in detail.splitlines()), detail


def test_the_other_hosts_strategy_is_refused_naming_that_host(hosts):
    alpha, beta, _ = hosts
    r = beta.gridctl("start", "-c", str(beta.config), "a1")
    assert r.returncode != 0, r.stdout
    assert "strategy 'a1' belongs to host 'alpha'" in r.stdout + r.stderr, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    # alpha's a1 is untouched and still alpha's
    rows = status(alpha)
    assert rows["a1"]["state"] == "running" and rows["a1"]["host"] == "alpha" and rows["a1"]["live"]
    # beta's supervisor never signals it: a stop there changes nothing on alpha
    beta.gridctl("stop", "a1")
    assert alpha.workers()["a1"]["state"] == "running"
    assert status(beta)["a1"]["state"] == "running"


def test_read_commands_on_the_shared_database(hosts):
    alpha, beta, _ = hosts
    wait_until(lambda: status(alpha)["b1"]["open_buys"] + status(alpha)["b1"]["open_sells"] > 0, 60,
               "b1's orders stored")
    logs = alpha.ok("logs", "-c", str(alpha.config), "b1")
    assert "new grid" in logs, logs
    csv = alpha.ok("export", "-c", str(alpha.config), "b1", "orders")
    assert csv.splitlines()[0].startswith("created_time,"), csv[:200]
    assert len(csv.splitlines()) > 1
    report = beta.ok("report", "-c", str(beta.config), "--json")
    assert {s["name"] for s in json.loads(report)["strategies"]} >= {"a1", "a2", "b1"}


def test_the_password_is_in_no_process_title_log_or_output(hosts):
    alpha, beta, server = hosts
    ps = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
    assert "gridctl" in ps and server.password not in ps
    for p in (alpha, beta):
        for f in p.state.rglob("*"):
            if f.is_file() and not f.is_socket():
                try:
                    assert server.password.encode() not in f.read_bytes(), f
                except PermissionError:
                    pass
        out = p.ok("status", "-c", str(p.config), "--json") + p.ok("logs", "-c", str(p.config), "a1")
        assert server.password not in out
    log = server.log_text()
    assert server.password not in log
