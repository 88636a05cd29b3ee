"""An SVM on deep features (the clip-art study's "base + SVM"), recorded as a run.

The grid (kernels × C × γ) is searched by stratified k-fold cross-validation on the training
images (the features file's train and val splits together: cross-validation replaces the
hold-out); the best setting is refitted on them, one-vs-rest as in the study, and scored once
on the test split. Features are standardised first (inside the cross-validation), so γ values
mean the same for any layer. Probabilities (for top-5, cross-entropy and the rank plots) come
from Platt scaling of the decision values. The run has kind ``svm`` and the metric keys of
trained networks, so comparisons and reports show it beside them.

>>> run = svm_run("feats.npz", store=Store("runs.db"))   # doctest: +SKIP
>>> run["kind"], run["metrics"]["svm_kernel"]             # doctest: +SKIP
('svm', 'rbf')
"""

from __future__ import annotations

import json
import time
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..measure import classification_metrics
from ..store import Store
from ..training.lifecycle import recorded_run, stored
from .features import Features, load_features
from .runs import save_predictions

KERNELS = ("rbf", "sigmoid", "linear", "poly")
DEFAULT_KERNELS = ("rbf", "sigmoid", "linear")
DEFAULT_C = (0.1, 1.0, 10.0)
DEFAULT_GAMMA: tuple[float | str, ...] = ("scale", 1e-3, 1e-4)


def param_grid(kernels, cs, gammas) -> list[dict[str, list]]:
    """scikit-learn grid: γ only where the kernel uses it.

    >>> param_grid(["rbf", "linear"], [1.0], ["scale"])
    [{'svc__kernel': ['rbf'], 'svc__C': [1.0], 'svc__gamma': ['scale']}, \
{'svc__kernel': ['linear'], 'svc__C': [1.0]}]
    """
    grid = []
    for k in kernels:
        if k not in KERNELS:
            raise ConfigError(f"SVM kernel {k!r}: use {', '.join(KERNELS)}.")
        entry: dict[str, list] = {"svc__kernel": [k], "svc__C": list(cs)}
        if k != "linear":
            entry["svc__gamma"] = list(gammas)
        grid.append(entry)
    return grid


def _positive(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and value > 0


def check_grid(kernels, cs, gammas, folds: int) -> None:
    """Refuse a grid scikit-learn would reject, before a run is stored for it.

    >>> check_grid(["rbf"], [1.0], ["scale", -1.0], 3)
    Traceback (most recent call last):
    ...
    convbench.errors.ConfigError: SVM γ = -1.0: γ must be a number > 0, 'scale' or 'auto'.
    """
    param_grid(kernels, cs, gammas)  # names an unknown kernel
    for c in cs:
        if not _positive(c):
            raise ConfigError(f"SVM C = {c}: C must be a number > 0, e.g. 0.1, 1 or 10.")
    for g in gammas:
        if g not in ("scale", "auto") and not _positive(g):
            raise ConfigError(f"SVM γ = {g}: γ must be a number > 0, 'scale' or 'auto'.")
    if folds < 2:
        raise ConfigError(f"SVM folds = {folds}: cross-validation needs at least 2 folds.")


def _folds(y: np.ndarray, wanted: int) -> int:
    counts = np.bincount(y) if len(y) else np.zeros(1, np.int64)
    smallest = int(counts[counts > 0].min()) if counts.any() else 0
    if smallest < 2:
        raise DataError("Cross-validation needs at least 2 training images per class.")
    return max(2, min(wanted, smallest))


def fit_svm(feats: Features, kernels=DEFAULT_KERNELS, cs=DEFAULT_C, gammas=DEFAULT_GAMMA,
            folds: int = 3, seed: int = 0) -> dict[str, Any]:
    """Grid-search, refit, score: metrics (test), probabilities and the chosen parameters."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    x = np.concatenate([feats.splits["train"][0], feats.splits["val"][0]])
    y = np.concatenate([feats.splits["train"][1], feats.splits["val"][1]])
    x_test, y_test = feats.splits["test"]
    if len(x_test) == 0:
        raise DataError("The features file has no test images to score the SVM on.")
    pipe = Pipeline([("scale", StandardScaler()),
                     ("svc", SVC(decision_function_shape="ovr", random_state=seed))])
    cv = StratifiedKFold(_folds(y, folds), shuffle=True, random_state=seed)
    search = GridSearchCV(pipe, param_grid(kernels, cs, gammas), cv=cv, n_jobs=1,
                          scoring="accuracy", refit=False)
    start = time.perf_counter()
    search.fit(x, y)
    best = search.best_params_
    svc = Pipeline([("scale", StandardScaler()),
                    ("svc", SVC(decision_function_shape="ovr", random_state=seed))])
    # Platt scaling (sigmoid) of the best SVM's decision values, fitted on cross-validated
    # predictions: what SVC(probability=True) did, in scikit-learn's current form.
    final = CalibratedClassifierCV(svc.set_params(**best), method="sigmoid", ensemble=False,
                                   cv=StratifiedKFold(_folds(y, folds), shuffle=True,
                                                      random_state=seed))
    final.fit(x, y)
    train_time = time.perf_counter() - start
    # SVC's probability columns follow the labels seen in training; map them to all classes.
    probs = np.zeros((len(x_test), len(feats.classes)), np.float64)
    probs[:, final.classes_] = final.predict_proba(x_test)
    logp = torch.from_numpy(np.log(np.clip(probs, 1e-12, 1.0)))
    metrics = classification_metrics(logp, torch.from_numpy(y_test.astype(np.int64)),
                                     len(feats.classes))
    metrics = {f"test_{k}" if k in ("accuracy", "loss", "top5") else k: v
               for k, v in metrics.items()}
    cv_rows = [{"params": {k.removeprefix("svc__"): v for k, v in p.items()}, "mean": float(m)}
               for p, m in zip(search.cv_results_["params"],
                               search.cv_results_["mean_test_score"], strict=True)]
    return {
        "metrics": metrics | {
            "classes": feats.classes, "best_val_accuracy": float(search.best_score_),
            "train_time_s": train_time, "epochs_run": None, "images_per_s": len(x) / train_time,
            "svm_kernel": best["svc__kernel"], "svm_C": best["svc__C"],
            "svm_gamma": best.get("svc__gamma"), "svm_cv_folds": cv.get_n_splits(),
            "features_dim": feats.dim, "train_images": len(y)},
        "probs": probs, "y_test": y_test, "cv": cv_rows,
    }


def _label(meta: dict[str, Any]) -> str:
    model = (meta.get("model") or {}).get("name", "features")
    source = f"run {meta['run_id']}" if meta.get("run_id") else model
    return f"{source} · {meta.get('layer', 'penultimate')}"


def svm_run(features: str | Path, *, store: Store | str | None = None, name: str | None = None,
            kernels=DEFAULT_KERNELS, cs=DEFAULT_C, gammas=DEFAULT_GAMMA, folds: int = 3,
            seed: int = 0, group_id: str | None = None) -> dict:
    """Fit the SVM on a features file and record it as a run of kind ``svm``; return the run."""
    check_grid(kernels, cs, gammas, folds)
    store = store if isinstance(store, Store) else Store(store)
    feats = load_features(features)
    meta = feats.meta
    source_model = (meta.get("model") or {}).get("name", "?")
    # The source network's config with the SVM in place of its classifier: a comparison with
    # the fine-tuned networks then differs in model.name and the svm section only.
    config = json.loads(json.dumps(meta.get("config") or {"data": meta.get("data") or {},
                                                          "model": meta.get("model") or {}}))
    config["name"] = name
    config.setdefault("model", {})["name"] = f"svm ({source_model})"
    config.setdefault("train", {})["seed"] = seed
    config["svm"] = {"kernels": list(kernels), "C": list(cs), "gamma": list(gammas),
                     "folds": folds, "features": meta.get("path"),
                     "source_run": meta.get("run_id"), "layer": meta.get("layer"),
                     "pool": meta.get("pool")}
    with recorded_run(store, "svm", config, seed=seed, name=name or f"svm on {_label(meta)}",
                      device="cpu", group_id=group_id, memory=False) as run:
        result = fit_svm(feats, kernels, cs, gammas, folds, seed)
        save_predictions(run.dir / "predictions.npz", result["probs"], result["y_test"],
                         feats.classes)
        (run.dir / "cv_results.json").write_text(json.dumps(result["cv"], indent=1))
        run.artifacts |= {"predictions": "predictions.npz", "cv_results": "cv_results.json"}
        run.metrics = result["metrics"]
    if meta.get("path"):
        store.update(run.id, artifacts={"features": meta["path"]})
    return stored(run)
