"""Export of detection runs (Mask R-CNN / Faster R-CNN): ONNX through torchvision's supported
path (the TorchScript-based exporter, any page size) checked with onnxruntime on the run's
test pages, or the weights as safetensors. TorchScript is refused with the formats that
work: ``torch.jit.script`` cannot compile the backbones' feature dictionaries.

The ONNX graph takes one page (``image``: 3 × H × W floats in 0..1; the model's own resize
and normalisation are inside it) and returns ``boxes`` (x1, y1, x2, y2 in the page's pixels),
``labels`` (1-based indices into the ``classes`` of the metadata), ``scores`` and, for Mask
R-CNN, ``masks`` (N × 1 × H × W probabilities).

>>> export_detector(store, store.get_run("d3t3c701"), "onnx")   # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
import warnings
from contextlib import redirect_stdout
from pathlib import Path

import torch

from ..atomic import atomic_write, write_text
from ..errors import ConvbenchError
from ..store import Store
from .exported import META_KEY, Check, Exported

DETECT_OPSET = 17  # torchvision's RoIAlign and NMS export from opset 16 on
CHECK_PAGES = 4


def export_detector(store: Store, run: dict, fmt: str, *, out: str | Path | None = None,
                    opset: int | None = None) -> Exported:
    """Write a detection run as ``onnx`` (checked) or ``safetensors`` (its weights)."""
    from .card import model_card

    if fmt == "torchscript":
        raise ConvbenchError(f"Run {run['id']} is a detection run (Mask R-CNN): TorchScript "
                             "cannot compile its backbone. Use --format onnx (or safetensors "
                             f"for the weights), or `convbench detect predict {run['id']} "
                             "IMAGES` to run it.")
    folder = store.run_dir(run["id"])
    weights, meta_file = folder / "model.safetensors", folder / "detector.json"
    if not weights.is_file() or not meta_file.is_file():
        raise ConvbenchError(f"Detection run {run['id']} ({run['status']}) has no weights "
                             f"({weights}); it did not finish training.")
    detector = json.loads(meta_file.read_text())
    meta = {"run_id": run["id"], "format": fmt, "kind": "detect",
            "classes": detector["classes"], "config": detector["config"]}
    suffix = ".onnx" if fmt == "onnx" else ".safetensors"
    path = Path(out) if out else Path(f"{run['id']}{suffix}")
    check = None
    if fmt == "onnx":
        check = _export_onnx(folder, path, meta, opset or DETECT_OPSET)
    else:
        from safetensors.torch import load_file, save_file

        meta["exporter"] = "safetensors"
        tensors = load_file(str(weights))
        atomic_write(path, lambda tmp: save_file(tensors, tmp,
                                                 metadata={META_KEY: json.dumps(meta)}))
    meta_path = write_text(path.with_name(path.name + ".json"), json.dumps(meta, indent=1) + "\n")
    card_path = write_text(path.with_name(f"{run['id']}.md"), model_card(store, run))
    store.update(run["id"], artifacts={f"export_{fmt}": str(path.resolve())})
    return Exported(path, meta_path, card_path, meta, check)


def _export_onnx(folder: Path, path: Path, meta: dict, opset: int) -> Check:
    import onnx

    from ..detection.predict import load_detector

    det = load_detector(folder)
    pages = _check_pages(det)
    masks = det.config.model.arch == "maskrcnn"
    outputs = ["boxes", "labels", "scores", *(["masks"] if masks else [])]
    meta |= {"exporter": "torch.onnx (TorchScript-based)", "opset": opset,
             "input": {"name": "image", "shape": [3, "height", "width"],
                       "meaning": "one page, RGB floats in 0..1 (resized inside the graph)"},
             "outputs": outputs}

    def write(tmp: str) -> None:
        axes = {"image": {1: "height", 2: "width"}, **{o: {0: "detections"} for o in outputs}}
        with warnings.catch_warnings(), redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(det.model, ([pages[0]],), tmp, dynamo=False, opset_version=opset,
                              input_names=["image"], output_names=outputs, dynamic_axes=axes)
        proto = onnx.load(tmp)
        entry = proto.metadata_props.add()
        entry.key, entry.value = META_KEY, json.dumps(meta)
        onnx.save(proto, tmp)

    try:
        with torch.no_grad():
            atomic_write(path, write)
    except Exception as err:
        why = (str(err).splitlines() or [""])[0][:200]
        raise ConvbenchError(f"This detector cannot be exported to ONNX ({type(err).__name__}: "
                             f"{why}). Use --format safetensors.") from None
    return check_detector(path, det.model, pages)


def _check_pages(det) -> list[torch.Tensor]:
    """A few of the run's test pages (0..1 floats), or one blank page of the model's size
    when its data is no longer where it was."""
    from ..detection.data import load_split

    try:
        _, test = load_split(det.config.data)
        from ..detection.loader import PageTensors

        m = det.config.model
        tensors = PageTensors(test, m.min_size, m.max_size, masks=False)
        images, _ = tensors.batch(list(range(min(CHECK_PAGES, len(tensors)))))
        if images:
            return images
    except ConvbenchError:
        pass
    m = det.config.model
    return [torch.rand(3, m.max_size, m.min_size, generator=torch.Generator().manual_seed(0))]


def check_detector(path: Path, model: torch.nn.Module, pages: list[torch.Tensor]) -> Check:
    """The ONNX file against the PyTorch detector on ``pages``: the largest box-coordinate
    difference (pixels) and the share of pages whose detected labels agree in order."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst, agree = 0.0, 0
    for page in pages:
        with torch.inference_mode():
            ref = model([page])[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = session.run(None, {"image": page.numpy()})
        boxes, labels = torch.from_numpy(got[0]), torch.from_numpy(got[1])
        same = labels.shape == ref["labels"].shape and bool((labels == ref["labels"]).all())
        agree += same
        if same and len(boxes):
            worst = max(worst, float((boxes - ref["boxes"]).abs().max()))
    return Check(len(pages), worst, agree / len(pages), measure="box coordinate (px)",
                 unit="pages")
