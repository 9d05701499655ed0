"""ccxt.pro streams kept alive: the raw-event tee, subscriptions, reconnects, safe mode.

ccxt.pro never reconnects by itself and never replays; its caches collapse updates
(live_ccxt.md §2). So every raw message is teed to the adapter before ccxt parses it
(`tee_class` overrides `handle_message`), the watches run only to keep the sockets
subscribed, and a `StreamKeeper` re-dials after a drop: up to len(delays) attempts
(5/10/15 s by default), each followed by a resynchronisation; when they all fail it
enters safe mode and keeps trying at a slower pace until the stream is back.
"""

from __future__ import annotations

import asyncio
import decimal
import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Optional, Sequence

log = logging.getLogger(__name__)

Watch = Callable[[], Awaitable[Any]]


@dataclass(frozen=True)
class StreamTiming:
    """How patiently streams are re-established (tests make it fast)."""

    reconnect_delays: tuple[float, ...] = (5.0, 10.0, 15.0)
    safe_retry_s: float = 60.0  # in safe mode: one attempt per this many seconds
    connect_timeout_s: float = 10.0  # a subscription counts as failed after this


_TEE_CLASSES: dict[str, type] = {}


async def isolated(fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    """Await a ccxt coroutine in a task with its own decimal context.

    ccxt's decimal_to_precision sets the *current* context's rounding to ROUND_HALF_UP (and
    traps Underflow) and never restores it; the context object is shared by every task of
    the thread, so the worker's own money arithmetic would round differently after the
    first order. A child task with a private copy keeps that change to itself (and to the
    tasks ccxt starts from there, such as its WebSocket receive loops).
    """
    async def run() -> Any:
        decimal.setcontext(decimal.getcontext().copy())
        return await fn(*args)
    return await asyncio.create_task(run())


def tee_class(venue: str) -> type:
    """The ccxt.pro class of a venue with a handle_message that first hands every raw
    message to `self.raw_sink(url, message)` (set by the adapter)."""
    if venue in _TEE_CLASSES:
        return _TEE_CLASSES[venue]
    import ccxt.pro as ccxtpro

    base = getattr(ccxtpro, venue, None)
    if base is None:
        raise ValueError(f"ccxt.pro has no exchange '{venue}'")

    class Tee(base):  # type: ignore[misc, valid-type]
        raw_sink: Optional[Callable[[str, Any], None]] = None

        def handle_message(self, client, message):
            sink = self.raw_sink
            if sink is not None:
                try:
                    sink(str(getattr(client, "url", "")), message)
                except Exception:  # a bug in our parser must not break ccxt's connection
                    log.exception("raw stream event not understood: %.300s", message)
            return super().handle_message(client, message)

    Tee.__name__ = f"Tee{base.__name__}"
    _TEE_CLASSES[venue] = Tee
    return Tee


def ws_clients(client: Any) -> list[Any]:
    """The WebSocket connections of a ccxt.pro instance (not its bookkeeping pseudo-clients)."""
    return [c for url, c in list(getattr(client, "clients", {}).items()) if str(url).startswith("ws")]


async def cancel_tasks(tasks: Sequence[asyncio.Task]) -> None:
    """Cancel background tasks and wait until each has ended (whatever it raised)."""
    for t in tasks:
        t.cancel()
    for t in tasks:
        try:
            await t
        except BaseException:
            pass


async def close_ws(client: Any, match: Callable[[str], bool] = lambda url: True) -> None:
    """Close (and forget) the instance's WebSocket connections whose url matches."""
    clients = getattr(client, "clients", {})
    for url, c in list(clients.items()):
        if not str(url).startswith("ws") or not match(str(url)):
            continue
        clients.pop(url, None)
        try:
            await asyncio.wait_for(c.close(), 2)
        except Exception:
            pass


class StreamKeeper:
    """Runs the watches; after a drop re-dials, resynchronises, or enters safe mode.

    on_state(state, detail): "lost" | "restored" | "safe_mode" (for the event queue).
    resync(): a REST resynchronisation after each successful re-dial.
    safe_mode(reason): called once when every attempt failed (cancel entries, keep exits).
    """

    def __init__(self, client: Any, watches: Sequence[Watch], expected_clients: int, timing: StreamTiming,
                 on_state: Callable[[str, str], None], resync: Callable[[], Awaitable[None]],
                 safe_mode: Callable[[str], Awaitable[None]]):
        self.client = client
        self.watches = list(watches)
        self.expected = expected_clients
        self.timing = timing
        self.on_state, self.resync, self.enter_safe_mode = on_state, resync, safe_mode
        self._tasks: list[asyncio.Task] = []
        self._kick = asyncio.Event()
        self._immediate = False
        self.in_safe_mode = False
        self.reconnecting = False
        self.reconnects = 0
        self.closed = False

    async def subscribe(self) -> None:
        """Start every watch and wait until its connection is open; raise what failed."""
        self._kick.clear()
        self._tasks = [asyncio.create_task(self._forever(w)) for w in self.watches]
        deadline = time.monotonic() + self.timing.connect_timeout_s
        while True:
            for t in self._tasks:
                if t.done():
                    exc = t.exception() if not t.cancelled() else None
                    await self._teardown()
                    raise exc or ConnectionError("stream subscription ended")
            conns = ws_clients(self.client)
            if len(conns) >= self.expected and all(_connected(c) for c in conns):
                return
            if time.monotonic() > deadline:
                await self._teardown()
                raise TimeoutError(f"streams not connected within {self.timing.connect_timeout_s:g} s")
            await asyncio.sleep(0.05)

    @staticmethod
    async def _forever(watch: Watch) -> None:
        decimal.setcontext(decimal.getcontext().copy())  # see isolated()
        while True:
            await watch()

    def reconnect_now(self, reason: str) -> None:
        """Drop the connections and re-dial at once (a listen key renewed, a stale stream)."""
        if self.reconnecting:
            return  # the re-dial under way subscribes afresh anyway
        log.info("stream reconnect requested: %s", reason)
        self._immediate = True
        self._reason = reason
        self._kick.set()

    async def _teardown(self) -> None:
        await cancel_tasks(self._tasks)
        self._tasks = []
        await close_ws(self.client)

    async def _wait_drop(self) -> str:
        kick = asyncio.create_task(self._kick.wait())
        try:
            done, _ = await asyncio.wait([*self._tasks, kick], return_when=asyncio.FIRST_COMPLETED)
        finally:
            kick.cancel()
        for t in done:
            if t is not kick and not t.cancelled() and t.exception() is not None:
                return f"{type(t.exception()).__name__}: {str(t.exception())[:200]}"
        return getattr(self, "_reason", "reconnect requested")

    async def run(self) -> None:
        """Supervise until close(): on every drop, reconnect (see the class doc)."""
        while not self.closed:
            reason = await self._wait_drop()
            if self.closed:
                return
            await self._teardown()
            immediate, self._immediate = self._immediate, False
            self.on_state("lost", reason)
            log.warning("exchange stream lost: %s", reason)
            self.reconnecting = True
            try:
                await self._reconnect(immediate)
            finally:
                self.reconnecting = False

    async def _reconnect(self, immediate: bool) -> None:
        delays = list(self.timing.reconnect_delays)
        if immediate:
            delays = [0.0] + delays
        attempt = 0
        while not self.closed:
            if attempt < len(delays):
                delay = delays[attempt]
            else:
                if not self.in_safe_mode:
                    self.in_safe_mode = True
                    why = f"the stream could not be restored after {len(delays)} attempts"
                    self.on_state("safe_mode", why)
                    try:
                        await self.enter_safe_mode(why)
                    except Exception as exc:
                        log.warning("safe mode: %s", exc)
                delay = self.timing.safe_retry_s
            attempt += 1
            await asyncio.sleep(delay)
            try:
                await self.subscribe()
            except Exception as exc:
                log.warning("stream reconnect attempt %d failed: %s", attempt, exc)
                continue
            self.reconnects += 1
            try:
                await self.resync()
            except Exception as exc:  # the loop's own reconcile follows the "restored" state anyway
                log.warning("resynchronisation after reconnect failed: %s", exc)
            was_safe, self.in_safe_mode = self.in_safe_mode, False
            self.on_state("restored", "left safe mode" if was_safe else f"after {attempt} attempt(s)")
            return

    async def close(self) -> None:
        self.closed = True
        self._kick.set()
        await self._teardown()


def _connected(c: Any) -> bool:
    f = getattr(c, "connected", None)
    if f is None or not f.done() or f.cancelled():
        return False
    return f.exception() is None
