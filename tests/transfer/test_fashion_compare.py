"""Done-when check, scaled down: on a Fashion-MNIST subset, fine-tuning EfficientNet-Lite0's
ImageNet weights beats the same network from scratch at equal epochs, in one comparison."""

from __future__ import annotations

from pathlib import Path

import pytest

from convbench import config as cfgmod
from convbench.compare import compare
from convbench.data import dataset_info

EXAMPLE = Path(__file__).parents[2] / "examples" / "transfer-fashion-lite0.yaml"


def _have_fashion() -> bool:
    return any(d["name"] == "fashion-mnist" and d["found"] for d in dataset_info())


@pytest.mark.slow
@pytest.mark.skipif(not _have_fashion(), reason="Fashion-MNIST files not installed "
                    "(apt-get install dataset-fashion-mnist)")
def test_pretrained_beats_scratch_on_a_fashion_mnist_subset(tmp_path):
    base = cfgmod.apply_overrides(cfgmod.load(EXAMPLE), [
        "data.train_limit=600", "data.test_limit=500", "data.image_size=48",
        "train.epochs=2", "train.threads=2"])
    group = compare(base, ["timm/tf_efficientnet_lite0", "efficientnet-lite0-imagenet"],
                    store=str(tmp_path / "runs.db"), report=tmp_path / "report.html")
    assert not group["errors"]
    acc = {r["config"]["model"]["name"]: r["metrics"]["test_accuracy"] for r in group["runs"]}
    assert acc["efficientnet-lite0-imagenet"] > acc["timm/tf_efficientnet_lite0"] + 0.10, acc
    assert "efficientnet-lite0-imagenet" in (tmp_path / "report.html").read_text()
