"""The local venue's event hub (Venue mixin): subscribers' queues and publishing."""

from __future__ import annotations

import asyncio


class VenueEvents:
    """Venue.subscribe / unsubscribe / _publish (mixed into gridctl.venue.core.Venue)."""

    _queues: list

    def subscribe(self, maxsize: int = 0) -> asyncio.Queue:
        """A queue that receives every event from now on (unsubscribe() when done)."""
        q: asyncio.Queue = asyncio.Queue(maxsize)
        self._queues.append(q)
        return q

    def unsubscribe(self, q: asyncio.Queue) -> None:
        if q in self._queues:
            self._queues.remove(q)

    def _publish(self, event) -> None:
        for q in self._queues:
            try:
                q.put_nowait(event)
            except asyncio.QueueFull:  # a stuck consumer must not stop the venue
                pass

