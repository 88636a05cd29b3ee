"""t-SNE, per-class, rank and weight-change figures, produced from the store and recorded."""

from __future__ import annotations

import numpy as np
import pytest
from transfer_helpers import tiny

from convbench.analysis.features import extract_features
from convbench.analysis.per_class import per_class_plot
from convbench.analysis.rank import rank_plot
from convbench.analysis.report import write_analysis_report
from convbench.analysis.svm import svm_run
from convbench.analysis.tsne import tsne_plot
from convbench.analysis.weights import weights_plot
from convbench.errors import ConvbenchError
from convbench.training import train


def _is_png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _recorded(store, run_id, key):
    art = store.get_run(run_id)["artifacts"]
    return art.get(f"{key}_png"), art.get(f"{key}_svg")


@pytest.fixture(scope="module")
def svm(trained, tmp_path_factory):
    store, run = trained
    _, path = extract_features(store, run=run.id, out=tmp_path_factory.mktemp("f") / "f.npz")
    return svm_run(path, store=store, kernels=["linear"], cs=[1.0], folds=2)


def test_tsne_of_a_run_and_of_an_svm_run(trained, svm):
    store, run = trained
    paths = tsne_plot(store, run.id, split="test", max_points=150, perplexity=10)
    assert _is_png(paths["png"]) and paths["svg"].read_text().lstrip().startswith("<?xml")
    assert _recorded(store, run.id, "tsne_test") == (str(paths["png"]), str(paths["svg"]))
    svm_paths = tsne_plot(store, svm["id"], split="train", max_points=100, perplexity=10)
    assert svm_paths["png"].parent == store.run_dir(svm["id"])
    assert _recorded(store, svm["id"], "tsne_train")[0] == str(svm_paths["png"])


def test_per_class_bars_from_stored_predictions(trained, svm):
    store, run = trained
    for r in (run, svm):
        rows, paths = per_class_plot(store, r["id"])
        assert [x["class"] for x in rows] == [str(i) for i in range(10)]
        assert sum(x["images"] for x in rows) == 359
        m = store.get_run(r["id"])["metrics"]
        np.testing.assert_allclose([x["top1"] for x in rows], m["per_class_accuracy"], atol=0.02)
        assert all(x["top5"] >= x["top1"] for x in rows)
        assert _is_png(paths["png"]) and _recorded(store, r["id"], "per_class")[0]
    assert "predictions" in store.get_run(run.id)["artifacts"]  # cached for the next plot


def test_rank_of_one_class_in_two_runs(trained, svm):
    store, run = trained
    rows, paths = rank_plot(store, run.id, svm["id"], "3", limit=8)
    assert len(rows) == 8
    assert all(1 <= r["a_rank"] <= 10 and 1 <= r["b_rank"] <= 10 for r in rows)
    assert all(0 <= r["a_prob"] <= 1 for r in rows)
    assert _is_png(paths["png"])
    assert _recorded(store, svm["id"], f"rank_3_vs_{run.id}")[0] == str(paths["png"])
    with pytest.raises(ConvbenchError, match="Unknown class"):
        rank_plot(store, run.id, svm["id"], "pelican")


def test_weight_change_against_the_start_and_another_run(trained, tmp_path):
    store, run = trained
    rows, paths = weights_plot(store, run.id)
    assert [r["layer"] for r in rows][:2] == ["features.0.0", "features.0.1"]
    assert all(r["ssd"] > 0 for r in rows)  # one epoch moved every layer
    assert _is_png(paths["png"]) and _recorded(store, run.id, "weights_vs_start")[0]
    frozen = train(tiny(model={"name": "B2FL4", "batch_norm": True,
                               "pretrained": run["artifacts"]["best_weights"],
                               "transfer": {"freeze": 1}}), store=store)
    rows, _ = weights_plot(store, frozen.id, run.id)
    change = {r["layer"]: r["ssd"] for r in rows}
    # Frozen unit 0 did not move from the pretrained weights; the rest did.
    assert change["features.0.0"] == 0 and change["features.0.1"] == 0
    assert change["features.1.0"] > 0 and change["classifier.5"] > 0
    # Against its own rebuilt start the same holds: the rebuild reproduces the start.
    start_rows, _ = weights_plot(store, frozen.id)
    assert {r["layer"]: r["ssd"] for r in start_rows}["features.0.0"] == 0


def test_analysis_page_embeds_the_recorded_figures(trained, svm, tmp_path):
    store, run = trained
    per_class_plot(store, run.id)
    path = write_analysis_report(store, [run.id, svm["id"]], tmp_path / "a.html")
    html = path.read_text()
    assert html.count("data:image/png;base64,") >= 1 and "per class" in html
