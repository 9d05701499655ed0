"""The venue core's records seen as Backpack reports them (codec views), and the market extras.

Pure mappings: gridctl.venue.records (VenueOrder, VenueFill, FundingIncome) and the core's
position/balance views -> gridctl.venue.backpack_codec views, with Backpack's statuses,
sides, expiry reasons and the market's margin functions from the bundled snapshot.
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from typing import Optional

from gridctl.core.market import MarketRules
from gridctl.venue import backpack_codec as codec
from gridctl.venue.booking import LIQUIDATION_PREFIX
from gridctl.venue.records import (CANCELLED, EXPIRED, FILLED, NEW, PARTIALLY_FILLED, VenueFill,
                                   VenueOrder)

STATUS = {NEW: codec.NEW, PARTIALLY_FILLED: codec.PARTIALLY_FILLED, FILLED: codec.FILLED,
          CANCELLED: codec.CANCELLED, EXPIRED: codec.EXPIRED}
LIQUIDATION_ORDER = "LiquidatePositionOnBook"  # Backpack's systemOrderType of a liquidation
EVENT = {"new": "orderAccepted", "trade": "orderFill", "cancelled": "orderCancelled",
         "expired": "orderExpired"}


@lru_cache(maxsize=None)
def snapshot_extras() -> dict[str, dict]:
    """Backpack-only market fields of the bundled snapshot (margin functions, funding interval),
    keyed by venue id."""
    path = resources.files("gridctl") / "data" / "markets" / "backpack.json"
    raw = json.loads(path.read_text())
    return {m["id"]: m for m in raw["markets"].values()}


def market_view(rules: MarketRules) -> codec.MarketView:
    """The market as /api/v1/markets publishes it."""
    extra = snapshot_extras().get(rules.venue_id, {})
    imf = extra.get("imf_function") or {"type": "sqrt", "base": str(Decimal(1) / rules.max_leverage),
                                         "factor": "0"}
    mmf = extra.get("mmf_function") or {"type": "sqrt", "base": str(rules.maintenance_margin_rate),
                                        "factor": "0"}
    return codec.MarketView(rules.venue_id, rules.base, rules.quote, rules.tick, rules.step,
                            rules.min_qty, imf, mmf, int(extra.get("funding_interval_ms", 3_600_000)))


def is_liquidation(client_id: object) -> bool:
    """True for the venue's own liquidation orders and their fills."""
    return isinstance(client_id, str) and client_id.startswith(LIQUIDATION_PREFIX)


def wire_client_id(client_id: object) -> Optional[int]:
    """A clientId as Backpack shows it: the u32 the client gave, else none (the core names
    orders placed without one "venue-N")."""
    return client_id if isinstance(client_id, int) and not isinstance(client_id, bool) else None


def order_view(o: VenueOrder, rules: MarketRules) -> codec.OrderView:
    """A core order in Backpack's terms."""
    post_only = o.time_in_force == "PO"
    reason = None
    if o.status == EXPIRED:
        reason = codec.EXPIRY_REASONS.get(o.expiry_reason or "", "Unknown")
        if o.expiry_reason == "ioc_unfilled" and o.time_in_force == "FOK":
            reason = "FillOrKill"
    return codec.OrderView(
        order_id=str(o.order_id), client_id=wire_client_id(o.client_id), symbol=rules.venue_id,
        side=codec.side_of(o.side == "buy"), order_type="Limit" if o.type == "limit" else "Market",
        quantity=o.qty, price=o.price, executed_qty=o.filled, executed_quote=o.cum_quote,
        status=STATUS.get(o.status, codec.NEW), created_ms=o.created_ms, post_only=post_only,
        reduce_only=o.reduce_only, time_in_force="GTC" if post_only else o.time_in_force,
        expiry_reason=reason, system_order_type=LIQUIDATION_ORDER if is_liquidation(o.client_id) else None)


def fill_view(f: VenueFill, rules: MarketRules) -> codec.FillView:
    """A core trade in Backpack's terms."""
    return codec.FillView(int(f.trade_id), str(f.order_id), wire_client_id(f.client_id), rules.venue_id,
                          codec.side_of(f.side == "buy"), f.price, f.qty, f.fee, f.fee_asset, f.maker, f.ts,
                          LIQUIDATION_ORDER if is_liquidation(f.client_id) else None)


def position_id(fingerprint: str, symbol: str) -> str:
    """A stable numeric position id per account and market."""
    return str(int.from_bytes(hashlib.sha256(f"{fingerprint}:{symbol}".encode()).digest()[:4], "big"))


def user_id(fingerprint: str) -> str:
    """A stable numeric user id for an account (derived from its fingerprint, never the key)."""
    return str(int(fingerprint[:8], 16))


def position_view(fingerprint: str, rules: MarketRules, qty: Decimal, entry: Decimal, mark: Decimal,
                  liquidation: Decimal, unrealized: Decimal, realized: Decimal, funding: Decimal,
                  leverage: int) -> codec.PositionView:
    """The net position of one market (Backpack has no legs)."""
    m = market_view(rules)
    notional = abs(qty) * mark
    imf = max(Decimal(m.imf_function["base"]), Decimal(m.imf_function["factor"]) * notional.sqrt(),
              Decimal(1) / Decimal(leverage))
    mmf = max(Decimal(m.mmf_function["base"]), Decimal(m.mmf_function["factor"]) * notional.sqrt())
    return codec.PositionView(rules.venue_id, position_id(fingerprint, rules.symbol), qty, entry, mark,
                              liquidation, realized, unrealized, funding, imf, mmf,
                              m.imf_function, m.mmf_function)
