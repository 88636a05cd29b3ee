"""Deep features + SVM end to end: extract, fit, store as a run, show in the report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from convbench.analysis.features import extract_features, load_features
from convbench.analysis.svm import param_grid, svm_run
from convbench.errors import UnknownNameError

METRIC_KEYS = {"test_accuracy", "test_top5", "test_loss", "per_class_accuracy", "confusion",
               "classes", "macro_f1", "train_time_s", "best_val_accuracy"}


@pytest.fixture(scope="module")
def features(trained, tmp_path_factory):
    store, run = trained
    feats, path = extract_features(store, run=run.id, out=tmp_path_factory.mktemp("f") / "f")
    return feats, path


def test_penultimate_features_for_every_split(trained, features):
    store, run = trained
    feats, path = features
    assert path.suffix == ".npz"
    sizes = {s: len(y) for s, (_, y) in feats.splits.items()}
    assert sizes["train"] + sizes["val"] == 600 and sizes["test"] == 359
    # B2FL4 on 8×8: the final linear layer reads the 2nd dense layer's 32 activations.
    assert feats.dim == 32 and feats.meta["layer"] == "penultimate"
    back = load_features(path)
    np.testing.assert_array_equal(back.splits["test"][0], feats.splits["test"][0])
    assert back.classes == [str(i) for i in range(10)]
    assert store.get_run(run.id)["artifacts"]["features_penultimate"] == str(path)


def test_named_layer_is_pooled(trained, tmp_path):
    store, run = trained
    feats, _ = extract_features(store, run=run.id, layer="features.0", out=tmp_path / "c.npz")
    assert feats.dim == 4  # 4 filters, average-pooled
    with pytest.raises(UnknownNameError, match="features.0"):
        extract_features(store, run=run.id, layer="features.9", out=tmp_path / "x.npz")


def test_svm_run_has_the_train_run_metric_keys(trained, features):
    store, _ = trained
    run = svm_run(features[1], store=store, kernels=["rbf", "linear"], cs=[1.0, 10.0],
                  gammas=["scale"], folds=3)
    assert run["kind"] == "svm" and run["status"] == "completed"
    m = run["metrics"]
    assert METRIC_KEYS <= set(m)
    assert m["test_accuracy"] > 0.5 and m["test_top5"] >= m["test_accuracy"]
    assert len(m["per_class_accuracy"]) == 10 and len(m["confusion"]) == 10
    assert m["svm_kernel"] in ("rbf", "linear") and m["svm_cv_folds"] == 3
    cv = json.loads(open(run["artifacts"]["cv_results"]).read())
    assert len(cv) == 4  # rbf × 2 C + linear × 2 C
    with np.load(run["artifacts"]["predictions"]) as p:
        assert p["probs"].shape == (359, 10)
        np.testing.assert_allclose(p["probs"].sum(1), 1, atol=1e-6)
        acc = float((p["probs"].argmax(1) == p["y"]).mean())
    assert acc == pytest.approx(m["test_accuracy"])


def test_grid_gives_gamma_only_to_kernels_that_use_it():
    grid = param_grid(["sigmoid", "linear"], [1.0], [1e-4])
    assert grid[0]["svc__gamma"] == [1e-4] and "svc__gamma" not in grid[1]


def test_features_and_svm_from_the_command_line_show_in_the_report(trained, cli, tmp_path):
    store, run = trained
    db = store.url.removeprefix("sqlite:///")
    cli("features", run.id, "-o", "cli.npz", "--store", db, check=True)
    proc = cli("svm", "cli.npz", "--kernels", "linear", "--C", "1", "--folds", "2",
               "--name", "svm-digits", "--store", db, "--json", check=True)
    svm = json.loads(proc.stdout)
    assert svm["kind"] == "svm" and svm["metrics"]["test_accuracy"] > 0.5
    cli("report", run.id, svm["id"], "-o", "report.html", "--store", db, check=True)
    html = (tmp_path / "report.html").read_text()
    assert "svm-digits" in html or "svm (B2FL4)" in html
    assert f"{svm['metrics']['test_accuracy'] * 100:.1f}" in html
    listing = cli("runs", "list", "--kind", "svm", "--store", db, check=True).stdout
    assert svm["id"] in listing


def test_features_of_a_pretrained_model_without_a_run(cli, tmp_path):
    proc = cli("features", "--model", "efficientnet-lite0-imagenet", "--pretrained",
               "--dataset", "digits", "--set", "data.train_limit=100",
               "--set", "data.test_limit=50", "--image-size", "32", "-o", "lite.npz",
               "--store", str(tmp_path / "r.db"), check=True)
    assert "1280 features" in proc.stdout
    feats = load_features(tmp_path / "lite.npz")
    assert feats.splits["test"][0].shape == (50, 1280)
    assert torch.isfinite(torch.from_numpy(feats.splits["train"][0])).all()
