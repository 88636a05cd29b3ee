"""Class predictions of a trained run on new image files: the top-k classes with their
probabilities, per image, with the run's own preparation; unreadable files are listed and
skipped.

>>> result = predict("3f9c01ab", ["shoe.png", "photos/"], top_k=3)   # doctest: +SKIP
>>> result.items[0].top[0]                                           # doctest: +SKIP
('Sneaker', 0.93)
>>> result.write("preds.csv")                                        # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..analysis.runs import logits_of
from ..atomic import write_text
from ..errors import ConfigError, DataError
from ..store import Store
from .images import decoded_batches, image_paths
from .trained import Trained, load_trained

OUT_FORMATS = (".csv", ".json")
# Folders of more files than this get a progress bar (short ones finish before it shows).
PROGRESS_MIN_FILES = 512


@dataclass
class ImagePrediction:
    path: str
    top: list[tuple[str, float]]  # (class, probability), most likely first


@dataclass
class Predictions:
    """Per readable image its top-k classes; ``skipped`` holds (file, reason) of the others."""

    run_id: str
    items: list[ImagePrediction] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"run_id": self.run_id,
                "predictions": [{"path": i.path, "top": [{"class": c, "probability": p}
                                                         for c, p in i.top]}
                                for i in self.items],
                "skipped": [{"path": p, "reason": r} for p, r in self.skipped]}

    def write(self, path: str | Path) -> Path:
        """Write ``.csv`` (one row per image: path, then class and probability per rank) or
        ``.json`` (the same, plus the skipped files)."""
        path = Path(path)
        if path.suffix.lower() == ".json":
            return write_text(path, json.dumps(self.as_dict(), indent=1) + "\n")
        k = max((len(i.top) for i in self.items), default=0)
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["path"] + [f"{w}_{r}" for r in range(1, k + 1)
                                    for w in ("class", "probability")])
        for item in self.items:
            writer.writerow([item.path] + [v for c, p in item.top for v in (c, f"{p:.6f}")])
        return write_text(path, buf.getvalue())


def check_out(path: str | Path | None) -> None:
    """Refuse an output file type :meth:`Predictions.write` cannot write, before any work."""
    if path is not None and Path(path).suffix.lower() not in OUT_FORMATS:
        raise ConfigError(f"--out {path}: write predictions to a .csv or .json file.")


def _probabilities(trained: Trained, x: torch.Tensor, tta: bool) -> torch.Tensor:
    # tta: the trainer's test-time views (train.tta), so --tta predicts as such a run evaluates
    return logits_of(trained.model, trained.prep, x, amp=trained.cfg.train.amp,
                     tta=tta).softmax(1)


def _bar(total: int, quiet: bool):
    if quiet or total < PROGRESS_MIN_FILES:
        return nullcontext(None)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    return Progress("predict", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=Console(file=sys.stderr), transient=True)


def predict_with(trained: Trained, images: list[str | Path], *, top_k: int = 5,
                 tta: bool = False, batch_size: int | None = None, quiet: bool = True,
                 on_skip: Callable[[str, str], None] | None = None) -> Predictions:
    """:func:`predict` for an already loaded run (see :func:`~.trained.load_trained`)."""
    if top_k < 1:
        raise ConfigError(f"--top-k {top_k}: give 1 or more.")
    paths = image_paths(images)
    record = trained.record
    k = min(top_k, len(trained.classes))
    result = Predictions(trained.run["id"])
    batch_size = batch_size or trained.cfg.train.eval_batch_size
    with _bar(len(paths), quiet) as bar:
        task = bar.add_task("predict", total=len(paths)) if bar else None
        for batch in decoded_batches(paths, channels=record["channels"],
                                     size=tuple(record["image_size"]), batch_size=batch_size):
            for path, why in batch.skipped:
                result.skipped.append((str(path), why))
                if on_skip:
                    on_skip(str(path), why)
            if len(batch.x):
                probs, idx = _probabilities(trained, batch.x, tta).topk(k, dim=1)
                for path, p_row, i_row in zip(batch.paths, probs.tolist(), idx.tolist(),
                                              strict=True):
                    result.items.append(ImagePrediction(
                        str(path), [(trained.classes[i], p) for i, p in zip(i_row, p_row,
                                                                             strict=True)]))
            if bar:
                bar.update(task, advance=len(batch.paths) + len(batch.skipped))
    if not result.items:
        path, why = result.skipped[0]
        raise DataError(f"None of the {len(paths)} file(s) could be read as an image "
                        f"(e.g. {path}: {why}).")
    return result


def predict(run: str, images: list[str | Path] | str | Path, *, store: Store | str | None = None,
            top_k: int = 5, tta: bool = False, batch_size: int | None = None,
            quiet: bool = True) -> Predictions:
    """Top-``k`` classes of each image (files, or folders of images) by trained run ``run``.

    The run's own preparation is applied (channels, size, normalisation of its training
    data); ``tta`` averages each image's logits over its mirror image and one-pixel shifts
    (the views of ``train.tta``, :mod:`convbench.training.tta`).

    >>> result = predict("3f9c01ab", "photos/", top_k=3)   # doctest: +SKIP
    >>> [(i.path, i.top[0][0]) for i in result.items][:1]  # doctest: +SKIP
    [('photos/a.png', 'Sneaker')]
    """
    files = image_paths([images] if isinstance(images, (str, Path)) else list(images))
    return predict_with(load_trained(store, run), list(files), top_k=top_k, tta=tta,
                        batch_size=batch_size, quiet=quiet)
