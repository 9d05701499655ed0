"""Stop-market orders resting on the venue (the exchange-side safety stop), through ccxt.

Per venue (quirk "stop_order" in gridctl.exchange.venues): the create param that makes
ccxt send a trigger order (Binance `stopPrice` -> POST /fapi/v1/algoOrder STOP_MARKET;
Backpack `triggerPrice` -> triggerPrice + triggerQuantity), extra create params (the
trigger's price source), the params that address the trigger endpoints on lookups
(Binance `trigger: True`; Backpack lists triggers among its open orders), and the
status words of a trigger that is still resting.

Functions take the CcxtExchange (`ex`) like gridctl.exchange.ccxt_rest does:
place_stop, cancel_stop, open_stops. A stop's fill needs nothing here: the triggered
market order carries the stop's client id, so its trades arrive on the order stream
and in the trade history like any own close.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from gridctl.core.grid import Side
from gridctl.exchange import ccxt_orders as co
from gridctl.exchange.base import ExchangeError, Rejected, UnknownOutcome
from gridctl.exchange.ccxt_errors import classify
from gridctl.exchange.ccxt_streams import isolated
from gridctl.exchange.venues import quirk


@dataclass(frozen=True)
class StopOrder:
    """A resting stop-market order of the strategy, in ticks and steps."""

    client_id: object
    order_id: str
    side: Side
    qty: int
    trigger: int
    position_side: Optional[str] = None
    status: str = "open"


def supported(venue: str) -> bool:
    """Whether gridctl can keep a stop order on this venue."""
    return quirk(venue, "stop_order") is not None


def stop_call(venue: str, rules, cid: object, side: Side, qty: int, trigger: int, *, hedge: bool,
              position_side: Optional[str]) -> co.OrderCall:
    """The create_order call of a reduce-only stop-market order (hedge mode: the leg instead
    of reduceOnly where the venue refuses both, as for closes)."""
    spec = quirk(venue, "stop_order")
    params: dict[str, Any] = {"clientOrderId": co.cid_wire(venue, cid),
                              spec["trigger_param"]: float(rules.price(trigger)), **spec.get("params", {})}
    leg = quirk(venue, "hedge")
    if hedge and position_side is not None and leg is not None:
        name, long_value, short_value = leg
        params[name] = long_value if position_side == "long" else short_value
        if quirk(venue, "reduce_only_in_hedge"):
            params["reduceOnly"] = True
    else:
        params["reduceOnly"] = True
    return co.OrderCall(rules.symbol, "market", side.value, float(rules.qty(qty)), None, params)


def stop_of(venue: str, rules, o: dict) -> Optional[StopOrder]:
    """A ccxt order as a StopOrder (None when it has no trigger price: not a stop)."""
    trigger = co.to_ticks(rules, o.get("triggerPrice") or o.get("stopPrice"))
    if trigger is None:
        return None
    eo = co.exchange_order(venue, rules, o)
    info = o.get("info") or {}
    resting = quirk(venue, "stop_order").get("resting", ())
    raw = str(info.get("algoStatus") or info.get("status") or "")
    status = "open" if raw in resting else (eo.status if eo.status != "open" else "done")
    return StopOrder(eo.client_id, eo.order_id, eo.side, eo.qty, trigger, eo.position_side, status)


async def place_stop(ex, cid: object, side: Side, qty: int, trigger: int,
                     position_side: Optional[str] = None) -> StopOrder:
    """Rest one stop; Rejected("would_trigger") when the price is already through it;
    UnknownOutcome when the venue may have it (look it up with open_stops)."""
    call = stop_call(ex.venue, ex.rules, cid, side, qty, trigger, hedge=ex.hedge, position_side=position_side)
    try:
        o = await isolated(ex.client.create_order, call.symbol, call.type, call.side, call.amount, None, call.params)
    except Exception as exc:
        raise await ex._write_error(exc) from None
    if not o or not o.get("id"):
        raise UnknownOutcome(f"{ex.venue}: the venue answered the stop order without an id (empty response)")
    if str((o.get("info") or {}).get("status", "")) in ("TriggerFailed", "Expired"):
        raise Rejected(f"{ex.venue}: stop order refused ({o['info'].get('status')})", "stop_refused")
    return StopOrder(cid, str(o["id"]), side, qty, trigger, position_side)


async def cancel_stop(ex, cid: object) -> None:
    """Cancel one of the strategy's stops by client id; Rejected("order_not_found") when gone."""
    c = ex.client
    try:
        if ex.venue == "backpack":  # the implicit endpoint, as for plain cancels (ccxt_rest.cancel_call)
            answer = await isolated(c.privateDeleteApiV1Order, {"symbol": ex.market["id"], "clientId": int(cid)})
            if not answer:
                raise UnknownOutcome(f"{ex.venue}: cancel answered with an empty body")
        else:
            params = {**quirk(ex.venue, "stop_order").get("lookup", {}), **co.lookup_params(ex.venue, cid)}
            await isolated(c.cancel_order, None, ex.symbol, params)
    except ExchangeError:
        raise
    except Exception as exc:
        raise ex._noted(classify(exc, venue=ex.venue, client=c, writes=True)) from None
    ex.mirror.remove(cid)  # Backpack lists triggers among open orders: the mirror may hold it


async def open_stops(ex) -> list[StopOrder]:
    """The strategy's resting stop orders on the venue (by client id), oldest first."""
    params = quirk(ex.venue, "stop_order").get("lookup", {})
    rows = await ex._read(ex.client.fetch_open_orders, ex.symbol, None, None, dict(params))
    out = []
    for o in rows:
        s = stop_of(ex.venue, ex.rules, o)
        if s is not None and s.status == "open" and s.client_id is not None and ex.mirror.owns(s.client_id):
            out.append(s)
    return out
