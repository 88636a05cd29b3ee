"""A trained run as a file other runtimes load: ONNX, TorchScript or safetensors, with the
preparation constants and class names inside the file's metadata *and* in a JSON file
beside it, plus a Markdown model card. After writing, the export is loaded back in its own
runtime (onnxruntime, ``torch.jit.load``, a fresh network) and run on real test images of
the run's data set; the largest logit difference to the PyTorch network and the top-1
agreement are returned.

ONNX uses the ``torch.export``-based exporter of ``torch.onnx`` (it needs ``onnxscript``),
and falls back to the TorchScript-based one for networks ``torch.export`` cannot trace.

>>> done = export("3f9c01ab", "onnx", out="shoes.onnx", dynamic_batch=True)  # doctest: +SKIP
>>> done.check.max_abs_diff < 1e-4, done.check.top1_agree                    # doctest: +SKIP
(True, True)
"""

from __future__ import annotations

import importlib
import io
import json
import warnings
from contextlib import contextmanager, redirect_stdout
from pathlib import Path

import torch

from .. import __version__
from ..analysis.runs import get_run
from ..atomic import atomic_write, write_text
from ..data import load_data
from ..errors import ConvbenchError, unknown_name
from ..store import Store
from .card import model_card
from .export_detect import export_detector
from .exported import META_KEY, Check, Exported, ExportError
from .trained import Trained, load_trained

FORMATS = {"onnx": ".onnx", "torchscript": ".pt", "safetensors": ".safetensors"}
# The packages each format needs beyond convbench's own, all in the `export` extra.
NEEDS = {"onnx": ("onnx", "onnxruntime", "onnxscript")}
EXTRA = "pip install 'convbench[export]'"
DEFAULT_OPSET = 18
CHECK_IMAGES = 256
INPUT, OUTPUT = "images", "logits"
def require_packages(fmt: str) -> None:
    """A clear error naming the ``export`` extra when a package ``fmt`` needs is missing.

    >>> require_packages("safetensors")
    """
    for name in NEEDS.get(fmt, ()):
        try:
            importlib.import_module(name)
        except ImportError:
            raise ExportError(f"--format {fmt} needs the {name!r} package, which is not "
                              f"installed: {EXTRA}") from None


def check_format(fmt: str) -> str:
    """``fmt`` if convbench can write it, else an error listing the formats.

    >>> check_format("tflite")
    Traceback (most recent call last):
    ...
    convbench.errors.UnknownNameError: Unknown export format 'tflite'. Known: onnx, \
safetensors, torchscript.
    """
    if fmt not in FORMATS:
        raise unknown_name("export format", fmt, FORMATS)
    return fmt


def _channel_conversion(trained: Trained) -> str | None:
    have, want = trained.record["channels"], trained.prep.channels
    if have == want:
        return None
    return ("grey → RGB: repeat the channel" if have == 1
            else "RGB → grey: 0.299 R + 0.587 G + 0.114 B")


def export_meta(trained: Trained, fmt: str, dynamic_batch: bool) -> dict:
    """What a user of the exported file needs to feed it: input layout, preparation, classes."""
    from ..report.summary import model_name

    c, h, w = trained.input_shape
    batch = "batch" if dynamic_batch or fmt == "torchscript" else 1
    record = trained.record
    return {
        "convbench": __version__,
        "run_id": trained.run["id"],
        "model": model_name(trained.run),
        "format": fmt,
        "classes": trained.classes,
        "input": {"name": INPUT, "shape": [batch, c, h, w], "dtype": "float32",
                  "layout": "NCHW"},
        "output": {"name": OUTPUT, "shape": [batch, len(trained.classes)],
                   "meaning": "logits (softmax gives class probabilities)"},
        "preprocessing": {
            "image_channels": record["channels"],
            "image_size": record["image_size"],
            "channel_conversion": _channel_conversion(trained),
            "resize_to": [h, w],
            "resize": "bilinear (antialiased when shrinking)",
            "scale": 1 / 255,
            **trained.normalisation(),
            "formula": "x = (uint8_pixels / 255 - mean[c]) / std[c]",
        },
        "training_data": {"dataset": record["dataset"], "split_sizes": record.get("split_sizes")},
    }


@contextmanager
def _quiet():
    """Silence the exporters' deprecation and tracer warnings (the check reports the truth)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _write_onnx(model, example, path: Path, meta: dict, opset: int, dynamic: bool) -> str:
    import onnx

    def run_exporter(tmp: str, dynamo: bool) -> None:
        kwargs = ({"dynamic_shapes": ({0: torch.export.Dim("batch", min=1)},)} if dynamo
                  else {"dynamic_axes": {INPUT: {0: "batch"}, OUTPUT: {0: "batch"}}})
        with redirect_stdout(io.StringIO()):
            torch.onnx.export(model, (example,), tmp, dynamo=dynamo, opset_version=opset,
                              input_names=[INPUT], output_names=[OUTPUT], verbose=False,
                              external_data=False, **(kwargs if dynamic else {}))
        proto = onnx.load(tmp)
        entry = proto.metadata_props.add()
        entry.key, entry.value = META_KEY, json.dumps(meta)
        onnx.save(proto, tmp)

    try:
        atomic_write(path, lambda tmp: run_exporter(tmp, True))
        return "torch.onnx (torch.export-based)"
    except Exception:  # networks torch.export cannot trace: the TorchScript-based exporter
        atomic_write(path, lambda tmp: run_exporter(tmp, False))
        return "torch.onnx (TorchScript-based)"


def _write_torchscript(model, example, path: Path, meta: dict) -> str:
    traced = torch.jit.trace(model, example, check_trace=False)
    files = {f"{META_KEY}.json": json.dumps(meta)}
    atomic_write(path, lambda tmp: torch.jit.save(traced, tmp, _extra_files=files))
    return "torch.jit.trace"


def _write_safetensors(model, path: Path, meta: dict) -> str:
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={META_KEY: json.dumps(meta)}))
    return "safetensors"


def _run_export(fmt: str, path: Path, x: torch.Tensor, trained: Trained, dynamic: bool
                ) -> torch.Tensor:
    """Logits of the file at ``path`` for the prepared batch ``x``, in the file's runtime."""
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        rows = [x] if dynamic else list(x.split(1))
        return torch.cat([torch.from_numpy(session.run(None, {INPUT: r.numpy()})[0])
                          for r in rows])
    if fmt == "torchscript":
        return torch.jit.load(str(path), map_location="cpu")(x)
    from ..analysis.runs import build_model, load_weights
    from .trained import shape_bundle

    fresh, _ = build_model(trained.cfg, shape_bundle(trained.record))
    return load_weights(fresh, path)(x)


def check_export(fmt: str, path: Path, trained: Trained, x_uint8: torch.Tensor,
                 dynamic: bool) -> Check:
    """Compare the written file with the PyTorch network (fp32) on ``x_uint8``."""
    with torch.inference_mode():
        x = trained.prep(x_uint8, train=False).contiguous()
        ref = trained.model(x).float()
    with torch.no_grad(), _quiet():
        got = _run_export(fmt, path, x, trained, dynamic).float()
    return Check(len(x), float((got - ref).abs().max()),
                 float((got.argmax(1) == ref.argmax(1)).double().mean()))


def check_batch(trained: Trained, n: int = CHECK_IMAGES) -> torch.Tensor:
    """The first ``n`` images of the run's test split (uint8), as the run was scored on."""
    cfg = trained.cfg
    return load_data(cfg.data, cfg.train.seed).test.x[:n]


def export(run: str, fmt: str, *, out: str | Path | None = None, opset: int | None = None,
           dynamic_batch: bool = False, store: Store | str | None = None,
           check_images: int = CHECK_IMAGES) -> Exported:
    """Write run ``run`` as ``fmt`` (``onnx``, ``torchscript`` or ``safetensors``) to ``out``
    (default ``./RUN_ID.onnx|.pt|.safetensors``), with ``out + ".json"`` (the preparation
    and classes) and ``RUN_ID.md`` (the model card) beside it; check it on real test images.

    >>> done = export("3f9c01ab", "torchscript")     # doctest: +SKIP
    >>> done.path.name, done.check.top1_agree        # doctest: +SKIP
    ('3f9c01ab.pt', True)
    """
    check_format(fmt)
    if opset is not None and fmt != "onnx":
        raise ExportError(f"--opset goes with --format onnx, not {fmt}.")
    require_packages(fmt)
    store = store if isinstance(store, Store) else Store(store)
    source = get_run(store, run)
    if (source.get("kind") or "train") == "detect":
        return export_detector(store, source, fmt, out=out, opset=opset)
    trained = load_trained(store, source["id"])
    path = Path(out) if out else Path(f"{source['id']}{FORMATS[fmt]}")
    meta = export_meta(trained, fmt, dynamic_batch)
    if fmt == "onnx":
        meta["opset"] = opset or DEFAULT_OPSET
    images = check_batch(trained, check_images)
    example = trained.prep(images[: 2 if dynamic_batch else 1], train=False).contiguous()
    writers = {
        "onnx": lambda: _write_onnx(trained.model, example, path, meta,
                                    opset or DEFAULT_OPSET, dynamic_batch),
        "torchscript": lambda: _write_torchscript(trained.model, example, path, meta),
        "safetensors": lambda: _write_safetensors(trained.model, path, meta),
    }
    others = ", ".join(f for f in FORMATS if f != fmt)
    try:
        with torch.no_grad(), _quiet():
            meta["exporter"] = writers[fmt]()
    except ConvbenchError:
        raise
    except Exception as err:
        why = (str(err).splitlines() or [""])[0][:200]
        raise ExportError(f"{meta['model']} cannot be exported to {fmt} "
                          f"({err.__class__.__name__}: {why}). "
                          f"Try --format {others}; safetensors (the weights) always works."
                          ) from None
    meta_path = write_text(path.with_name(path.name + ".json"), json.dumps(meta, indent=1) + "\n")
    card_path = write_text(path.with_name(f"{source['id']}.md"),
                           model_card(store, store.get_run(source["id"])))
    check = check_export(fmt, path, trained, images, dynamic_batch) if len(images) else None
    store.update(source["id"], artifacts={f"export_{fmt}": str(path.resolve())})
    return Exported(path, meta_path, card_path, meta, check)
