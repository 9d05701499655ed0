"""The ccxt adapter's stream side: subscriptions, the raw-event tee's parser (Binance
ORDER_TRADE_UPDATE / miniTicker / markPriceUpdate / listenKeyExpired / ACCOUNT_UPDATE,
Backpack order, ticker and markPrice events), ccxt's parsed streams for other venues,
safe mode, the listen-key keep-alive, the stale-stream watchdog and the margin and
funding pollers. A mixin of CcxtExchange (gridctl.exchange.ccxt_adapter): it reads and
fills the adapter's state (queue, mirror, prices, seen orders).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Optional

from gridctl.core import clientid
from gridctl.core.fills import CANCELLED, Fill, OrderUpdate, PriceUpdate, StreamState
from gridctl.core.orders import Intent
from gridctl.exchange import ccxt_orders as co, ccxt_rest
from gridctl.exchange.base import ExchangeEvent
from gridctl.exchange.ccxt_streams import isolated
from gridctl.exchange.venues import quirk

log = logging.getLogger("gridctl.exchange.ccxt_adapter")


class StreamEvents:
    """What the adapter's streams and background pollers do (see the module doc)."""

    RAW_VENUES = ("binanceusdm", "backpack")  # venues whose raw private events this adapter reads

    def _watches(self) -> list:
        """The subscriptions. Binance and Backpack: the watches only keep the sockets subscribed
        (events come from the raw tee). Other venues: ccxt's parsed trades (its trade cache keeps
        each trade), orders and ticker, untested against a local venue."""
        c, s = self.client, self.symbol
        if self.venue not in self.RAW_VENUES:
            return [lambda: self._parsed(c.watch_my_trades(s), self._on_trades),
                    lambda: self._parsed(c.watch_orders(s), self._on_orders),
                    lambda: self._parsed(c.watch_ticker(s), self._on_ticker)]
        out = [lambda: c.watch_orders(s), lambda: c.watch_ticker(s)]
        if self.venue == "binanceusdm":
            out.append(lambda: c.watch_mark_price(s))
        else:
            mid = self.market["id"]
            out.append(lambda: c.watch_public([f"markPrice.{mid}"], [f"markPrice:{mid}"]))
        return out

    @staticmethod
    async def _parsed(watch: Any, handle: Callable[[Any], None]) -> None:
        handle(await watch)

    def _on_trades(self, trades: list) -> None:
        for t in trades or []:
            info = t.get("info") or {}
            cid = co.client_id_of(self.venue, info.get("orderLinkId") or info.get("clOrdId")
                                  or self._oid_cid.get(str(t.get("order") or "")))
            self._push(co.trade_fill(self.venue, self.rules, t, cid, co.fill_kind(cid)))

    def _on_orders(self, orders: list) -> None:
        for o in orders or []:
            eo = co.exchange_order(self.venue, self.rules, o)
            state = {"cid": eo.client_id, "order_id": eo.order_id, "side": eo.side, "price": eo.price,
                     "qty": eo.qty, "filled": eo.filled, "reduce_only": eo.reduce_only, "status": eo.status}
            gone = eo.status in ("cancelled", "expired", "rejected")
            update = OrderUpdate(int(o.get("lastUpdateTimestamp") or o.get("timestamp") or self.now_ms()),
                                 eo.client_id, eo.order_id, eo.status, eo.filled, "venue") if gone else None
            self._order_event(None, update, state)

    def _on_ticker(self, ticker: dict) -> None:
        self._price(int(ticker.get("timestamp") or self.now_ms()), last=ticker.get("last"),
                    mark=ticker.get("markPrice") or (ticker.get("info") or {}).get("markPrice"))

    def _on_raw(self, url: str, message: Any) -> None:
        """Every raw WebSocket message, before ccxt parses it."""
        self._last_raw = self.clock()
        if not isinstance(message, dict):
            return
        data = message.get("data") if isinstance(message.get("data"), dict) and "stream" in message else message
        e = data.get("e")
        mid = self.market.get("id")
        if self.venue == "binanceusdm":
            if e == "ORDER_TRADE_UPDATE" and (data.get("o") or {}).get("s") == mid:
                self._order_event(*co.binance_order_event(self.rules, data))
            elif e in ("24hrMiniTicker", "24hrTicker") and data.get("s") == mid:
                self._price(int(data.get("E") or self.now_ms()), last=data.get("c"))
            elif e == "markPriceUpdate" and data.get("s") == mid:
                self._next_funding = int(data["T"]) if data.get("T") else self._next_funding
                self._funding_rate = co.dec(data.get("r")) if data.get("r") is not None else self._funding_rate
                self._price(int(data.get("E") or self.now_ms()), mark=data.get("p"))
            elif e == "listenKeyExpired":
                self.renew_listen_key("the venue expired the listen key")
            elif e == "ACCOUNT_UPDATE" and (data.get("a") or {}).get("m") == "FUNDING_FEE":
                self._funding_now = True  # settled: fetch the income now
        elif self.venue == "backpack":
            if data.get("s") != mid:
                return
            if e in ("orderAccepted", "orderUpdate", "orderFill", "orderCancelled", "orderExpired", "triggerFailed"):
                self._order_event(*co.backpack_order_event(self.rules, data))
            elif e == "ticker":
                self._price(int(data.get("E") or 0) // 1000 or self.now_ms(), last=data.get("c"))
            elif e == "markPrice":
                nxt = data.get("n")
                self._next_funding = int(nxt) // (1000 if int(nxt) > 10**14 else 1) if nxt else self._next_funding
                self._funding_rate = co.dec(data.get("f")) if data.get("f") is not None else self._funding_rate
                self._price(int(data.get("E") or 0) // 1000 or self.now_ms(), mark=data.get("p"))

    def _order_event(self, fill: Optional[Fill], update: Optional[OrderUpdate], state: dict) -> None:
        cid = state.get("cid")
        if cid is not None:
            self._orders_seen[cid] = state
            if state.get("order_id"):
                self._oid_cid[state["order_id"]] = cid
            waiter = self._waiters.get(cid)
            if waiter is not None:
                waiter.set()
        if fill is not None:
            self._push(fill)
        if update is not None:
            self._push(update)

    def _price(self, ts: int, last: Any = None, mark: Any = None) -> None:
        if last is not None:
            self._last = co.to_ticks(self.rules, last) or self._last
        if mark is not None:
            self._mark = co.to_ticks(self.rules, mark) or self._mark
        if self._last is not None:
            self._push(PriceUpdate(ts, self._last, self._mark or self._last, self._margin_ratio))

    def _push(self, ev: ExchangeEvent) -> None:
        self._queue.append(ev)
        self._wake.set()

    def _stream_state(self, state: str, detail: str) -> None:
        if state == "restored" and self.safe_mode:
            log.warning("left safe mode: the stream is back")
            self.safe_mode = None
        self._push(StreamState(self.now_ms(), state, detail))

    async def _after_reconnect(self) -> None:
        """The worker reconciles at once on the "restored" state (missed fills, open orders).
        Funding is read at once too: a settlement announced while the stream was down would
        otherwise wait for the next poll (funding_every_s)."""
        self._funding_now = True

    async def _enter_safe_mode(self, reason: str) -> None:
        """Cancel the strategy's entries, keep its exits; nothing new is opened until the stream is back."""
        self.safe_mode = reason
        log.warning("safe mode: %s; cancelling entries, keeping exits", reason)
        fmt = quirk(self.venue, "client_id")
        for o in self.mirror.orders():
            d = clientid.decode(fmt, o.client_id)
            if d is None or d.intent is not Intent.ENTRY:
                continue
            try:
                await ccxt_rest.cancel_call(self, o.client_id)
            except Exception as exc:
                log.warning("safe mode: cancel of %s failed: %s", o.client_id, exc)
                continue
            self._push(OrderUpdate(self.now_ms(), o.client_id, o.order_id, CANCELLED, o.filled, "safe mode"))

    def renew_listen_key(self, why: str) -> None:
        """Binance: forget the listen key and re-dial, so the next private watch POSTs a new one."""
        for key in ("linear", "future"):
            opts = self.client.options.get(key)
            if isinstance(opts, dict):
                opts["listenKey"], opts["lastAuthenticatedTime"] = None, 0
        if self.keeper is not None:
            self.keeper.reconnect_now(why)

    async def _listen_key_loop(self) -> None:
        while True:
            await asyncio.sleep(self.timing.listen_key_every_s)
            try:
                await isolated(self.client.fapiPrivatePutListenKey)
            except Exception as exc:  # a refused keep-alive is not an authentication failure
                log.warning("listen key keep-alive refused (%s): renewing the key", str(exc)[:200])
                self.renew_listen_key("listen key keep-alive refused")

    async def _watchdog(self) -> None:
        """A socket that stays open but carries nothing (it may still answer pings) is re-dialled:
        the market streams tick every second, so silence means a dead stream."""
        while True:
            await asyncio.sleep(min(1.0, self.timing.stale_s / 3))
            keeper = self.keeper
            if keeper is None or keeper.reconnecting:
                self._last_raw = self.clock()
                continue
            if self.clock() - self._last_raw > self.timing.stale_s:
                self._last_raw = self.clock()
                keeper.reconnect_now(f"no stream data for {self.timing.stale_s:g} s")

    async def _margin_loop(self) -> None:
        while True:
            try:
                self._margin_ratio = await ccxt_rest.margin_ratio(self)
            except Exception as exc:
                log.info("margin ratio not read: %s", str(exc)[:200])
            await asyncio.sleep(self.timing.margin_every_s * self.poll_factor)

    async def read_funding(self) -> list:
        """Funding payments not yet reported (gridctl.exchange.ccxt_rest.funding_payments); also
        read once by a worker on its way out: a venue that announces no settlement (Backpack)
        is polled, and a payment just before a stop's close would otherwise never be booked."""
        async with self._funding_lock:
            return await ccxt_rest.funding_payments(self)

    async def _funding_loop(self) -> None:
        last = 0.0
        while True:
            await asyncio.sleep(1.0)
            due = self._funding_now or (self._next_funding is not None and self.now_ms() >= self._next_funding + 3000)
            if not due and self.clock() - last < self.timing.funding_every_s * self.poll_factor:
                continue
            last = self.clock()
            try:
                for p in await self.read_funding():
                    self._push(p)
            except Exception as exc:  # a due read is tried again in a second, not at the next poll
                log.info("funding history not read: %s", str(exc)[:200])
                continue
            if due:
                self._next_funding, self._funding_now = None, False

