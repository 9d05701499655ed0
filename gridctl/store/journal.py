"""The writer's journal: money rows that did not fit in memory while the database was down.

One JSON object a line, `{"seq": n, "op": "add"|"upsert", "table": ..., "row": {...}}`,
Decimals as strings, in the order the rows were queued. The file is owner-only
(it holds a strategy's orders and fills), appended in batches, each batch flushed
and fsync'd before the rows leave memory, and truncated only after the database
committed them. A journal left by a crashed process is replayed by the next
writer given the same path.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Union

log = logging.getLogger(__name__)

JOURNAL_DIR = "journal"


def journal_path(state_dir: Union[str, Path], strategy: str) -> Path:
    """Where a strategy's writer journal lives: `<state_dir>/journal/<strategy>.jsonl`."""
    return Path(state_dir).expanduser() / JOURNAL_DIR / f"{strategy}.jsonl"


class Journal:
    """An append-only JSONL file of queued rows (see the module doc).

    Not thread-safe: the writer only touches it while holding its flush lock.
    """

    def __init__(self, path: Union[str, Path]):
        self.path = Path(path)
        self.count = 0  # rows in the file
        self.max_seq = 0  # highest seq in the file: a new writer numbers its rows after it
        if self.path.exists():
            for rec in self.read():
                self.count += 1
                self.max_seq = max(self.max_seq, int(rec["seq"]))

    def append(self, records: Iterable[dict[str, Any]], default: Any) -> int:
        """Append records, then flush and fsync; returns how many. Raises OSError (disk full...)."""
        data = "".join(json.dumps(r, default=default, separators=(",", ":")) + "\n" for r in records)
        if not data:
            return 0
        n = data.count("\n")
        new = not self.path.exists()
        if new:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            start = os.lseek(fd, 0, os.SEEK_END)
            try:
                view = memoryview(data.encode())
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except OSError:
                # A half-written batch would be a torn line in the middle of the file: cut it off.
                os.ftruncate(fd, start)
                raise
        finally:
            os.close(fd)
        if new:
            _fsync_dir(self.path.parent)  # the file itself must survive a crash, not only its bytes
        self.count += n
        return n

    def read(self) -> Iterator[dict[str, Any]]:
        """Every record, oldest first. A line that is not valid JSON is logged and skipped.

        Only a crash in the middle of `append` can leave one (the torn last line of a
        batch whose fsync never returned, so those rows were still in memory too).
        """
        if not self.path.exists():
            return
        with open(self.path, "rb") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    if not isinstance(rec, dict) or not {"seq", "op", "table", "row"} <= rec.keys():
                        raise ValueError("not a journal record")
                except ValueError as exc:
                    log.error("%s line %d is unreadable, skipped: %s (%r)", self.path, number, exc, line[:200])
                    continue
                yield rec

    def drop_first(self, n: int) -> None:
        """Forget the first `n` records (they are in the database now).

        All of them: the file is removed. Some: the rest is
        rewritten to a temporary file that replaces the journal atomically, so a
        crash leaves either the old journal or the new one, never a mix.
        """
        if n <= 0:
            return
        if n >= self.count:
            self.path.unlink(missing_ok=True)
            _fsync_dir(self.path.parent)
            self.count = 0
            return
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        kept = 0
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            for i, rec in enumerate(self.read()):
                if i >= n:
                    out.write(json.dumps(rec, separators=(",", ":")) + "\n")
                    kept += 1
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)
        self.count = kept


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on a directory; the data itself is synced
        pass
    finally:
        os.close(fd)
