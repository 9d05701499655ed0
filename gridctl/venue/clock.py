"""The venue's price clock: plays each market's feed in real time at the venue's speed.

A replayed or synthetic candle lasts interval/speed seconds; within it the price
walks the paper exchange's candle path (open, then the nearer extreme, the other,
close), one vertex per quarter of the candle, every account filling what the walk
crosses. Funding: the --funding file's rates as the replay reaches them, otherwise
the market's rate on the 8 h wall-clock schedule. A live feed polls the venue's
public ticker every poll_ms and plays that. A pinned market (POST /_admin/price) is
left where it was put until it is released.
"""

from __future__ import annotations

import asyncio
import logging

from gridctl.sim import SimExchange
from gridctl.venue.market import Market

log = logging.getLogger(__name__)


async def play_market(venue, m: Market) -> None:
    """Run forever (cancelled by Venue.stop())."""
    feed = m.feed
    live = hasattr(feed, "poll")
    if live:
        step_s = m.spec.poll_ms / 1000
    else:
        step_s = feed.interval_ms / 1000 / float(m.spec.speed)
    if not m.next_funding_ms:
        m.next_funding_ms = m.next_funding_after(venue.now_ms())
    while True:
        try:
            if m.spec.funding is None and venue.now_ms() >= m.next_funding_ms:  # pinned or not
                venue.settle_funding(m.symbol, m.funding_rate)
                m.next_funding_ms = m.next_funding_after(venue.now_ms())
            if m.pinned:
                await asyncio.sleep(min(step_s, 0.2))
                continue
            rates = []
            if live:
                try:
                    _, candle = await feed.next()
                except Exception as exc:  # a live feed outage: keep the last price, try again
                    log.warning("%s live feed: %s", m.symbol, exc)
                    await asyncio.sleep(step_s)
                    continue
            else:
                vts, candle = feed.next()
                rates = feed.due_funding(vts)
            for rate in rates:
                venue.settle_funding(m.symbol, rate)
            path = SimExchange.candle_path(*candle)
            for target in path:
                if m.pinned:
                    break
                if target != m.last:
                    venue.move_price(m.symbol, target)
                await asyncio.sleep(step_s / len(path))
            venue.dirty()
        except asyncio.CancelledError:
            raise
        except Exception:  # never let one market's clock die silently
            log.exception("%s price clock", m.symbol)
            await asyncio.sleep(1)
