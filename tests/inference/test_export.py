"""Done-when: `convbench export` to ONNX and TorchScript, then a separate script that does not
import convbench runs the file in its own runtime on 1,000 real Fashion-MNIST test images,
preparing them from the constants stored in the file: logits within 1e-4 of PyTorch's, the
same top-1 everywhere."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from convbench.inference.trained import load_trained

pytest.importorskip("onnxruntime", reason="the export extra: pip install 'convbench[export]'")

# Each script reads the preparation constants from the exported file itself, prepares the
# uint8 images, runs them and saves the logits; it must not need convbench.
PREPARE = """
def prepare(x, meta):
    p = meta["preprocessing"]
    mean = np.array(p["mean"], np.float32).reshape(1, -1, 1, 1)
    std = np.array(p["std"], np.float32).reshape(1, -1, 1, 1)
    assert list(x.shape[2:]) == p["resize_to"], "these test images need no resizing"
    return ((x.astype(np.float32) / 255.0 - mean) / std).astype(np.float32)
"""
ORT_SCRIPT = """
import json, sys
import numpy as np
import onnxruntime as ort
{prepare}
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
meta = json.loads(session.get_modelmeta().custom_metadata_map["convbench"])
x = prepare(np.load(sys.argv[2]), meta)
logits = session.run(None, {{meta["input"]["name"]: x}})[0]
np.save(sys.argv[3], logits)
print(json.dumps({{"classes": meta["classes"], "convbench_imported": "convbench" in sys.modules}}))
"""
TORCHSCRIPT_SCRIPT = """
import json, sys
import numpy as np
import torch
{prepare}
files = {{"convbench.json": ""}}
model = torch.jit.load(sys.argv[1], map_location="cpu", _extra_files=files)
meta = json.loads(files["convbench.json"])
x = torch.from_numpy(prepare(np.load(sys.argv[2]), meta))
with torch.no_grad():
    np.save(sys.argv[3], model(x).numpy())
print(json.dumps({{"classes": meta["classes"], "convbench_imported": "convbench" in sys.modules}}))
"""


def _pytorch_logits(shared, x: np.ndarray) -> np.ndarray:
    trained = load_trained(shared.store, shared.run_id)
    with torch.inference_mode():
        return trained.model(trained.prep(torch.from_numpy(x), train=False)).numpy()


def _run_outside(shared, script: str, model_path, tag: str):
    images = shared.root / f"images-{tag}.npy"
    np.save(images, shared.test_x)
    code = shared.root / f"run_{tag}.py"
    code.write_text(textwrap.dedent(script.format(prepare=PREPARE)))
    out = shared.root / f"logits-{tag}.npy"
    proc = subprocess.run([sys.executable, str(code), str(model_path), str(images), str(out)],
                          capture_output=True, text=True, timeout=300, cwd=shared.root)
    assert proc.returncode == 0, proc.stderr
    return np.load(out), json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("fmt, script, extra", [
    ("onnx", ORT_SCRIPT, ["--dynamic-batch"]),
    ("torchscript", TORCHSCRIPT_SCRIPT, []),
])
def test_export_matches_pytorch_in_its_own_runtime(shared, fmt, script, extra):
    out = shared.root / f"model-{fmt}.bin"
    proc = shared.cli("export", shared.run_id, "--format", fmt, "--out", str(out), *extra,
                      subprocess_=True)
    assert proc.returncode == 0, proc.stderr
    assert "largest logit difference" in proc.stdout and "every top-1 agrees" in proc.stdout
    assert len(shared.test_x) == 1000
    logits, info = _run_outside(shared, script, out, fmt)
    assert info == {"classes": shared.classes, "convbench_imported": False}
    reference = _pytorch_logits(shared, shared.test_x)
    assert logits.shape == reference.shape == (1000, 10)
    assert np.abs(logits - reference).max() < 1e-4
    assert (logits.argmax(1) == reference.argmax(1)).all()
    beside = json.loads(out.with_name(out.name + ".json").read_text())
    assert beside["classes"] == shared.classes and beside["format"] == fmt
    card = (shared.root / f"{shared.run_id}.md").read_text()
    assert "## Test metrics" in card and "| Ankle boot |" in card


def test_static_onnx_takes_one_image_and_says_so(shared):
    out = shared.root / "static.onnx"
    proc = shared.cli("export", shared.run_id, "--format", "onnx", "--out", str(out),
                      "--opset", "17")
    assert proc.returncode == 0, proc.stderr
    import onnxruntime as ort
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [1, 1, 28, 28]
    meta = json.loads(out.with_name("static.onnx.json").read_text())
    assert meta["input"]["shape"] == [1, 1, 28, 28] and meta["opset"] == 17


def test_safetensors_export_keeps_classes_in_its_metadata(shared):
    from safetensors import safe_open

    out = shared.root / "weights.safetensors"
    proc = shared.cli("export", shared.run_id, "--format", "safetensors", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "largest logit difference 0.00e+00" in proc.stdout
    with safe_open(str(out), "pt") as f:
        meta = json.loads(f.metadata()["convbench"])
    assert meta["classes"] == shared.classes
    assert meta["preprocessing"]["image_size"] == [28, 28]
