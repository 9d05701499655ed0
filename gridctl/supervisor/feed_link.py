"""The supervisor's side of the live event feed (gridctl/control/feed.py).

The feed runs in the supervisor's event loop and reads the same stream as
`logs --follow` (every worker's events over its control socket, re-attached when a
worker restarts, plus the supervisor's state changes). It is started by the
supervisor at start-up when `start --events` / `events:` asked for it, or later by a
`start` request that carries `events` (a second `gridctl start --events ...`).
A feed that cannot listen is reported, never a reason to stop trading.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Optional

from gridctl.config.model import EventsConfig
from gridctl.control.client import ControlError, NotRunning, worker_call
from gridctl.control.feed import EventFeed
from gridctl.control.feed_events import Redactor, secrets_of
from gridctl.supervisor.states import WorkerState

if TYPE_CHECKING:
    from gridctl.supervisor.arbiter import Arbiter

log = logging.getLogger("gridctl.supervisor")


class FeedLink:
    """Owns the supervisor's EventFeed (at most one)."""

    def __init__(self, arbiter: "Arbiter"):
        self.a = arbiter
        self.feed: Optional[EventFeed] = None
        self._redactor: tuple[object, Redactor] = (None, Redactor())

    def redactor(self) -> Redactor:
        """Blanks the current config's API keys and secrets (rebuilt after a reload)."""
        if self._redactor[0] is not self.a.config:
            self._redactor = (self.a.config, Redactor(secrets_of(self.a.config)))
        return self._redactor[1]

    def live(self) -> list[str]:
        return [w.name for w in self.a.workers.values() if w.state in (WorkerState.RUNNING, WorkerState.PAUSED)]

    async def status(self, name: str) -> Optional[dict]:
        try:
            return (await worker_call(self.a.paths.worker_socket(name), "status", timeout=1.0)).get("status")
        except (NotRunning, ControlError, OSError):
            return None

    def info(self) -> Optional[dict]:
        """Where the feed listens and where the token is; None when there is no feed."""
        return self.feed.info() if self.feed else None

    async def start(self, cfg: EventsConfig) -> dict:
        """Start the feed (or confirm the running one serves `cfg`): {"ok", "message", "events"?}."""
        from gridctl.supervisor.commands import events

        if self.feed is not None:
            same = (self.feed.cfg.host, self.feed.cfg.port) == (cfg.host, cfg.port) or cfg.port == 0
            if same:
                return {"ok": True, "message": self._where(), "events": self.info()}
            return {"ok": False, "message": f"this supervisor's event feed listens on {self.feed.address}, not "
                                            f"{cfg.listen}; it changes only when the supervisor restarts"}
        feed = EventFeed(cfg, self.a.paths.root, lambda: events(self.a, [], 0, True, restart_n=200),
                         self.live, self.status, self.redactor)
        try:
            await feed.start()
        except OSError as exc:
            await feed.close()
            log.error("event feed: cannot listen on %s: %s", cfg.listen, exc.strerror or exc)
            return {"ok": False, "message": f"event feed: cannot listen on {cfg.listen}: {exc.strerror or exc}"}
        self.feed = feed
        return {"ok": True, "message": self._where(), "events": self.info()}

    def _where(self) -> str:
        info = self.info() or {}
        return f"event feed on {info.get('url')} (token in {info.get('token_file')})"

    async def close(self) -> None:
        if self.feed is not None:
            await self.feed.close()
            self.feed = None
