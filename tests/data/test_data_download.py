import io
import os
import socket
import tarfile
from pathlib import Path

import pytest

from convbench.config import DataConfig
from convbench.data import cifar, idx, load_data
from convbench.data.download import fetch, safe_extract_tar
from convbench.errors import DataError


def _cache() -> Path:
    return Path(os.environ["XDG_CACHE_HOME"]) / "convbench"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends


def test_mnist_download_into_cache_then_offline(idx_dir, http_dir, monkeypatch):
    served, url = http_dir
    for f in idx_dir.iterdir():
        (served / f.name).write_bytes(f.read_bytes())
    monkeypatch.setitem(idx.URLS, "mnist", url)
    b = load_data(DataConfig(dataset="mnist", download=True), seed=0)
    assert (len(b.train) + len(b.val), len(b.test)) == (40, 20)
    assert any("downloaded" in n for n in b.notes)
    cached = sorted(p.name for p in (_cache() / "mnist").iterdir())
    assert cached == sorted(f.name for f in idx_dir.iterdir())  # no leftover .part files
    for f in served.iterdir():
        f.unlink()  # now only the cache has the data
    assert len(load_data(DataConfig(dataset="mnist"), seed=0).test) == 20


def test_unreachable_network_is_a_clear_data_error(monkeypatch):
    monkeypatch.setitem(idx.URLS, "mnist", f"http://127.0.0.1:{_closed_port()}/")
    with pytest.raises(DataError, match="Could not download"):
        load_data(DataConfig(dataset="mnist", download=True), seed=0)
    assert not any((_cache() / "mnist").glob("*"))


def test_http_error_is_a_data_error(http_dir, tmp_path):
    _, url = http_dir
    with pytest.raises(DataError, match="HTTP 404"):
        fetch(url + "missing.gz", tmp_path / "missing.gz")
    assert not (tmp_path / "missing.gz").exists()


def test_cifar10_download_and_extract(cifar10_dir, http_dir, monkeypatch):
    served, url = http_dir
    with tarfile.open(served / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(cifar10_dir, arcname="cifar-10-batches-py")
    monkeypatch.setitem(cifar.URLS, "cifar10", url + "cifar-10-python.tar.gz")
    b = load_data(DataConfig(dataset="cifar10", download=True), seed=0)
    assert len(b.test) == 10
    assert (_cache() / "cifar10" / "cifar-10-batches-py" / "batches.meta").is_file()
    assert not (_cache() / "cifar10" / "cifar-10-python.tar.gz").exists()


def _tar_with(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def test_safe_extract_refuses_path_escape(tmp_path):
    evil = tarfile.TarInfo("../escaped.txt")
    evil.size = 2
    archive = _tar_with(tmp_path / "a.tar.gz", [(evil, b"hi")])
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(DataError, match="unsafe path"):
        safe_extract_tar(archive, dest)
    assert not (tmp_path / "escaped.txt").exists() and list(dest.iterdir()) == []


def test_safe_extract_skips_links_and_keeps_files(tmp_path):
    good = tarfile.TarInfo("pkg/data.bin")
    good.size = 3
    link = tarfile.TarInfo("pkg/passwd")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    archive = _tar_with(tmp_path / "b.tar.gz", [(good, b"abc"), (link, None)])
    dest = tmp_path / "dest"
    dest.mkdir()
    assert safe_extract_tar(archive, dest) == [dest.resolve() / "pkg"]
    assert (dest / "pkg" / "data.bin").read_bytes() == b"abc"
    assert not (dest / "pkg" / "passwd").exists()


def test_truncated_archive_is_a_data_error(cifar10_dir, tmp_path):
    archive = tmp_path / "c.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(cifar10_dir, arcname="cifar-10-batches-py")
    archive.write_bytes(archive.read_bytes()[:3000])
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(DataError, match="truncated or corrupt archive"):
        safe_extract_tar(archive, dest)
    assert list(dest.iterdir()) == []
