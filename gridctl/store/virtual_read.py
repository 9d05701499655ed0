"""Reads and writes of the shared-leg records (gridctl.core.virtual) for the CLI: the
strategies' virtual positions, the UNASSIGNED buckets, the leg checks, the assignments.
Quantities come back as signed steps of `rules`."""

from __future__ import annotations

from decimal import Decimal
from typing import Optional

from peewee import Database

from gridctl.core.market import MarketRules
from gridctl.core.virtual import LegCheck
from gridctl.store.models import Event, PositionAssignment, PositionCheck, UnassignedPosition, VirtualPosition


def virtual_positions(account: str, symbol: str, rules: MarketRules) -> dict[str, dict[str, int]]:
    """strategy -> {leg: signed steps} of every strategy stored on the account and symbol."""
    from gridctl.worker.account_check import stored_legs

    rows = VirtualPosition.select().where((VirtualPosition.account == account) & (VirtualPosition.symbol == symbol))
    return {r.strategy: stored_legs(r, rules) for r in rows}


def unassigned(account: str, symbol: str, rules: MarketRules) -> dict[str, int]:
    rows = UnassignedPosition.select().where((UnassignedPosition.account == account)
                                             & (UnassignedPosition.symbol == symbol))
    return {r.leg: rules.qty_to_steps(r.qty) for r in rows}


def save_assignment(db: Database, ts: int, account: str, symbol: str, check: LegCheck, assigned: dict[str, int],
                    rest: int, price: int, rules: MarketRules, hedge: bool) -> list[int]:
    """Store one `--assign` in one transaction: an assignment row per strategy (its worker books
    it), the leg's UNASSIGNED bucket set to `rest`, the strategies' stored virtual positions
    and the leg's check as they are once booked, and a reset event per strategy. Returns the
    assignment ids."""
    q, px = rules.qty, rules.price(price)
    ids = []
    with db.atomic():
        for name, steps in assigned.items():
            ids.append(PositionAssignment.insert(strategy=name, account=account, symbol=symbol, leg=check.leg,
                                                 qty=q(steps), price=px, ts=ts).execute())
            _add_virtual(name, account, symbol, check.leg, q(steps), hedge, ts)
            Event.insert(strategy=name, ts=ts, type="risk", message=(
                f"gridctl reconcile assigned {q(steps)} of {symbol} ({check.leg} leg) at {px}: PnL of it counts "
                f"from there (reset); the worker books it on its next check"),
                data_json=f'{{"reset": true, "qty": "{q(steps)}", "price": "{px}", "leg": "{check.leg}"}}').execute()
        UnassignedPosition.insert(account=account, symbol=symbol, leg=check.leg, qty=q(rest), price=px, ts=ts) \
            .on_conflict(conflict_target=[UnassignedPosition.account, UnassignedPosition.symbol, UnassignedPosition.leg],
                         preserve=[UnassignedPosition.qty, UnassignedPosition.price, UnassignedPosition.ts]).execute()
        virtual = check.virtual + sum(assigned.values())
        PositionCheck.insert(account=account, symbol=symbol, leg=check.leg, venue_qty=q(check.venue),
                             virtual_qty=q(virtual), unassigned_qty=q(rest),
                             difference=q(check.venue - virtual - rest), ts=ts, by="reconcile") \
            .on_conflict(conflict_target=[PositionCheck.account, PositionCheck.symbol, PositionCheck.leg],
                         preserve=[PositionCheck.venue_qty, PositionCheck.virtual_qty, PositionCheck.unassigned_qty,
                                   PositionCheck.difference, PositionCheck.ts, PositionCheck.by]).execute()
    return ids


def _add_virtual(name: str, account: str, symbol: str, leg: str, qty: Decimal, hedge: bool, ts: int) -> None:
    """The stored virtual position as it is once the worker has booked the assignment (the
    worker overwrites it with its ledger's when it does)."""
    row = VirtualPosition.get_or_none(VirtualPosition.strategy == name)
    if row is None:
        row = VirtualPosition(strategy=name, account=account, symbol=symbol, long_qty=Decimal(0),
                              short_qty=Decimal(0), hedge=hedge, ts=ts)
    if leg == "short":
        row.short_qty = row.short_qty + qty
    else:
        row.long_qty = row.long_qty + qty
    row.reset_ts, row.ts = ts, ts
    row.save()


def record_check(ts: int, account: str, symbol: str, c: LegCheck, rules: MarketRules) -> None:
    """A leg checked by `gridctl reconcile` (status shows the newest check of each leg)."""
    q = rules.qty
    PositionCheck.insert(account=account, symbol=symbol, leg=c.leg, venue_qty=q(c.venue), virtual_qty=q(c.virtual),
                         unassigned_qty=q(c.unassigned), difference=q(c.difference), ts=ts, by="reconcile") \
        .on_conflict(conflict_target=[PositionCheck.account, PositionCheck.symbol, PositionCheck.leg],
                     preserve=[PositionCheck.venue_qty, PositionCheck.virtual_qty, PositionCheck.unassigned_qty,
                               PositionCheck.difference, PositionCheck.ts, PositionCheck.by]).execute()


def account_legs(db: Database) -> list[dict]:
    """For `gridctl status`: every leg checked where several strategies share it, or where
    something differs or sits in UNASSIGNED (a strategy alone and matched shows nothing)."""
    if not db.table_exists(PositionCheck._meta.table_name):
        return []
    sharing: dict[tuple[str, str], int] = {}
    for r in VirtualPosition.select(VirtualPosition.account, VirtualPosition.symbol):
        sharing[(r.account, r.symbol)] = sharing.get((r.account, r.symbol), 0) + 1
    out = []
    for r in PositionCheck.select().order_by(PositionCheck.account, PositionCheck.symbol, PositionCheck.leg):
        if sharing.get((r.account, r.symbol), 0) < 2 and not r.difference and not r.unassigned_qty:
            continue
        out.append({"account": r.account, "symbol": r.symbol, "leg": r.leg, "venue": r.venue_qty,
                    "virtual": r.virtual_qty, "difference": r.difference, "unassigned": r.unassigned_qty,
                    "matched": r.difference == 0, "ts": r.ts})
    return out


def resets(db: Database) -> dict[str, dict]:
    """strategy -> its last assignment (the reset its PnL continues from)."""
    if not db.table_exists(PositionAssignment._meta.table_name):
        return {}
    out: dict[str, dict] = {}
    for r in PositionAssignment.select().order_by(PositionAssignment.id):
        out[r.strategy] = {"ts": r.ts, "qty": r.qty, "price": r.price, "leg": r.leg}
    return out


def latest_reset(name: str) -> Optional[dict]:
    row = (PositionAssignment.select().where(PositionAssignment.strategy == name)
           .order_by(PositionAssignment.id.desc()).first())
    return None if row is None else {"ts": row.ts, "qty": row.qty, "price": row.price, "leg": row.leg}


def accounts_of(names: list[str]) -> dict[str, str]:
    """strategy -> the account it trades on (from its stored configuration)."""
    import json

    from gridctl.store.models import Strategy

    out = {}
    for s in Strategy.select(Strategy.name, Strategy.config_json).where(Strategy.name.in_(names)):
        try:
            acc = (json.loads(s.config_json or "{}") or {}).get("account")
        except ValueError:
            acc = None
        if acc:
            out[s.name] = acc
    return out
