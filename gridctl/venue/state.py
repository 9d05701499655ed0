"""The local venue's state and admin snapshot (Venue mixin).

Two files: the snapshot FILE (atomic JSON: ids, markets and their feed position, every
account's settings, wallet, simulators and open orders) and the history journal
FILE-minus-suffix + ".history.jsonl" (append-only: every trade, funding payment and
closed order, one JSON object a line). A save writes the snapshot with the records the
journal has not got yet ("tail"), then appends them, so a crash between the two writes
loses nothing: the next start appends the tail the journal missed. The snapshot stays
small however long the history grows. Either file unreadable, or a journal that lacks
records the snapshot counts, is refused: the venue never starts afresh on its own.
"""

from __future__ import annotations

import asyncio
import json
import os
from decimal import Decimal
from pathlib import Path

from gridctl.process.private import open_private, private_dir
from gridctl.venue.account import VenueAccount

STATE_VERSION = 1
ZERO = Decimal(0)


class VenueStateError(Exception):
    """The state file exists but cannot be used: the venue refuses to start."""


def history_path(state_path: Path) -> Path:
    """The history journal next to a state file (venue.json -> venue.history.jsonl)."""
    return state_path.with_name(state_path.stem + ".history.jsonl")


class VenueState:
    """Venue.state() / load() / save() / dirty() / admin_state() (mixed into gridctl.venue.core.Venue)."""

    _journal_tail: list  # records not yet appended to the journal (set in Venue.__init__)

    def state(self) -> dict:
        return {
            "version": STATE_VERSION, "like": self.like,
            "ids": {"order": self.ids.order, "trade": self.ids.trade, "tran": self.ids.tran},
            "markets": {s: m.state() for s, m in self.markets.items()},
            "accounts": {fp: a.to_dict() for fp, a in self.accounts.items()},
            "extra": self.extra_state, "saved_ms": self.now_ms(), "tail": self._journal_tail,
            "triggers": self.trigger_state(),
            "audit": {**self.audit.to_dict(), "faults_fired": dict(self.faults.fired)},
        }

    def journal(self, kind: str, account: str, record: dict) -> None:
        """Queue a history record (fill | income | order) for the journal; saved with the next save()."""
        if self.state_path is None:
            return  # nothing is kept: the history lives in memory only
        self._journal_tail.append({"k": kind, "a": account, **record})
        self.dirty()

    def load(self) -> None:
        """Restore the state file if it exists; VenueStateError if it cannot be used. Builds the feeds."""
        saved = None
        if self.state_path is not None and not self.state_path.exists() and history_path(self.state_path).exists():
            raise self._refuse(f"it is missing but its history {history_path(self.state_path)} exists")
        if self.state_path is not None and self.state_path.exists():
            try:
                saved = json.loads(self.state_path.read_text(encoding="utf-8"))
                if not isinstance(saved, dict) or saved.get("version") != STATE_VERSION:
                    raise ValueError("not a gridctl venue state file")
                if saved.get("like") != self.like:
                    raise ValueError(f"it is the state of a {saved.get('like')} venue, not {self.like}")
                self._restore(saved)
                self._read_history(saved.get("tail") or [])
            except json.JSONDecodeError as exc:
                raise self._refuse(f"not valid JSON (line {exc.lineno} column {exc.colno})") from None
            except UnicodeDecodeError:
                raise self._refuse("not valid JSON (not UTF-8 text)") from None
            except OSError as exc:
                raise self._refuse(exc.strerror or str(exc)) from None
            except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
                why = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
                raise self._refuse(why) from None
        for sym, m in self.markets.items():
            fstate = saved["markets"].get(sym, {}).get("feed") if saved else None
            try:
                m.make_feed(fstate)
            except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
                if fstate is None:
                    raise
                raise self._refuse(f"the {sym} feed position: {exc}") from None
            if m.last is None and hasattr(m.feed, "first_price"):
                m.last = m.feed.first_price()
                m.observe(self.now_ms(), m.last)
        for acc in self.accounts.values():
            for m in self.markets.values():
                if m.symbol not in acc.sims:
                    acc.add_market(m.rules, m.last)
        self._loaded = True

    def _refuse(self, why: str) -> VenueStateError:
        return VenueStateError(f"cannot read the venue state {self.state_path}: {why}; refusing to start "
                               "with a fresh balance (move the file away to start afresh)")

    def _read_history(self, tail: list) -> None:
        """Rebuild fills, funding and closed orders from the journal (+ the snapshot's tail)."""
        assert self.state_path is not None
        path = history_path(self.state_path)
        records: list[dict] = []
        if path.exists():
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise ValueError(f"the history {path}: {exc.strerror or exc}") from None
            for n, line in enumerate(lines, start=1):
                try:
                    records.append(json.loads(line))
                except ValueError:
                    if n < len(lines):  # only the last line may be cut by a crash mid-write
                        raise ValueError(f"the history {path}:{n} is not JSON") from None
                    # cut while its save appended it: the snapshot's tail has it, drop the stub
                    keep = "".join(x + "\n" for x in lines[:-1])
                    with open_private(path) as fh:
                        fh.write(keep)
        have = {_key(r) for r in records}
        missing = [r for r in tail if _key(r) not in have]
        if missing:
            self._append_history(missing)
            records += missing
        for r in records:
            acc = self.accounts.get(r.pop("a"))
            if acc is not None:
                acc.add_history(r.pop("k"), r)
        for fp, acc in self.accounts.items():
            want = self._counts.get(fp, {})
            if len(acc.fills) < want.get("fills", 0) or len(acc.income) < want.get("income", 0):
                raise ValueError(f"the history {path} lacks trades or funding the state counts "
                                 f"({len(acc.fills)} of {want.get('fills', 0)} trades)")

    def _append_history(self, records: list[dict], durable: bool = False) -> None:
        assert self.state_path is not None
        path = history_path(self.state_path)
        cut = False  # a last line cut by a crash: start on a fresh line
        if path.exists() and path.stat().st_size:
            with open(path, "rb") as fh:
                fh.seek(-1, os.SEEK_END)
                cut = fh.read(1) != b"\n"
        with open_private(path, "a") as fh:
            if cut:
                fh.write("\n")
            fh.write("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records))
            if durable:
                fh.flush()
                os.fsync(fh.fileno())

    def _restore(self, d: dict) -> None:
        self.ids.order, self.ids.trade, self.ids.tran = (int(d["ids"][k]) for k in ("order", "trade", "tran"))
        for sym, md in d["markets"].items():
            if sym in self.markets:
                self.markets[sym].restore(md)
        rules = {s: m.rules for s, m in self.markets.items()}
        self.accounts = {fp: VenueAccount.from_dict(ad, rules) for fp, ad in d["accounts"].items()}
        self._counts = {fp: ad.get("counts", {}) for fp, ad in d["accounts"].items()}
        self.extra_state = dict(d.get("extra") or {})
        self.restore_triggers(d.get("triggers"))
        self.audit.restore(d.get("audit") or {})
        self.faults.fired = {k: int(v) for k, v in ((d.get("audit") or {}).get("faults_fired") or {}).items()}

    def save(self, durable: bool = False) -> None:
        """Atomic write of the whole state (no-op without a state path).

        write + rename survives a killed process; `durable` (on stop) also fsyncs, for a
        machine that loses power. Every acknowledged change is written before its answer
        goes out (flush()), so a SIGKILL loses nothing the venue confirmed.
        """
        self._save_scheduled = False
        if self.state_path is None or not self._loaded:
            return
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        private_dir(self.state_path.parent)
        with open_private(tmp) as fh:
            json.dump(self.state(), fh, separators=(",", ":"))
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, self.state_path)
        if self._journal_tail:
            self._append_history(self._journal_tail, durable)
            self._journal_tail = []

    def flush(self) -> None:
        """Write a pending change now (protocols call it before answering a mutation)."""
        if self._save_scheduled:
            self.save()

    def dirty(self) -> None:
        """Something changed: save at the end of this loop iteration (one write for a burst)."""
        if self._save_scheduled or self.state_path is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.save()
            return
        self._save_scheduled = True
        loop.call_soon(self.save)

    def admin_state(self) -> dict:
        """Markets with prices, accounts (by fingerprint) with balance, positions, open orders."""
        markets = {s: {"id": m.rules.venue_id, "last": str(m.price()), "mark": str(m.price()),
                       "pinned": m.pinned, "funding_rate": str(m.funding_rate)} for s, m in self.markets.items()}
        accounts = {}
        for fp, acc in self.accounts.items():
            b = self.balance(acc)
            accounts[fp] = {
                "hedge": acc.hedge, "asset": acc.asset, "balance": str(b.wallet), "equity": str(b.margin_balance),
                "available": str(b.available), "unrealized": str(b.unrealized),
                "positions": {s: {"net": str(sum((p.qty for p in self.positions(acc, s)), ZERO)),
                                  "legs": {p.position_side: {"qty": str(p.qty), "entry": str(p.entry)}
                                           for p in self.positions(acc, s)},
                                  "leverage": acc.leverage.get(s)} for s in acc.sims},
                "open_orders": [{"order_id": o.order_id, "client_id": o.client_id, "symbol": o.symbol,
                                 "side": o.side, "price": None if o.price is None else str(o.price),
                                 "qty": str(o.qty), "filled": str(o.filled), "reduce_only": o.reduce_only,
                                 "position_side": o.position_side} for o in self.open_orders(acc)],
                "triggers": [{"trigger_id": t.trigger_id, "client_id": t.client_id, "symbol": t.symbol, "side": t.side,
                              "qty": None if t.qty is None else str(t.qty), "trigger_price": str(t.trigger_price),
                              "kind": t.kind, "reduce_only": t.reduce_only, "close_position": t.close_position,
                              "position_side": t.position_side} for t in self.open_triggers(acc)],
                "fills": len(acc.fills), "orders": len(acc.orders), "funding": len(acc.income),
            }
        return {"like": self.like, "markets": markets, "accounts": accounts, "faults": self.faults.describe()}




def _key(record: dict) -> tuple:
    """A journal record's identity (a fill by trade id, funding by tran id, an order by its state)."""
    k = record.get("k")
    if k == "fill":
        return k, record.get("trade_id")
    if k == "income":
        return k, record.get("tran_id")
    return k, record.get("order_id"), record.get("status"), record.get("updated_ms")
