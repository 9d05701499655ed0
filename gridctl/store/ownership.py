"""Which host runs a strategy: the claim a worker makes at start on a shared database."""

from __future__ import annotations

import logging
from typing import Optional

from peewee import Database, PeeweeException

from gridctl.store.db import bind
from gridctl.store.models import Strategy

log = logging.getLogger(__name__)


class OwnedElsewhere(Exception):
    """The strategy's row names another host: this host must not run it."""

    def __init__(self, name: str, host: str, state: Optional[str]):
        self.name, self.host, self.state = name, host, state
        super().__init__(
            f"strategy '{name}' belongs to host '{host}' ({state or 'unknown state'} there) in the shared "
            f"database: it is run from that host only; remove it from this host's strategies.yaml or give it "
            f"another name here (this host is named by GRIDCTL_HOST or its hostname)")


def claim(db: Database, name: str, host: str) -> Optional[str]:
    """Record `host` as the strategy's owner unless another host owns it (OwnedElsewhere).

    Atomic on a shared database: the first host to insert the row owns it; a row without
    a host (written before hosts were recorded) becomes this host's. Returns the owner
    found, or None when the database cannot be read now (trading must not wait for it;
    the worker's own rows then carry the host).
    """
    bind(db)
    try:
        with db.atomic():
            Strategy.insert(name=name, host=host, status="starting").on_conflict_ignore().execute()
            Strategy.update(host=host).where((Strategy.name == name) & Strategy.host.is_null()).execute()
            row = Strategy.select(Strategy.host, Strategy.status).where(Strategy.name == name).first()
    except PeeweeException as exc:
        log.warning("cannot check which host owns %s now (%s); going on as its owner", name, exc)
        return None
    if row is not None and row.host and row.host != host:
        raise OwnedElsewhere(name, row.host, row.status)
    return row.host if row is not None else None
