"""Artifacts at an fsspec URL (here ``file://``, fsspec's real local filesystem): a run trains
in this machine's cache and its files land at the URL, where a store on another "machine"
(another cache) finds them."""

import json

import pytest

from convbench.errors import StoreError
from convbench.store import Store
from convbench.store.artifacts import Artifacts


def test_a_run_with_artifacts_at_a_url_is_found_there_by_another_machine(tmp_path, cli,
                                                                         monkeypatch):
    shared = tmp_path / "shared"
    url = f"file://{shared}"
    db = str(tmp_path / "runs.db")
    run = json.loads(cli("train", "--dataset", "digits", "--model", "B2FL4", "--epochs", "1",
                         "--set", "measure.cost=false", "--store", db, "--artifacts", url,
                         "--json", "--quiet", check=True,
                         env={"CONVBENCH_ARTIFACTS_CACHE": str(tmp_path / "cache-a")}).stdout)
    assert run["metrics"]["artifacts_at"] == f"{url}/{run['id']}"
    at_url = {p.name for p in (shared / run["id"]).iterdir()}
    assert {"last.pt", "train.log", "config.yaml"} <= at_url
    assert not [name for name in at_url if name.startswith(".")]  # nothing half-copied

    elsewhere = Store(db, artifacts=url)
    elsewhere.artifacts.local = elsewhere.artifacts_root = tmp_path / "cache-b"
    folder = elsewhere.run_dir(run["id"])  # fetched from the URL
    assert (folder / "last.pt").read_bytes() == (shared / run["id"] / "last.pt").read_bytes()


def test_an_unusable_artifacts_url_is_one_line(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.raises(StoreError, match="Cannot write to the artifacts location"):
        Artifacts(f"file://{blocked}/sub", cache=tmp_path / "cache").check()
    with pytest.raises(StoreError, match="Protocol not known"):
        Artifacts("nosuch://bucket/x")
