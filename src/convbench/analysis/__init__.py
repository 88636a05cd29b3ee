"""Model analysis: deep features, SVMs on them, t-SNE maps, per-class and rank plots,
per-layer weight change — all read from (and recorded in) the run store.

>>> from convbench.analysis import extract_features, svm_run        # doctest: +SKIP
>>> feats = extract_features(store, run="3f9c01ab", out="feats.npz")  # doctest: +SKIP
>>> svm_run("feats.npz", store=store)["metrics"]["test_accuracy"]     # doctest: +SKIP
0.93
"""

from .features import Features, extract_features, load_features
from .per_class import per_class_plot
from .rank import rank_plot
from .svm import svm_run
from .tsne import tsne_plot
from .weights import weight_change, weights_plot

__all__ = ["Features", "extract_features", "load_features", "per_class_plot", "rank_plot",
           "svm_run", "tsne_plot", "weight_change", "weights_plot"]
