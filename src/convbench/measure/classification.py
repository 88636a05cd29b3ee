"""Quality of a classifier from its logits: accuracy, top-5, loss, confusion matrix, macro F1.

All computed with whole-tensor torch ops on the tensors' device; results are plain Python
values (JSON-ready for the run store).

>>> import torch
>>> logits = torch.tensor([[2.0, 0.1, 0.0], [0.2, 1.5, 0.1], [0.3, 0.2, 0.1]])
>>> m = classification_metrics(logits, torch.tensor([0, 1, 2]), num_classes=3)
>>> m["accuracy"], m["confusion"], m["top5"]
(0.6666666666666666, [[1, 0, 0], [0, 1, 0], [1, 0, 0]], None)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def classification_metrics(logits: torch.Tensor, targets: torch.Tensor, num_classes: int) -> dict:
    """Metrics of ``logits`` (N×C, C == num_classes) against integer ``targets`` (N).

    Returns ``accuracy`` (top-1, 0..1), ``top5`` (None with fewer than 5 classes), ``loss``
    (mean cross-entropy), ``per_class_accuracy`` (recall of each class; None for a class with
    no samples), ``confusion`` (rows = true class, columns = predicted) and ``macro_f1``
    (unweighted mean F1 over the classes present in targets or predictions, as scikit-learn's
    ``f1_score(average="macro")``).

    >>> m = classification_metrics(torch.eye(5) * 3, torch.arange(5), num_classes=5)
    >>> m["accuracy"], m["top5"], m["macro_f1"]
    (1.0, 1.0, 1.0)
    """
    if logits.ndim != 2 or logits.shape[1] != num_classes:
        raise ValueError(f"logits must be N×{num_classes}, got shape {tuple(logits.shape)}")
    if targets.ndim != 1 or targets.shape[0] != logits.shape[0] or targets.shape[0] == 0:
        raise ValueError(f"targets must be a non-empty vector of length {logits.shape[0]}, "
                         f"got shape {tuple(targets.shape)}")
    targets = targets.to(device=logits.device, dtype=torch.long)
    if bool((targets < 0).any() | (targets >= num_classes).any()):
        raise ValueError(f"targets must lie in 0..{num_classes - 1}")
    logits = logits.float()

    preds = logits.argmax(dim=1)
    confusion = torch.bincount(targets * num_classes + preds, minlength=num_classes**2)
    confusion = confusion.reshape(num_classes, num_classes)
    true_pos = confusion.diagonal()
    support = confusion.sum(dim=1)
    predicted = confusion.sum(dim=0)

    # F1 = 2TP / (2TP + FP + FN) = 2TP / (support + predicted); classes absent from both
    # targets and predictions are left out of the mean, as scikit-learn does by default.
    present = (support + predicted) > 0
    f1 = 2 * true_pos[present].double() / (support + predicted)[present].double()

    recall = true_pos.double() / support.clamp(min=1).double()
    top5 = None
    if num_classes >= 5:
        hits = (logits.topk(5, dim=1).indices == targets[:, None]).any(dim=1)
        top5 = hits.double().mean().item()

    return {
        "accuracy": (preds == targets).double().mean().item(),
        "top5": top5,
        "loss": F.cross_entropy(logits, targets).item(),
        "per_class_accuracy": [r if n > 0 else None
                               for r, n in zip(recall.tolist(), support.tolist(), strict=True)],
        "confusion": confusion.tolist(),
        "macro_f1": f1.mean().item(),
    }
