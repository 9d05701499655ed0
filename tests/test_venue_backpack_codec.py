"""The Backpack codec and signature checks, against ccxt's own signing and parsers (no network)."""

from __future__ import annotations

import base64
import json
from decimal import Decimal

import ccxt
import pytest
from nacl.signing import SigningKey

from gridctl.venue import backpack_auth as auth
from gridctl.venue import backpack_codec as codec
from gridctl.venue import backpack_events as events
from gridctl.venue.backpack_auth import AuthFailure, Credentials

NOW = 1_764_633_600_000  # 2025-12-02T00:00:00Z


def keypair() -> tuple[str, str]:
    sk = SigningKey.generate()
    return (base64.b64encode(bytes(sk.verify_key)).decode(), base64.b64encode(bytes(sk)).decode())


def ccxt_client(api_key: str, secret: str) -> ccxt.backpack:
    ex = ccxt.backpack({"apiKey": api_key, "secret": secret})
    ex.options["timeDifference"] = 0
    ex.milliseconds = lambda: NOW  # the signed timestamp, fixed
    return ex


def signed_by_ccxt(ex: ccxt.backpack, path: str, method: str, params: dict):
    """What ccxt sends: (params the server parses, Credentials from its headers)."""
    req = ex.sign(path, ["private"], method, params)
    h = req["headers"]
    creds = Credentials(h["X-API-Key"], h["X-Signature"], h["X-Timestamp"], h["X-Window"])
    if method == "GET":
        from urllib.parse import parse_qsl, urlsplit
        parsed = dict(parse_qsl(urlsplit(req["url"]).query, keep_blank_values=True))
    else:
        parsed = json.loads(req["body"])
    return parsed, creds


@pytest.mark.parametrize("path,method,params", [
    ("api/v1/order", "POST", {"symbol": "BTC_USDC_PERP", "side": "Bid", "orderType": "Limit",
                              "quantity": "0.001", "price": "50000", "postOnly": True,
                              "clientId": 4294967295}),
    ("api/v1/order", "DELETE", {"symbol": "SOL_USDC_PERP", "clientId": 77}),
    ("wapi/v1/history/fills", "GET", {"symbol": "SOL_USDC_PERP", "fillType": "User",
                                      "from": 1764633000000, "limit": 100, "offset": 200}),
    ("api/v1/position", "GET", {}),
    ("api/v1/account", "PATCH", {"leverageLimit": "5"}),
])
def test_ccxt_signatures_verify(path, method, params):
    key, secret = keypair()
    parsed, creds = signed_by_ccxt(ccxt_client(key, secret), path, method, params)
    instruction = auth.INSTRUCTIONS[(method, "/" + path)]
    assert auth.verify(instruction, parsed, creds, NOW + 100) == key


def test_signature_over_other_params_is_refused():
    key, secret = keypair()
    parsed, creds = signed_by_ccxt(ccxt_client(key, secret), "api/v1/order", "POST",
                                   {"symbol": "BTC_USDC_PERP", "side": "Bid", "orderType": "Market",
                                    "quantity": "0.001"})
    parsed["quantity"] = "1"  # tampered in flight
    with pytest.raises(AuthFailure) as e:
        auth.verify("orderExecute", parsed, creds, NOW)
    assert (e.value.status, e.value.code) == (401, "INVALID_SIGNATURE")


def test_signature_by_another_key_is_refused():
    key, _ = keypair()
    _, other_secret = keypair()
    ex = ccxt_client(key, other_secret)  # claims `key`, signs with another seed
    parsed, creds = signed_by_ccxt(ex, "api/v1/position", "GET", {})
    with pytest.raises(AuthFailure) as e:
        auth.verify("positionQuery", parsed, creds, NOW)
    assert e.value.code == "INVALID_SIGNATURE"


def test_wrong_instruction_is_refused():
    key, secret = keypair()
    parsed, creds = signed_by_ccxt(ccxt_client(key, secret), "api/v1/position", "GET", {})
    with pytest.raises(AuthFailure):
        auth.verify("balanceQuery", parsed, creds, NOW)


@pytest.mark.parametrize("now", [NOW + 5001, NOW - 5001])
def test_expired_window_is_refused(now):
    key, secret = keypair()
    parsed, creds = signed_by_ccxt(ccxt_client(key, secret), "api/v1/position", "GET", {})
    with pytest.raises(AuthFailure) as e:
        auth.verify("positionQuery", parsed, creds, now)
    assert (e.value.status, e.value.message) == (401, "Request has expired")


def test_window_within_limit_is_accepted_at_its_edge():
    key, secret = keypair()
    parsed, creds = signed_by_ccxt(ccxt_client(key, secret), "api/v1/position", "GET", {})
    assert auth.verify("positionQuery", parsed, creds, NOW + 5000) == key


def test_window_above_60s_is_refused():
    creds = Credentials("x", "y", str(NOW), "60001")
    with pytest.raises(AuthFailure) as e:
        auth.check_window(creds, NOW)
    assert e.value.code == "INVALID_CLIENT_REQUEST"


@pytest.mark.parametrize("api_key", ["not base64!", base64.b64encode(b"short").decode(), ""])
def test_api_key_that_is_no_verify_key_is_refused(api_key):
    with pytest.raises(AuthFailure) as e:
        auth.verify("positionQuery", {}, Credentials(api_key, "c2ln", str(NOW), "5000"), NOW)
    assert e.value.status == 401


def test_ws_subscribe_signature_from_ccxt_pro_form():
    sk = SigningKey.generate()
    key = base64.b64encode(bytes(sk.verify_key)).decode()
    text = f"instruction=subscribe&timestamp={NOW}&window=5000"
    sig = base64.b64encode(sk.sign(text.encode()).signature).decode()
    assert auth.verify("subscribe", {}, Credentials(key, sig, str(NOW), "5000"), NOW) == key


@pytest.mark.parametrize("value,want", [(0, 0), (4294967295, 4294967295), ("123", 123), (None, None)])
def test_client_id_u32_accepted(value, want):
    assert auth.client_id(value) == want


@pytest.mark.parametrize("value", [-1, 2**32, "gx-abc", 1.5, True, "-3"])
def test_client_id_outside_u32_refused(value):
    with pytest.raises(AuthFailure) as e:
        auth.client_id(value)
    assert (e.value.status, e.value.code) == (400, "INVALID_CLIENT_REQUEST")


# -- shapes, read back by ccxt's own parsers --------------------------------------------------------
BTC = codec.MarketView("BTC_USDC_PERP", "BTC", "USDC", Decimal("0.1"), Decimal("0.00001"),
                       Decimal("0.00001"), {"type": "sqrt", "base": "0.01333333", "factor": "0.00002494"})


def test_market_parses_as_a_linear_swap_with_the_rules():
    m = ccxt.backpack().parse_market(codec.market_json(BTC))
    assert m["symbol"] == "BTC/USDC:USDC" and m["swap"] and m["linear"] and m["active"]
    assert m["precision"] == {"amount": 0.00001, "price": 0.1}
    assert m["limits"]["amount"]["min"] == 0.00001


def order(**kw) -> codec.OrderView:
    base = dict(order_id="111", client_id=4000000000, symbol="BTC_USDC_PERP", side=codec.BID,
                order_type="Limit", quantity=Decimal("0.00100"), price=Decimal("50000.0"),
                executed_qty=Decimal(0), executed_quote=Decimal(0), status=codec.NEW,
                created_ms=NOW, post_only=True)
    base.update(kw)
    return codec.OrderView(**base)


def test_open_order_parses_with_client_id_and_ms_time():
    o = ccxt.backpack().parse_order(codec.order_json(order()))
    assert (o["id"], o["clientOrderId"], o["status"], o["side"]) == ("111", "4000000000", "open", "buy")
    assert (o["price"], o["amount"], o["postOnly"], o["timestamp"]) == (50000.0, 0.001, True, NOW)


def test_history_order_uses_naive_iso_time_and_expiry_reason():
    d = codec.order_json(order(status=codec.EXPIRED, expiry_reason=codec.POST_ONLY_TAKER), history=True)
    assert d["createdAt"] == "2025-12-02T00:00:00.000" and d["expiryReason"] == "PostOnlyTaker"
    o = ccxt.backpack().parse_order(d)
    assert (o["status"], o["timestamp"]) == ("canceled", NOW)


def test_market_order_has_no_price():
    d = codec.order_json(order(order_type="Market", price=None, status=codec.FILLED,
                               executed_qty=Decimal("0.001"), executed_quote=Decimal("50.0001")))
    assert "price" not in d and d["quoteQuantity"] == "50.0001" and d["status"] == "Filled"


def test_fill_parses_with_string_client_id_and_fee():
    f = codec.FillView(42, "111", 7, "SOL_USDC_PERP", codec.ASK, Decimal("150.25"), Decimal("0.10"),
                       Decimal("0.00300500"), "USDC", True, NOW + 1)
    t = ccxt.backpack().parse_trade(codec.fill_json(f))
    assert (t["id"], t["order"], t["side"], t["takerOrMaker"]) == ("42", "111", "sell", "maker")
    assert (t["price"], t["amount"], t["fee"]["cost"], t["timestamp"]) == (150.25, 0.1, 0.003005, NOW + 1)
    assert t["info"]["clientId"] == "7"


def test_position_parses_signed_quantity():
    p = codec.PositionView("SOL_USDC_PERP", "9", Decimal("-1.50"), Decimal("150"), Decimal("151"),
                           Decimal("0"), Decimal("0"), Decimal("-1.5"), Decimal("0"),
                           Decimal("0.02"), Decimal("0.0125"))
    row = codec.position_json(p, "1")
    assert row["netQuantity"] == "-1.5" and row["netExposureQuantity"] == "1.5"
    assert ccxt.backpack().parse_position(row)["side"] == "short"


def test_funding_row_parses_to_amount_and_rate():
    row = codec.funding_json("SOL_USDC_PERP", Decimal("0.0000125"), Decimal("-0.0028"), NOW, "1")
    assert row["intervalEndTimestamp"] == "2025-12-02T00:00:00"
    parsed = ccxt.backpack().parse_income(row)
    assert (parsed["amount"], parsed["rate"], parsed["timestamp"]) == (-0.0028, 0.0000125, NOW)


def test_fill_event_carries_last_and_cumulative_quantities_in_microseconds():
    o = order(status=codec.PARTIALLY_FILLED, executed_qty=Decimal("0.0006"),
              executed_quote=Decimal("30"))
    f = codec.FillView(5, "111", 4000000000, "BTC_USDC_PERP", codec.BID, Decimal("50000"),
                       Decimal("0.0004"), Decimal("0.004"), "USDC", True, NOW)
    ev = events.order_event("orderFill", o, NOW * 1000, f, Decimal("0.1"), Decimal("0.00001"))
    assert (ev["l"], ev["z"], ev["L"], ev["p"]) == ("0.00040", "0.00060", "50000.0", "50000.0")
    assert ev["E"] == NOW * 1000 and ev["c"] == 4000000000 and ev["t"] == 5 and ev["m"] is True
    assert "R" not in ev


def test_expired_event_names_the_reason_and_no_client_id_when_unset():
    ev = events.order_event("orderExpired", order(client_id=None, status=codec.EXPIRED,
                                                 expiry_reason=codec.POST_ONLY_TAKER), NOW * 1000)
    assert ev["R"] == "PostOnlyTaker" and "c" not in ev and ev["X"] == "Expired"


@pytest.mark.parametrize("before,after,kind", [
    (0, 1, "positionOpened"), (1, 2, "positionAdjusted"), (2, 0, "positionClosed"),
    (1, -1, "positionAdjusted")])
def test_position_event_kind(before, after, kind):
    assert events.position_event_kind(Decimal(before), Decimal(after)) == kind


def test_rejects_map_to_backpack_codes_ccxt_classifies():
    ex = ccxt.backpack()
    for reason, cls in [("insufficient_margin", ccxt.InsufficientFunds),
                        ("unknown_order", ccxt.ExchangeNotAvailable),
                        ("reduce_only_rejected", ccxt.InvalidOrder),
                        ("qty_below_min", ccxt.BadRequest)]:
        status, body = codec.reject_error(reason)
        text = json.dumps(body)
        with pytest.raises(cls):
            ex.handle_errors(status, "", "http://127.0.0.1/api/v1/order", "POST", {}, text, body, {}, "")
    assert codec.reject_error("unknown_order")[0] == 404


def test_error_frame_shape():
    assert events.error_frame(4006, "Invalid signature") == {
        "id": None, "error": {"code": 4006, "message": "Invalid signature"}}


def test_decimals_are_plain_and_trimmed():
    assert [codec.dec(Decimal(x)) for x in ("50000.0", "0.00100", "1E+2", "0.000")] == [
        "50000", "0.001", "100", "0"]


# -- wire helpers ------------------------------------------------------------------------------------
from gridctl.venue import backpack_wire as wire  # noqa: E402


def subscribe_text(streams, sk=None, ts=NOW, window="5000", sign_text=None) -> str:
    msg = {"method": "SUBSCRIBE", "params": streams}
    if sk is not None:
        text = sign_text or f"instruction=subscribe&timestamp={ts}&window={window}"
        sig = base64.b64encode(sk.sign(text.encode()).signature).decode()
        msg["signature"] = [base64.b64encode(bytes(sk.verify_key)).decode(), sig, str(ts), window]
    return json.dumps(msg)


def test_public_subscribe_needs_no_signature():
    sub = wire.parse_subscribe(subscribe_text(["ticker.SOL_USDC_PERP"]))
    assert wire.check_subscribe(sub, NOW) is None and not sub.private


def test_private_subscribe_is_verified_and_names_the_key():
    sk = SigningKey.generate()
    sub = wire.parse_subscribe(subscribe_text(["account.orderUpdate.SOL_USDC_PERP"], sk))
    assert wire.check_subscribe(sub, NOW + 10) == base64.b64encode(bytes(sk.verify_key)).decode()


@pytest.mark.parametrize("kw,now,msg", [
    ({}, NOW + 6000, "Request has expired"),
    ({"sign_text": "instruction=orderQuery&timestamp=%d&window=5000" % NOW}, NOW,
     "Invalid signature, could not verify signature"),
])
def test_private_subscribe_refused(kw, now, msg):
    sub = wire.parse_subscribe(subscribe_text(["account.orderUpdate"], SigningKey.generate(), **kw))
    with pytest.raises(ValueError, match=msg):
        wire.check_subscribe(sub, now)


def test_private_subscribe_without_signature_refused():
    sub = wire.parse_subscribe(subscribe_text(["account.positionUpdate.BTC_USDC_PERP"]))
    with pytest.raises(ValueError, match="Signature required"):
        wire.check_subscribe(sub, NOW)


@pytest.mark.parametrize("text", ["nope", '{"method":"PING"}', '{"method":"SUBSCRIBE","params":[]}'])
def test_bad_ws_messages(text):
    with pytest.raises(ValueError):
        wire.parse_subscribe(text)


@pytest.mark.parametrize("stream,symbol,known", [
    ("account.orderUpdate.SOL_USDC_PERP", "SOL_USDC_PERP", True), ("account.orderUpdate", None, True),
    ("ticker.BTC_USDC_PERP", "BTC_USDC_PERP", True), ("markPrice.BTC_USDC_PERP", "BTC_USDC_PERP", True),
    ("kline.1m.BTC_USDC_PERP", None, False), ("account.secrets", None, False)])
def test_stream_names(stream, symbol, known):
    assert wire.stream_symbol(stream) == symbol and wire.known_stream(stream) is known


def test_page_defaults_to_newest_first_and_offsets():
    rows = list(range(10))
    assert wire.page(rows, {"limit": "3"}) == [9, 8, 7]
    assert wire.page(rows, {"limit": "3", "offset": "3"}) == [6, 5, 4]
    assert wire.page(rows, {"limit": 2, "sortDirection": "Asc", "offset": 1}) == [1, 2]
    with pytest.raises(wire.BackpackError):
        wire.page(rows, {"limit": "-1"})


def test_cancel_needs_exactly_one_reference():
    assert wire.one_order_ref({"orderId": "5"}) == ("5", None)
    assert wire.one_order_ref({"clientId": 9}) == (None, 9)
    for bad in ({}, {"orderId": "5", "clientId": 9}):
        with pytest.raises(wire.BackpackError) as e:
            wire.one_order_ref(bad)
        assert e.value.status == 400


def test_ccxt_batch_signature_verifies_and_a_reordered_batch_does_not():
    key, secret = keypair()
    ex = ccxt_client(key, secret)
    orders = [{"symbol": "SOL_USDC_PERP", "side": "Bid", "orderType": "Limit", "quantity": "1",
               "price": "165", "clientId": 1},
              {"symbol": "SOL_USDC_PERP", "side": "Ask", "orderType": "Limit", "quantity": "1",
               "price": "175", "postOnly": True}]
    req = ex.sign("api/v1/orders", ["private"], "POST", orders)
    h = req["headers"]
    creds = Credentials(h["X-API-Key"], h["X-Signature"], h["X-Timestamp"], h["X-Window"])
    body = json.loads(req["body"])
    assert auth.verify("orderExecute", body, creds, NOW) == key
    with pytest.raises(AuthFailure):
        auth.verify("orderExecute", list(reversed(body)), creds, NOW)
