"""Where the tests find the shared real data (candles, funding, exchange samples).

The data lives beside the repository, not in it: ``<repo>/../shared/data``. CI runs
in a fresh clone in another folder with a copy of ``shared/`` beside it, so no test
may hard-code an absolute path. Looked for, in order:

1. ``<repo>/../shared/data`` (the layout CI and the worktrees use);
2. the ``GRIDCTL_SHARED_DATA`` environment variable (data kept elsewhere);
3. ``/work/shared/data`` (the development machine's copy).

A test whose data is missing is skipped on a developer's machine but FAILS when
``CI`` is set: a CI run that silently skipped the real-data tests would pass
without having tested anything.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Callable, TypeVar

import pytest

REPO = Path(__file__).resolve().parent.parent
F = TypeVar("F", bound=Callable)


def candidates() -> list[Path]:
    """Every place the shared data may be, in the order they are tried."""
    out = [REPO.parent / "shared" / "data"]
    if os.environ.get("GRIDCTL_SHARED_DATA"):
        out.append(Path(os.environ["GRIDCTL_SHARED_DATA"]))
    out.append(Path("/work/shared/data"))
    return out


@functools.lru_cache(maxsize=None)
def shared_data() -> Path:
    """The shared data directory: the first candidate that exists (else the first, so paths still compose)."""
    found = [p for p in candidates() if p.is_dir()]
    return found[0] if found else candidates()[0]


def in_ci() -> bool:
    """Whether this is a CI run (CI=true/1/anything but empty, 0 or false)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require(*paths: Path) -> None:
    """Skip the calling test when a data file is missing; fail instead under CI."""
    missing = [str(p) for p in paths if p is not None and not Path(p).exists()]
    if not missing:
        return
    msg = f"shared data missing: {', '.join(missing)} (looked in {', '.join(map(str, candidates()))})"
    if in_ci():
        pytest.fail(msg + "; CI must have ../shared/data beside the clone", pytrace=False)
    pytest.skip(msg)


def needs_data(*paths: Path) -> Callable[[F], F]:
    """Decorator form of `require` for a test function (keeps its signature for fixtures)."""
    def deco(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            require(*paths)
            return fn(*args, **kwargs)
        return wrapper  # type: ignore[return-value]
    return deco
