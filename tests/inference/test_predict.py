"""`convbench predict` and `convbench.inference.predict` on PNG files the test writes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from inference_helpers import write_pngs

from convbench.inference import predict
from convbench.inference.trained import load_trained
from convbench.training.tta import tta_logits


def _argmax(shared, x: np.ndarray) -> list[str]:
    trained = load_trained(shared.store, shared.run_id)
    with torch.inference_mode():
        logits = trained.model(trained.prep(torch.from_numpy(x), train=False))
    return [shared.classes[i] for i in logits.argmax(1).tolist()]


def test_predict_prints_the_top3_of_a_folder_of_20_pngs(shared):
    folder = shared.root / "twenty"
    paths = write_pngs(folder, shared.test_x[:20], shared.test_y[:20], shared.classes,
                       by_class=False)
    out = shared.root / "preds.json"
    proc = shared.cli("predict", shared.run_id, str(folder), "--top-k", "3", "--out", str(out),
                      subprocess_=True)
    assert proc.returncode == 0, proc.stderr
    for path in paths:
        assert path.name in proc.stdout
    assert "top 3" in proc.stdout and "top 4" not in proc.stdout
    rows = json.loads(out.read_text())["predictions"]
    assert [r["path"] for r in rows] == [str(p) for p in paths]
    assert all(len(r["top"]) == 3 for r in rows)
    for r in rows:
        probs = [t["probability"] for t in r["top"]]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    # The top-1 of the decoded files is the network's top-1 on the original pixels.
    assert [r["top"][0]["class"] for r in rows] == _argmax(shared, shared.test_x[:20])


def test_predict_in_python_with_csv_and_tta(shared):
    folder = shared.root / "five"
    write_pngs(folder, shared.test_x[:5], shared.test_y[:5], shared.classes, by_class=False)
    result = predict(shared.run_id, folder, store=shared.store, top_k=2, tta=True)
    assert len(result.items) == 5 and not result.skipped
    assert all(len(i.top) == 2 and i.top[0][0] in shared.classes for i in result.items)
    csv = result.write(shared.root / "five.csv").read_text().splitlines()
    assert csv[0] == "path,class_1,probability_1,class_2,probability_2" and len(csv) == 6
    # --tta is train.tta's mechanism: softmax of the logits averaged over its six views.
    trained = load_trained(shared.store, shared.run_id)
    with torch.inference_mode():
        x = trained.prep(torch.from_numpy(shared.test_x[:5]), train=False)
        probs = tta_logits(trained.model.eval(), x).softmax(1)
    for item, row in zip(result.items, probs, strict=True):
        assert item.top[0][1] == pytest.approx(float(row.max()), abs=1e-4)


def test_unreadable_files_are_listed_and_skipped(shared):
    folder = shared.root / "mixed"
    write_pngs(folder, shared.test_x[:3], shared.test_y[:3], shared.classes, by_class=False)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    proc = shared.cli("predict", shared.run_id, str(folder), "--top-k", "1")
    assert proc.returncode == 0, proc.stderr
    assert "skipped" in proc.stderr and "broken.png" in proc.stderr
    assert "00002.png" in proc.stdout and "broken.png" not in proc.stdout
