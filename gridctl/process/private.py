"""Owner-only files and folders: everything gridctl keeps under a state dir (issue 9).

The database, the venue state, logs, PID files and reports hold positions, keys and
balances; they are created 0600 (folders 0700) whatever the umask of the shell that
started gridctl. The supervisor sets the umask once for itself and its children
(`owner_only_umask`); the functions here give the same modes to a file written by a
process that did not (a CLI command, a venue started by hand).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Union

FILE_MODE = 0o600
DIR_MODE = 0o700
UMASK = 0o077

PathLike = Union[str, Path]


def owner_only_umask() -> int:
    """Make every file this process and its children create owner-only; returns the old umask."""
    return os.umask(UMASK)


def private_dir(path: PathLike, tighten_existing: bool = True) -> Path:
    """Create `path` and any missing parents 0700 (Path.mkdir(parents=True) makes parents
    with the umask's mode); an existing folder of ours is tightened to 0700 unless
    `tighten_existing` is False (a folder the user chose, such as the state dir itself)."""
    path = Path(path)
    missing = []
    p = path
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=DIR_MODE)
        except FileExistsError:
            pass  # made meanwhile by another process
    if tighten_existing or missing:
        tighten(path, DIR_MODE)
    return path


def tighten(path: PathLike, mode: int = FILE_MODE) -> None:
    """chmod `path` to `mode` when it lets group or others in (a file from an older gridctl,
    or one made under a loose umask); quietly nothing when it is absent or not ours."""
    try:
        if os.stat(path).st_mode & 0o077:
            os.chmod(path, mode)
    except OSError:
        pass


def create_private(path: PathLike) -> None:
    """Create `path` empty and 0600 unless it exists (before a library such as SQLite opens it
    with the umask's mode); an existing file is tightened."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        tighten(path)


def open_private(path: PathLike, mode: str = "w", encoding: str = "utf-8") -> IO:
    """open(path, mode) for writing ("w", "a", "wb", "ab"): a new file is created 0600, an
    existing one that group or others could read is tightened first."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    fd = os.open(path, flags, FILE_MODE)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, FILE_MODE)
    except OSError:
        pass  # not ours: write as before
    return os.fdopen(fd, mode, encoding=None if "b" in mode else encoding)


def write_private(path: PathLike, text: str) -> None:
    """Write a text file atomically (a temporary name, then rename), 0600."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open_private(tmp) as fh:
        fh.write(text)
    os.replace(tmp, path)
