"""The worker's control-socket handler (gridctl.control.worker_server.WorkerHandler):
pause, resume, stop, emergency close, live risk changes, status and the event feed.
A mixin of WorkerLoop, kept apart so the loop reads in one sitting."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from gridctl.core.engine import PAUSED, STOPPED
from gridctl.core.fills import PriceUpdate


class ControlHandler:
    """What the control socket can ask of a running strategy; `self` is the WorkerLoop."""

    async def pause(self) -> dict:
        self.e.pause()
        self.rec.strategy(self.now_ms(), status="paused")
        self.rec.event(self.now_ms(), "status", "paused: orders and position kept, nothing new placed")
        return {"state": "paused"}

    async def resume(self) -> dict:
        self.e.resume()
        self.rec.strategy(self.now_ms(), status="running")
        self.rec.event(self.now_ms(), "status", "resumed")
        return {"state": "running"}

    async def stop(self, keep_position: bool) -> dict:
        self.rec.engine_events(self.now_ms(), self.e.stop("user", keep=True if keep_position else None))
        self.rec.strategy(self.now_ms(), status="stopping")
        return {"state": "stopping"}

    async def emergency_close(self) -> dict:
        self.rec.engine_events(self.now_ms(), self.e.stop("emergency", keep=False))
        self.rec.strategy(self.now_ms(), status="stopping")
        await self.sync()
        return {"state": "stopping"}

    async def apply_risk(self, args: dict) -> dict:
        """Rebuild the engine's risk limits, max_position, margin-ratio thresholds and on_stop in
        place (the grid and its orders stay), record the applied configuration, re-check the stops."""
        from gridctl.config.live_change import apply_live_settings

        self.e.cfg = apply_live_settings(self.e.cfg, self.e.rules, args["settings"])
        self.e.version += 1  # max_position changes which entries are wanted
        ts = self.now_ms()
        changes = [str(c) for c in args.get("changes") or []]
        self.config_applied_ts = ts
        self.rec.strategy(ts, config_hash=args.get("config_hash"))
        self.rec.event(ts, "config", "applied " + (", ".join(changes) or "the same settings"),
                       data={"config_hash": args.get("config_hash"), "settings": args["settings"]})
        # a stop moved past the current price acts now, not at the next tick
        self.rec.engine_events(ts, self.d.on_price(PriceUpdate(ts, self.ex.price(), self.ex.mark())))
        await self.sync()
        return {"message": "applied " + ", ".join(changes), "applied_ts": ts}

    def status(self) -> dict:
        led, mark, r = self.e.ledger, self.ex.mark(), self.e.rules
        lim = self.e.cfg.limits
        q = Decimal("0.0001")
        orders = self._open_orders()
        buys = sum(1 for o in orders if o.side.value == "buy")
        stats = self.rec.w.stats()
        return {
            "name": self.name, "state": self.e.status, "paused": self.e.status == PAUSED,
            "price": str(r.price(self.ex.price())), "position": str(r.qty(led.position)),
            "exchange_position": str(r.qty(led.position if self.exchange_position is None
                                           else self.exchange_position)),
            "position_differs": self.exchange_position is not None,
            "open_buys": buys, "open_sells": len(orders) - buys,
            "grid_profit": str(led.grid_profit.quantize(q)), "realized": str(led.realized.quantize(q)),
            "unrealized": str(led.unrealized(mark).quantize(q)), "fees": str(led.fees.quantize(q)),
            "funding": str(led.funding.quantize(q)), "total_pnl": str(led.total_pnl(mark).quantize(q)),
            "uptime_s": int(self.clock() - self.started), "last_error": self.last_error,
            "stop_reason": self.e.stop_reason, "db_unavailable_since": stats.get("unavailable_since_ms"),
            "config_applied_ts": self.config_applied_ts,
            "safe_mode": getattr(self.ex, "safe_mode", None),
            # for the dashboard (gridctl.store.dashboard derives liquidation, margin ratio, stop distance)
            "as_of_ts": self.now_ms(), "mark_price": str(r.price(mark)),
            "entry_price": None if led.entry_price() is None else str(led.entry_price().quantize(r.tick / 100)),
            "maintenance_margin_rate": str(r.maintenance_margin_rate), "contract_size": str(r.contract_size),
            "lower": str(r.price(self.e.cfg.lower)), "upper": str(r.price(self.e.cfg.upper)),
            "stops": {k: str(r.price(v)) for k, v in (("stop_loss_below", lim.stop_below),
                                                      ("stop_loss_above", lim.stop_above),
                                                      ("take_profit_below", lim.take_below),
                                                      ("take_profit_above", lim.take_above)) if v is not None},
        }

    def recent_events(self, n: int) -> list[dict]:
        return self.rec.w.recent_events()[-n:]

    def subscribe(self) -> asyncio.Queue:
        q: asyncio.Queue = asyncio.Queue()
        self.rec.subscribers.append(q)
        return q

    def unsubscribe(self, q: asyncio.Queue) -> None:
        if q in self.rec.subscribers:
            self.rec.subscribers.remove(q)

    @property
    def finished(self) -> bool:
        return self.e.status == STOPPED
