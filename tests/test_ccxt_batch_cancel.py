"""A stop's cancels in the venue's batches (Binance DELETE /fapi/v1/batchOrders, 10 a request),
through ccxt's own binanceusdm class against the local venue: every order cancelled, one that
was already gone named as such, and a batch whose answer never came settled one by one."""

from __future__ import annotations

import pytest

from test_ccxt_adapter_faults import SOL, admin, buy, own_open, run
from venue_harness import SECRET, LocalVenue


@pytest.fixture
def venue():
    with LocalVenue(secret=SECRET) as v:
        v.price(SOL, "170.00")
        yield v


def counting(ex) -> list:
    """Count the batch requests ccxt sends (the endpoint still runs)."""
    calls: list = []
    real = ex.client.fapiPrivateDeleteBatchOrders

    async def wrapped(params, *a):
        calls.append(list(params["origClientOrderIdList"]))
        return await real(params, *a)
    ex.client.fapiPrivateDeleteBatchOrders = wrapped
    return calls


def test_twelve_cancels_go_in_two_requests_and_an_order_already_gone_is_named(venue):
    async def scenario(ex):
        calls = counting(ex)
        ids = [(await ex.place(buy(i, 16900 - i))).client_id for i in range(1, 13)]
        # gone before the stop asks (a fill would do the same): cancelled behind the adapter's back
        await ex.client.cancel_order(None, SOL, {"origClientOrderId": ids[4]})
        reasons = await ex.cancel_many(ids)
        return calls, reasons, ex.mirror.orders(), ids
    calls, reasons, mirror, ids = run(venue, scenario)
    assert [len(c) for c in calls] == [10, 2]
    assert reasons == {cid: ("order_not_found" if i == 4 else None) for i, cid in enumerate(ids)}
    assert mirror == [] and own_open(venue) == []


def test_a_batch_whose_answer_never_came_is_settled_one_cancel_at_a_time(venue):
    async def scenario(ex):
        ids = [(await ex.place(buy(i, 16900 - i))).client_id for i in range(1, 4)]
        await admin(venue, venue.faults, {"timeout": {"count": 1, "on": "cancel", "delay": 4}})
        return await ex.cancel_many(ids), ex.mirror.orders()
    reasons, mirror = run(venue, scenario)
    assert set(reasons.values()) == {None} and len(reasons) == 3
    assert mirror == [] and own_open(venue) == []
