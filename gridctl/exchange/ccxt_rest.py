"""The ccxt adapter's REST side, per venue: account set-up, lookups by client id (the
confirmation of unknown outcomes), trade and funding history, positions, balances.

Functions take the adapter (`ex`: a CcxtExchange) for its client, market, rules and
state; they raise the project's errors (classified once by the venue's code).
"""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from typing import Any, Optional

import ccxt

from gridctl.core.fills import FundingPayment, Fill
from gridctl.core.grid import Side
from gridctl.core.market import MarketRules
from gridctl.exchange import ccxt_orders as co
from gridctl.exchange.base import ExchangeError, ExchangeOrder, PositionReport, Rejected, UnknownOutcome
from gridctl.exchange.ccxt_errors import VENUE_CODES, classify
from gridctl.exchange.ccxt_streams import isolated
from gridctl.exchange.venues import quirk

log = logging.getLogger(__name__)
WEEK_MS = 7 * 86_400_000
PAGE = 1000
HISTORY_MS = 180 * 86_400_000


def live_rules(client: Any, market: dict, bundled: Optional[MarketRules]) -> MarketRules:
    """The market's rules as the venue publishes them now: tick, step and minimums from
    load_markets; fees, maintenance rate and max leverage from the bundled snapshot when
    there is one (ccxt's fees are defaults, not the account's)."""
    prec, limits = market.get("precision") or {}, market.get("limits") or {}

    def size(v: Any) -> Decimal:
        d = co.dec(v)
        if d is None:
            raise ExchangeError(f"market {market.get('symbol')}: no precision")
        return d if client.precisionMode == ccxt.TICK_SIZE else Decimal(1).scaleb(-int(d))

    tick, step = size(prec.get("price")), size(prec.get("amount"))
    min_qty = co.dec((limits.get("amount") or {}).get("min")) or step
    min_notional = co.dec((limits.get("cost") or {}).get("min")) or Decimal(0)
    lev = co.dec((limits.get("leverage") or {}).get("max"))
    b = bundled
    rules = MarketRules(
        symbol=market["symbol"], base=market["base"], quote=market.get("settle") or market["quote"],
        tick=tick, step=step, min_qty=min_qty, min_notional=min_notional,
        contract_size=co.dec(market.get("contractSize")) or Decimal(1),
        max_leverage=b.max_leverage if b else int(lev or 20),
        maintenance_margin_rate=b.maintenance_margin_rate if b else Decimal("0.005"),
        maker_fee=b.maker_fee if b else (co.dec(market.get("maker")) or Decimal("0.0002")),
        taker_fee=b.taker_fee if b else (co.dec(market.get("taker")) or Decimal("0.0005")),
        venue_id=market["id"])
    if b is not None and (b.tick, b.step, b.min_qty) != (rules.tick, rules.step, rules.min_qty):
        log.warning("%s: the venue's rules differ from the bundled snapshot (tick %s/%s, step %s/%s, min %s/%s): "
                    "trading by the venue's", market["symbol"], rules.tick, b.tick, rules.step, b.step,
                    rules.min_qty, b.min_qty)
    return rules


# -- pre-flight -------------------------------------------------------------------------------
async def setup_account(ex) -> None:
    """Position mode, margin mode and leverage: set where they differ, or a PreflightError
    naming what the venue refused."""
    from gridctl.exchange.ccxt_client import PreflightError

    c, venue, sym = ex.client, ex.venue, ex.symbol
    mode = quirk(venue, "position_mode")
    if mode is None:
        if ex.hedge:
            raise PreflightError(f"{venue} has no hedge position mode; use position_mode: one-way")
    else:
        hedged, where = co.position_mode_call(venue, ex.hedge, sym)
        current = None
        if c.has.get("fetchPositionMode"):
            current = (await ex._read(c.fetch_position_mode, sym)).get("hedged")
        if current is None or bool(current) != hedged:
            await _configure(ex, f"position mode {'hedge' if hedged else 'one-way'}",
                             c.set_position_mode, hedged, where)
    if c.has.get("setMarginMode") and venue != "okx":  # OKX: the margin mode travels with each order (tdMode)
        await _configure(ex, "cross margin", c.set_margin_mode, "cross", sym)
    if quirk(venue, "leverage") == "symbol" and c.has.get("setLeverage"):
        await _configure(ex, f"leverage {ex.leverage}x", c.set_leverage, ex.leverage, sym)
    elif quirk(venue, "leverage") == "account" and venue == "backpack":
        account = await ex._read(c.privateGetApiV1Account)
        limit = co.dec((account or {}).get("leverageLimit"))
        if limit is None or limit < ex.leverage:
            await _configure(ex, f"account leverage limit {ex.leverage}", c.privatePatchApiV1Account,
                             {"leverageLimit": str(ex.leverage)})


async def _configure(ex, what: str, fn, *args) -> None:
    from gridctl.exchange.ccxt_client import PreflightError

    try:
        await isolated(fn, *args)
    except Exception as exc:
        err = classify(exc, venue=ex.venue, client=ex.client)
        code = getattr(err, "venue_code", None)
        if code in (-4059, -4046, 110025, 110026, 110043):  # "no need to change": already so
            return
        if isinstance(err, Rejected) or type(err) is ExchangeError:
            raise PreflightError(f"{ex.venue} refused {what} for {ex.symbol}: {str(exc)[:200]} (set it on the "
                                 f"venue, or change the account's configuration to match)") from None
        raise err from None


async def free_balance(ex) -> Optional[Decimal]:
    """Margin available for new orders in the settle currency (None when the venue does not say)."""
    c = ex.client
    if ex.venue == "backpack":
        col = await ex._read(c.privateGetApiV1CapitalCollateral)
        return co.dec((col or {}).get("netEquityAvailable"))
    bal = await ex._read(c.fetch_balance)
    return co.dec((bal.get("free") or {}).get(ex.rules.quote))


async def margin_ratio(ex) -> Optional[Decimal]:
    """Maintenance margin / equity of the account (the engine's margin-ratio stops)."""
    c = ex.client
    if ex.venue == "binanceusdm":
        info = (await ex._read(c.fetch_balance)).get("info") or {}
        maint, equity = co.dec(info.get("totalMaintMargin")), co.dec(info.get("totalMarginBalance"))
        return maint / equity if maint is not None and equity else None
    if ex.venue == "backpack":
        col = await ex._read(c.privateGetApiV1CapitalCollateral) or {}
        mmf, mf = co.dec(col.get("mmf")), co.dec(col.get("marginFraction"))
        return mmf / mf if mmf is not None and mf else None
    return None


# -- orders by client id ------------------------------------------------------------------------
async def cancel_call(ex, cid: object) -> None:
    """One cancel by client id; raises the classified error (writes: timeouts are unknown)."""
    c = ex.client
    try:
        if ex.venue == "backpack":  # ccxt's cancel_order would sign orderId=None (live_ccxt.md §1.3)
            answer = await isolated(c.privateDeleteApiV1Order, {"symbol": ex.market["id"], "clientId": int(cid)})
            if not answer:
                raise UnknownOutcome(f"{ex.venue}: cancel answered with an empty body")
        else:
            await isolated(c.cancel_order, None, ex.symbol, co.lookup_params(ex.venue, cid))
    except ExchangeError:
        raise
    except Exception as exc:
        raise ex._noted(classify(exc, venue=ex.venue, client=c, writes=True)) from None


async def cancel_batch_call(ex, cids: list) -> dict[object, Optional[str]]:
    """Cancel up to one batch of orders by client id in one request: {cid: None (cancelled)
    or the reason the venue gave for that one (order_not_found: already gone)}. Raises the
    classified error of the request as a whole (a timeout is unknown for every order)."""
    endpoint, param, _ = quirk(ex.venue, "batch_cancel")
    c = ex.client
    try:
        answers = await isolated(getattr(c, endpoint), {"symbol": ex.market["id"],
                                                       param: [co.cid_wire(ex.venue, cid) for cid in cids]})
    except ExchangeError:
        raise
    except Exception as exc:
        raise ex._noted(classify(exc, venue=ex.venue, client=c, writes=True)) from None
    if not isinstance(answers, list) or len(answers) != len(cids):
        raise UnknownOutcome(f"{ex.venue}: batch cancel answered {str(answers)[:80]!r}")
    out: dict[object, Optional[str]] = {}
    for cid, a in zip(cids, answers):  # the venue answers in the order asked
        code = a.get("code") if isinstance(a, dict) and "orderId" not in a else None
        out[cid] = None if code is None else _reason_of(ex.venue, code)
    return out


def _reason_of(venue: str, code: object) -> str:
    kind = VENUE_CODES.get(venue, {}).get(int(code)) if str(code).lstrip("-").isdigit() else None
    return kind[1] if kind else f"code {code}"


async def lookup(ex, cid: object) -> Optional[ExchangeOrder]:
    """The order by client id from REST (None: the venue does not know it)."""
    c = ex.client
    try:
        if ex.venue == "backpack":
            raw = await isolated(c.privateGetApiV1Order, {"symbol": ex.market["id"], "clientId": int(cid)})
            if raw:
                return co.exchange_order(ex.venue, ex.rules, c.parse_order(raw, ex.market))
        else:
            o = await isolated(c.fetch_order, None, ex.symbol, co.lookup_params(ex.venue, cid))
            return co.exchange_order(ex.venue, ex.rules, o) if o and o.get("id") else None
    except Exception as exc:
        err = classify(exc, venue=ex.venue, client=c)
        if not (isinstance(err, Rejected) and err.reason == "order_not_found"):
            raise ex._noted(err) from None
    if ex.venue == "backpack":  # the by-clientId endpoint sees resting orders only: scan the history
        return await _backpack_history(ex, cid)
    return None


async def _backpack_history(ex, cid: object) -> Optional[ExchangeOrder]:
    c = ex.client
    rows = await ex._read(c.privateGetWapiV1HistoryOrders, {"symbol": ex.market["id"], "limit": 200})
    for raw in rows or []:
        if str(raw.get("clientId")) == str(cid):
            return co.exchange_order(ex.venue, ex.rules, c.parse_order(raw, ex.market))
    for t in await ex._read(c.fetch_my_trades, ex.symbol, ex.now_ms() - 3_600_000, PAGE):
        if str((t.get("info") or {}).get("clientId")) == str(cid):
            return ExchangeOrder(int(cid), str(t.get("order") or ""), Side(t["side"]),
                                 co.to_ticks(ex.rules, t.get("price")), co.to_steps(ex.rules, t.get("amount")),
                                 co.to_steps(ex.rules, t.get("amount")), False, "filled")
    return None


def _seen(ex, cid: object) -> Optional[ExchangeOrder]:
    st = ex._orders_seen.get(cid)
    if st is None:
        return None
    return ExchangeOrder(cid, st["order_id"], st["side"], st["price"], st["qty"], st["filled"], st["reduce_only"],
                         st["status"])


async def confirm_order(ex, cid: object) -> Optional[ExchangeOrder]:
    """Confirm an order of unknown outcome: the stream (waiting briefly), then REST by client
    id a few times (a lookup right after a timeout can race the venue), then None."""
    found = _seen(ex, cid)
    if found is not None:
        return found
    waiter = ex._waiters.setdefault(cid, asyncio.Event())
    try:
        await asyncio.wait_for(waiter.wait(), ex.timing.confirm_stream_s)
    except asyncio.TimeoutError:
        pass
    finally:
        ex._waiters.pop(cid, None)
    for attempt in range(ex.timing.confirm_tries):
        found = _seen(ex, cid) or await lookup(ex, cid)
        if found is not None:
            return found
        if attempt < ex.timing.confirm_tries - 1:
            await asyncio.sleep(ex.timing.confirm_retry_s)
    return _seen(ex, cid)


# -- history ----------------------------------------------------------------------------------------
async def trades_since(ex, since: int) -> list[Fill]:
    """Every trade of the account in the symbol at or after `since`, oldest first, as Fills."""
    out = [await _trade(ex, t) for t in await _my_trades(ex, since)]
    out.sort(key=lambda f: (f.ts, f.trade_id))
    return out


async def _my_trades(ex, since: int) -> list[dict]:
    """The venue's raw trade records of the account in the symbol at or after `since`."""
    c, out, seen = ex.client, [], set()
    params = {"sortDirection": "Asc"} if ex.venue == "backpack" else {}
    now = ex.now_ms()
    if ex.venue == "binanceusdm":  # userTrades keeps six months; each request covers at most 7 days
        since = max(since, now - HISTORY_MS)
    while True:
        batch = await ex._read(c.fetch_my_trades, ex.symbol, since, PAGE, params)
        new = [t for t in batch if str(t.get("id")) not in seen]
        seen.update(str(t.get("id")) for t in new)
        out.extend(new)
        if len(batch) >= PAGE and new:
            since = max(int(t.get("timestamp") or since) for t in batch)
        elif ex.venue == "binanceusdm" and now - since >= WEEK_MS:  # userTrades answers 7-day windows
            since += WEEK_MS
        else:
            break
    return out


async def _trade(ex, t: dict) -> Fill:
    info = t.get("info") or {}
    cid = co.client_id_of(ex.venue, info.get("clientId") or info.get("clientOrderId") or info.get("orderLinkId")
                          or info.get("clOrdId"))
    oid = str(t.get("order") or "")
    if cid is None:
        cid = ex._oid_cid.get(oid)
    if cid is None and oid:  # Binance's userTrades carry no client id: ask for the order once
        try:
            o = await ex._read(ex.client.fetch_order, oid, ex.symbol)
            cid = co.client_id_of(ex.venue, o.get("clientOrderId"))
        except ExchangeError as exc:
            log.info("order %s of a trade not found: %s", oid, exc)
        ex._oid_cid[oid] = cid
    kind = "liquidation" if "liquidat" in str(info.get("systemOrderType") or "").lower() else co.fill_kind(cid)
    return co.trade_fill(ex.venue, ex.rules, t, cid, kind)


async def orders_since(ex, since: int) -> list[ExchangeOrder]:
    """The strategy's own orders of the symbol the venue has on record from `since` on, in any
    status (Binance allOrders by start time, Backpack's order history page by page), with the
    open ones; for recovery to settle the stored order rows against the venue."""
    c, out = ex.client, {}
    if ex.venue == "backpack":
        offset = 0
        while True:
            batch = await ex._read(c.fetch_orders, ex.symbol, since, PAGE, {"offset": offset})
            for o in batch:
                eo = co.exchange_order(ex.venue, ex.rules, o)
                out[eo.client_id] = eo
            if len(batch) < PAGE:
                break
            offset += len(batch)
    else:
        start = max(since, ex.now_ms() - HISTORY_MS)
        while True:  # allOrders answers at most PAGE orders of a window of at most 7 days
            batch = await ex._read(c.fetch_orders, ex.symbol, start, PAGE, {})
            for o in batch:
                eo = co.exchange_order(ex.venue, ex.rules, o)
                out[eo.client_id] = eo
            newest = max((int(o.get("timestamp") or 0) for o in batch), default=start)
            if len(batch) >= PAGE and newest > start:
                start = newest
            elif ex.now_ms() - start >= WEEK_MS:
                start += WEEK_MS
            else:
                break
    for o in await ex._read(c.fetch_open_orders, ex.symbol):
        eo = co.exchange_order(ex.venue, ex.rules, o)
        out[eo.client_id] = eo
    return [o for o in out.values() if o.client_id is not None and ex.mirror.owns(o.client_id)]


async def missed_fills(ex) -> list[Fill]:
    """Trades since the last reconcile (a minute of overlap, never before the connect: older
    trades belong to recovery, e.g. the previous run's kept position) that the stream did not deliver."""
    since = max(ex._connected_ms, ex._trade_mark - 60_000)
    fills = [f for f in await trades_since(ex, since) if f.trade_id not in ex._fills_seen]
    late = [f for f in fills if f.ts < ex.now_ms() - 5000]  # younger ones may still be on their way
    if late:
        log.warning("%d fill(s) found in the trade history that the stream did not deliver", len(late))
    ex._trade_mark = max([ex._trade_mark] + [f.ts for f in fills])
    return fills


async def funding_payments(ex) -> list[FundingPayment]:
    """Funding settlements of the symbol since the adapter connected, not yet reported, each
    with the account's net position at its instant (`FundingPayment.position`)."""
    c = ex.client
    rows = await ex._read(c.fetch_funding_history, ex.symbol, ex._funding_since, 100)
    new = []
    for f in sorted(rows, key=lambda f: f.get("timestamp") or 0):
        ts = int(f.get("timestamp") or 0)
        info = f.get("info") or {}
        key = str(info.get("tranId") or f"{ts}:{f.get('amount')}")
        amount = co.dec(f.get("amount"))
        if ts >= ex._funding_since and key not in ex._funding_seen and amount is not None:
            new.append((ts, key, amount, info))
    if not new:
        return []
    held = await nets_at(ex, [n[0] for n in new])  # before any is marked seen: a failed read is retried
    out = []
    for ts, key, amount, info in new:
        ex._funding_seen.add(key)
        # Binance's income carries neither rate nor mark: the mark stream's, best effort
        rate = co.dec(info.get("fundingRate")) or ex._funding_rate
        out.append(FundingPayment(ts, rate if rate is not None else Decimal(0), ex._mark, held[ts], amount))
    return out


async def nets_at(ex, instants: list[int]) -> dict[int, int]:
    """The account's net position in the symbol (steps) at each instant: the venue's now, less
    the trades after it. A payment is read seconds (or, after a restart, hours) after its
    settlement, and the siblings' shares of it are split by the positions held at that instant."""
    net = sum(r.qty for r in await ex.positions())
    trades = await _my_trades(ex, min(instants) + 1)  # a trade in the settlement's millisecond counted before it
    moves = [(int(t.get("timestamp") or 0),
              co.to_steps(ex.rules, t.get("amount")) * (-1 if t.get("side") == "sell" else 1)) for t in trades]
    return {ts: net - sum(q for t, q in moves if t > ts) for ts in instants}


async def positions(ex) -> list[PositionReport]:
    """The venue's position in the symbol: one net report, or the two legs in hedge mode."""
    rows = await ex._read(ex.client.fetch_positions, [ex.symbol])
    legs: dict[Optional[str], list] = {}
    for p in rows:
        if p.get("symbol") != ex.symbol:
            continue
        info = p.get("info") or {}
        raw = info.get("positionAmt", info.get("netQuantity"))
        if raw is None:
            raw = (p.get("contracts") or 0) * (-1 if p.get("side") == "short" else 1)
        qty = co.to_steps(ex.rules, raw)
        leg = str(info.get("positionSide") or "").lower() or None
        leg = leg if leg in ("long", "short") else None
        entry = co.dec(info.get("entryPrice") or p.get("entryPrice")) or Decimal(0)
        have = legs.setdefault(leg, [0, Decimal(0)])
        have[0] += qty
        have[1] = entry if qty else have[1]
    if ex.hedge:
        return [PositionReport(leg, legs.get(leg, [0])[0], legs.get(leg, [0, Decimal(0)])[1])
                for leg in ("long", "short")]
    net = sum(v[0] for v in legs.values())
    entry = next((v[1] for v in legs.values() if v[0]), Decimal(0))
    return [PositionReport(None, net, entry)]
