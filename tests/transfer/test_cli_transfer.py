"""The transfer and analysis commands as a person runs them: tables (not only --json), and
one-line refusals (exit 2, no traceback, nothing stored) of options that cannot apply."""

from __future__ import annotations

import pytest

from convbench.analysis.features import extract_features
from convbench.analysis.svm import svm_run
from convbench.analysis.tsne import tsne_plot
from convbench.errors import ConfigError
from convbench.store import Store


def _db(store: Store) -> str:
    return store.url.removeprefix("sqlite:///")


def _refused(proc, message: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ") and message in proc.stderr, proc.stderr


@pytest.fixture(scope="module")
def features_file(trained, tmp_path_factory):
    store, run = trained
    return extract_features(store, run=run.id, out=tmp_path_factory.mktemp("f") / "f.npz")[1]


def test_per_class_prints_its_table(trained, cli, tmp_path):
    store, run = trained
    proc = cli("analyze", "per-class", run.id, "--out-dir", str(tmp_path), "--store",
               _db(store), check=True)
    assert "cross-entropy" in proc.stdout and "per-class.png" in proc.stdout
    assert len([line for line in proc.stdout.splitlines() if "0." in line]) >= 10  # a row each


def test_layers_of_the_documented_model_print_their_table(cli):
    # The command of docs/transfer.md, as printed there.
    proc = cli("analyze", "layers", "--model", "efficientnet-lite0-imagenet", "--image-size",
               "64", "--channels", "1", check=True)
    assert "conv_head" in proc.stdout and "412,160" in proc.stdout and "12,810" in proc.stdout


def test_models_listing_shows_the_install_extra(cli):
    # rich would read "[pretrained]" as markup and drop it.
    assert "pip install 'convbench[pretrained]'" in cli("models", check=True).stdout


@pytest.mark.parametrize("option, message", [
    (["--C", "0"], "SVM C = 0.0: C must be a number > 0"),
    (["--C", "1,-1"], "SVM C = -1.0: C must be a number > 0"),
    (["--gamma", "-1"], "SVM γ = -1.0: γ must be a number > 0, 'scale' or 'auto'"),
])
def test_svm_refuses_a_bad_grid_before_storing_a_run(features_file, cli, tmp_path, option,
                                                     message):
    db = str(tmp_path / "svm.db")
    _refused(cli("svm", str(features_file), *option, "--store", db), message)
    assert Store(db).list_runs() == []


def test_features_of_a_run_refuse_model_only_options(trained, cli):
    store, run = trained
    proc = cli("features", run.id, "--pretrained", "-o", "x.npz", "--store", _db(store))
    _refused(proc, "--pretrained goes with --model")


def test_tsne_layer_is_refused_for_stored_features(trained, features_file):
    store, _ = trained
    svm = svm_run(features_file, store=store, kernels=["linear"], cs=[1.0], folds=2)
    for source, what in ((svm["id"], "an SVM run"), (str(features_file), "a features file")):
        with pytest.raises(ConfigError, match=f"--layer features.0: {what} holds the features "
                                              "of one layer"):
            tsne_plot(store, source, layer="features.0")
