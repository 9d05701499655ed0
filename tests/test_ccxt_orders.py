"""Requests per venue as ccxt puts them on the wire (its own create_order_request), the
venues' quirks (client id, post-only, reduceOnly, hedge legs, position mode, OKX batch
placement and no cancel-all), and the raw-event tee (scripted WebSocket messages)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import ccxt
import pytest

from gridctl.config.model import AccountConfig, Secret
from gridctl.core import clientid
from gridctl.core.fills import Fill, OrderUpdate, PriceUpdate
from gridctl.core.grid import Side
from gridctl.core.market import MarketRules
from gridctl.core.orders import Intent, OrderRequest
from gridctl.exchange import ccxt_orders as co
from gridctl.exchange.ccxt_adapter import CcxtExchange, make_client, point
from gridctl.exchange.ccxt_streams import tee_class
from gridctl.exchange.venues import quirk

@pytest.fixture(autouse=True)
def own_decimal_context():
    """ccxt's precision helpers change the current decimal context (ROUND_HALF_UP): keep that
    out of the rest of the test session."""
    import decimal

    with decimal.localcontext():
        yield


IDS = {"binanceusdm": "SOLUSDT", "bybit": "SOLUSDT", "okx": "SOL-USDT-SWAP", "backpack": "SOL_USDC_PERP"}


def rules(venue: str) -> MarketRules:
    q = "USDC" if venue == "backpack" else "USDT"
    return MarketRules(f"SOL/{q}:{q}", "SOL", q, Decimal("0.01"), Decimal("0.01"), Decimal("0.01"), Decimal(5),
                       venue_id=IDS[venue])


def client(venue: str):
    """ccxt's REST class with one SOL perp market set by hand (no network)."""
    ex = getattr(ccxt, venue)({"apiKey": "k", "secret": "s", "password": "p"})
    ex.set_markets([market(venue)])
    return ex


def market(venue: str) -> dict:
    r = rules(venue)
    return {
        "id": IDS[venue], "symbol": r.symbol, "base": "SOL", "quote": r.quote, "settle": r.quote, "baseId": "SOL",
        "quoteId": r.quote, "settleId": r.quote, "type": "swap", "spot": False, "margin": False, "swap": True,
        "future": False, "option": False, "active": True, "contract": True, "linear": True, "inverse": False,
        "contractSize": 1.0, "precision": {"amount": 0.01, "price": 0.01},
        "limits": {"amount": {"min": 0.01}, "price": {}, "cost": {}, "leverage": {}},
        "info": {"orderTypes": ["LIMIT", "MARKET"], "timeInForce": ["GTC", "IOC", "FOK", "GTX"]}}


def cid(venue: str, level: int, intent: Intent, gen: int = 1):
    return clientid.encode(quirk(venue, "client_id"), "abc123", level, intent, gen)


def wire(venue: str, r: OrderRequest, hedge: bool = False, market: int = 17000) -> dict:
    call = co.order_call(venue, rules(venue), r, hedge=hedge, market=market)
    return client(venue).create_order_request(call.symbol, call.type, call.side, call.amount, call.price, call.params)


VENUES = ["binanceusdm", "bybit", "okx", "backpack"]


@pytest.mark.parametrize("venue, cid_key, post_only", [
    ("binanceusdm", "newClientOrderId", ("timeInForce", "GTX")),
    ("bybit", "orderLinkId", ("timeInForce", "PostOnly")),
    ("okx", "clOrdId", ("ordType", "post_only")),
    ("backpack", "clientId", ("postOnly", True)),
])
def test_a_post_only_grid_entry_carries_the_venues_client_id_and_post_only_flag(venue, cid_key, post_only):
    c = cid(venue, 7, Intent.ENTRY)
    req = wire(venue, OrderRequest(c, Side.BUY, 50, 16950, post_only=True, level=7))
    assert req[cid_key] == c and quirk(venue, "client_id_param") == cid_key
    assert req[post_only[0]] == post_only[1]
    assert not req.get("reduceOnly")
    assert str(req.get("price", req.get("px"))) == "169.5"


def test_client_id_forms_fit_each_venue():
    assert cid("binanceusdm", 7, Intent.ENTRY) == "gx-abc123-007e1"  # [a-z0-9-], <= 36
    assert cid("okx", 7, Intent.ENTRY) == "gxabc123007e1"  # alphanumeric, <= 32 (OKX 51000 otherwise)
    assert isinstance(cid("backpack", 7, Intent.ENTRY), int) and cid("backpack", 7, Intent.ENTRY) < 2 ** 32


@pytest.mark.parametrize("venue", VENUES)
def test_a_one_way_exit_is_reduce_only(venue):
    req = wire(venue, OrderRequest(cid(venue, 3, Intent.EXIT), Side.SELL, 50, 17100, reduce_only=True,
                                   post_only=True, level=3, intent=Intent.EXIT))
    assert req["reduceOnly"] in (True, "true")


@pytest.mark.parametrize("venue, leg, reduce_only", [
    ("binanceusdm", ("positionSide", "LONG"), False),  # -1106 when reduceOnly travels with positionSide
    ("bybit", ("positionIdx", 1), True),
    ("okx", ("posSide", "long"), False),  # reduceOnly does not apply in long_short_mode
])
def test_a_hedge_exit_names_its_leg_the_venues_way(venue, leg, reduce_only):
    req = wire(venue, OrderRequest(cid(venue, 3, Intent.EXIT), Side.SELL, 50, 17100, reduce_only=True,
                                   post_only=True, position_side="long", level=3, intent=Intent.EXIT), hedge=True)
    assert req[leg[0]] == leg[1]
    assert bool(req.get("reduceOnly")) is reduce_only


def test_backpack_has_no_hedge_leg_to_name():
    assert quirk("backpack", "hedge") is None and quirk("backpack", "position_mode") is None


@pytest.mark.parametrize("venue", VENUES)
def test_a_close_is_a_reduce_only_market_order(venue):
    call = co.order_call(venue, rules(venue), OrderRequest(cid(venue, 0, Intent.CLOSE), Side.SELL, 80, None,
                                                           reduce_only=True, intent=Intent.CLOSE),
                         hedge=False, market=17000)
    assert call.type == "market" and call.price is None and call.params["reduceOnly"] is True and not call.bounded


@pytest.mark.parametrize("venue, tif", [("binanceusdm", ("timeInForce", "IOC")), ("bybit", ("timeInForce", "IOC")),
                                        ("backpack", ("timeInForce", "IOC"))])
def test_an_opening_market_order_is_an_ioc_limit_at_the_slippage_bound(venue, tif):
    r = OrderRequest(cid(venue, 2, Intent.ENTRY), Side.BUY, 50, None, level=2)
    call = co.order_call(venue, rules(venue), r, hedge=False, market=17000, max_slippage_pct=Decimal("0.5"))
    assert call.bounded and call.type == "limit" and call.price == 170.85
    req = wire(venue, r)
    assert req[tif[0]] == tif[1]
    sell = co.order_call(venue, rules(venue), OrderRequest(r.client_id, Side.SELL, 50, None, level=2), hedge=False,
                         market=17003, max_slippage_pct=Decimal("0.5"))
    assert sell.price == 169.18  # 170.03 * 0.995 = 169.17985, rounded up: never beyond the bound


def test_lookup_by_client_id_uses_the_param_each_venue_needs():
    assert co.lookup_params("binanceusdm", "gx-a") == {"clientOrderId": "gx-a"}
    assert co.lookup_params("bybit", "gx-a") == {"orderLinkId": "gx-a"}  # clientOrderId is sent verbatim by ccxt
    assert co.lookup_params("okx", "gxa") == {"clOrdId": "gxa"}
    with pytest.raises(ValueError):  # Backpack: the implicit endpoint, ccxt would sign orderId=None
        co.lookup_params("backpack", 5)


def test_position_mode_is_set_per_symbol_on_bybit_and_per_account_elsewhere():
    assert co.position_mode_call("bybit", True, "SOL/USDT:USDT") == (True, "SOL/USDT:USDT")
    assert co.position_mode_call("okx", True, "SOL/USDT:USDT") == (True, None)
    assert co.position_mode_call("binanceusdm", False, "SOL/USDT:USDT") == (False, None)


def test_position_mode_reaches_each_venue_with_its_own_parameters():
    sent = {}

    def capture(name):
        def call(params, *a, **k):
            sent[name] = params
            return {"retCode": 0, "result": {}, "code": "0", "data": [{}]}
        return call

    by, ok = client("bybit"), client("okx")
    by.privatePostV5PositionSwitchMode = capture("bybit")
    ok.privatePostAccountSetPositionMode = capture("okx")
    hedged, where = co.position_mode_call("bybit", True, "SOL/USDT:USDT")
    by.set_position_mode(hedged, where)
    hedged, where = co.position_mode_call("okx", False, "SOL/USDT:USDT")
    ok.set_position_mode(hedged, where)
    assert sent["bybit"]["mode"] == 3 and sent["bybit"]["symbol"] == "SOLUSDT"
    assert sent["okx"] == {"posMode": "net_mode"}


def test_okx_places_through_the_batch_endpoint_and_has_no_cancel_all():
    acc = AccountConfig("o", "okx", api_key=Secret("k"), secret=Secret("s"), password=Secret("p"))
    assert make_client(acc, _timing()).options["createOrder"] == "privatePostTradeBatchOrders"
    assert quirk("okx", "batch_create") is True and quirk("okx", "cancel_all") is False
    ex = client("okx")
    ex.options["createOrder"] = "privatePostTradeBatchOrders"
    calls = []

    def batch(request, *a, **k):
        calls.append(request)
        return {"code": "0", "data": [{"ordId": "1", "clOrdId": request[0]["clOrdId"], "sCode": "0"}]}
    ex.privatePostTradeBatchOrders = batch
    c = cid("okx", 4, Intent.ENTRY)
    call = co.order_call("okx", rules("okx"), OrderRequest(c, Side.BUY, 50, 16950, post_only=True, level=4),
                         hedge=False)
    ex.create_order(call.symbol, call.type, call.side, call.amount, call.price, call.params)
    assert len(calls) == 1 and isinstance(calls[0], list) and calls[0][0]["clOrdId"] == c


def _timing():
    from gridctl.exchange.ccxt_adapter import Timing
    return Timing()


def test_endpoint_rewrites_every_rest_and_ws_url_keeping_paths():
    acc = AccountConfig("m", "binanceusdm", api_key=Secret("k"), secret=Secret("s"), endpoint="http://127.0.0.1:5")
    ex = make_client(acc, _timing())
    api = ex.urls["api"]
    assert api["fapiPrivate"] == "http://127.0.0.1:5/fapi/v1" and api["fapiPublicV3"].startswith("http://127.0.0.1:5/")
    assert api["ws"]["linear"] == "ws://127.0.0.1:5/ws"
    flat = []

    def walk(n):
        if isinstance(n, dict):
            for v in n.values():
                walk(v)
        elif isinstance(n, str):
            flat.append(n)
    walk(api)
    assert all(u.startswith(("http://127.0.0.1:5", "ws://127.0.0.1:5")) for u in flat if "://" in u)
    bp = make_client(AccountConfig("b", "backpack", endpoint="http://127.0.0.1:6"), _timing())
    assert bp.urls["api"]["ws"] == {"public": "ws://127.0.0.1:6", "private": "ws://127.0.0.1:6"}
    okx = getattr(ccxt, "okx")()
    point(okx, "http://127.0.0.1:7")
    assert okx.urls["api"]["rest"] == "http://127.0.0.1:7"


# -- the raw-event tee -------------------------------------------------------------------------
class FakeClient:
    url = "ws://127.0.0.1/private/ws?listenKey=x"
    subscriptions: dict = {}
    futures: dict = {}

    def resolve(self, *a):
        pass


def binance_trade(t: int, qty: str, z: str, status: str, fee: str) -> dict:
    return {"e": "ORDER_TRADE_UPDATE", "E": 1000 + t, "T": 1000 + t, "o": {
        "s": "SOLUSDT", "c": "gx-abc123-007e1", "S": "BUY", "o": "LIMIT", "f": "GTX", "q": "1.00", "p": "169.50",
        "ap": "169.50", "x": "TRADE", "X": status, "i": 42, "l": qty, "z": z, "L": "169.50", "n": fee, "N": "USDT",
        "T": 1000 + t, "t": t, "m": True, "R": False, "ps": "BOTH", "rp": "0"}}


def adapter(venue: str) -> CcxtExchange:
    r = rules(venue)
    acc = AccountConfig("m", venue, api_key=Secret("k"), secret=Secret("c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI="))
    ex = CcxtExchange(acc, r.symbol, r)
    ex.client.set_markets([market(venue)])  # what load_markets leaves (ccxt's own parsers run too)
    ex.market = ex.client.market(r.symbol)
    return ex


def test_the_tee_sees_every_raw_message_before_ccxt():
    got = []
    ex = tee_class("binanceusdm")({"apiKey": "k", "secret": "s"})
    ex.raw_sink = lambda url, m: got.append((url, m))
    ex.handle_message(FakeClient(), {"e": "listenKeyExpired", "E": 1})
    assert got == [(FakeClient.url, {"e": "listenKeyExpired", "E": 1})]


def test_a_burst_of_two_binance_trades_of_one_order_gives_two_fills():
    async def main():
        ex = adapter("binanceusdm")
        ex.client.handle_message(FakeClient(), binance_trade(501, "0.40", "0.40", "PARTIALLY_FILLED", "0.0135"))
        ex.client.handle_message(FakeClient(), binance_trade(502, "0.60", "1.00", "FILLED", "0.0203"))
        ex.client.handle_message(FakeClient(), binance_trade(502, "0.60", "1.00", "FILLED", "0.0203"))  # a replay
        return await ex.events()
    evs = asyncio.run(main())
    fills = [e for e in evs if isinstance(e, Fill)]
    assert [(f.trade_id, f.qty, f.fee, f.price, f.maker) for f in fills] == [
        ("501", 40, Decimal("0.0135"), 16950, True), ("502", 60, Decimal("0.0203"), 16950, True)]
    assert not [e for e in evs if isinstance(e, OrderUpdate)]  # filled: no "left the book" update


def test_two_backpack_order_fills_in_a_burst_are_both_kept():
    c = cid("backpack", 7, Intent.ENTRY)

    def fill(t: int, l: str, z: str) -> dict:
        return {"stream": "account.orderUpdate.SOL_USDC_PERP", "data": {
            "e": "orderFill", "E": 1_700_000_000_000_000 + t, "s": "SOL_USDC_PERP", "c": c, "S": "Bid", "o": "Limit",
            "f": "GTC", "q": "1", "p": "169.5", "X": "PartiallyFilled", "i": "111", "l": l, "z": z, "L": "169.5",
            "t": t, "m": True, "n": "0.01", "N": "USDC", "T": 1_700_000_000_000_000 + t}}

    async def main():
        ex = adapter("backpack")
        ex.client.handle_message(FakeClient(), fill(9001, "0.4", "0.4"))
        ex.client.handle_message(FakeClient(), fill(9002, "0.6", "1"))
        ex.client.handle_message(FakeClient(), {"stream": "ticker.SOL_USDC_PERP", "data": {
            "e": "ticker", "s": "SOL_USDC_PERP", "c": "169.4", "E": 1_700_000_000_500_000}})
        return await ex.events()
    evs = asyncio.run(main())
    fills = [e for e in evs if isinstance(e, Fill)]
    assert [(f.client_id, f.trade_id, f.qty, f.ts) for f in fills] == [
        (c, "9001", 40, 1_700_000_000_009), (c, "9002", 60, 1_700_000_000_009)]  # µs -> ms
    assert [e.last for e in evs if isinstance(e, PriceUpdate)] == [16940]


def test_a_venue_expiry_and_a_liquidation_are_told_apart():
    fill, update, _ = co.binance_order_event(rules("binanceusdm"), {**binance_trade(1, "0", "0", "EXPIRED", "0"),
                                                                    "o": {**binance_trade(1, "0", "0", "EXPIRED", "0")["o"],
                                                                          "x": "EXPIRED"}})
    assert fill is None and update.status == "expired"
    liq = binance_trade(3, "1.00", "1.00", "FILLED", "0.1")
    liq["o"]["c"] = "autoclose-123"
    fill, _, _ = co.binance_order_event(rules("binanceusdm"), liq)
    assert fill.kind == "liquidation"


def test_other_venues_book_fills_from_ccxts_parsed_trade_stream():
    c = cid("bybit", 5, Intent.EXIT)

    async def main():
        ex = adapter("bybit")
        ex._on_trades([{"id": "e-1", "order": "o-9", "side": "sell", "price": 170.5, "amount": 0.4,
                        "timestamp": 1_700_000_000_123, "takerOrMaker": "maker",
                        "fee": {"cost": 0.0136, "currency": "USDT"}, "info": {"orderLinkId": c}}])
        ex._on_orders([{"id": "o-8", "clientOrderId": cid("bybit", 6, Intent.ENTRY), "side": "buy", "price": 169.0,
                        "amount": 0.4, "filled": 0.0, "status": "canceled", "timestamp": 1_700_000_000_200,
                        "info": {}}])
        return await ex.events()
    evs = asyncio.run(main())
    fill, update = evs
    assert (fill.client_id, fill.trade_id, fill.qty, fill.price, fill.fee, fill.maker) == (
        c, "e-1", 40, 17050, Decimal("0.0136"), True)
    assert (update.client_id, update.status) == (cid("bybit", 6, Intent.ENTRY), "cancelled")
