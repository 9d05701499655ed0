"""A private PostgreSQL server for the tests: initdb into a temporary folder, pg_ctl start on
a private Unix socket directory (no TCP: ``listen_addresses=''``), password authentication.

The binaries are Debian's ``postgresql`` package (``/usr/lib/postgresql/<version>/bin``, which
is not on PATH) or whatever ``initdb``/``pg_ctl`` PATH finds; GRIDCTL_PG_BIN names another
folder. ``.ci/run`` installs the package when they are missing.

initdb and postgres refuse to run as root (CI runs as root): then the server runs as the
unprivileged user ``nobody`` (GRIDCTL_PG_USER to choose another), from a folder under /tmp
owned by that user, since pytest's own tmp folders are root-only (0700).

Missing binaries skip the PostgreSQL tests on a developer's machine but FAIL them when CI is
set (as tests/shared_data.py does for the real data): a CI run that silently skipped them
would pass without having tested PostgreSQL at all.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Optional

import pytest

from tests.shared_data import in_ci

USER = "gridctl"  # the database superuser the tests connect as


def bin_dir() -> Optional[Path]:
    """The folder holding initdb and pg_ctl, or None."""
    if os.environ.get("GRIDCTL_PG_BIN"):
        return Path(os.environ["GRIDCTL_PG_BIN"])
    found = shutil.which("initdb"), shutil.which("pg_ctl")
    if all(found) and Path(found[0]).resolve().parent == Path(found[1]).resolve().parent:
        return Path(found[0]).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                      key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    return Path(versions[-1]).parent if versions else None


def require_binaries() -> Path:
    """The binaries' folder; skips the test without them (fails under CI)."""
    found = bin_dir()
    if found is not None and (found / "initdb").exists() and (found / "pg_ctl").exists():
        return found
    msg = ("PostgreSQL binaries (initdb, pg_ctl) not found on PATH nor in /usr/lib/postgresql/*/bin "
           "(Debian: apt-get install postgresql)")
    if in_ci():
        pytest.fail(msg + "; .ci/run installs them", pytrace=False)
    pytest.skip(msg)


class PgServer:
    """One private server; `url(db)` is a gridctl `database:` URL for one of its databases."""

    def __init__(self, bindir: Path):
        self.bin = bindir
        self.password = "pw-" + secrets.token_hex(8)  # never to appear in a log, error or `ps`
        self.run_as: Optional[pwd.struct_passwd] = None
        if os.geteuid() == 0:  # initdb: "cannot be run as root"
            self.run_as = pwd.getpwnam(os.environ.get("GRIDCTL_PG_USER", "nobody"))
        # under /tmp, not pytest's tmp_path: that is 0700 and root's, the server's user cannot enter it
        self.base = Path(tempfile.mkdtemp(prefix="pg-gridctl-"))
        self.data = self.base / "data"
        self.sockets = self.base / "sock"
        self.log = self.base / "server.log"
        self.sockets.mkdir()
        pwfile = self.base / "pw"
        pwfile.write_text(self.password + "\n")
        if self.run_as is not None:
            for p in (self.base, self.sockets, pwfile):
                os.chown(p, self.run_as.pw_uid, self.run_as.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", USER, f"--pwfile={pwfile}", "-E", "UTF8",
                  "--locale=C", "--auth=scram-sha-256", "--no-sync")
        pwfile.unlink()
        self._databases = 0

    def _run(self, tool: str, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        kw = {}
        if self.run_as is not None:
            kw = {"user": self.run_as.pw_uid, "group": self.run_as.pw_gid, "extra_groups": []}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "HOME": str(self.base)}
        r = subprocess.run([str(self.bin / tool), *args], cwd=self.base, env=env, capture_output=True,
                           text=True, timeout=timeout, **kw)
        if check and r.returncode != 0:
            raise RuntimeError(f"{tool} failed ({r.returncode}): {r.stdout}\n{r.stderr}\n{self.log_text()}")
        return r

    def log_text(self) -> str:
        """The server's log (where a failed start says why)."""
        try:
            return self.log.read_text()
        except OSError:
            return ""

    def start(self) -> None:
        """Start (or restart after stop/kill) and wait until it accepts connections."""
        opts = (f"-k {self.sockets} -c listen_addresses='' -c fsync=off -c full_page_writes=off "
                f"-c max_connections=100")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """pg_ctl stop -m MODE (fast: clean; immediate: like a crash, recovery at the next start)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop", check=False)

    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def url(self, database: str, password: bool = True) -> str:
        """postgresql://gridctl:PASSWORD@/DATABASE?host=SOCKET_DIR."""
        cred = f"{USER}:{self.password}" if password else USER
        return f"postgresql://{cred}@/{database}?host={self.sockets}"

    def admin(self, sql: str) -> None:
        """Run one statement on the maintenance database (autocommit: CREATE DATABASE needs it)."""
        import psycopg2

        conn = psycopg2.connect(dbname="postgres", user=USER, password=self.password, host=str(self.sockets))
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()

    def new_database(self, prefix: str = "t") -> str:
        """A fresh empty database; returns its URL."""
        self._databases += 1
        name = f"{prefix}_{os.getpid()}_{self._databases}"
        self.admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        """Stop the server and delete its folder."""
        self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)


def start_server() -> PgServer:
    """A started private server (skip/fail without binaries, see the module doc)."""
    server = PgServer(require_binaries())
    try:
        server.start()
    except Exception:
        server.destroy()
        raise
    deadline = time.monotonic() + 30
    while not server.running() and time.monotonic() < deadline:
        time.sleep(0.1)
    return server
