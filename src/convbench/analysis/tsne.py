"""t-SNE map of deep features, coloured by class (the clip-art study's figure 5.1).

The source is a features file or a run: a trained run's penultimate activations, or the
features an SVM run was fitted on. Up to ``max_points`` images (a stratified, seeded subset)
are reduced with PCA to 50 dimensions and embedded with scikit-learn's t-SNE.

>>> paths = tsne_plot(store, "3f9c01ab", split="test")   # doctest: +SKIP
>>> sorted(paths)                                        # doctest: +SKIP
['png', 'svg']
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError, StoreError
from ..store import Store
from .features import SPLITS, Features, features_from_run, load_features
from .figures import new_figure, record, save_figure
from .plotting import class_colours
from .runs import get_run

PCA_DIMS = 50


def _subset(y: np.ndarray, limit: int, seed: int) -> np.ndarray:
    if len(y) <= limit:
        return np.arange(len(y))
    from ..data.splits import stratified_indices
    return np.sort(stratified_indices(y, limit, seed))


def embed(x: np.ndarray, perplexity: float = 30.0, seed: int = 0) -> np.ndarray:
    """2-D t-SNE coordinates of the rows of ``x`` (PCA to 50 dimensions first).

    >>> embed(np.random.default_rng(0).normal(size=(40, 8)), perplexity=5).shape
    (40, 2)
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    if len(x) < 5:
        raise ConfigError(f"t-SNE needs at least 5 images, got {len(x)}.")
    x = x.reshape(len(x), -1).astype(np.float64)
    if x.shape[1] > PCA_DIMS and len(x) > PCA_DIMS:
        x = PCA(PCA_DIMS, random_state=seed).fit_transform(x)
    perplexity = min(perplexity, (len(x) - 1) / 3)
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)


def _source(store: Store, source: str, split: str,
            layer: str | None) -> tuple[Features, str | None]:
    path = Path(source)
    if path.suffix == ".npz":
        feats = _one_layer(load_features(path), layer, "a features file")
        run_id = feats.meta.get("run_id")
        try:
            store.resolve_id(run_id) if run_id else None
        except StoreError:
            run_id = None  # features of a run in another store: write beside the file
        return feats, run_id
    run = get_run(store, source)
    if run.get("kind") == "svm":
        features = ((run.get("config") or {}).get("svm") or {}).get("features") or ""
        return _one_layer(load_features(features), layer, "an SVM run"), run["id"]
    return features_from_run(store, run["id"], layer, splits=(split,)), run["id"]


def _one_layer(feats: Features, layer: str | None, what: str) -> Features:
    # Stored features are of one layer already: a --layer would be silently ignored.
    if layer is not None:
        raise ConfigError(f"--layer {layer}: {what} holds the features of one layer "
                          f"({feats.meta.get('layer', 'penultimate')}); --layer picks the layer "
                          "of a trained run.")
    return feats


def tsne_plot(store: Store, source: str, *, split: str = "test", layer: str | None = None,
              perplexity: float = 30.0, max_points: int = 2000, seed: int = 0,
              out_dir: str | Path | None = None) -> dict[str, Path]:
    """Draw the t-SNE map of ``source`` (features file or run id) and record it in the run."""
    if split not in SPLITS:
        raise ConfigError(f"--split {split!r}: use one of {', '.join(SPLITS)}.")
    feats, run_id = _source(store, source, split, layer)
    x, y = feats.splits[split]
    keep = _subset(y, max_points, seed)
    xy = embed(x[keep], perplexity, seed)
    y = y[keep]
    fig = new_figure(8.0, 6.5)
    ax = fig.add_subplot()
    colours = class_colours(len(feats.classes))
    for c, name in enumerate(feats.classes):
        mask = y == c
        if mask.any():
            ax.scatter(xy[mask, 0], xy[mask, 1], s=9, color=colours[c], label=name, alpha=0.8,
                       linewidths=0)
    ax.set_xticks([])
    ax.set_yticks([])
    origin = f"run {run_id}" if run_id else Path(feats.meta.get("path", "")).name
    ax.set_title(f"t-SNE of {feats.meta.get('layer', 'penultimate')} activations, "
                 f"{split} split ({len(y)} images) — {origin}", fontsize=10)
    ax.legend(fontsize=7, markerscale=2, loc="center left", bbox_to_anchor=(1.0, 0.5),
              frameon=False, ncols=1 if len(feats.classes) <= 25 else 2)
    folder = out_dir or (store.run_dir(run_id) if run_id else
                         Path(feats.meta.get("path", ".")).parent)
    paths = save_figure(fig, folder, f"tsne-{split}")
    record(store, run_id, f"tsne_{split}", paths)
    return paths
