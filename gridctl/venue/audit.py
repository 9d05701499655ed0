"""What the local venue remembers for an audit (the soak): facts that need history, recorded
as they happen rather than sampled afterwards, and kept in the state file across restarts.

    max_position[account][symbol][leg]  largest |position| a leg ever had ("both" in one-way mode)
    duplicate_live[account]              placements refused because a live order held that client id
    reused[account]                      placements whose client id an earlier (closed) order had used
    examples                             the first few of those, for a report
    faults_fired[name]                   faults that fired (gridctl.venue.faults counts them)

Protocol-neutral; GET /_admin/audit and GET /_admin/history serve it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

MAX_EXAMPLES = 20


class VenueAudit:
    """Counters and maxima of one venue (see module docs)."""

    def __init__(self) -> None:
        self.max_position: dict[str, dict[str, dict[str, Decimal]]] = {}
        self.duplicate_live: dict[str, int] = {}
        self.reused: dict[str, int] = {}
        self.examples: list[dict] = []

    def positions(self, account: str, symbol: str, sim) -> None:
        """Record the legs of the account's market after a change (sim: gridctl.sim.SimExchange)."""
        legs = self.max_position.setdefault(account, {}).setdefault(symbol, {})
        for key, leg in sim.account.legs.items():
            qty = sim.rules.qty(abs(leg.qty))
            if qty > legs.get(key, Decimal(0)):
                legs[key] = qty

    def duplicate(self, account: str, symbol: str, client_id: Any, ts: int) -> None:
        """A placement came with the client id of an order that is live on the book."""
        self.duplicate_live[account] = self.duplicate_live.get(account, 0) + 1
        self._example("duplicate_live", account, symbol, client_id, ts)

    def reuse(self, account: str, symbol: str, client_id: Any, ts: int) -> None:
        """A placement took a client id that an earlier order (no longer live) had."""
        self.reused[account] = self.reused.get(account, 0) + 1
        self._example("reused", account, symbol, client_id, ts)

    def _example(self, kind: str, account: str, symbol: str, client_id: Any, ts: int) -> None:
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append({"kind": kind, "account": account, "symbol": symbol,
                                  "client_id": client_id, "ts": ts})

    def to_dict(self) -> dict:
        return {"max_position": {a: {s: {k: str(v) for k, v in legs.items()} for s, legs in syms.items()}
                                 for a, syms in self.max_position.items()},
                "duplicate_live": dict(self.duplicate_live), "reused": dict(self.reused),
                "examples": list(self.examples)}

    def restore(self, d: dict) -> None:
        self.max_position = {a: {s: {k: Decimal(v) for k, v in legs.items()} for s, legs in syms.items()}
                             for a, syms in (d.get("max_position") or {}).items()}
        self.duplicate_live = {k: int(v) for k, v in (d.get("duplicate_live") or {}).items()}
        self.reused = {k: int(v) for k, v in (d.get("reused") or {}).items()}
        self.examples = list(d.get("examples") or [])
