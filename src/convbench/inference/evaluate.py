"""A trained run on another data set with the same classes: accuracy, top-5, macro-F1,
per-class accuracy and the confusion matrix, stored as a run of kind ``evaluate`` that names
its source run (``metrics.source_run``, ``config.source_run``), so ``convbench report`` can
show it beside the runs it came from.

Classes are matched by name, ignoring case and punctuation (a folder cannot be called
``T-shirt/top``; ``T-shirt_top`` matches it), so their order may differ. The images used:

- the run's own data set: its split as the run saw it (``test`` by default: the very images
  of the run's test accuracy);
- another data set: its own test split when it has one, otherwise every image (a folder of
  class folders is all new data); ``--split`` names another split, or ``all``.

>>> run = evaluate("3f9c01ab", "folder", data_dir="new-photos")      # doctest: +SKIP
>>> run.kind, run.metrics["source_run"], run.metrics["test_accuracy"]  # doctest: +SKIP
('evaluate', '3f9c01ab', 0.87)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..analysis.runs import get_run, logits_of
from ..data import DATASETS, load_data
from ..data.transforms import resize, to_channels
from ..errors import ConvbenchError, DataError
from ..measure import classification_metrics
from ..results import Run
from ..store import Store
from ..training.device import set_threads
from ..training.lifecycle import recorded_run, stored
from .trained import Trained, load_trained, require_weights

SPLITS = ("train", "val", "test", "all")
# Cost figures of the network itself: the same for the evaluation as for its training run.
MODEL_FIGURES = ("params_total", "params_trainable", "flops", "macs", "disk_bytes",
                 "latency_ms", "throughput_ips")


@dataclass
class EvalData:
    x: torch.Tensor  # uint8, in the run's training-data channels and size
    y: torch.Tensor  # labels in the *evaluated* data set's class order
    classes: list[str]
    split: str
    note: str


def class_key(name: str) -> str:
    """Name as classes are matched: lower case, letters and digits only.

    >>> class_key("T-shirt/top") == class_key("t-shirt_top")
    True
    """
    return re.sub(r"[^0-9a-z]+", "", name.lower())


def class_mapping(data_classes: list[str], run_classes: list[str]) -> list[int]:
    """For each class of the evaluated data, the index of the same class in the run.

    >>> class_mapping(["b", "a"], ["a", "b", "c"])
    [1, 0]
    >>> class_mapping(["a", "dog"], ["a", "b"])
    Traceback (most recent call last):
    ...
    convbench.errors.DataError: The data set has class(es) the run was not trained on: dog. \
The run knows: a, b.
    """
    index = {class_key(c): i for i, c in enumerate(run_classes)}
    unknown = [c for c in data_classes if class_key(c) not in index]
    if unknown:
        raise DataError(f"The data set has class(es) the run was not trained on: "
                        f"{', '.join(unknown)}. The run knows: {', '.join(run_classes)}.")
    return [index[class_key(c)] for c in data_classes]


def _same_data(cfg_data, dataset: str, data_dir: str | None) -> bool:
    if dataset != cfg_data.dataset:
        return False
    mine, theirs = cfg_data.data_dir, data_dir
    if mine is None or theirs is None:
        return mine == theirs
    return Path(mine).expanduser().resolve() == Path(theirs).expanduser().resolve()


def _own_split(trained: Trained, split: str | None) -> EvalData:
    cfg = trained.cfg
    bundle = load_data(cfg.data, cfg.train.seed)
    split = split or "test"
    parts = [bundle.train, bundle.val, bundle.test] if split == "all" else [getattr(bundle, split)]
    return EvalData(torch.cat([p.x for p in parts]), torch.cat([p.y for p in parts]),
                    list(bundle.classes), split,
                    f"{cfg.data.dataset}: the run's own {split} split")


def _new_data(trained: Trained, dataset: str, data_dir: str | None, split: str | None
              ) -> EvalData:
    cfg = trained.cfg
    dc = cfg.data.model_copy(update={"dataset": dataset, "data_dir": data_dir,
                                     "train_limit": None, "test_limit": None,
                                     "image_size": None, "channels": None})
    raw = DATASETS.get(dataset)(dc, cfg.train.seed)
    parts = {name: (x, y) for name, x, y in (("train", raw.x_train, raw.y_train),
                                             ("val", raw.x_val, raw.y_val),
                                             ("test", raw.x_test, raw.y_test))
             if x is not None and len(x)}
    split = split or ("test" if "test" in parts else "all")
    if split != "all" and split not in parts:
        raise DataError(f"{dataset} has no {split} split of its own (it has "
                        f"{', '.join(parts)}); give --split all or one of those.")
    chosen = list(parts.values()) if split == "all" else [parts[split]]
    x = torch.from_numpy(np.ascontiguousarray(np.concatenate([c[0] for c in chosen])))
    y = torch.from_numpy(np.concatenate([c[1] for c in chosen]).astype(np.int64))
    record = trained.record
    x = resize(to_channels(x, record["channels"]), tuple(record["image_size"]))
    what = "every image" if split == "all" else f"its {split} split"
    return EvalData(x, y, list(raw.classes), split, f"{dataset}: {what} ({len(y)} images)")


def evaluate(run: str, dataset: str, *, data_dir: str | None = None, split: str | None = None,
             store: Store | str | None = None, name: str | None = None) -> Run:
    """Evaluate trained run ``run`` on ``dataset``; store and return the ``evaluate`` run.

    >>> result = evaluate("3f9c01ab", "fashion-mnist")    # doctest: +SKIP
    >>> result.metrics["test_accuracy"] == get_run(Store(), "3f9c01ab")["metrics"][
    ...     "test_accuracy"]                               # doctest: +SKIP
    True
    """
    if split is not None and split not in SPLITS:
        raise ConvbenchError(f"--split {split!r}: use one of {', '.join(SPLITS)}.")
    store = store if isinstance(store, Store) else Store(store)
    source = get_run(store, run)
    require_weights(store, source)
    trained = load_trained(store, source["id"])
    own = _same_data(trained.cfg.data, dataset, data_dir)
    data = (_own_split(trained, split) if own
            else _new_data(trained, dataset, data_dir, split))
    mapping = torch.tensor(class_mapping(data.classes, trained.classes))
    targets = mapping[data.y]
    cfg = trained.cfg
    config = cfg.model_dump(mode="json")
    config["data"] |= {"dataset": dataset, "data_dir": data_dir}
    config["source_run"] = source["id"]
    src_metrics = source.get("metrics") or {}
    with recorded_run(store, "evaluate", config, seed=cfg.train.seed,
                      name=name or f"evaluate {source['id']} on {dataset}",
                      threads=set_threads(cfg.train.threads),
                      price_per_kwh=cfg.measure.price_per_kwh,
                      grid_gco2_per_kwh=cfg.measure.grid_gco2_per_kwh) as run_:
        run_.log(f"evaluate run {source['id']} on {data.note}")
        logits = logits_of(trained.model, trained.prep, data.x,
                           batch=cfg.train.eval_batch_size, amp=cfg.train.amp)
        m = classification_metrics(logits, targets, len(trained.classes))
        run_.metrics |= {f"test_{k}" if k in ("accuracy", "loss", "top5") else k: v
                         for k, v in m.items()}
        run_.metrics |= {"classes": trained.classes, "source_run": source["id"],
                         "eval_split": data.split, "eval_images": len(targets),
                         "eval_note": data.note,
                         **{k: src_metrics[k] for k in MODEL_FIGURES if k in src_metrics}}
    return stored(run_)
