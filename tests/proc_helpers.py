"""Helpers for the tests that run real processes."""

from __future__ import annotations

import time
from typing import Callable


def wait_until(pred: Callable[[], object], timeout: float = 20.0, what: str = "condition"):
    """Poll pred until it returns something truthy (and return that); fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)
