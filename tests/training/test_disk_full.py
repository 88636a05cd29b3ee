"""A full disk in the artifacts folder mid-run (a real tmpfs of a few MB, filled up while the
run trains): a two-line message and exit status 2, no traceback, the last whole checkpoint
kept and no torn file beside it; once there is room, the run resumes and completes."""

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from convbench.store import Store

EXE = os.path.join(os.path.dirname(sys.executable), "convbench")


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MB tmpfs (mounting needs root; skipped with the reason elsewhere)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip() or 'not root'})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder: Path) -> Path:
    filler = folder / "filler"
    with open(filler, "wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError as err:
            assert err.errno == errno.ENOSPC
    return filler


def test_a_full_artifacts_disk_mid_run_stops_it_resumably(small_disk, tmp_path, cli):
    db = str(tmp_path / "runs.db")
    args = ["train", "--dataset", "digits", "--model", "B2FL8", "--epochs", "4", "--seed", "0",
            "--set", "train.threads=1", "--set", "measure.cost=false", "--quiet",
            "--store", db, "--artifacts", str(small_disk)]
    proc = subprocess.Popen([EXE, *args], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not [r for r in Store(db).list_runs() if r["epochs_done"] >= 1]:
        assert proc.poll() is None and time.time() < deadline, "the run ended or hung"
        time.sleep(0.05)
    filler = _fill(small_disk)  # the disk is full from now on
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 2, stderr
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) <= 2, stderr
    (run,) = Store(db).list_runs()
    assert "No space left" in stderr and f"--resume {run['id']}" in stderr, stderr
    assert run["status"] == "stopped" and run["epochs_done"] < 4
    folder = small_disk / run["id"]
    assert not list(folder.glob(".*.tmp"))  # nothing half-written
    assert (folder / "last.pt").is_file()

    filler.unlink()  # room again: the run goes on from its last whole checkpoint
    resumed = json.loads(cli("train", "--resume", run["id"], "--store", db,
                             "--artifacts", str(small_disk), "--json", check=True).stdout)
    assert resumed["status"] == "completed"
    assert [e["epoch"] for e in resumed["epochs"]] == [1, 2, 3, 4]
