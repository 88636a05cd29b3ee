"""Deep features: the activations of one named layer for every image of every split.

The clip-art study fed the 4096-d activations of VGG-19's second dense layer to an SVM; here
any module of any model works (``--layer NAME``, names as ``convbench analyze layers``
prints them), by default the *penultimate* activations: the input of the final linear layer.
Convolutional maps are pooled to one vector per image (``pool``: ``avg``, ``max`` or
``flatten``).

Files are ``.npz`` (numpy, no pickles): ``{split}_x`` float32, ``{split}_y`` int64 for
``train``/``val``/``test``, ``classes`` and ``meta`` (JSON: source run or model, layer, data).

>>> feats = features_from_config(cfg)          # doctest: +SKIP
>>> save_features(feats, "feats.npz")           # doctest: +SKIP
>>> load_features("feats.npz").splits["test"][0].shape  # doctest: +SKIP
(2000, 1280)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import RunConfig
from ..data import DataBundle, load_data
from ..errors import ConfigError, DataError, unknown_name
from ..models import resolve
from ..store import Store
from ..training.augment import BatchPrep
from .runs import best_weights_path, build_model, get_run, load_weights, run_config

SPLITS = ("train", "val", "test")
PENULTIMATE = "penultimate"
POOLS = ("avg", "max", "flatten")


@dataclass
class Features:
    """Activations per split (``x`` N×D float32, ``y`` N labels), classes and provenance."""

    splits: dict[str, tuple[np.ndarray, np.ndarray]]
    classes: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.meta.get("dim") or self.splits["train"][0].shape[1])


class _Captured(Exception):
    """Stops the forward pass once the wanted layer has produced its activations."""


def _pool(t: torch.Tensor, pool: str) -> torch.Tensor:
    if t.ndim == 4 and pool != "flatten":
        return t.mean((2, 3)) if pool == "avg" else t.amax((2, 3))
    if t.ndim == 3 and pool != "flatten":  # tokens (N × L × D): pool over tokens
        return t.mean(1) if pool == "avg" else t.amax(1)
    return t.flatten(1)


def _layer(model: nn.Module, layer: str | None) -> tuple[nn.Module, bool]:
    """The module to hook and whether to take its input (penultimate) or output."""
    if layer in (None, PENULTIMATE):
        last = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if not last:
            raise ConfigError("This model has no linear layer, so it has no penultimate "
                              "activations; name a layer with --layer.")
        return last[-1], True
    modules = dict(model.named_modules())
    if layer not in modules:
        raise unknown_name("layer", layer, [n for n in modules if n],
                           listing="convbench analyze layers RUN_ID")
    return modules[layer], False


@torch.inference_mode()
def activations(model: nn.Module, prep: BatchPrep, x: torch.Tensor, layer: str | None = None,
                pool: str = "avg", batch: int = 128) -> np.ndarray:
    """Pooled activations of ``layer`` (default: penultimate) for uint8 images ``x``.

    >>> import torch
    >>> from convbench.config import AugmentConfig
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 2))
    >>> prep = BatchPrep(AugmentConfig(), in_channels=1, channels=1, side=8, mean=(0.5,),
    ...                  std=(0.5,), device=torch.device("cpu"))
    >>> x = torch.zeros(3, 1, 8, 8, dtype=torch.uint8)
    >>> activations(net, prep, x).shape, activations(net, prep, x, layer="0").shape
    ((3, 144), (3, 4))
    """
    if pool not in POOLS:
        raise ConfigError(f"--pool {pool!r}: use one of {', '.join(POOLS)}.")
    module, take_input = _layer(model, layer)
    got: list[torch.Tensor] = []

    def grab(_module, args, output=None):
        value = args[0] if take_input else output
        if isinstance(value, tuple | list):
            value = value[0]
        got.append(_pool(value.float(), pool).cpu())
        raise _Captured

    handle = (module.register_forward_pre_hook(grab) if take_input
              else module.register_forward_hook(grab))
    model.eval()
    try:
        for i in range(0, len(x), batch):
            try:
                model(prep(x[i:i + batch], train=False))
            except _Captured:
                continue
    finally:
        handle.remove()
    if len(got) != (len(x) + batch - 1) // batch:
        raise ConfigError(f"Layer {layer!r} is not used in the forward pass; pick another.")
    return torch.cat(got).numpy() if got else np.zeros((0, 0), np.float32)


def _collect(model: nn.Module, prep: BatchPrep, bundle: DataBundle, layer: str | None,
             pool: str, meta: dict, only: tuple[str, ...] = SPLITS) -> Features:
    got = {name: activations(model, prep, getattr(bundle, name).x, layer, pool)
           for name in SPLITS if name in only and len(getattr(bundle, name))}
    dim = next((x.reshape(len(x), -1).shape[1] for x in got.values()), 0)
    splits = {}
    for name in SPLITS:  # splits not asked for (or empty) stay as 0-row arrays
        x = got.get(name)
        x = np.zeros((0, dim), np.float32) if x is None else x.reshape(len(x), -1)
        y = getattr(bundle, name).y.numpy() if name in got else np.zeros(0, np.int64)
        splits[name] = (x.astype(np.float32), y)
    meta |= {"layer": layer or PENULTIMATE, "pool": pool, "dim": int(dim)}
    return Features(splits, list(bundle.classes), meta)


def features_from_config(cfg: RunConfig, layer: str | None = None, pool: str = "avg") -> Features:
    """Features of ``cfg.model`` (e.g. pretrained, not fine-tuned) on ``cfg.data``."""
    # Resolved as training stores it, so the file's provenance names the model truthfully
    # (a named pretrained model says pretrained: true).
    cfg = cfg.model_copy(update={"model": resolve(cfg.model)})
    bundle = load_data(cfg.data, cfg.train.seed)
    model, prep = build_model(cfg, bundle)
    meta = {"run_id": None, "config": cfg.model_dump(mode="json"),
            "model": cfg.model.model_dump(mode="json"), "data": cfg.data.model_dump(mode="json"),
            "seed": cfg.train.seed}
    return _collect(model, prep, bundle, layer, pool, meta)


def features_from_run(store: Store, run_id: str, layer: str | None = None, pool: str = "avg",
                      dataset: str | None = None, data_dir: str | None = None,
                      splits: tuple[str, ...] = SPLITS) -> Features:
    """Features of a trained run's best weights, on its own data or on ``dataset``.

    On another data set the images are prepared as the run's were (its channels, input size
    and normalisation statistics), since those are what the network learnt on.
    """
    run = get_run(store, run_id)
    cfg = run_config(run)
    own = load_data(cfg.data, cfg.train.seed)
    model, prep = build_model(cfg, own)
    load_weights(model, best_weights_path(store, run))
    bundle = own
    if dataset or data_dir:
        data = cfg.data.model_copy(update={"dataset": dataset or cfg.data.dataset,
                                           "data_dir": data_dir, "channels": own.channels})
        bundle = load_data(data, cfg.train.seed)
        cfg = cfg.model_copy(update={"data": data})
        if bundle.image_size != own.image_size:
            raise DataError(f"{data.dataset} images are {bundle.image_size}, the run trained on "
                            f"{own.image_size}: set the same data.image_size.")
    meta = {"run_id": run["id"], "config": cfg.model_dump(mode="json"),
            "model": cfg.model.model_dump(mode="json"), "data": cfg.data.model_dump(mode="json"),
            "seed": cfg.train.seed}
    return _collect(model, prep, bundle, layer, pool, meta, splits)


def save_features(features: Features, path: str | Path) -> Path:
    """Write features as ``.npz`` (the suffix is added when missing)."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"{s}_{k}": v for s, (x, y) in features.splits.items()
              for k, v in (("x", x), ("y", y))}
    np.savez(path, **arrays, classes=np.array(features.classes, dtype=str),
             meta=np.array(json.dumps(features.meta)))
    return path


def load_features(path: str | Path) -> Features:
    """Read a features file written by :func:`save_features` (no pickles allowed)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Features file {str(path)!r} not found. Create it with "
                        "`convbench features RUN_ID -o FILE`.")
    try:
        with np.load(path, allow_pickle=False) as f:
            splits = {s: (f[f"{s}_x"], f[f"{s}_y"]) for s in SPLITS}
            classes = [str(c) for c in f["classes"]]
            meta = json.loads(str(f["meta"]))
    except (KeyError, ValueError, OSError) as err:
        raise DataError(f"{path} is not a convbench features file ({err}).") from None
    meta["path"] = str(path.resolve())
    return Features(splits, classes, meta)


def extract_features(store: Store | None = None, *, run: str | None = None,
                     config: RunConfig | None = None, layer: str | None = None,
                     pool: str = "avg", out: str | Path, dataset: str | None = None,
                     data_dir: str | None = None) -> tuple[Features, Path]:
    """Extract features from a stored ``run`` or a model ``config`` and save them to ``out``."""
    if run:
        store = store or Store()
        feats = features_from_run(store, run, layer, pool, dataset, data_dir)
    elif config is not None:
        feats = features_from_config(config, layer, pool)
    else:
        raise ConfigError("Give a run id, or --model (with --pretrained for published weights).")
    path = save_features(feats, out)
    if run:
        store.update(feats.meta["run_id"], artifacts={f"features_{feats.meta['layer']}": str(path)})
    return feats, path
