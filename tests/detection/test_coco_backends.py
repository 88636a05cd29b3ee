"""COCO evaluation: the backend choice, and faster-coco-eval giving pycocotools' APs."""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from convbench.detection.coco import read_coco
from convbench.detection.config import build
from convbench.detection.data import load_split
from convbench.detection.dataset import Instance, instance_mask, mask_to_rle
from convbench.detection.evaluate import coco_backend, coco_metrics
from convbench.detection.train import train_detector
from convbench.errors import ConfigError
from convbench.store import Store

FASTER = importlib.util.find_spec("faster_coco_eval") is not None


def _near_misses(pages, seed: int = 0):
    """Each ground-truth region shifted by a few pixels, as a scored prediction with a mask:
    hits at some IoU thresholds and misses at others, so the APs lie strictly inside 0…1."""
    rng = np.random.default_rng(seed)
    out = []
    for page in pages:
        found = []
        for inst in page.instances:
            dx, dy = rng.integers(-4, 5, size=2).tolist()
            x, y, w, h = inst.bbox
            polys = [[v + (dx if k % 2 == 0 else dy) for k, v in enumerate(p)]
                     for p in inst.polygons]
            moved = Instance(inst.label, (x + dx, y + dy, w, h), polygons=polys)
            mask = instance_mask(moved, page.height, page.width)
            found.append(Instance(inst.label, moved.bbox, rle=mask_to_rle(mask),
                                  area=float(mask.sum()), score=float(rng.uniform(0.05, 1))))
        out.append(found)
    return out


def test_unknown_or_missing_backends_are_refused_with_what_to_do():
    with pytest.raises(ConfigError, match="use auto, faster-coco-eval, pycocotools"):
        coco_backend("detectron")
    assert coco_backend("pycocotools") == "pycocotools"
    assert coco_backend() == ("faster-coco-eval" if FASTER else "pycocotools")


@pytest.mark.skipif(not FASTER, reason="faster-coco-eval is not installed "
                    "(pip install 'convbench[fast-eval]' to compare it with pycocotools)")
def test_faster_coco_eval_gives_the_aps_of_pycocotools_on_a_real_run(pages, tmp_path,
                                                                      tiny_config):
    cfg = tiny_config(pages.parent, iterations=3)
    cfg["measure"] = {"energy": False, "cost": False}
    run = train_detector(cfg, store=Store(str(tmp_path / "runs.db")))
    assert run.metrics["coco_eval_backend"].startswith("faster-coco-eval ")
    predicted = read_coco(Path(run["artifacts"]["predictions"]) / "predictions.json",
                          image_root=pages.parent).pages
    assert sum(len(p.instances) for p in predicted) > 20  # the run's own detections
    _, test = load_split(build(cfg).data)
    by_id = {p.id: p for p in predicted}
    # The run's (poor, 3-iteration) detections plus near misses of every region.
    mixed = [replace(page, instances=by_id[page.id].instances + extra)
             for page, extra in zip(test.pages, _near_misses(test.pages), strict=True)]
    slow = coco_metrics(test, mixed, backend="pycocotools")
    fast = coco_metrics(test, mixed, backend="faster-coco-eval")
    assert slow["coco_eval_backend"].startswith("pycocotools ")
    assert 0 < slow["box_AP"] < 1 and 0 < slow["mask_AP"] < 1
    assert set(fast) == set(slow)
    for key, value in slow.items():
        if key == "coco_eval_backend":
            continue
        if isinstance(value, dict):
            assert fast[key].keys() == value.keys(), key
            for cls, v in value.items():
                assert (fast[key][cls] is None) == (v is None), (key, cls)
                if v is not None:
                    assert fast[key][cls] == pytest.approx(v, abs=1e-6), (key, cls)
        elif value is None:
            assert fast[key] is None, key
        else:
            assert fast[key] == pytest.approx(value, abs=1e-6), key
