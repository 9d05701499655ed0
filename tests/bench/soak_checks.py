"""The soak's invariants, checked from the venue's own records against gridctl's store.

Each check takes a `Seen` (what the venues and the database hold at one moment) and
returns a Result: its name, how many violations, and a few lines of evidence. The venue
side comes from GET /_admin/history (every order of any status, every fill, every funding
payment, the positions) and GET /_admin/audit (the largest |position| each leg ever had,
placements that came with a live order's client id), both recorded by the venue as they
happened; the gridctl side from the SQLite database (orders, fills, funding, levels, the
stored grid, the last equity snapshot) and `gridctl status --json` (virtual positions).

    desired_orders   open orders on the venue == each strategy's desired orders (from its levels)
    live_client_ids  no placement ever came with the client id of a live order
    fills_once       every venue fill of a strategy is in its fills exactly once, nothing else is
    positions_sum    the strategies' positions on a leg sum to the venue's position of that leg
    money            realized and fees per strategy, funding per account and symbol == venue's, to 1e-8
    max_position     no leg's |position| ever exceeded the max_position of the strategies on it
    stops_flat       after every stop: no position and no open order on the venue
    order_rows       every order row == the venue's order (status, filled, side, price, client id),
                     and every venue order of a strategy has its row
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Optional

from gridctl.config.strategy import rules_for
from gridctl.config.validate import load
from gridctl.core.clientid import decode as decode_cid, same_strategy, strategy_tag
from gridctl.core.grid import LevelSpec, Side
from gridctl.core.orders import Intent, Level, OrderPolicy, desired_orders

ZERO = Decimal(0)
TOLERANCE = Decimal("1e-8")
MAX_EVIDENCE = 8
OPEN = ("new", "partially_filled")


@dataclass
class Result:
    name: str
    violations: int = 0
    evidence: list[str] = field(default_factory=list)
    checked: int = 0

    def bad(self, line: str) -> None:
        self.violations += 1
        if len(self.evidence) < MAX_EVIDENCE:
            self.evidence.append(line)

    def line(self) -> str:
        verdict = "ok" if not self.violations else f"{self.violations} violation(s)"
        return f"{self.name:<16} {verdict} ({self.checked} checked)"


@dataclass
class Strat:
    """What a check needs to know of one strategy."""

    name: str
    account: str
    symbol: str
    mode: str
    fmt: str  # client id format: binance | backpack
    hedge: bool
    rules: object
    max_position: Optional[Decimal]

    @property
    def leg(self) -> str:
        if not self.hedge:
            return "both"
        return "short" if self.mode == "short" else "long"

    def owns(self, cid) -> Optional[object]:
        d = decode_cid(self.fmt, cid)
        return d if d is not None and same_strategy(self.fmt, d, strategy_tag(self.name)) else None


def strategies(config_path: Path, env: dict) -> dict[str, Strat]:
    cfg = load(config_path, environ=env, check_markets=False)
    out = {}
    for name, s in cfg.strategies.items():
        acc = cfg.accounts[s.account]
        like = acc.venue
        out[name] = Strat(name, s.account, s.symbol, s.mode.value if hasattr(s.mode, "value") else str(s.mode),
                          "backpack" if like == "backpack" else "binance", acc.position_mode == "hedge",
                          rules_for(acc, s.symbol), s.max_position)
    return out


@dataclass
class Seen:
    """The venues' records and the store at one moment."""

    strats: dict[str, Strat]
    history: dict[str, dict]  # account -> /_admin/history (fingerprint -> records) of its venue
    audit: dict[str, dict]  # account -> /_admin/audit
    db: Path
    status: dict[str, dict] = field(default_factory=dict)
    prices: dict[tuple[str, str], Decimal] = field(default_factory=dict)  # (account, symbol) -> last

    def venue(self, account: str) -> dict:
        """The account's records (a paper account's venue serves that one account)."""
        accs = list(self.history.get(account, {}).values())
        merged: dict = {"orders": [], "fills": [], "income": [], "positions": []}
        for a in accs:
            for k in merged:
                merged[k] += a.get(k, [])
        return merged

    def sql(self, query: str, *params) -> list[tuple]:
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30)
        try:
            return con.execute(query, params).fetchall()
        finally:
            con.close()

    def own(self, s: Strat, kind: str) -> list[dict]:
        return [r for r in self.venue(s.account)[kind] if r["symbol"] == s.symbol and s.owns(r["client_id"])]


# -- the checks ------------------------------------------------------------------------------------

def check_desired(seen: Seen) -> Result:
    r = Result("desired_orders")
    for s in seen.strats.values():
        grid = seen.sql("SELECT grid_json FROM strategies WHERE name = ?", s.name)
        if not grid or not grid[0][0]:
            r.bad(f"{s.name}: no stored grid")
            continue
        specs = {i: LevelSpec(i, Side(side), e, x, size) for i, side, e, x, size in json.loads(grid[0][0])["levels"]}
        levels = []
        for idx, held, exiting, gen in seen.sql("SELECT idx, held, exiting, gen FROM levels WHERE strategy = ?",
                                                s.name):
            if idx in specs:
                levels.append(Level(specs[idx], s.rules.qty_to_steps(Decimal(held)), bool(exiting), gen))
        have = {i.spec.index for i in levels}
        levels += [Level(sp) for i, sp in specs.items() if i not in have]
        price = seen.prices.get((s.account, s.symbol))
        if price is None:
            r.bad(f"{s.name}: no venue price")
            continue
        market = s.rules.price_to_ticks(price)
        actual = {}
        for o in seen.own(s, "orders"):
            if o["status"] not in OPEN:
                continue
            d = s.owns(o["client_id"])
            actual[(d.intent.value, o["side"], s.rules.price_to_ticks(Decimal(o["price"])), d.level)] = \
                s.rules.qty_to_steps(Decimal(o["qty"]) - Decimal(o["filled"]))
        working = [k[3] for k in actual if k[0] == Intent.ENTRY.value]
        mp = None if s.max_position is None else s.rules.qty_to_steps(Decimal(s.max_position))
        policy = OrderPolicy(max_position=mp, hedge=s.hedge, post_only=True)
        want = {(o.intent.value, o.side.value, o.price, o.level): o.qty
                for o in desired_orders(levels, market, policy, working)}
        r.checked += len(want)
        for k in sorted(set(want) | set(actual), key=str):
            if want.get(k) != actual.get(k):
                r.bad(f"{s.name}: {k[0]} {k[1]} level {k[3]} @ {s.rules.price(k[2])}: desired "
                      f"{want.get(k)} steps, venue {actual.get(k)}")
    return r


def check_live_client_ids(seen: Seen) -> Result:
    r = Result("live_client_ids")
    for account, audit in seen.audit.items():
        r.checked += sum(len(a.get("orders", [])) for a in seen.history.get(account, {}).values())
        for fp, n in (audit.get("duplicate_live") or {}).items():
            for _ in range(int(n)):
                r.bad(f"{account}: a placement came with a live order's client id")
        r.evidence += [f"  e.g. {e}" for e in (audit.get("examples") or []) if e["kind"] == "duplicate_live"][:3]
    return r


def check_fills_once(seen: Seen) -> Result:
    r = Result("fills_once")
    owner: dict[str, list[str]] = defaultdict(list)
    for s in seen.strats.values():
        venue = {str(f["trade_id"]): f for f in seen.own(s, "fills")}
        rows = seen.sql("SELECT trade_id FROM fills WHERE strategy = ?", s.name)
        counts = Counter(str(t) for (t,) in rows)
        r.checked += len(venue)
        for tid in venue:
            owner[f"{s.account}:{tid}"].append(s.name)
            if counts[tid] != 1:
                r.bad(f"{s.name}: venue trade {tid} ({venue[tid]['side']} {venue[tid]['qty']} @ "
                      f"{venue[tid]['price']}) booked {counts[tid]} times")
        for tid, n in counts.items():
            if tid not in venue:
                r.bad(f"{s.name}: fill row with trade id {tid} ({n}x) that is not its trade on the venue")
    for key, names in owner.items():
        if len(names) > 1:
            r.bad(f"trade {key} attributed to {names}")
    return r


def _legs(seen: Seen) -> dict[tuple[str, str, str], list[Strat]]:
    out: dict = defaultdict(list)
    for s in seen.strats.values():
        out[(s.account, s.symbol, s.leg)].append(s)
    return out


def venue_leg(seen: Seen, account: str, symbol: str, leg: str) -> Decimal:
    return sum((Decimal(p["qty"]) for p in seen.venue(account)["positions"]
                if p["symbol"] == symbol and p["side"] == leg), ZERO)


def check_positions(seen: Seen) -> Result:
    r = Result("positions_sum")
    for (account, symbol, leg), ss in _legs(seen).items():
        r.checked += 1
        virtual = sum((Decimal(str(seen.status.get(s.name, {}).get("position", 0))) for s in ss), ZERO)
        venue = venue_leg(seen, account, symbol, leg)
        if virtual != venue:
            r.bad(f"{account} {symbol} {leg}: strategies {[s.name for s in ss]} hold {virtual}, venue {venue}")
    return r


def check_money(seen: Seen) -> Result:
    r = Result("money")
    for s in seen.strats.values():
        fills = seen.own(s, "fills")
        v_fees = sum((Decimal(f["fee"]) for f in fills), ZERO)
        v_real = sum((Decimal(f["realized"]) for f in fills), ZERO)
        db_fees = sum((Decimal(x) for (x,) in seen.sql("SELECT fee FROM fills WHERE strategy = ?", s.name)), ZERO)
        eq = seen.sql("SELECT realized, fees, funding FROM equity WHERE strategy = ? ORDER BY ts DESC, id DESC "
                      "LIMIT 1", s.name)
        db_real = Decimal(eq[0][0]) if eq else ZERO
        eq_fees = Decimal(eq[0][1]) if eq else ZERO
        eq_funding = Decimal(eq[0][2]) if eq else ZERO
        rows_funding = sum((Decimal(x) for (x,) in seen.sql("SELECT amount FROM funding WHERE strategy = ?",
                                                             s.name)), ZERO)
        r.checked += 4
        if abs(eq_funding - rows_funding) > TOLERANCE:
            r.bad(f"{s.name}: funding in its last snapshot {eq_funding}, in its funding rows {rows_funding}")
        if abs(db_fees - v_fees) > TOLERANCE:
            r.bad(f"{s.name}: fees in its fills {db_fees}, venue {v_fees}")
        if abs(eq_fees - v_fees) > TOLERANCE:
            r.bad(f"{s.name}: fees in its last snapshot {eq_fees}, venue {v_fees}")
        if abs(db_real - v_real) > TOLERANCE:
            r.bad(f"{s.name}: realized in its last snapshot {db_real}, venue {v_real}")
    by_market: dict = defaultdict(list)
    for s in seen.strats.values():
        by_market[(s.account, s.symbol)].append(s)
    for (account, symbol), ss in by_market.items():
        v = sum((Decimal(i["amount"]) for i in seen.venue(account)["income"] if i["symbol"] == symbol), ZERO)
        db = ZERO
        for s in ss:
            db += sum((Decimal(x) for (x,) in seen.sql("SELECT amount FROM funding WHERE strategy = ?", s.name)), ZERO)
        r.checked += 1
        if abs(db - v) > TOLERANCE:
            r.bad(f"{account} {symbol}: funding booked by {[s.name for s in ss]} {db}, venue paid {v}")
    return r


def check_max_position(seen: Seen) -> Result:
    r = Result("max_position")
    for (account, symbol, leg), ss in _legs(seen).items():
        caps = [s.max_position for s in ss]
        if any(c is None for c in caps):
            continue
        cap = sum((Decimal(c) for c in caps), ZERO)
        r.checked += 1
        for fp, syms in (seen.audit.get(account, {}).get("max_position") or {}).items():
            most = Decimal(syms.get(symbol, {}).get(leg, "0"))
            if most > cap:
                r.bad(f"{account} {symbol} {leg}: |position| reached {most}, max_position {cap}")
    return r


def check_flat(seen: Seen) -> Result:
    r = Result("stops_flat")
    for account in {s.account for s in seen.strats.values()}:
        v = seen.venue(account)
        r.checked += 1
        for p in v["positions"]:
            if Decimal(p["qty"]) != 0:
                r.bad(f"{account} {p['symbol']} {p['side']}: {p['qty']} left after stop")
        for o in v["orders"]:
            if o["status"] in OPEN:
                r.bad(f"{account}: order {o['client_id']} still open after stop")
    return r


def _row_status(venue_status: str) -> str:
    return "open" if venue_status in OPEN else venue_status


def check_order_rows(seen: Seen) -> Result:
    r = Result("order_rows")
    for s in seen.strats.values():
        venue = {str(o["order_id"]): o for o in seen.own(s, "orders")}
        rows = seen.sql("SELECT client_id, order_id, side, price, filled, status FROM orders WHERE strategy = ?",
                        s.name)
        r.checked += len(rows)
        with_id = set()
        for cid, oid, side, price, filled, status in rows:
            if oid is None:
                if status == "open":
                    r.bad(f"{s.name}: row {cid} open with no venue order id")
                continue
            with_id.add(str(oid))
            o = venue.get(str(oid))
            if o is None:
                if status != "rejected":
                    r.bad(f"{s.name}: row {cid} (order {oid}, {status}) is not a venue order of its")
                continue
            diffs = []
            if status != _row_status(o["status"]):
                diffs.append(f"status {status} vs {o['status']}")
            if Decimal(filled or 0) != Decimal(o["filled"]):
                diffs.append(f"filled {filled} vs {o['filled']}")
            if side is not None and side != o["side"]:
                diffs.append(f"side {side} vs {o['side']}")
            if price is not None and o["price"] is not None and Decimal(price) != Decimal(o["price"]):
                diffs.append(f"price {price} vs {o['price']}")
            if str(cid) != str(o["client_id"]):
                diffs.append(f"client id {cid} vs {o['client_id']}")
            if diffs:
                r.bad(f"{s.name}: order {oid} ({cid}): " + ", ".join(diffs))
        by_cid = {str(cid): status for cid, oid, _, _, _, status in rows}
        for oid, o in venue.items():
            if oid in with_id:
                continue
            if (o["status"] == "expired" and Decimal(o["filled"]) == 0
                    and by_cid.get(str(o["client_id"])) in ("rejected", "expired", "cancelled")):
                continue  # refused at once (a post-only that would cross, as Backpack expires it)
            if True:
                r.bad(f"{s.name}: venue order {oid} ({o['client_id']} {o['side']} {o['status']} filled "
                      f"{o['filled']}) has no row")
    return r


BEFORE_STOP = (check_desired, check_positions, check_order_rows)
AFTER_STOP = (check_live_client_ids, check_fills_once, check_money, check_max_position, check_flat,
              check_order_rows)
