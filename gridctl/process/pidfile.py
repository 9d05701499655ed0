"""PID files and the locks that make a supervisor and a worker unique.

Supervisor: `supervisor.lock` is flock'ed for the supervisor's life and
`supervisor.pid` is written atomically (temp + rename) for people and tools; a
PID file whose lock is free is stale. Worker: `run/<name>.pid` itself is flock'ed
by the worker for its whole life and rewritten in place (never renamed or
unlinked: a new inode would let a second process lock "the same" file).

A PID file's text is never proof: anyone can write a number in it. Who holds a
lock is read from the kernel (/proc/locks) and confirmed by that process having
the file open (/proc/PID/fd); only such a proven holder is ever signalled.
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


def write_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    """Write a small file so readers see the old or the new content, never half
    (owner-only by default: it lives in the state dir)."""
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


def _has_open(pid: int, st: os.stat_result) -> bool:
    """Whether process pid has the file st (device and inode) open."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            o = os.stat(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if (o.st_dev, o.st_ino) == (st.st_dev, st.st_ino):
            return True
    return False


def _kernel_holders(st: os.stat_result) -> list[int]:
    """PIDs /proc/locks shows holding a flock on inode st.st_ino (granted locks, not waiters).

    Matched on the inode number only: on overlayfs and btrfs the device /proc/locks
    prints is not the one stat() reports; _has_open then checks the device too.
    """
    pids = []
    try:
        with open("/proc/locks") as f:
            for line in f:
                parts = line.split()  # "1: FLOCK  ADVISORY  WRITE 9092 fe:00:2146385 0 EOF"
                if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5].rsplit(":", 1)[-1] == str(st.st_ino):
                    try:
                        pids.append(int(parts[4]))
                    except ValueError:
                        pass
    except OSError:
        pass
    return pids


def proven_holder(path: Path) -> int:
    """The PID of the live process shown to hold the flock on path, 0 if none can be shown.

    Proof: /proc/locks names the PID on this inode and that process has the file open.
    Where /proc/locks cannot name it (a lock inherited across fork keeps its first
    owner's PID), the PID file's own number is accepted only if that process has the
    file open. Does not touch the lock; call it only when the lock is known to be held
    (or use lock_owner).
    """
    try:
        st = os.stat(path)
    except OSError:
        return 0
    for pid in _kernel_holders(st):
        if pid > 0 and pid_alive(pid) and _has_open(pid, st):
            return pid
    named = read_pid(path)
    return named if named > 0 and pid_alive(named) and _has_open(named, st) else 0


def lock_owner(path: Path) -> Optional[int]:
    """Read-only: the proven holder of path's flock, or None (free, or no holder can be shown).

    Never takes the lock, so any process (the CLI) may ask at any time.
    """
    if not path.exists() or not _kernel_holders(os.stat(path)):
        return None
    return proven_holder(path) or None


def lock_holder(path: Path) -> Optional[int]:
    """None if nobody holds the lock on path; else the proven holder's PID (proven_holder),
    0 when it is held by a process that cannot be identified (never signal that one).

    The PID file's text alone is not trusted: a file naming another live process
    would make the supervisor signal an innocent process. Probing takes the lock for
    an instant, so only the supervisor (single-threaded, never while forking) should
    probe worker PID files.
    """
    if not path.exists():
        return None
    fd = _try_lock(path)
    if fd is None:
        return proven_holder(path)
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
            raise AlreadyRunning(f"a supervisor for {self.paths.root}", proven_holder(self.paths.lock_file))
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
        raise AlreadyRunning(what, proven_holder(path))
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held[path] = fd
    return fd
