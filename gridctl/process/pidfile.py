"""PID files and the locks that make a supervisor and a worker unique.

Supervisor: `supervisor.lock` is flock'ed for the supervisor's life and
`supervisor.pid` is written atomically (temp + rename) for people and tools; a
PID file whose lock is free is stale. Worker: `run/<name>.pid` itself is flock'ed
by the worker for its whole life and rewritten in place (never renamed or
unlinked: a new inode would let a second process lock "the same" file).
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path
from typing import Optional

from gridctl.process.paths import StatePaths


def pid_alive(pid: int) -> bool:
    """Alive and not a zombie (an orphaned daemon's zombie may linger under some inits)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class AlreadyRunning(Exception):
    """Another process holds the lock; `pid` is what its PID file says (0 if unreadable)."""

    def __init__(self, what: str, pid: int):
        super().__init__(f"{what} is already running (pid {pid})" if pid else f"{what} is already running")
        self.what, self.pid = what, pid


def read_pid(path: Path) -> int:
    """The PID in a PID file, 0 when missing or unreadable."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Write a small file so readers see the old or the new content, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _try_lock(path: Path) -> Optional[int]:
    """Open and flock path exclusively without blocking: the fd, or None if held elsewhere."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
            return None
        raise
    return fd


def lock_holder(path: Path) -> Optional[int]:
    """If some process holds the lock on path: its PID from the file (0 if unknown); else None.

    Probing takes the lock for an instant, so only the supervisor (single-threaded,
    never while forking) should probe worker PID files.
    """
    if not path.exists():
        return None
    fd = _try_lock(path)
    if fd is None:
        return read_pid(path)
    os.close(fd)  # closing releases the probe's lock
    return None


class SupervisorLock:
    """Held by the one supervisor of a state dir; writes and removes supervisor.pid."""

    def __init__(self, paths: StatePaths):
        self.paths = paths
        self.fd: Optional[int] = None
        self.stale_pid = 0

    def acquire(self) -> None:
        """Take the lock or raise AlreadyRunning; note a stale PID file left by a dead supervisor."""
        self.fd = _try_lock(self.paths.lock_file)
        if self.fd is None:
            raise AlreadyRunning(f"a supervisor for {self.paths.root}", read_pid(self.paths.pid_file))
        old = read_pid(self.paths.pid_file)
        if old and old != os.getpid():
            self.stale_pid = old
        write_atomic(self.paths.pid_file, f"{os.getpid()}\n")

    def release(self) -> None:
        """Remove the PID file, then drop the lock."""
        if self.fd is None:
            return
        if read_pid(self.paths.pid_file) == os.getpid():
            self.paths.pid_file.unlink(missing_ok=True)
        os.close(self.fd)
        self.fd = None


_held: dict[Path, int] = {}


def acquire_worker_lock(state_dir: Path, name: str) -> int:
    """Lock `<state_dir>/run/<name>.pid` for the life of this process and write our PID in it.

    Idempotent within one process (the supervisor's child and the worker entry may
    both call it). Raises AlreadyRunning with the holder's PID if another process
    has it. The returned fd must stay open; it is closed by the process exiting.
    """
    return acquire_process_lock(StatePaths(Path(state_dir)).worker_pid(name), name)


def acquire_process_lock(path: Path, what: str) -> int:
    """acquire_worker_lock for any PID file (a local venue's, say)."""
    if path in _held:
        return _held[path]
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = _try_lock(path)
    if fd is None:
        raise AlreadyRunning(what, read_pid(path))
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held[path] = fd
    return fd
