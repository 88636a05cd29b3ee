"""Where a store's run files live (checkpoints, weights, plots, logs), behind one small
interface that every worker on every machine goes through.

A plain folder — a local disk, or an NFS mount that every worker reaches — is used in place,
as it always was. Any other location is an fsspec URL (``s3://bucket/prefix`` where s3fs is
installed, ``gs://…`` with gcsfs, ``file:///mnt/shared/cb``), reached through fsspec rather
than a client of convbench's own. The training code only knows local paths, so with a URL each
worker writes to a cache folder of its own (``$CONVBENCH_ARTIFACTS_CACHE``, default under
``~/.cache/convbench``); a run's files are pushed to the URL after every checkpoint and when
the run ends, and fetched from it before the run resumes, on whichever machine that is.
Each file lands whole (written under a temporary name, then moved), so a kill mid-push leaves
the last whole checkpoint in place.

>>> import tempfile
>>> shared = Artifacts("file://" + tempfile.mkdtemp(), cache=Path(tempfile.mkdtemp()))
>>> _ = (shared.local / "r1").mkdir(); _ = (shared.local / "r1" / "last.pt").write_text("x")
>>> shared.push("r1"); shared.exists("r1/last.pt")
True
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from ..atomic import atomic_write
from ..errors import StoreError

ENV_CACHE = "CONVBENCH_ARTIFACTS_CACHE"


def _filesystem(url: str) -> tuple[Any, str]:
    """fsspec's filesystem and root path for ``url``; a one-line error when it cannot be
    used (no such protocol, its package not installed)."""
    try:
        from fsspec.core import url_to_fs
    except ImportError:
        raise StoreError(f"Artifacts at {url!r} need fsspec: `pip install fsspec` (and the "
                         "package of its protocol, e.g. s3fs), or give a folder.") from None
    try:
        fs, root = url_to_fs(url)
    except (ImportError, ValueError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise StoreError(f"Cannot use the artifacts location {url!r}: {reason}. "
                         "Install its fsspec package (s3fs for s3://) or give a folder.") from None
    return fs, root.rstrip("/")


class Artifacts:
    """The artifacts location of a store: ``local`` is the folder runs write in (the location
    itself for a folder, this worker's cache for a URL); :meth:`push` and :meth:`fetch` move
    a run's files between the two (nothing to do for a folder)."""

    def __init__(self, location: str | Path, cache: Path | None = None):
        text = str(location)
        self.url: str | None = text if "://" in text else None
        self._fs: Any = None
        self._root = ""
        if self.url is None:
            self.local = Path(text).expanduser().absolute()
        else:
            self._fs, self._root = _filesystem(self.url)
            self.local = (cache or _default_cache(self.url)).expanduser().absolute()
        self._pushed: dict[Path, tuple[int, int]] = {}  # file → (mtime, size) last pushed

    @property
    def location(self) -> str:
        """What the user gave: the URL, or the folder as an absolute path."""
        return self.url or str(self.local)

    def __repr__(self) -> str:
        return f"Artifacts({self.location!r})"

    def _failed(self, doing: str, err: OSError | Exception) -> StoreError:
        text = str(err).strip()
        reason = getattr(err, "strerror", None) or (text.splitlines()[0] if text
                                                     else type(err).__name__)
        what = "artifacts location" if self.url else "artifacts folder"
        return StoreError(f"Cannot {doing} the {what} {self.location!r} "
                          f"({reason}). Give a writable location that every worker reaches "
                          "with --artifacts (or CONVBENCH_ARTIFACTS).")

    def check(self) -> None:
        """Write and delete a small file at the location (and in the cache), so a worker
        with an unmounted, full or unreachable location says so before it claims work."""
        probe = f".probe-{os.getpid()}-{os.urandom(4).hex()}"
        try:
            self.local.mkdir(parents=True, exist_ok=True)
            (self.local / probe).write_bytes(b"x" * 4096)
            (self.local / probe).unlink()
            if self._fs is not None:
                self._fs.makedirs(self._root, exist_ok=True)
                self._fs.pipe_file(f"{self._root}/{probe}", b"x" * 4096)
                self._fs.rm_file(f"{self._root}/{probe}")
        except Exception as err:  # OSError, or any error of a remote filesystem's client
            raise self._failed("write to", err) from None

    def exists(self, name: str) -> bool:
        """Whether the file ``name`` (relative to the location) is there."""
        try:
            if self._fs is None:
                return (self.local / name).exists()
            return bool(self._fs.exists(f"{self._root}/{name}"))
        except Exception as err:
            raise self._failed("read", err) from None

    def write_text(self, name: str, text: str) -> None:
        """Write a small file at the location (the local folder too, for a URL)."""
        from ..atomic import write_text

        try:
            write_text(self.local / name, text)
            if self._fs is not None:
                self._fs.makedirs(f"{self._root}/{name}".rsplit("/", 1)[0], exist_ok=True)
                self._fs.pipe_file(f"{self._root}/{name}", text.encode())
        except Exception as err:
            raise self._failed("write to", err) from None

    def push(self, run_id: str) -> None:
        """Copy the run's new or changed files to the URL (each lands whole)."""
        if self._fs is None:
            return
        folder = self.local / run_id
        try:
            for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
                if not path.is_file() or path.name.startswith("."):  # temporaries
                    continue
                stat = path.stat()
                if self._pushed.get(path) == (stat.st_mtime_ns, stat.st_size):
                    continue
                target = f"{self._root}/{path.relative_to(self.local).as_posix()}"
                parent = target.rsplit("/", 1)[0]
                self._fs.makedirs(parent, exist_ok=True)  # local and NFS-like filesystems
                partial = f"{parent}/.{path.name}.{os.getpid()}.part"
                self._fs.put_file(str(path), partial)
                self._fs.mv(partial, target)
                self._pushed[path] = (stat.st_mtime_ns, stat.st_size)
        except Exception as err:
            raise self._failed(f"copy run {run_id}'s files to", err) from None

    def fetch(self, run_id: str) -> None:
        """Copy the run's files from the URL into the local folder (before it resumes here:
        the copy at the URL is the latest, wherever the run trained last)."""
        if self._fs is None:
            return
        remote = f"{self._root}/{run_id}"
        try:
            if not self._fs.exists(remote):
                return
            for source in self._fs.find(remote):
                relative = source[len(self._root) + 1:]
                if Path(relative).name.startswith("."):
                    continue
                target = self.local / relative
                atomic_write(target, lambda tmp, source=source: self._fs.get_file(source, tmp))
                stat = target.stat()
                self._pushed[target] = (stat.st_mtime_ns, stat.st_size)
        except Exception as err:
            raise self._failed(f"fetch run {run_id}'s files from", err) from None


def _default_cache(url: str) -> Path:
    base = os.environ.get(ENV_CACHE)
    if base:
        return Path(base)
    digest = hashlib.sha1(url.encode()).hexdigest()[:12]
    return Path.home() / ".cache" / "convbench" / "artifacts" / digest
