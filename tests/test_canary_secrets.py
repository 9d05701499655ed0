"""Canary credentials never leave the process that needs them (issue 8, "Credentials").

A paper account carries canary credentials: api_key through ${ENV}, secret through
the vault (`vault:NAME`, set with `gridctl secrets set`), password through ${ENV}. A
real supervisor is started with `gridctl start` (daemonised, real workers, real
argon2id limits), trades, is reloaded with a broken file, stops and shuts down. Then
no canary may appear in: any file of the state dir (logs, the SQLite database and its
WAL as raw bytes, the paper venue's state, the vault itself), any row of any table,
`gridctl status / logs / export / report` output (text and JSON), `validate` and
`reload` error texts (a secret of the wrong type, a wrong field next to one), or the
command lines (process titles) of the supervisor and the workers.

Not checked: /proc/PID/environ. The ${ENV} value is in the environment by the user's
choice (that is what ${ENV} means) and GRIDCTL_PASSPHRASE too; environ is owner-only.
"""

from __future__ import annotations

import base64
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from gridctl.control.client import supervisor_status
from gridctl.supervisor.reporter import run_report
from tests.proc_helpers import Paper, wait_until

pytestmark = pytest.mark.slow  # real processes, ~30 s

CANARY_ENV = "CANARYenvKey0x5f1e2d3c"
CANARY_VAULT = "CANARYvaultSecret0x9a8b7c"
CANARY_PASS = "CANARYpassword0x4d4d4d"
CANARIES = (CANARY_ENV, CANARY_VAULT, CANARY_PASS)
PASSPHRASE = "canary test passphrase"

CONFIG = """\
version: 1
accounts:
  paper:
    exchange: paper
    like: binanceusdm
    balance: 10000
    feed: {replay: "builtin:SOLUSDT_1m", speed: 600}
    api_key: ${CANARY_KEY}
    secret: vault:canary-secret
    password: ${CANARY_PASS}
strategies:
  canary:
    account: paper
    symbol: SOL/USDT:USDT
    mode: neutral
    lower: 165
    upper: 178
    grids: 26
    investment: 400
    leverage: 2
    risk: {on_stop: close}
reports:
  minutely: {cron: "* * * * *", period: all, format: json}
"""


def forms(secret: str) -> list[bytes]:
    """The canary as it could be written: raw, base64, hex, UTF-16 (SQLite may store that)."""
    raw = secret.encode()
    return [raw, base64.b64encode(raw), raw.hex().encode(), secret.encode("utf-16-le")]


def assert_clean(where: str, data) -> None:
    blob = data if isinstance(data, bytes) else str(data).encode()
    for canary in CANARIES:
        for form in forms(canary):
            assert form not in blob, f"{canary} ({form[:12]!r}…) leaked into {where}"


@pytest.fixture
def run(tmp_path):
    cfg = tmp_path / "canary.yaml"
    cfg.write_text(CONFIG)
    p = Paper(tmp_path, cfg)
    p.env.update(CANARY_KEY=CANARY_ENV, CANARY_PASS=CANARY_PASS, GRIDCTL_PASSPHRASE=PASSPHRASE)
    yield p
    p.cleanup()


def cmdline(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def test_canary_credentials_reach_no_log_row_output_error_or_process_title(run: Paper, monkeypatch):
    p = run
    # the secret goes into the vault through stdin, as a user pipes it
    r = subprocess.run([sys.executable, "-m", "gridctl", "secrets", "set", "canary-secret", "--stdin"],
                       input=CANARY_VAULT + "\n", env=p.env, text=True, capture_output=True, cwd=p.root, timeout=60)
    assert r.returncode == 0, r.stderr
    assert_clean("secrets set output", r.stdout + r.stderr)
    outputs = {"validate": p.ok("validate", "-c", str(p.config)),
               "validate --json": p.ok("validate", "-c", str(p.config), "--json"),
               "plan": p.ok("plan", "-c", str(p.config), "canary"),
               "secrets list": p.ok("secrets", "list", "--json")}

    outputs["start"] = p.start()
    wait_until(lambda: p.count("fills", "canary") >= 3, 60, "the canary grid trading")
    sup = supervisor_status(p.state)
    pids = {"supervisor": sup["supervisor"]["pid"], "worker": p.workers()["canary"]["pid"],
            "reporter": sup["supervisor"]["reporter_pid"]}
    assert all(pids.values()), pids
    for role, pid in pids.items():
        assert_clean(f"/proc/{pid}/cmdline of the {role}", cmdline(pid))

    outputs["status --json"] = p.ok("status", "--json")
    outputs["status NAME --json"] = p.ok("status", "canary", "--json")
    outputs["status --wide"] = p.ok("status", "--wide")
    outputs["logs"] = p.ok("logs", "canary", "--json")
    for what in ("orders", "fills", "trades", "events", "equity", "funding"):
        outputs[f"export {what}"] = p.ok("export", "canary", what)
    for fmt in ("table", "csv", "json", "md"):
        outputs[f"report {fmt}"] = p.ok("report", "canary", "--since", "all", "--format", fmt)
    outputs["report --by day"] = p.ok("report", "--since", "all", "--by", "day", "--json")
    # the scheduled report, as the reporter's cron job writes it (here, rather than waiting for the minute)
    for k in ("CANARY_KEY", "CANARY_PASS", "GRIDCTL_STATE_DIR"):
        monkeypatch.setenv(k, p.env[k])
    run_report(p.config, p.state, "minutely")
    assert list((p.state / "reports").glob("*")), "the scheduled report was not written"

    # A reload with a broken file: the supervisor's answer and its log carry the problems, never the values.
    good = p.config.read_text()
    broken = good.replace("    password: ${CANARY_PASS}\n",
                          f"    password: [{CANARY_PASS}, x]\n    pasword: {CANARY_ENV}\n")
    p.config.write_text(broken)
    rr = p.gridctl("reload", "-c", str(p.config), "--json")
    assert rr.returncode == 2, rr.stdout + rr.stderr
    assert "accounts.paper.password (line 10): must be text in quotes" in rr.stdout
    outputs["reload (broken)"] = rr.stdout + rr.stderr
    bad = p.gridctl("validate", "-c", str(p.config))
    assert bad.returncode == 2 and "unknown key 'pasword'" in bad.stderr
    outputs["validate (broken)"] = bad.stdout + bad.stderr
    outputs["validate --json (broken)"] = p.gridctl("validate", "-c", str(p.config), "--json").stdout
    p.config.write_text(good)

    outputs["stop"] = p.ok("stop", "canary")
    outputs["shutdown"] = p.ok("shutdown")
    wait_until(lambda: not (p.state / "gridctl.sock").exists(), 30, "the supervisor gone")

    for name, text in outputs.items():
        assert_clean(f"`gridctl {name}` output", text)
    files = [f for f in p.state.rglob("*") if f.is_file() and not f.is_socket()]
    assert any(f.name == "gridctl.db" for f in files) and any(f.suffix == ".log" for f in files)
    for f in files:
        assert_clean(f"the file {f.relative_to(p.state)}", f.read_bytes())
    con = sqlite3.connect(p.state / "gridctl.db")
    try:
        tables = [t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        assert "events" in tables and con.execute("SELECT COUNT(*) FROM events").fetchone()[0] > 0
        for table in tables:
            assert_clean(f"the table {table}", repr(con.execute(f'SELECT * FROM "{table}"').fetchall()))
        assert_clean("the database dump", "\n".join(con.iterdump()))
    finally:
        con.close()
