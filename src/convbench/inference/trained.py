"""A trained classification run, ready for new images: its network with the best weights, the
same eval-time batch preparation the trainer used, and the facts about its training data.

The network and its :class:`~convbench.training.augment.BatchPrep` are rebuilt by
:mod:`convbench.analysis.runs` exactly as the trainer built them. What the preparation needs
from the training data (its channels, image size, per-channel mean and std, split sizes) is
read once from the data set and kept beside the run as ``preprocessing.json``, so later
predictions, exports and model cards need neither the data set nor a second pass over it.

>>> trained = load_trained(store, "3f9c01ab")           # doctest: +SKIP
>>> trained.classes[:2], trained.record["mean"]           # doctest: +SKIP
(['T-shirt/top', 'Trouser'], [0.286])
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..analysis.runs import best_weights_path, build_model, get_run, load_weights, run_config
from ..atomic import write_text
from ..config import RunConfig
from ..data import DataBundle, Split, load_data
from ..errors import ConvbenchError, WeightsError
from ..store import Store
from ..training.augment import BatchPrep

RECORD = "preprocessing.json"


@dataclass
class Trained:
    """A run's network (eval mode, CPU, best weights), its batch preparation and data facts."""

    run: dict
    cfg: RunConfig
    model: nn.Module
    prep: BatchPrep
    record: dict

    @property
    def classes(self) -> list[str]:
        return list(self.record["classes"])

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the float tensor the network takes (after preparation)."""
        return (self.prep.channels, self.prep.side, self.prep.side)

    def normalisation(self) -> dict[str, list[float]]:
        """Per model-input channel: ``x = uint8 / 255``, then ``(x - mean) / std``.

        The values the preparation folds into one multiply-add (``scale``, ``shift``),
        written the way other runtimes expect them.
        """
        scale = self.prep.scale.flatten().double()
        shift = self.prep.shift.flatten().double()
        std = 1.0 / (255.0 * scale)
        return {"mean": (-shift * std).tolist(), "std": std.tolist()}


def _record_of(bundle: DataBundle) -> dict:
    return {
        "dataset": bundle.name,
        "classes": list(bundle.classes),
        "channels": bundle.channels,
        "image_size": list(bundle.image_size),
        "mean": list(bundle.mean),
        "std": list(bundle.std),
        "split_sizes": {"train": len(bundle.train), "val": len(bundle.val),
                        "test": len(bundle.test)},
    }


def shape_bundle(record: dict) -> DataBundle:
    """A data bundle without images: enough for ``build_model`` to size the network."""
    empty = Split(torch.zeros(0, record["channels"], 1, 1, dtype=torch.uint8),
                  torch.zeros(0, dtype=torch.long))
    return DataBundle(name=record["dataset"], classes=record["classes"], train=empty,
                      val=empty, test=empty, channels=record["channels"],
                      image_size=tuple(record["image_size"]), mean=tuple(record["mean"]),
                      std=tuple(record["std"]))


def data_record(store: Store, run: dict, cfg: RunConfig | None = None,
                bundle: DataBundle | None = None) -> dict:
    """The run's training-data facts: read from ``preprocessing.json``, else measured on
    the data set (``bundle`` when the caller already loaded it) and written there."""
    path = store.run_dir(run["id"]) / RECORD
    if path.is_file():
        return json.loads(path.read_text())
    cfg = cfg or run_config(run)
    record = _record_of(bundle or load_data(cfg.data, cfg.train.seed))
    write_text(path, json.dumps(record, indent=1) + "\n")
    store.update(run["id"], artifacts={"preprocessing": str(path)})
    return record


def stored_record(store: Store, run: dict) -> dict | None:
    """``preprocessing.json`` of a run if some earlier command wrote it (no data is read)."""
    path = store.run_dir(run["id"]) / RECORD
    return json.loads(path.read_text()) if path.is_file() else None


def require_weights(store: Store, run: dict) -> Path:
    """The best-weights file of a classification run, or a clear error saying why not."""
    kind = run.get("kind") or "train"
    if kind == "detect":
        raise ConvbenchError(f"Run {run['id']} is a detection run: use `convbench detect "
                             f"predict {run['id']} IMAGES` for its predictions.")
    if kind != "train":
        source = (run.get("metrics") or {}).get("source_run")
        hint = f" (it evaluated run {source}; pass that id)" if source else ""
        article = "an" if kind[:1] in "aeiou" else "a"
        raise ConvbenchError(f"Run {run['id']} is {article} {kind} run, not a trained "
                             f"network{hint}.")
    try:
        return best_weights_path(store, run)
    except WeightsError:
        raise WeightsError(f"Run {run['id']} ({run['status']}) has no weights: it stopped "
                           "before finishing an epoch. Use a run that trained at least one "
                           "epoch (`convbench runs list`).") from None


def load_trained(store: Store | str | None, run_id: str, bundle: DataBundle | None = None
                 ) -> Trained:
    """Rebuild the network of run ``run_id`` with its best weights, on the CPU.

    >>> trained = load_trained(None, "3f9c01ab")      # doctest: +SKIP
    >>> trained.input_shape                            # doctest: +SKIP
    (1, 28, 28)
    """
    store = store if isinstance(store, Store) else Store(store)
    run = get_run(store, run_id)
    weights = require_weights(store, run)
    cfg = run_config(run)
    record = data_record(store, run, cfg, bundle)
    model, prep = build_model(cfg, shape_bundle(record))
    load_weights(model, weights)
    return Trained(run, cfg, model.eval(), prep, record)
