"""initial_position: the market entries a grid opens with, once, when it first runs
(GridEngine.opening_requests)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from gridctl.core.grid import Mode, Side
from gridctl.core.ledger import UNASSIGNED
from gridctl.core.orders import Intent, OrderRequest

if TYPE_CHECKING:
    from gridctl.core.engine import GridEngine


@dataclass(frozen=True)
class _Cover:
    """What is left of an adopted unpaired lot while the initial position is planned."""

    sign: int
    qty: int


def opening_requests(self: "GridEngine", market: int) -> list[OrderRequest]:
    """initial_position, once, when the grid first runs: market entries for the levels
    the mode would hold at this price, nearest first, within max_position, never for
    a level that already holds (an adopted position)."""
    if self.opened:
        return []
    self.opened = True
    if not self.cfg.initial_position or self.cfg.mode is Mode.NEUTRAL:
        return []
    cap = self.cfg.max_position
    exposure = abs(self.ledger.position)
    out = []
    wanted = [lv for lv in self.levels.values() if lv.held == 0 and (
        lv.spec.entry >= market if lv.spec.side is Side.BUY else lv.spec.entry <= market)]
    unpaired = self.ledger.lots.get(UNASSIGNED)
    for lv in sorted(wanted, key=lambda lv: abs(lv.spec.entry - market)):
        s = lv.spec
        sign = 1 if s.side is Side.BUY else -1
        cover = unpaired.qty if unpaired is not None and unpaired.sign == sign else 0
        if cover > 0:  # an adopted unpaired lot already holds (part of) this level's lot
            if unpaired is not None:
                unpaired = None if cover <= s.size else _Cover(sign, cover - s.size)
            continue
        if cap is not None and exposure + s.size > cap:
            break
        exposure += s.size
        self.levels[s.index] = replace(lv, gen=lv.gen + 1)
        out.append(OrderRequest(self.client_id(s.index, Intent.ENTRY, lv.gen + 1), s.side, s.size, None,
                                position_side=self.position_side(s.index), level=s.index, intent=Intent.ENTRY))
    return out

