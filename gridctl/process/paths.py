"""Where things live in a state dir (see docs/operations.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gridctl.process.private import private_dir


@dataclass(frozen=True)
class StatePaths:
    """Files of one state dir: the supervisor's and each worker's."""

    root: Path

    @property
    def pid_file(self) -> Path:
        return self.root / "supervisor.pid"

    @property
    def lock_file(self) -> Path:
        return self.root / "supervisor.lock"

    @property
    def socket(self) -> Path:
        return self.root / "gridctl.sock"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def supervisor_log(self) -> Path:
        return self.logs_dir / "supervisor.log"

    def worker_pid(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def worker_socket(self, name: str) -> Path:
        return self.run_dir / f"{name}.sock"

    def worker_heartbeat(self, name: str) -> Path:
        """Touched by a running worker's loop; its age tells the supervisor the loop turns."""
        return self.run_dir / f"{name}.heartbeat"

    def worker_exit(self, name: str) -> Path:
        """Written by a worker process as it ends: '<pid> <exit code>' (read by adopting supervisors)."""
        return self.run_dir / f"{name}.exit"

    def worker_log(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    # ---- local venues: one process per paper account (gridctl/supervisor/venue_keeper.py) ----
    @property
    def venue_dir(self) -> Path:
        """The paper venues' own state (accounts, orders, fills) and their API keys."""
        return self.root / "venue"

    @property
    def venue_run_dir(self) -> Path:
        return self.run_dir / "venue"

    def venue_state(self, account: str) -> Path:
        return self.venue_dir / f"{account}.json"

    def venue_keys(self, account: str) -> Path:
        """The paper account's API key pair (owner-only): workers sign with it, the venue checks it."""
        return self.venue_dir / f"{account}.keys"

    def venue_pid(self, account: str) -> Path:
        return self.venue_run_dir / f"{account}.pid"

    def venue_url(self, account: str) -> Path:
        """Written by the venue once it listens: its base URL (the account's endpoint)."""
        return self.venue_run_dir / f"{account}.url"

    def venue_log(self, account: str) -> Path:
        return self.logs_dir / f"venue-{account}.log"

    def make(self) -> None:
        """Create the state dir tree, owner-only: it holds the sockets, the logs and the database.

        Missing folders are made 0700 whatever the umask; gridctl's own folders that exist
        looser (an older gridctl) are tightened. An existing root is left as it is: it may
        be a folder the user chose and shares (its files are owner-only all the same)."""
        private_dir(self.root, tighten_existing=False)
        for d in (self.run_dir, self.logs_dir, self.venue_dir, self.venue_run_dir):
            private_dir(d)
