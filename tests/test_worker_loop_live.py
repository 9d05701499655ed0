"""The worker loop's handling of what a live venue reports (the ccxt adapter's cases), on the
paper exchange: insufficient margin holds the round's other entries, safe mode sends no
entries until the stream is restored, and after a pause exits go out before entries."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gridctl.core.fills import StreamState
from gridctl.core.grid import Side
from gridctl.core.orders import Cancel, Intent, OpenOrder, OrderRequest, Submit
from gridctl.exchange.base import InsufficientMargin
from gridctl.worker.loop import _exits_first
from tests.test_worker_loop import make_loop


def recording(ex, refuse_entries: bool = False):
    """Record every request the loop sends; refuse entries for lack of margin when asked."""
    sent: list[OrderRequest] = []
    place = ex.place

    async def wrapped(r: OrderRequest):
        sent.append(r)
        if refuse_entries and r.intent is Intent.ENTRY:
            raise InsufficientMargin("binanceusdm: Margin is insufficient.")
        return await place(r)
    ex.place = wrapped
    return sent


def test_insufficient_margin_on_an_entry_holds_the_rounds_other_entries(tmp_path: Path):
    loop, ex, _ = make_loop(tmp_path, "sol-neutral")
    sent = recording(ex, refuse_entries=True)
    asyncio.run(loop.sync())
    entries = [r for r in sent if r.intent is Intent.ENTRY]
    assert len(entries) == 1  # the first refusal stopped the rest of the round's entries
    assert ex.sim.open_orders() == []


def test_safe_mode_sends_no_entries_and_the_restored_stream_places_them(tmp_path: Path):
    loop, ex, _ = make_loop(tmp_path, "sol-neutral")
    sent = recording(ex)
    ex.safe_mode = "the stream could not be restored after 3 attempts"
    asyncio.run(loop.sync())
    assert sent == []
    ex.safe_mode = None
    loop.apply(StreamState(loop.now_ms(), "restored", "left safe mode"))
    asyncio.run(loop.sync())
    assert sent and all(r.intent is Intent.ENTRY for r in sent)
    assert len(ex.sim.open_orders()) == len(sent)


def test_cancels_then_exits_and_closes_then_entries():
    entry = Submit(OrderRequest("e", Side.BUY, 1, 10, level=1, intent=Intent.ENTRY))
    exit_ = Submit(OrderRequest("x", Side.SELL, 1, 12, level=2, intent=Intent.EXIT))
    close = Submit(OrderRequest("c", Side.SELL, 1, None, intent=Intent.CLOSE))
    cancel = Cancel(OpenOrder(3, Intent.ENTRY, Side.BUY, 9, 1))
    assert _exits_first([entry, exit_, cancel, close]) == [cancel, exit_, close, entry]
