"""classification_metrics against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    recall_score,
    top_k_accuracy_score,
)

from convbench.measure import classification_metrics


def sample(n: int, classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    targets = torch.randint(0, classes, (n,), generator=g)
    logits = torch.randn(n, classes, generator=g)
    logits[torch.arange(n), targets] += 1.0  # better than chance, not perfect
    return logits, targets


@pytest.mark.parametrize("classes", [7, 10])
def test_metrics_match_sklearn(classes):
    logits, targets = sample(300, classes, seed=classes)
    m = classification_metrics(logits, targets, classes)
    y, scores = targets.numpy(), logits.numpy()
    pred = scores.argmax(1)
    labels = list(range(classes))
    probs = torch.softmax(logits.double(), 1).numpy()
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["top5"] == pytest.approx(top_k_accuracy_score(y, scores, k=5, labels=labels))
    assert m["loss"] == pytest.approx(log_loss(y, probs, labels=labels), rel=1e-5)
    assert m["confusion"] == confusion_matrix(y, pred, labels=labels).tolist()
    assert m["per_class_accuracy"] == pytest.approx(
        recall_score(y, pred, labels=labels, average=None).tolist())
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert 0 < m["accuracy"] < 1


def test_class_absent_from_targets_and_predictions():
    logits, targets = sample(120, 5, seed=3)
    targets = targets.clamp(max=3)  # class 4 never true ...
    logits[:, 4] = -100.0  # ... and never predicted
    m = classification_metrics(logits, targets, 5)
    pred = logits.argmax(1).numpy()
    assert m["per_class_accuracy"][4] is None
    assert m["confusion"][4] == [0] * 5
    assert m["macro_f1"] == pytest.approx(f1_score(targets.numpy(), pred, average="macro"))
    assert m["top5"] == 1.0  # five classes: the target is always among the top five


def test_top5_is_none_below_five_classes_and_values_are_plain_python():
    logits, targets = sample(40, 3, seed=1)
    m = classification_metrics(logits, targets, 3)
    assert m["top5"] is None
    assert isinstance(m["accuracy"], float) and isinstance(m["confusion"][0][0], int)
    assert np.array(m["confusion"]).sum() == 40


def test_half_precision_logits_are_accepted():
    logits, targets = sample(50, 6, seed=2)
    full = classification_metrics(logits, targets, 6)
    half = classification_metrics(logits.bfloat16(), targets, 6)
    assert half["loss"] == pytest.approx(full["loss"], rel=0.05)


@pytest.mark.parametrize(
    ("logits", "targets"),
    [
        (torch.zeros(4, 3), torch.zeros(4, dtype=torch.long)),  # wrong class count
        (torch.zeros(4, 5), torch.zeros(3, dtype=torch.long)),  # length mismatch
        (torch.zeros(0, 5), torch.zeros(0, dtype=torch.long)),  # empty
        (torch.zeros(2, 5), torch.tensor([0, 5])),  # target out of range
    ],
)
def test_bad_inputs_are_refused(logits, targets):
    with pytest.raises(ValueError):
        classification_metrics(logits, targets, 5)
