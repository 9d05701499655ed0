"""The supervisor's side of the control protocol (see gridctl/control/protocol.py).

Requests (args in braces) and replies:
  ping {}                                   -> {"ok": true, "pid": N}
  status {}                                 -> {"ok": true, "supervisor": {...}, "workers": [...]}
  start {"names": [...], "config": PATH}    -> {"ok": all ok, "results": [result...]}
  stop {"names": [...], "all": b, "keep_position": b|null}
  pause / resume {"names": [...]}
  emergency_close {"name": NAME}
  reload {}                                 -> {"ok": ..., "results": [...], "config_error": b?}
  shutdown {}                               -> {"ok": true, "results": [...], "message": "..."}
  events {"names": [...], "n": 50, "follow": true}  (stream of event objects)
A result is {"name", "ok", "message", ...}; `message` is what the CLI prints.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, AsyncIterator, Optional

from gridctl.config import ConfigError, load
from gridctl.config import live_change
from gridctl.config.strategy import settings_hash, strategy_hash
from gridctl.control.client import ControlError, NotRunning, worker_call
from gridctl.control.protocol import LINE_LIMIT, decode, encode, request
from gridctl.control.server import CommandError
from gridctl.supervisor.states import WorkerState

if TYPE_CHECKING:
    from gridctl.supervisor.arbiter import Arbiter, Worker


def _names(args: dict) -> list[str]:
    names = args.get("names") or []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise CommandError("names must be a list of strategy names")
    return names


def _combined(results: list[dict], **extra) -> dict:
    return {"ok": all(r["ok"] for r in results), "results": results, **extra}


class SupervisorCommands:
    """Dispatches control requests to the Arbiter."""

    def __init__(self, arbiter: "Arbiter"):
        self.a = arbiter

    async def handle(self, cmd: str, args: dict) -> dict:
        a = self.a
        if cmd == "ping":
            return {"ok": True, "pid": os.getpid()}
        if cmd == "status":
            return await status(a)
        if cmd == "start":
            cfg = args.get("config")
            if cfg and Path(cfg).resolve() != a.config_path:
                raise CommandError(f"this supervisor runs {a.config_path}, not {cfg}; run `gridctl shutdown` "
                                   f"first or point at the same file")
            assert a.config is not None
            names = _names(args) or list(a.config.strategies)
            feed = await _start_feed(a, args.get("events"))
            return _combined(list(await asyncio.gather(*(a.start_worker(n) for n in names))), **feed)
        if cmd == "stop":
            names = list(a.workers) if args.get("all") else _names(args)
            if not names and args.get("all"):
                return _combined([], message="nothing is running")
            keep = args.get("keep_position")
            return _combined(list(await asyncio.gather(*(a.stop_worker(n, keep) for n in names))))
        if cmd in ("pause", "resume"):
            op = a.pause if cmd == "pause" else a.resume
            return _combined(list(await asyncio.gather(*(op(n) for n in _names(args)))))
        if cmd == "emergency_close":
            return _combined([await a.emergency_close(str(args.get("name", "")))])
        if cmd == "reload":
            return await reload_config(a)
        if cmd == "shutdown":
            results = await a.shutdown()
            return {"ok": True, "results": results, "message": f"supervisor {os.getpid()} exiting"}
        raise CommandError(f"unknown command '{cmd}'")

    def stream(self, cmd: str, args: dict) -> Optional[AsyncIterator[dict]]:
        if cmd != "events":
            return None
        return events(self.a, _names(args), int(args.get("n", 50)), bool(args.get("follow", True)))


async def _start_feed(a: "Arbiter", spec: object) -> dict:
    """`start {"events": {"listen": "HOST:PORT", "allow_remote": b}}`: the live feed, if asked for.

    Extra reply keys: "events" (where it listens) and "events_error" (why it does not).
    """
    from gridctl.config.listen import ListenError, events_config

    if spec is None:
        info = a.feed.info()
        return {"events": info} if info else {}
    if not isinstance(spec, dict) or not isinstance(spec.get("listen"), str):
        raise CommandError('events must be {"listen": "HOST:PORT", "allow_remote": false}')
    try:
        cfg = events_config(spec["listen"], bool(spec.get("allow_remote")), "events.listen")
    except ListenError as exc:
        raise CommandError(str(exc)) from None
    r = await a.feed.start(cfg)
    return {"events": r["events"]} if r["ok"] else {"events_error": r["message"]}


def _row(w: "Worker", worker_status: Optional[dict]) -> dict:
    uptime = int(time.time() - w.started_at) if w.state.alive and w.started_at else None
    return {"name": w.name, "state": w.state.value, "pid": w.pid or None, "reason": w.reason,
            "since": int(w.since * 1000), "uptime_s": uptime, "restarts": w.restarts,
            "last_exit": w.last_exit or None, "adopted": w.adopted, "worker": worker_status}


async def status(a: "Arbiter") -> dict:
    """Every known strategy's process state, with the live status of those that answer."""
    if a.config:
        for name in a.config.strategies:
            a.worker(name)
    live = [w for w in a.workers.values() if w.state in (WorkerState.RUNNING, WorkerState.PAUSED)]

    async def ask(w: "Worker") -> Optional[dict]:
        try:
            return (await worker_call(a.paths.worker_socket(w.name), "status", timeout=1.0)).get("status")
        except (NotRunning, ControlError, OSError):
            return None

    answers = dict(zip([w.name for w in live], await asyncio.gather(*(ask(w) for w in live))))
    return {"ok": True,
            "supervisor": {"pid": os.getpid(), "state_dir": str(a.paths.root), "config": str(a.config_path),
                           "started_at": int(a.started_at * 1000), "reporter_pid": a.reporter_pid or None,
                           "shutting_down": a.shutting_down, "events": a.feed.info(),
                           "venues": a.venues.status()},
            "workers": [_row(w, answers.get(w.name)) for w in sorted(a.workers.values(), key=lambda w: w.name)]}


async def reload_config(a: "Arbiter") -> dict:
    """Re-read the YAML: start new strategies, apply changed risk keys to running ones at once,
    and list the grid changes that wait until a strategy is stopped.

    `ok` is false only when something that could be done failed (a worker did not take
    its new risk settings); an invalid file changes nothing and says `config_error`.
    """
    try:
        # in a thread: a large or hostile file (bounded by gridctl.config.yamlsrc, still up to
        # a few seconds of parsing) must not stop the heartbeats, the workers' IPC and status
        new = await asyncio.to_thread(load, a.config_path)
    except ConfigError as exc:
        msg = (f"{a.config_path} has {len(exc.problems)} problem(s), nothing changed: "
               + "; ".join(str(p) for p in exc.problems))
        return {"ok": False, "config_error": True,
                "results": [{"name": "", "ok": False, "action": "invalid", "message": msg}]}
    old = a.config
    assert old is not None
    results: list[dict] = []
    to_start: list[str] = []
    live: list["Worker"] = []
    for name in new.strategies:
        w = a.workers.get(name)
        if name not in old.strategies and not (w is not None and w.state.alive):
            to_start.append(name)
        elif w is not None and w.state.alive and w.config_hash and w.config_hash != settings_hash(new, name):
            w.running = w.running or a.settings_of(name)  # still the old config here
            live.append(w)
        elif name in old.strategies and settings_hash(old, name) != settings_hash(new, name):
            results.append({"name": name, "ok": True, "action": "updated",
                            "message": f"{name}: new configuration takes effect when it starts"})
    for name in old.strategies:
        if name not in new.strategies and name in a.workers and a.workers[name].state.alive:
            results.append({"name": name, "ok": True, "action": "removed",
                            "message": f"{name} is no longer in the config; it runs until you stop it"})
    a.config = new
    results += await asyncio.gather(*(_apply_live(a, w, new) for w in live))
    for r in await asyncio.gather(*(a.start_worker(n) for n in to_start)):
        results.append({**r, "action": "started"})
    if old.reports != new.reports:
        a.restart_reporter()
    if not results:
        results.append({"name": "", "ok": True, "action": "unchanged", "message": "nothing changed"})
    return _combined(results)


async def _apply_live(a: "Arbiter", w: "Worker", new) -> dict:
    """Send a running strategy its changed risk keys (apply_risk); say which grid changes wait."""
    s_new = new.strategies[w.name]
    acc_new = new.accounts.get(s_new.account)
    s_run, acc_run = w.running or (s_new, acc_new)
    changes, waiting = live_change.diff(s_run, s_new, acc_run, acc_new)
    parts: list[str] = []
    ok = True
    if changes:
        after = live_change.with_live_changes(s_run, s_new)
        h = strategy_hash(after, acc_run)
        try:
            reply = await worker_call(a.paths.worker_socket(w.name), "apply_risk", timeout=10.0,
                                      settings=live_change.live_settings(after), config_hash=h, changes=changes)
        except (NotRunning, ControlError, OSError) as exc:
            reply = {"ok": False, "error": str(exc)}
        if reply.get("ok"):
            w.running, w.config_hash = (after, acc_run), h
            parts.append(f"applied {', '.join(changes)}")
        else:
            ok = False
            parts.append(f"did not take {', '.join(changes)}: {reply.get('error') or reply.get('message')}")
    if not parts and not waiting:
        parts.append("its settings changed in a way gridctl cannot apply live; restart it to be sure")
    if waiting:
        parts.append(f"waits until stopped: {', '.join(waiting)} (the running grid is kept; "
                     f"`gridctl stop {w.name}`, then `gridctl start {w.name}`)")
    action = "applied" if changes and ok and not waiting else ("waiting" if ok else "failed")
    return {"name": w.name, "ok": ok, "action": action, "applied": changes if ok else [],
            "waiting": waiting, "message": f"{w.name}: " + "; ".join(parts)}


async def events(a: "Arbiter", names: list[str], n: int, follow: bool,
                 restart_n: Optional[int] = None) -> AsyncIterator[dict]:
    """Recent and live events of the selected (default: all) workers, plus state changes.

    A worker attached later (started or restarted while following) sends its last
    `restart_n` events (default n): its own since it started, so none is missed.
    """
    q: asyncio.Queue[dict] = asyncio.Queue(maxsize=10000)
    tasks: dict[str, asyncio.Task] = {}
    wanted = (lambda name: name in names) if names else (lambda name: True)
    first = True

    async def forward(name: str, pid: int, n: int) -> None:
        try:
            reader, writer = await asyncio.open_unix_connection(str(a.paths.worker_socket(name)), limit=LINE_LIMIT)
        except OSError:
            return
        try:
            writer.write(encode(request("events", n=n, follow=follow)))
            await writer.drain()
            header = decode(await reader.readline() or b"{}")
            if not header.get("ok"):
                return
            async for line in reader:
                ev = decode(line)
                ev.setdefault("strategy", name)
                if not q.full():
                    q.put_nowait(ev)
        except (OSError, ValueError):
            return
        finally:
            writer.close()

    def attach() -> None:
        nonlocal first
        for w in list(a.workers.values()):
            t = tasks.get(w.name)
            if wanted(w.name) and w.state in (WorkerState.RUNNING, WorkerState.PAUSED) and (t is None or t.done()):
                later = n if first or restart_n is None else restart_n
                tasks[w.name] = asyncio.create_task(forward(w.name, w.pid, later))
        first = False

    if follow:
        a.subscribers.add(q)
    try:
        attach()
        if not follow:
            await asyncio.gather(*tasks.values())
            while not q.empty():
                yield q.get_nowait()
            return
        next_attach = time.monotonic() + 0.5
        while True:
            try:
                ev: Optional[dict] = await asyncio.wait_for(q.get(), 0.5)
            except asyncio.TimeoutError:
                ev = None
            supervisor = ev is not None and ev.get("source") == "supervisor"
            # workers started or restarted since: at once when one answers, else every 0.5 s
            # (also while events keep coming, so a busy stream never misses a restarted worker)
            if (supervisor and ev.get("state") in ("running", "paused")) or time.monotonic() >= next_attach:
                attach()
                next_attach = time.monotonic() + 0.5
            if ev is None or (supervisor and not wanted(ev.get("strategy", ""))):
                continue
            yield ev
    finally:
        a.subscribers.discard(q)
        for t in tasks.values():
            t.cancel()
