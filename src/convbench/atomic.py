"""Atomic file writes and file locks. A write goes to a temporary file in the same folder,
is fsynced, then renamed, so a kill at any moment leaves either the old file or the new one,
never half of one (a browser, a CI artifact upload or a resumed run never reads a torn file).
A lock (``file_lock``, ``hold_lock``) is an ``flock``, which the OS drops when its process
dies.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> write_text(folder / "a" / "note.txt", "done\\n").read_text()
'done\\n'
>>> sorted(p.name for p in (folder / "a").iterdir())
['note.txt']
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from .errors import ConvbenchError

# Below this many free bytes after a failed write, a full disk is the likely cause (torch and
# safetensors report ENOSPC as an opaque RuntimeError).
_NEARLY_FULL_BYTES = 1 << 20


class DiskFull(ConvbenchError):
    """A write failed because its folder's disk (or quota) is full; the file it was to
    replace is intact."""


def is_disk_full(err: BaseException, folder: str | Path) -> bool:
    """Whether the failed write ``err`` in ``folder`` ran out of space."""
    if isinstance(err, DiskFull):
        return True
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    try:
        return shutil.disk_usage(folder).free < _NEARLY_FULL_BYTES
    except OSError:
        return False

# mkstemp creates files readable by the owner only; the finished file gets the mode any new
# file would (0o666 less the umask), so reports stay readable by others, as users expect.
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str | Path, write: Callable[[str], object]) -> Path:
    """Call ``write(tmp_path)`` to produce the file, then move it onto ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except Exception as err:
        if is_disk_full(err, path.parent):  # checked while the torn file still takes space
            raise DiskFull(f"No space left in {path.parent} to write {path.name} (the last "
                           "whole one is kept): free some space there.") from None
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def remove_leftovers(path: str | Path) -> int:
    """Delete the temporary files that writes of ``path`` left when killed before their
    rename (only the owner of ``path`` may call this: a live writer's file would go too);
    returns how many."""
    path = Path(path)
    leftovers = list(path.parent.glob(f".{path.name}.*.tmp"))
    for tmp in leftovers:
        tmp.unlink(missing_ok=True)
    return len(leftovers)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)

    return atomic_write(path, write)


@contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) for the block, waiting for it
    if another process holds it. The OS drops the lock of a process that dies, even by
    SIGKILL, so a crash never leaves it held."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def hold_lock(path: str | Path) -> IO[str] | None:
    """Take the lock on ``path`` for as long as the returned handle stays open (for a
    process's lifetime), or None at once if another process holds it.

    >>> import tempfile, pathlib
    >>> lock = pathlib.Path(tempfile.mkdtemp()) / "x.lock"
    >>> held = hold_lock(lock)
    >>> held is not None, hold_lock(lock) is None   # a second open file description waits
    (True, True)
    """
    handle = open(path, "a")  # noqa: SIM115 — held open on purpose
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle
