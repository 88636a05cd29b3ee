"""Downloads into the cache: atomic file writes and safe tar extraction.

A download is written to a temporary name and renamed only when complete, so an interrupted
run never leaves a half file that looks finished.

>>> fetch("http://127.0.0.1:9/x.gz", Path("/tmp/x.gz"), timeout=2)  # doctest: +SKIP
"""

from __future__ import annotations

import os
import shutil
import tarfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from ..errors import DataError


def fetch(url: str, dest: Path, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` atomically; network failures raise :class:`DataError`."""
    tmp = dest.with_name(f".{dest.name}.part-{os.getpid()}")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as out:
            shutil.copyfileobj(resp, out, 1 << 20)
            expected = resp.headers.get("Content-Length")
        got = tmp.stat().st_size
        if expected is not None and int(expected) != got:
            raise DataError(f"Download of {url} stopped after {got} of {expected} bytes. "
                            "Retry with --download.")
        os.replace(tmp, dest)
    except urllib.error.HTTPError as err:
        raise DataError(f"Could not download {url}: HTTP {err.code} {err.reason}. "
                        f"Fetch it by hand into {dest.parent} and retry.") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise DataError(f"Could not download {url} ({reason}). Check the network connection "
                        f"and that {dest.parent} is writable, or fetch the file by hand into "
                        "that folder and retry.") from None
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def safe_extract_tar(archive: Path, dest: Path) -> list[Path]:
    """Extract regular files and folders of ``archive`` into ``dest``; return top-level paths.

    Members with absolute paths or ``..`` escaping ``dest`` are refused; links and device files
    are skipped, so a hostile archive cannot write outside ``dest``.  Extraction happens in a
    temporary folder that is moved into place only when complete.
    """
    dest = dest.resolve()
    staging = dest / f".extract-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                target = (staging / member.name).resolve()
                if member.name.startswith("/") or not target.is_relative_to(staging):
                    raise DataError(f"{archive}: refusing unsafe path {member.name!r} in archive.")
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                elif member.isfile():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    src = tar.extractfile(member)
                    assert src is not None  # regular files always have content
                    with src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
        tops = []
        for item in sorted(staging.iterdir()):
            final = dest / item.name
            if final.is_dir():
                shutil.rmtree(final)
            os.replace(item, final)
            tops.append(final)
        return tops
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise DataError(f"{archive}: truncated or corrupt archive ({err}). Delete it and "
                        "download again with --download.") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
