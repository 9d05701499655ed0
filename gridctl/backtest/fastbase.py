"""What the integer core's modules share: the fallback signal and the resting order."""

from __future__ import annotations

ENTRY, EXIT = 0, 1
REL = 1e-9  # relative margin of the float estimates of thresholds


class Fallback(Exception):
    """The core cannot do this candle exactly: the reference engine does it."""


class Order:
    """A resting own order: level position, intent, side (+1/-1), price, qty, flags, ids."""

    __slots__ = ("pos", "intent", "side", "price", "qty", "ro", "po", "seq", "gen", "ts", "sim")

    def __init__(self, pos, intent, side, price, qty, ro, po, seq, gen, ts):
        self.pos, self.intent, self.side, self.price, self.qty = pos, intent, side, price, qty
        self.ro, self.po, self.seq, self.gen, self.ts = ro, po, seq, gen, ts
