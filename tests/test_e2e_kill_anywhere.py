"""Crash anywhere (issue 9, point 3): a worker, its paper venue or the supervisor SIGKILLed
at a precise moment — between sending an order and recording it, before the venue executes
it, right after a fill is pushed, during a stop's cancels and its close — restarts and
converges: every order row equals the venue's order, every venue fill is booked once by
trade id, the venue's open orders are what the strategy desires, a stop in progress ends
flat. The moment is set with the venue's `kill` fault (gridctl/venue/faults.py); what
"converged" means is tests/convergence.py.

Real processes (supervisor, workers, venues) on the 600x replay of tests/configs/e2e_kill.yaml.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from gridctl.process.pidfile import lock_holder, pid_alive as alive, read_pid
from tests.convergence import violations
from tests.proc_helpers import Paper as _Paper, wait_until

TESTS = Path(__file__).resolve().parent
CONFIG = TESTS / "configs" / "e2e_kill.yaml"
SYMBOL = "SOL/USDT:USDT"

pytestmark = pytest.mark.slow


class Paper(_Paper):
    def __init__(self, tmp: Path):
        super().__init__(tmp, CONFIG, 0.3)

    def converged(self, name: str, timeout: float = 45) -> None:
        """Pin the price where it is (the desired orders hold still), wait until the checker
        finds nothing, release the price. Fails with the last violations found."""
        last = self.venue_admin(name, "/_admin/state")["markets"][SYMBOL]["last"]
        self.venue_admin(name, "/_admin/price", {"symbol": SYMBOL, "price": last})
        found: list[str] = []

        def clean() -> bool:
            found[:] = violations(self.where(name), self.state / "gridctl.db", self.config, name)
            return not found
        try:
            wait_until(clean, timeout, f"{name} converged")
        except AssertionError:
            raise AssertionError(f"{name} did not converge: " + "; ".join(found[:12])) from None
        finally:
            self.venue_admin(name, "/_admin/release", {"symbol": SYMBOL})

    def kill_worker_at(self, name: str, timeout: float = 40, **spec) -> int:
        """Arm the venue to SIGKILL the worker at a moment (`spec`: on, when, type); wait until it
        is dead and the supervisor runs a new one; returns the new pid."""
        pid = self.workers()[name]["pid"]
        self.venue_admin(name, "/_admin/faults", {"kill": {"pid": pid, **spec}})
        wait_until(lambda: not alive(pid), timeout, f"{name}'s worker killed at {spec}")
        return self.restarted(name, pid)

    def kill_supervisor(self) -> None:
        """SIGKILL the supervisor; its workers and venues go on without it."""
        sup = read_pid(self.state / "supervisor.pid")
        os.kill(sup, signal.SIGKILL)
        wait_until(lambda: not alive(sup), 10, "supervisor gone")

    def restarted(self, name: str, old: int) -> int:
        w = wait_until(lambda: (w := self.workers()[name])["state"] == "running" and w["pid"] not in (0, old) and w,
                       30, f"{name} restarted")
        return w["pid"]

    def trading(self, name: str, fills: int = 1) -> None:
        wait_until(lambda: len(self.book(name)) >= 10, 30, f"{name}'s grid placed")
        wait_until(lambda: self.count("fills", name) >= fills, 40, f"{name} trading")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    p = Paper(tmp_path_factory.mktemp("kill"))
    try:
        p.start()
        yield p
    finally:
        p.cleanup()


@pytest.mark.parametrize("when", ["after", "before"])
def test_worker_killed_around_a_placement_converges(fleet, when):
    """after: the venue placed the order, the worker died before it heard so (nor recorded
    it): the restart adopts it by client id and writes its row. before: the order was never
    placed: the restart places what is missing."""
    name = "k-place"
    fleet.trading(name)
    fleet.kill_worker_at(name, on="place", when=when)
    fleet.converged(name)


def test_worker_killed_right_after_a_fill_is_pushed_converges(fleet):
    name = "k-fill"
    fleet.trading(name)
    fleet.kill_worker_at(name, on="stream_fill")
    fleet.converged(name)


@pytest.mark.parametrize("moment", [{"on": "cancel"}, {"on": "place", "type": "market"}],
                         ids=["during-its-cancels", "during-its-close"])
def test_worker_killed_mid_stop_completes_the_stop_flat(tmp_path, moment):
    p = Paper(tmp_path)
    name = "k-stop"
    try:
        p.start(name)
        wait_until(lambda: p.venue_position(name) > 0 and len(p.book(name)) >= 10, 30, "grid and base position")
        pid = p.workers()[name]["pid"]
        p.venue_admin(name, "/_admin/faults", {"kill": {"pid": pid, **moment}})
        r = p.gridctl("stop", name)
        assert not alive(pid), r.stdout + r.stderr
        wait_until(lambda: p.sql("SELECT status FROM strategies WHERE name = ?", name) == [("stopped",)], 40,
                   "the stop completed")
        assert p.venue_position(name) == 0 and p.book(name) == {}
        p.converged(name)
    finally:
        p.cleanup()


def test_venue_killed_after_executing_a_placement_converges(fleet):
    name = "k-venue"
    fleet.trading(name)
    vpid = read_pid(fleet.state / "run" / "venue" / "paper-k-venue.pid")
    fleet.venue_admin(name, "/_admin/faults", {"kill": {"on": "place"}})  # no pid: the venue itself
    wait_until(lambda: not alive(vpid), 40, "the venue killed itself after a placement")
    wait_until(lambda: (v := read_pid(fleet.state / "run" / "venue" / "paper-k-venue.pid")) and v != vpid
               and alive(v), 30, "the venue restarted")
    fleet.converged(name)


def test_supervisor_killed_then_worker_killed_a_new_supervisor_adopts_and_converges(fleet):
    name = "k-venue"
    fleet.trading(name)
    fleet.kill_supervisor()
    pid = lock_holder(fleet.state / "run" / f"{name}.pid")
    assert pid and alive(pid)
    fleet.venue_admin(name, "/_admin/faults", {"kill": {"pid": pid, "on": "place"}})
    wait_until(lambda: not alive(pid), 40, "the worker killed with no supervisor")
    time.sleep(0.5)
    out = fleet.start()
    assert "started supervisor (pid" in out
    fleet.restarted(name, pid)
    for other in ("k-place", "k-fill"):
        assert f"{other} is already running" in out  # adopted, not started twice
    fleet.converged(name)
    fleet.converged("k-place")


def test_supervisor_killed_then_venue_killed_a_new_supervisor_restarts_the_venue(fleet):
    # found by the soak: the new supervisor adopted the live worker but never started the dead
    # venue (nothing had reaped it), so the worker crash-looped on "its local venue is not running"
    name = "k-venue"
    fleet.trading(name)
    fleet.kill_supervisor()
    vfile = fleet.state / "run" / "venue" / "paper-k-venue.pid"
    vpid = lock_holder(vfile)
    assert vpid and alive(vpid)
    os.kill(vpid, signal.SIGKILL)
    wait_until(lambda: not alive(vpid), 10, "the venue killed with no supervisor")
    out = fleet.start()
    assert "started supervisor (pid" in out
    wait_until(lambda: (v := lock_holder(vfile)) and v != vpid, 20, "the new supervisor restarted the venue")
    fleet.converged(name)
    fills = fleet.count("fills", name)
    fleet.trading(name, fills + 1)
