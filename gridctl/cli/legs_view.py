"""Rendering of the shared legs in `gridctl status`: per account, symbol and leg, the venue's
position against the sum of the strategies' virtual positions and the UNASSIGNED bucket, and
the reset marks `gridctl reconcile --assign` left (pure: dicts in, text out)."""

from __future__ import annotations

from tabulate import tabulate

from gridctl.store.read import iso


def legs_table(legs: list[dict]) -> list[str]:
    """The lines of the legs section (none when no leg is shared, differs or holds UNASSIGNED)."""
    if not legs:
        return []
    rows = [[g["account"], g["symbol"], g["leg"], format(g["venue"], "f"), format(g["virtual"], "f"),
             format(g["unassigned"], "f"), format(g["difference"], "f"), "matched" if g["matched"] else "MISMATCH"]
            for g in legs]
    return ["", "positions by account (venue vs the strategies' virtual positions):",
            tabulate(rows, headers=["account", "symbol", "leg", "venue", "strategies", "UNASSIGNED", "difference", ""],
                     disable_numparse=True, stralign="right")] + [
        f"{g['account']} {g['symbol']} {g['leg']}: the venue's position differs by {format(g['difference'], 'f')}; "
        f"see gridctl reconcile {g['account']} {g['symbol']}" for g in legs if not g["matched"]]


def reset_note(name: str, reset: dict) -> str:
    """The mark a strategy keeps once a quantity was assigned to it."""
    return (f"{name}: position reset by gridctl reconcile at {iso(reset['ts'])}: {format(reset['qty'], 'f')} "
            f"({reset['leg']} leg) assigned at {format(reset['price'], 'f')}, PnL of it counts from there")
