"""Deterministic client order ids: strategy, level, intent and generation.

Fills are attributed to a strategy and level from the id alone, so the codec is
exact and reversible in each venue's format:

- ``binance``: ``gx-<tag>-<level><intent><gen>``, at most 36 chars of [a-z0-9-]
- ``okx``: ``gx<tag><level><intent><gen>``, at most 32 alphanumerics
- ``backpack``: a uint32: 12 bits of tag, 9 of level, 2 of intent, 9 of generation
  (the generation wraps at 512, which is far beyond the orders a level has open)
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Optional, Union

from gridctl.core.orders import Intent

FORMATS = ("binance", "okx", "backpack")
MAX_LEVEL = 511  # 9 bits in the uint32 form; also the largest level index any form takes
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_INTENT_CODE = {Intent.ENTRY: "e", Intent.EXIT: "x", Intent.CLOSE: "c"}
_CODE_INTENT = {v: k for k, v in _INTENT_CODE.items()}
_INTENT_BITS = {Intent.ENTRY: 1, Intent.EXIT: 2, Intent.CLOSE: 3}
_BITS_INTENT = {v: k for k, v in _INTENT_BITS.items()}
_BINANCE = re.compile(r"gx-([0-9a-z]{6})-([0-9]{3})([exc])([0-9]{1,20})")
_OKX = re.compile(r"gx([0-9a-z]{6})([0-9]{3})([exc])([0-9]{1,19})")
_MAX_GEN = {"binance": 10**20, "okx": 10**19}  # what fits in 36 / 32 chars


@dataclass(frozen=True)
class ClientId:
    """The decoded content of a client order id."""

    tag: str  # the strategy's tag (see strategy_tag)
    level: int
    intent: Intent
    gen: int


def strategy_tag(name: str) -> str:
    """Six base-36 chars derived from the strategy name (stable across runs)."""
    n = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")
    out = ""
    for _ in range(6):
        n, r = divmod(n, 36)
        out += _B36[r]
    return out


def tag_bits(tag: str) -> int:
    """The 12-bit form of a tag used by uint32 ids."""
    return int(tag, 36) % 4096


def encode(fmt: str, tag: str, level: int, intent: Intent, gen: int) -> Union[str, int]:
    """The client id for one order in the venue's format."""
    if not 0 <= level <= MAX_LEVEL:
        raise ValueError(f"level {level} outside 0..{MAX_LEVEL}")
    if not 0 <= gen < _MAX_GEN.get(fmt, 2**63):
        raise ValueError(f"generation {gen} does not fit a {fmt} client id")
    if fmt == "binance":
        return f"gx-{tag}-{level:03d}{_INTENT_CODE[intent]}{gen}"
    if fmt == "okx":
        return f"gx{tag}{level:03d}{_INTENT_CODE[intent]}{gen}"
    if fmt == "backpack":
        return (tag_bits(tag) << 20) | (level << 11) | (_INTENT_BITS[intent] << 9) | (gen % 512)
    raise ValueError(f"unknown client id format {fmt!r}")


def decode(fmt: str, value: Union[str, int, None]) -> Optional[ClientId]:
    """The ClientId inside value, or None for ids that are not gridctl's.

    For the uint32 form the tag comes back as its 12-bit number in base 36
    (compare with ``tag_bits``), since 6 chars do not fit in 32 bits.
    """
    if value is None:
        return None
    if fmt == "backpack":
        try:
            n = int(value)
        except (TypeError, ValueError):
            return None
        intent = _BITS_INTENT.get((n >> 9) & 3)
        if intent is None or not 0 <= n < 2**32:
            return None
        return ClientId(str(n >> 20), (n >> 11) & 511, intent, n & 511)
    m = (_BINANCE if fmt == "binance" else _OKX).fullmatch(str(value))
    if not m:
        return None
    return ClientId(m.group(1), int(m.group(2)), _CODE_INTENT[m.group(3)], int(m.group(4)))


def same_strategy(fmt: str, decoded: ClientId, tag: str) -> bool:
    """True when a decoded id belongs to the strategy with this tag."""
    if fmt == "backpack":
        return decoded.tag == str(tag_bits(tag))
    return decoded.tag == tag


def belongs(fmt: str, tag: str, value: Union[str, int, None]) -> bool:
    """True when `value` is a client order id of the strategy with this tag."""
    d = decode(fmt, value)
    return d is not None and same_strategy(fmt, d, tag)
