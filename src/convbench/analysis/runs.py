"""Rebuild what a stored run trained: its config, data split, model and input preparation.

Everything is rebuilt from the run record, so analyses work on any machine holding the
store. The model is built exactly as the trainer built it (same seed, then
``create_model``), so ``weights="start"`` gives the run's initial weights — the pretrained
start of a fine-tuning run — and ``weights="best"`` loads the best epoch's weights.

>>> loaded = open_run(store, "3f9c01ab")            # doctest: +SKIP
>>> loaded.model(loaded.prep(loaded.bundle.test.x[:4], train=False)).shape  # doctest: +SKIP
torch.Size([4, 10])
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import config as cfgmod
from ..config import RunConfig
from ..data import DataBundle, load_data
from ..errors import ConvbenchError, StoreError, WeightsError
from ..models import create_model, input_requirements
from ..store import Store
from ..training.augment import BatchPrep
from ..training.device import amp_dtype, autocast, select_device
from ..training.tta import tta_logits

PREDICTIONS = "predictions.npz"
BEST = "best.safetensors"


@dataclass
class Loaded:
    """A run's model (eval mode), batch preparation and data, rebuilt from the store."""

    run: dict | None
    cfg: RunConfig
    bundle: DataBundle
    model: nn.Module
    prep: BatchPrep


@dataclass
class Predictions:
    """Class probabilities of every test image (rows in test-split order) and their labels."""

    probs: np.ndarray
    y: np.ndarray
    classes: list[str]


def get_run(store: Store, run_id: str) -> dict:
    """The stored run for an id or unique prefix."""
    return store.get_run(store.resolve_id(run_id))


def run_config(run: dict) -> RunConfig:
    """The validated config of a training run (SVM runs have none to rebuild a model from)."""
    if (run.get("kind") or "train") != "train":
        raise ConvbenchError(f"Run {run['id']} is a {run['kind']} run, not a trained network; "
                             "pass the id of a `convbench train` run.")
    return cfgmod.build(run["config"], source=f"run {run['id']}")


def build_model(cfg: RunConfig, bundle: DataBundle,
                num_classes: int | None = None) -> tuple[nn.Module, BatchPrep]:
    """The model and eval-time batch preparation the trainer would build for ``bundle``."""
    channels, side = input_requirements(cfg.model, bundle.image_size[0], bundle.channels)
    torch.manual_seed(cfg.train.seed)  # as Trainer: the same seed gives the same start
    model = create_model(cfg.model, num_classes or bundle.num_classes, channels, side)
    prep = BatchPrep(cfg.data.augment, in_channels=bundle.channels, channels=channels,
                     side=side, mean=bundle.mean, std=bundle.std, device=select_device("cpu"))
    return model.eval(), prep


def best_weights_path(store: Store, run: dict) -> Path:
    path = Path((run.get("artifacts") or {}).get("best_weights") or store.run_dir(run["id"]) / BEST)
    if not path.is_file():
        raise WeightsError(f"Run {run['id']} has no best weights ({path}); it never finished an "
                           "epoch. Analyse a completed run.")
    return path


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a safetensors/weights-only file into ``model`` (strict: same architecture)."""
    from ..models.pretrained import read_weights
    state = read_weights(path)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise WeightsError(f"{path} does not fit the run's model: {str(err)[:300]}") from None
    return model


def open_run(store: Store, run_id: str, weights: str = "best") -> Loaded:
    """Rebuild a training run with its ``best`` or ``start`` weights."""
    run = get_run(store, run_id)
    cfg = run_config(run)
    bundle = load_data(cfg.data, cfg.train.seed)
    model, prep = build_model(cfg, bundle)
    if weights == "best":
        load_weights(model, best_weights_path(store, run))
    return Loaded(run, cfg, bundle, model.eval(), prep)


@torch.inference_mode()
def logits_of(model: nn.Module, prep: BatchPrep, x: torch.Tensor, batch: int = 256,
              amp: bool = False, tta: bool = False) -> torch.Tensor:
    """Logits of uint8 images ``x``, in batches; ``amp`` as the trainer evaluates (bf16 on
    CPUs that have it), so the predictions match the run's recorded test metrics; ``tta``
    averages them over the trainer's test-time views (:mod:`convbench.training.tta`)."""
    model.eval()
    device = prep.device
    forward = (lambda v: tta_logits(model, v)) if tta else model
    with autocast(device, amp_dtype(device, amp)):
        outs = [forward(prep(x[i:i + batch], train=False)).float()
                for i in range(0, len(x), batch)]
    return torch.cat(outs) if outs else torch.zeros(0)


def save_predictions(path: Path, probs: np.ndarray, y: np.ndarray, classes: list[str]) -> Path:
    np.savez_compressed(path, probs=probs.astype(np.float32), y=y.astype(np.int64),
                        classes=np.array(classes, dtype=str))
    return path


def read_predictions(path: Path) -> Predictions:
    with np.load(path, allow_pickle=False) as f:
        return Predictions(f["probs"], f["y"], [str(c) for c in f["classes"]])


def predictions(store: Store, run: dict) -> Predictions:
    """Test-set probabilities of a run: cached in its artifacts, else computed and recorded."""
    if run.get("status") != "completed":
        raise StoreError(f"Run {run['id']} is {run.get('status')}; analyse a completed run.")
    path = store.run_dir(run["id"]) / PREDICTIONS
    if path.is_file():
        return read_predictions(path)
    if (run.get("kind") or "train") != "train":
        raise StoreError(f"Run {run['id']} has no stored predictions ({path}).")
    loaded = open_run(store, run["id"])
    logits = logits_of(loaded.model, loaded.prep, loaded.bundle.test.x, amp=loaded.cfg.train.amp)
    probs = logits.softmax(1).numpy()
    save_predictions(path, probs, loaded.bundle.test.y.numpy(), loaded.bundle.classes)
    store.update(run["id"], artifacts={"predictions": str(path)})
    return read_predictions(path)
