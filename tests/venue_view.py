"""What a paper account's local venue holds, as the process tests look at it (the role the
exchange's UI plays for a trader): its open orders, its trade history and its position.

A paper account is served by one `gridctl venue` process (gridctl/venue/). Its state is
the snapshot `<state>/venue/<ACCOUNT>.json` (written atomically) and, once the venue keeps
one, its history journal `<ACCOUNT>.history.jsonl` next to it (fills, funding and closed
orders, one JSON object a line, tagged {"k": kind, "a": key fingerprint}). Before the
journal the snapshot kept every fill under the account's "fills"; both layouts are read.

One view is taken from one snapshot: the trades are cut at the snapshot's trade counter,
so a fill made after the snapshot was written never shows in the journal while its order
still shows open in the book.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Optional

from gridctl.config.model import AccountConfig
from gridctl.config.strategy import rules_for
from gridctl.config.validate import load
from gridctl.core.market import MarketRules
from gridctl.exchange.paper_venue import account_keys
from gridctl.process.paths import StatePaths
from gridctl.venue.records import OPEN_STATUSES, fingerprint


def _wait(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


def _json_lines(path: Path) -> list[dict]:
    """The journal's records (a line cut by a kill, or being appended, is skipped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


@dataclass
class VenueAccountView:
    """One strategy's market on its paper account's venue."""

    paths: StatePaths
    account: AccountConfig
    symbol: str
    rules: MarketRules

    @classmethod
    def of(cls, state_dir: Path, config: Path, name: str, environ: Optional[dict] = None) -> "VenueAccountView":
        cfg = load(config, environ=environ, check_markets=False)
        s = cfg.strategies[name]
        account = cfg.accounts[s.account]
        assert account.is_paper, f"{name} trades on {account.name}, not a paper account"
        rules = rules_for(account, s.symbol)
        assert rules is not None, f"no bundled rules for {s.symbol} on {account.venue}"
        return cls(StatePaths(Path(state_dir)), account, s.symbol, rules)

    # -- files and keys ----------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.paths.venue_state(self.account.name)

    @property
    def journal_path(self) -> Path:
        return self.state_path.with_name(self.state_path.stem + ".history.jsonl")

    def keys(self) -> tuple[str, str]:
        """The account's API key pair (made by the supervisor when it first starts the venue)."""
        path = self.paths.venue_keys(self.account.name)
        _wait(path.exists, 20, f"{path} (written when the supervisor starts the venue)")
        key, secret = account_keys(self.paths, self.account)
        return key.reveal(), secret.reveal()

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.keys()[0])

    def url(self, timeout: float = 20) -> str:
        path = self.paths.venue_url(self.account.name)
        return _wait(lambda: path.exists() and path.read_text().strip(), timeout, f"{path} (the venue listening)")

    # -- reading -----------------------------------------------------------------------------
    def _account_state(self, wait: bool) -> tuple[dict, dict]:
        """(snapshot, this account's part of it); waits for the worker's first connection if asked."""
        fp = self.fingerprint

        def read():
            try:
                snap = json.loads(self.state_path.read_text(encoding="utf-8"))  # replaced atomically
            except (OSError, ValueError):
                return None
            acc = snap.get("accounts", {}).get(fp)
            return (snap, acc) if acc is not None else None

        got = _wait(read, 20, f"{self.state_path} holding {self.account.name}'s account") if wait else read()
        return got or ({}, {})

    def snapshot(self, wait: bool = True) -> dict:
        """{"orders": open orders of the symbol by client id, "journal": its trades oldest first,
        "position": net position in lot steps} at one save of the venue."""
        snap, acc = self._account_state(wait)
        journal = _json_lines(self.journal_path)  # read after the snapshot: it holds all the snapshot counts
        fp = self.fingerprint
        records = list(acc.get("fills", []))
        records += [r for r in snap.get("tail", []) + journal if r.get("k") == "fill" and r.get("a") == fp]
        upto = int(snap.get("ids", {}).get("trade", 0))
        fills = {int(r["trade_id"]): r for r in records
                 if r["symbol"] == self.symbol and int(r["trade_id"]) <= upto}
        orders = [o for o in acc.get("orders", []) if o["symbol"] == self.symbol and o["status"] in OPEN_STATUSES]
        sim = acc.get("sims", {}).get(self.symbol)
        legs = sim["account"]["legs"] if sim else {}
        return {"orders": {o["client_id"]: self._order(o) for o in orders},
                "journal": [self._fill(fills[t]) for t in sorted(fills)],
                "position": sum(int(leg["qty"]) for leg in legs.values())}

    def _order(self, o: dict) -> dict:
        return {"client_id": o["client_id"], "order_id": str(o["order_id"]), "side": o["side"],
                "price": None if o["price"] is None else self.rules.price_to_ticks(Decimal(o["price"])),
                "qty": self.rules.qty_to_steps(Decimal(o["qty"])),
                "filled": self.rules.qty_to_steps(Decimal(o["filled"])), "status": o["status"],
                "reduce_only": o["reduce_only"], "position_side": o["position_side"]}

    def _fill(self, f: dict) -> dict:
        return {"ts": int(f["ts"]), "cid": f["client_id"], "oid": str(f["order_id"]), "tid": str(f["trade_id"]),
                "side": f["side"], "price": self.rules.price_to_ticks(Decimal(f["price"])),
                "qty": self.rules.qty_to_steps(Decimal(f["qty"])), "fee": f["fee"], "asset": f["fee_asset"],
                "maker": f["maker"], "ro": f["reduce_only"], "realized": f["realized"],
                "position_side": f["position_side"]}

    # -- acting on the venue -----------------------------------------------------------------
    def admin(self, path: str, body: Optional[dict] = None) -> dict:
        """GET (body None) or POST one of the venue's /_admin endpoints."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url() + path, data=data, method="GET" if body is None else "POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def manual_order(self, side: str, qty: Decimal, client_id: str, **params) -> dict:
        """What a trader does in the venue's app: a market order with the account's own keys,
        under a client id that is not gridctl's (ccxt, pointed at the venue like the adapter)."""
        return asyncio.run(self._manual_order(side, qty, client_id, params))

    async def _manual_order(self, side: str, qty: Decimal, client_id: str, params: dict) -> dict:
        import ccxt.async_support as ccxt_async

        from gridctl.exchange.ccxt_adapter import point

        key, secret = self.keys()
        proto = self.account.venue if self.account.venue in ("binanceusdm", "backpack") else "binanceusdm"
        client = getattr(ccxt_async, proto)({"apiKey": key, "secret": secret,
                                             "options": {"fetchCurrencies": False}})
        client.has["fetchCurrencies"] = False
        point(client, self.url())
        id_param = "newClientOrderId" if proto == "binanceusdm" else "clientId"
        try:
            await client.load_markets()
            return await client.create_order(self.symbol, "market", side, float(qty), None,
                                             {id_param: client_id, **params})
        finally:
            await client.close()
