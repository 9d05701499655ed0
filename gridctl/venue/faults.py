"""Fault switches of the local venue: deterministic ("the next N times") or random (--seed).

Protocol-neutral: the core only decides *whether* a fault fires; each protocol
renders it as its venue would (its 429 body, its error codes, ...).

Faults and their parameters:

    rate_limit      REST answered 429 with the venue's body; retry_after (s, default 1)
    server_error    REST answered 5xx; status (default 503)
    timeout         the request is executed (an order IS placed), the answer waits
                    `delay` seconds (default 15) — past the client's timeout
    empty           the request is executed, the answer is a 200 with an empty body
    reject          the order is refused with the venue's code for `reason`
                    (insufficient_margin | reduce_only_rejected | post_only_would_cross | ...)
    partial         a resting order that is hit fills in `pieces` trades (default 3); with
                    `leave` (a fraction, 0 < leave < 1) only part fills when the price first
                    reaches it (in `pieces` trades, default 1) and that fraction keeps resting
                    at its price until the price trades through it or it is cancelled
    drop_streams    every stream is closed at the next opportunity
    silent_streams  streams stop sending and answering pings (a zombie socket)
    expire_auth     stream auth tokens (Binance listen keys) expire now
    kill            SIGKILL process `pid` (default: the venue itself) at a chosen moment:
                    `on` place | cancel | read | order | any, `when` after (default: the
                    request executed and saved, its answer not sent yet: a client killed
                    between sending an order and recording it) | before (nothing executed);
                    or `on` stream_fill: right after a fill was pushed on a user stream.
                    `type` (market | limit) narrows a place to that order type (a stop's close).
                    The venue waits (<= 2 s) until the process is gone before it goes on.

Each fault takes `on` (which requests: any | place | cancel | read | order = place or
cancel; default "any" for rate_limit/server_error, "place" for timeout/empty/reject),
and either `count` (fire the next N times) or `p` (probability per request, seeded).
`silent_streams` is a state: {"on": true} / {"on": false}.

Spec string (--faults): "rate_limit:p=0.05,on=place;partial:p=0.5;timeout:count=1"
JSON (POST /_admin/faults): {"rate_limit": {"count": 1, "retry_after": 2}, "partial": null}
(null or {} switches a fault off; {"clear": true} switches every fault off).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from typing import Any, Optional

FAULTS = ("rate_limit", "server_error", "timeout", "empty", "reject", "partial", "drop_streams",
          "silent_streams", "expire_auth", "kill")
DEFAULT_ON = {"rate_limit": "any", "server_error": "any", "timeout": "place", "empty": "place",
              "reject": "place", "partial": "any", "drop_streams": "any", "silent_streams": "any",
              "expire_auth": "any", "kill": "place"}
RECENT = 2000  # fires kept in Faults.recent
KINDS = ("any", "place", "cancel", "read", "order")
KILL_KINDS = KINDS + ("stream_fill",)  # where a kill can be set (a fill pushed on a user stream)
KILL_WHEN = ("after", "before")


class FaultError(ValueError):
    """A fault spec that cannot be used; the message names the part."""


def _matches(on: str, kind: str) -> bool:
    return on == "any" or on == kind or (on == "order" and kind in ("place", "cancel"))


class Faults:
    """The switched-on faults; `take(name, kind)` answers whether one fires now."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.active: dict[str, dict[str, Any]] = {}
        self.fired: dict[str, int] = {}  # how often each fault fired (the soak's audit)
        self.recent: list[list] = []  # [wall ms, name, request kind] of the last fires (evidence)

    def configure(self, spec: dict) -> None:
        """Apply a JSON fault spec (see module docs); raises FaultError naming the bad field."""
        if not isinstance(spec, dict):
            raise FaultError("faults: expected a JSON object")
        if spec.get("clear"):
            self.active.clear()
        for name, params in spec.items():
            if name == "clear":
                continue
            if name not in FAULTS:
                raise FaultError(f"faults: unknown fault {name!r} (known: {', '.join(FAULTS)})")
            if params in (None, {}, False, 0):
                self.active.pop(name, None)
                continue
            if params is True:
                params = {"count": 1} if name != "silent_streams" else {"on": True}
            if not isinstance(params, dict):
                raise FaultError(f"faults: {name}: expected an object, got {params!r}")
            params = dict(params)
            if name == "silent_streams":
                if params.get("on") in (False, None):
                    self.active.pop(name, None)
                else:
                    self.active[name] = {"on": True}
                continue
            on = params.get("on", DEFAULT_ON[name])
            kinds = KILL_KINDS if name == "kill" else KINDS
            if on not in kinds:
                raise FaultError(f"faults: {name}: on must be one of {', '.join(kinds)}, got {on!r}")
            params["on"] = on
            if name == "kill":
                _kill_params(params)
            if "count" in params:
                try:
                    params["count"] = int(params["count"])
                except (TypeError, ValueError):
                    raise FaultError(f"faults: {name}: count must be an integer") from None
            elif "p" in params:
                try:
                    params["p"] = float(params["p"])
                except (TypeError, ValueError):
                    raise FaultError(f"faults: {name}: p must be a number") from None
                if not 0 <= params["p"] <= 1:
                    raise FaultError(f"faults: {name}: p must be between 0 and 1")
            else:
                params["count"] = 1
            if name == "partial" and "leave" in params:
                try:
                    leave = float(params["leave"])
                except (TypeError, ValueError):
                    leave = -1.0
                if not 0 < leave < 1:
                    raise FaultError(f"faults: partial: leave must be a fraction between 0 and 1 (exclusive), "
                                     f"got {params['leave']!r}")
                params["leave"] = leave
            self.active[name] = params

    def take(self, name: str, kind: str = "any", **facts: Any) -> Optional[dict]:
        """The fault's parameters if it fires for a request of `kind` now (a count is used up).
        `facts` (when=..., type=...) must equal the fault's parameters of those names, if set."""
        params = self.active.get(name)
        if params is None or not _matches(params.get("on", "any"), kind):
            return None
        if any(k in params and params[k] != v for k, v in facts.items()):
            return None  # e.g. a kill narrowed to market orders, asked about a cancel
        if "count" in params:
            if params["count"] <= 0:
                return None
            params["count"] -= 1
            if params["count"] == 0:
                del self.active[name]
            return self._fire(name, kind, params)
        return self._fire(name, kind, params) if self.rng.random() < params.get("p", 0) else None

    def _fire(self, name: str, kind: str, params: dict) -> dict:
        self.fired[name] = self.fired.get(name, 0) + 1
        self.recent.append([int(time.time() * 1000), name, kind])
        del self.recent[:-RECENT]
        return params

    async def kill_point(self, kind: str, when: str = "after", order_type: Optional[str] = None) -> None:
        """SIGKILL the `kill` fault's process if it is set for this moment, and wait until it is
        gone (so that what follows, an answer or the next stream message, never reaches it)."""
        f = self.take("kill", kind, when=when, type=order_type)
        if f is None:
            return
        pid = int(f.get("pid") or os.getpid())
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 2
        while _running(pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.005)

    def is_on(self, name: str) -> bool:
        """True while a state-like fault (silent_streams) is switched on."""
        return name in self.active

    def describe(self) -> dict:
        return {k: dict(v) for k, v in self.active.items()}


def _kill_params(params: dict) -> None:
    """Check and default a kill fault's own parameters (pid, when, type)."""
    params.setdefault("when", "after")
    if params["when"] not in KILL_WHEN:
        raise FaultError(f"faults: kill: when must be one of {', '.join(KILL_WHEN)}, got {params['when']!r}")
    if "pid" in params:
        try:
            params["pid"] = int(params["pid"])
        except (TypeError, ValueError):
            raise FaultError("faults: kill: pid must be an integer") from None
        if params["pid"] <= 1:
            raise FaultError("faults: kill: pid must be a process id above 1")
    if params.get("type") not in (None, "market", "limit"):
        raise FaultError(f"faults: kill: type must be market or limit, got {params['type']!r}")


def _running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (a killed child its parent has not reaped)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True


def parse_spec(text: str) -> dict:
    """--faults "name:k=v,k=v;name2" -> the JSON form; raises FaultError."""
    out: dict[str, dict] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, _, rest = part.partition(":")
        name = name.strip()
        params: dict[str, Any] = {}
        for kv in filter(None, (x.strip() for x in rest.split(","))):
            k, eq, v = kv.partition("=")
            if not eq:
                raise FaultError(f"--faults: {part!r}: expected key=value, got {kv!r}")
            params[k.strip()] = _value(v.strip())
        out[name] = params or {"p": 1.0} if name == "partial" else params or {"count": 1}
        if name == "silent_streams":
            out[name] = {"on": True}
    return out


def _value(v: str) -> Any:
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(v.lower(), v)
