"""Bad input to predict / evaluate / export: a clear message, exit status 2, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from convbench.store import Store


def _refused(proc, *phrases: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    for phrase in phrases:
        assert phrase in proc.stderr, proc.stderr


@pytest.fixture(scope="module")
def weightless(shared) -> str:
    """A run that failed before finishing epoch 1: a stored record without weights."""
    store = Store(shared.store)
    source = store.get_run(shared.run_id)
    run_id = store.create_run(name="died early", config=source["config"], seed=0,
                              env=source["env"], kind="train")
    store.update(run_id, status="failed", metrics={"error": "killed"}, ended=True)
    return run_id


def test_a_corrupt_image_alone(shared):
    bad = shared.root / "corrupt.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    _refused(shared.cli("predict", shared.run_id, str(bad)), "could be read as an image",
             "corrupt.png")


def test_a_folder_without_images(shared):
    empty = shared.root / "empty"
    empty.mkdir(exist_ok=True)
    (empty / "notes.txt").write_text("no pictures here")
    _refused(shared.cli("predict", shared.run_id, str(empty)), "no images found")
    _refused(shared.cli("evaluate", shared.run_id, "--dataset", "folder", "--data-dir",
                        str(empty)), "no images found")


def test_a_path_that_is_not_there(shared):
    _refused(shared.cli("predict", shared.run_id, "nowhere/x.png"), "no such file or folder")


@pytest.mark.parametrize("command", [
    ["predict", "{run}", "{root}"],
    ["evaluate", "{run}", "--dataset", "fashion-mnist"],
    ["export", "{run}", "--format", "torchscript"],
])
def test_a_run_without_weights(shared, weightless, command):
    args = [a.format(run=weightless, root=shared.root) for a in command]
    _refused(shared.cli(*args), f"Run {weightless} (failed) has no weights")


def test_an_unknown_format_and_misplaced_options(shared):
    _refused(shared.cli("export", shared.run_id, "--format", "tflite"),
             "Unknown export format 'tflite'", "onnx, safetensors, torchscript")
    _refused(shared.cli("export", shared.run_id, "--format", "torchscript", "--opset", "17"),
             "--opset goes with --format onnx")
    _refused(shared.cli("predict", shared.run_id, str(shared.root), "--out", "p.txt"),
             ".csv or .json")


def test_an_evaluate_run_is_not_a_network(shared):
    store = Store(shared.store)
    run_id = store.create_run(name="eval", config={"source_run": shared.run_id}, seed=0,
                              env={}, kind="evaluate")
    store.update(run_id, status="completed", metrics={"source_run": shared.run_id}, ended=True)
    _refused(shared.cli("predict", run_id, str(shared.root)), f"it evaluated run {shared.run_id}")


@pytest.mark.parametrize("package", ["onnxruntime"])
def test_a_missing_export_package_names_the_extra(shared, package):
    # A real import failure: the package is blocked in sys.modules before convbench starts.
    code = (f"import sys; sys.modules[{package!r}] = None; from convbench.cli import main; "
            f"main(['export', {shared.run_id!r}, '--format', 'onnx', '--store', "
            f"{shared.store!r}])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=shared.root, timeout=300)
    _refused(proc, f"needs the {package!r} package", "pip install 'convbench[export]'")


def test_a_detection_run_is_refused_for_torchscript_with_the_formats_that_work(shared):
    # (ONNX export of a trained detector: tests/detection/test_detect_cli.py)
    store = Store(shared.store)
    run_id = store.create_run(name="pages", config={"model": {"backbone": "resnet18"}},
                              seed=0, env={}, kind="detect")
    store.update(run_id, status="completed", ended=True)
    _refused(shared.cli("export", run_id, "--format", "torchscript"),
             "detection run", "--format onnx", "safetensors")
    _refused(shared.cli("export", run_id, "--format", "onnx"),
             f"Detection run {run_id}", "has no weights")
    _refused(shared.cli("predict", run_id, str(shared.root)), "convbench detect predict")
