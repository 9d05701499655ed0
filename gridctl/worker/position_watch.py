"""The worker's view of the venue's position (a mixin of WorkerLoop, kept apart so the loop
reads in one sitting): at recovery a kept position is adopted by a new grid; on the reconcile
timer the venue's position is compared with the ledger (alone on its legs) or with all the
strategies' virtual positions (siblings: gridctl.worker.account_check). A difference is shown
once a second check confirms it, and never overwrites the ledger."""

from __future__ import annotations

from typing import Optional

from gridctl.worker.account_check import CONFIRM_S


class PositionWatch:
    """The position checks of a running strategy; `self` is the WorkerLoop."""

    @property
    def exchange_position(self) -> Optional[int]:
        """The venue's net position (steps) when it differs from the ledger's, else None."""
        return self.e.ledger.position + self.position_difference if self.position_difference else None

    async def _check_position(self, ts: int, fresh: bool) -> Optional[dict]:
        """The exchange's position against the ledger: adopt a kept one into a new grid,
        show a difference, never overwrite it."""
        reports = await self.ex.positions()
        ours = {(r.leg, 1 if r.qty > 0 else -1): r for r in reports if r.qty}
        net = sum(r.qty for r in reports)
        led = self.e.ledger
        adoption: Optional[dict] = None
        alone = self.accounts is None or not self.accounts.shared  # siblings on the leg: never adopt theirs
        if fresh and not led.fills and led.position == 0 and ours and alone:
            adoption = {"ts": ts, "legs": []}
            for (leg, sign), r in ours.items():
                self.rec.engine_events(ts, self.e.adopt(ts, sign, abs(r.qty), r.entry_price, self.ex.price()))
                adoption["legs"].append([sign, abs(r.qty), str(r.entry_price)])
            self.e.opened = False  # initial_position still buys what the adopted position does not cover
        self._position_check(ts, reports, net)
        return adoption

    def _position_check(self, ts: int, reports: list, net: int) -> None:
        """Alone on its legs: the ledger against the venue (less the UNASSIGNED bucket). With
        siblings: the leg against all their virtual positions (gridctl.worker.account_check)."""
        acc = self.accounts
        if acc is None:
            self._compare(ts, net)
            return
        acc.pick_up(ts)
        checks = acc.check(ts, reports, report=acc.shared)
        if acc.confirm_soon:  # a difference seen once (a fill in flight?): checked again within CONFIRM_S
            self.last_reconcile = min(self.last_reconcile, self.clock() - self.reconcile_every_s + CONFIRM_S)
        if acc.shared or acc.confirm_soon:
            return
        if checks is not None:
            net = self.e.ledger.position + sum(c.difference for c in checks)
        self._compare(ts, net)

    def _compare(self, ts: int, net: int) -> None:
        difference = net - self.e.ledger.position
        if difference == self.position_difference:
            return
        self.position_difference = difference
        self.last_equity = 0.0  # the next snapshot stores it: status shows it with no worker running
        if difference == 0:
            self.rec.event(ts, "info", "the exchange's position matches the ledger again")
            return
        r = self.e.rules
        self.rec.event(ts, "warn", f"position differs: ledger {r.qty(self.e.ledger.position)}, exchange "
                       f"{r.qty(net)} (not changed; see gridctl status)")

    async def _position_when_due(self) -> None:
        """The reconcile timer's position check, once no fill waits to be read (a fill still to
        be read would show as a difference): at the next turn, not the next timer, or a
        difference to confirm would wait a minute."""
        if self.position_due and not self.ex.pending():
            reports = await self.ex.positions()
            self.position_due = False
            self._position_check(self.now_ms(), reports, sum(r.qty for r in reports))
