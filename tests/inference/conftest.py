"""One real Fashion-MNIST run (custom-cnn, 1 epoch on a subset; the 1,000 test images are real
Fashion-MNIST test images), trained once through the CLI and shared by every test here."""

from __future__ import annotations

import subprocess

import pytest
from inference_helpers import EXE, Shared, have_fashion

from convbench import config as cfgmod
from convbench.data import load_data
from convbench.store import Store


@pytest.fixture(scope="session")
def shared(tmp_path_factory) -> Shared:
    if not have_fashion():
        pytest.skip("Fashion-MNIST files not installed (apt-get install dataset-fashion-mnist)")
    root = tmp_path_factory.mktemp("inference")
    store = str(root / "runs.db")
    proc = subprocess.run(
        [EXE, "train", "--dataset", "fashion-mnist", "--epochs", "1", "--store", store, "-q",
         "--set", "model.name=custom-cnn", "--set", "data.train_limit=1000",
         "--set", "data.test_limit=1000", "--set", "measure.cost=false",
         # fp32 evaluation: the equality checks below must not hinge on bf16 rounding
         "--set", "train.amp=false", "--set", "train.threads=2"],
        cwd=root, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    (run,) = Store(store).list_runs()
    cfg = cfgmod.build(run["config"])
    test = load_data(cfg.data, cfg.train.seed).test  # the very images of the run's test metrics
    return Shared(root, store, run["id"], test.x.numpy(), test.y.numpy(),
                  run["metrics"]["classes"])
