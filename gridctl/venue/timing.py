"""Opt-in timing log of the local venue, for tests/bench/bench_live.py.

Set GRIDCTL_VENUE_TIMING=/path/to/file.jsonl in the environment of `gridctl venue` and the
venue appends one JSON line per moment a latency benchmark needs, stamped with
time.monotonic_ns() of the venue process (CLOCK_MONOTONIC: one clock for every process of
the machine, never stepped by NTP):

    {"t": NS, "e": "price", "symbol": "SOL/USDT:USDT", "price": "168.9"}       admin price move asked
    {"t": NS, "e": "publish", "x": "TRADE", "X": "FILLED", "c": CID, "i": ID,   an ORDER_TRADE_UPDATE
     "acct": FP, "open": N, "pos": "0.5"}                                        about to be sent
    {"t": NS, "e": "ack", "kind": "place"|"cancel", "status": 200, "c": CID,    a REST answer about
     "acct": FP, "open": N, "pos": "0.5"}                                        to be sent

`open` is the account's open orders and `pos` its net position in the event's market at
that moment, after the event. Without the variable nothing is recorded (no cost).
"""

from __future__ import annotations

import json
import os
import time
from decimal import Decimal
from typing import Optional

ENV = "GRIDCTL_VENUE_TIMING"


class TimingLog:
    """Line-buffered JSON lines; each write is one line (a reader never sees half of one)."""

    def __init__(self, path: str) -> None:
        self._f = open(path, "a", buffering=1)

    def record(self, event: str, **fields) -> None:
        self._f.write(json.dumps({"t": time.monotonic_ns(), "e": event, **fields}) + "\n")

    def account_state(self, venue, fingerprint: Optional[str], symbol: Optional[str]) -> dict:
        """The account's open orders and net position in `symbol` (for the records' open/pos)."""
        acc = venue.accounts.get(fingerprint) if fingerprint else None
        if acc is None or symbol is None:
            return {}
        try:
            sym = venue.market(symbol).symbol
        except Exception:  # a bad symbol was refused: nothing to describe
            return {"acct": fingerprint}
        net = sum((p.qty for p in venue.positions(acc, sym)), Decimal(0))
        return {"acct": fingerprint, "open": len(acc.open_orders(sym)), "pos": str(net)}

    def close(self) -> None:
        self._f.close()


def from_env() -> Optional[TimingLog]:
    """The log GRIDCTL_VENUE_TIMING names, or None."""
    path = os.environ.get(ENV)
    return TimingLog(path) if path else None
