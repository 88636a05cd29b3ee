"""train.batch_size = auto: 128, 64 or 32 by the size of the training split, resolved once the
data is loaded, stored as the number and used by the run and its LR range test alike (real
runs on generated images)."""

import pytest

import convbench
from convbench.config import build
from convbench.store import Store
from convbench.training.classification import batches_per_epoch
from convbench.training.lr_finder import LRFindSpec, run_range_test


def _cfg(size: int, **train) -> dict:
    return {"data": {"dataset": "synthetic", "synthetic_size": size, "image_size": 8,
                     "val_fraction": 0.1},
            "model": {"name": "B1FL4"}, "optim": {"lr": 0.003},
            "train": {"epochs": 1, **train}, "measure": {"cost": False}}


def test_auto_is_the_default_and_a_bad_size_names_both_forms(cli_inproc):
    assert build({}).train.batch_size == "auto"
    said = cli_inproc("train", "--set", "data.dataset=digits", "--set", "train.batch_size=0")
    assert said.returncode == 2
    assert said.stderr.strip() == (
        "error: --set: train.batch_size = 0 is invalid: Input should be greater than or equal "
        "to 1; or Input should be 'auto'.")


@pytest.mark.parametrize("size, expected", [(15_000, 64), (1_000, 32)])
def test_auto_gives_the_largest_batch_leaving_200_steps_and_stores_it(tmp_path, size, expected):
    # 15,000 images less a tenth for validation: 13,500 // 64 = 210 steps (128 would give 105).
    steps = []
    run = convbench.train(_cfg(size), store=Store(str(tmp_path / "runs.db")),
                          on_step=lambda iteration, sample: steps.append(iteration))
    assert run.status == "completed"
    assert run["config"]["train"]["batch_size"] == expected
    assert len(steps) == batches_per_epoch(run.metrics["train_images"], expected)


def test_an_explicit_batch_size_wins_and_the_range_test_resolves_auto_too(tmp_path):
    store = Store(str(tmp_path / "runs.db"))
    assert convbench.train(_cfg(1_000, batch_size=16), store=store)["config"]["train"][
        "batch_size"] == 16
    test = run_range_test(_cfg(1_000), LRFindSpec(epochs=1), store=store)
    assert test["config"]["train"]["batch_size"] == 32
    assert test.metrics["iters_per_epoch"] == batches_per_epoch(900, 32)
