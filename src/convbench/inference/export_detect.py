"""Export of detection runs (Mask R-CNN): the weights as safetensors with the detector's
config and classes in the metadata. ONNX and TorchScript are refused with the way that
works: torchvision's Mask R-CNN takes a list of variable-size pages and returns a list of
dicts, which neither format's tracing captures faithfully for every backbone.

>>> export_detector(store, store.get_run("d3t3c701"), "safetensors")   # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path

from ..atomic import atomic_write, write_text
from ..errors import ConvbenchError
from ..store import Store


def export_detector(store: Store, run: dict, fmt: str, *, out: str | Path | None = None,
                    opset: int | None = None):
    """Write a detection run's weights (``fmt`` must be ``safetensors``)."""
    from safetensors.torch import load_file, save_file

    from .card import model_card
    from .export import META_KEY, Exported

    if fmt != "safetensors":
        raise ConvbenchError(f"Run {run['id']} is a detection run (Mask R-CNN): export to {fmt} "
                             "is not supported. Use --format safetensors, and `convbench "
                             f"detect predict {run['id']} IMAGES` to run it.")
    folder = store.run_dir(run["id"])
    weights, meta_file = folder / "model.safetensors", folder / "detector.json"
    if not weights.is_file() or not meta_file.is_file():
        raise ConvbenchError(f"Detection run {run['id']} ({run['status']}) has no weights "
                             f"({weights}); it did not finish training.")
    detector = json.loads(meta_file.read_text())
    meta = {"run_id": run["id"], "format": fmt, "kind": "detect",
            "classes": detector["classes"], "config": detector["config"],
            "exporter": "safetensors"}
    path = Path(out) if out else Path(f"{run['id']}.safetensors")
    tensors = load_file(str(weights))
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={META_KEY: json.dumps(meta)}))
    meta_path = write_text(path.with_name(path.name + ".json"), json.dumps(meta, indent=1) + "\n")
    card_path = write_text(path.with_name(f"{run['id']}.md"), model_card(store, run))
    return Exported(path, meta_path, card_path, meta, None)
