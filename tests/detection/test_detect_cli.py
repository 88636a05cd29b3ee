"""`convbench detect …` as a user runs it: real processes, real files, real Chromium."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

CHROMIUM = Path("/usr/bin/chromium")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def detect(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "convbench.detection.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "COLUMNS": "200"})


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def config_file(workdir, pages, tiny_config):
    cfg = tiny_config(pages.parent, iterations=2)
    path = workdir / "detect.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_synth_writes_pages(workdir):
    proc = detect("synth", "--out", "pages", "--pages", "2", "--size", "96", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert (workdir / "pages" / "annotations.json").is_file()
    assert len(list((workdir / "pages" / "page").glob("*.xml"))) == 2


def test_train_eval_predict_with_json(workdir, config_file, pages):
    proc = detect("train", str(config_file), "--store", "runs.db", "--json", "--name", "r18",
                  cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    run = json.loads(proc.stdout)
    assert run["kind"] == "detect" and run["name"] == "r18" and "box_AP50" in run["metrics"]
    proc = detect("eval", run["id"][:6], "--store", "runs.db", "--json",
                  "--data", str(pages), cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout)
    assert metrics["pages"] == 6 and "mask_AP" in metrics
    image = str(pages.parent / "page_0000.png")
    proc = detect("predict", run["id"], image, "--store", "runs.db", "--out", "pred",
                  cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert (workdir / "pred" / "overlays" / "page_0000.png").is_file()
    assert (workdir / "pred" / "page" / "page_0000.xml").is_file()
    proc = detect("predict", run["id"], str(pages.parent), "--store", "runs.db", "--out",
                  "folder", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert len(list((workdir / "folder" / "overlays").glob("page_*.png"))) == 6
    # Export: ONNX through torchvision's exporter, checked with onnxruntime on test pages;
    # TorchScript refused with the formats that work.
    proc = subprocess.run([sys.executable, "-m", "convbench.cli", "export", run["id"],
                           "--format", "onnx", "--out", "det.onnx", "--store", "runs.db",
                           "--json"], cwd=workdir, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    done = json.loads(proc.stdout)
    assert done["check"]["images"] >= 1 and done["check"]["unit"] == "pages"
    assert 0 <= done["check"]["top1_agreement"] <= 1
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(workdir / "det.onnx"))
    meta = json.loads({p.key: p.value for p in model.metadata_props}["convbench"])
    assert meta["kind"] == "detect" and meta["classes"] == run["metrics"]["classes"]
    session = ort.InferenceSession(str(workdir / "det.onnx"))
    assert [o.name for o in session.get_outputs()] == ["boxes", "labels", "scores", "masks"]
    page = np.random.default_rng(0).random((3, 120, 90), dtype=np.float32)  # any page size
    boxes, labels, scores, masks = session.run(None, {"image": page})
    assert boxes.shape[1:] == (4,) and masks.shape[1:] == (1, 120, 90)
    assert len(boxes) == len(labels) == len(scores) == len(masks)
    proc = subprocess.run([sys.executable, "-m", "convbench.cli", "export", run["id"],
                           "--format", "torchscript", "--store", "runs.db"], cwd=workdir,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and "--format onnx" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    for source, message in [("pagexml", "expects a folder of PAGE-XML files or one .xml file, "
                                        f"but {str(pages)!r} is a JSON file: use --source coco"),
                            ("xml", "data.source = 'xml' is invalid")]:
        proc = detect("eval", run["id"], "--store", "runs.db", "--data", str(pages),
                      "--source", source, cwd=workdir)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr


def test_train_and_eval_report_skipped_annotations(workdir, pages, tiny_config):
    data = json.loads(pages.read_text())
    base = {"image_id": data["images"][0]["id"], "iscrowd": 0}
    data["annotations"] += [
        {**base, "id": 901, "category_id": 1, "bbox": [1, 1, 5, 5], "segmentation": [[1, 1]]},
        {**base, "id": 902, "category_id": 1, "bbox": [500, 500, 5, 5]},
        {**base, "id": 903, "category_id": 77, "bbox": [1, 1, 5, 5]},
        {**base, "id": 904, "image_id": 4242, "category_id": 1, "bbox": [1, 1, 5, 5]},
        {**base, "id": 905, "category_id": 1, "bbox": [-4, 2, 10, 5]}]
    (workdir / "bad").mkdir()
    (workdir / "bad" / "annotations.json").write_text(json.dumps(data))
    cfg = tiny_config(pages.parent, iterations=1)
    cfg["data"].update(source="coco", path="bad/annotations.json", image_dir=str(pages.parent))
    (workdir / "bad.yaml").write_text(yaml.safe_dump(cfg))
    proc = detect("train", "bad.yaml", "--store", "bad.db", "--json", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    run = json.loads(proc.stdout)
    log = Path(run["artifacts"]["log"])
    lines = proc.stderr.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("skipped"))
    assert lines[first] == ("skipped 4 annotations (1 box outside page, 1 empty polygon, "
                            "1 unknown class, 1 unknown image); 1 box clipped to page; "
                            f"all 5 messages in {log}:")
    assert lines[first + 1:first + 4] == [
        "  page_0000.png annotation 901: segmentation has no polygon of 3+ points",
        "  page_0000.png annotation 902: box [500.0, 500.0, 5.0, 5.0] lies outside the "
        "96×128 page",
        "  page_0000.png annotation 903: category 77 is not one of ['staff', 'lyrics', "
        "'drop-capital']"]
    logged = log.read_text()
    assert "annotation 904: image 4242 is not listed" in logged
    assert "page_0000.png annotation 905: box [-4.0, 2.0, 10.0, 5.0] crosses" in logged
    assert len(run["metrics"]["annotation_notes"]) == 5
    assert run["metrics"]["skipped_annotations"]["unknown class"] == 1
    proc = detect("eval", run["id"], "--store", "bad.db", "--data", "bad/annotations.json",
                  "--image-dir", str(pages.parent), "--json", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert "1 box clipped to page; first 3 of 5 messages:" in proc.stderr
    assert "  page_0000.png annotation 902: box" in proc.stderr
    assert json.loads(proc.stdout)["annotation_notes"][3].startswith("annotation 904")
    # A comparison tells the shared data's problems once, not once per variant; a report
    # path it cannot write is refused before any training.
    (workdir / "afile").write_text("x")
    proc = detect("compare", "bad.yaml", "--variant", "train.seed=0", "--variant",
                  "train.seed=1", "--report", "afile/r.html", "--store", "bad.db", cwd=workdir)
    assert proc.returncode == 2 and "is a file" in proc.stderr and "skipped" not in proc.stderr
    proc = detect("compare", "bad.yaml", "--variant", "train.seed=0", "--variant",
                  "train.seed=1", "--report", "r.html", "--store", "bad.db", "-q", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("skipped 4 annotations") == 1


@pytest.mark.parametrize("args, message", [
    (["train", "--backbone", "resnt18", "--iterations", "1"], "Unknown backbone 'resnt18'. "
                                                             "Did you mean 'resnet18'"),
    (["train", "--set", "model.min_sise=3"], "unknown config field 'model.min_sise'"),
    (["train", "--data", "nowhere.json"], "COCO file 'nowhere.json' not found"),
    (["eval", "zzzz", "--store", "runs.db"], "No run id starts with 'zzzz'"),
    (["compare"], "Nothing to compare"),
    (["compare", "--backbone", "resnet18", "--backbone", "vovnet40"],
     "Unknown backbone 'vovnet40'. Did you mean"),
    # A budget flag replaces the file's other budget: these fail later, for other reasons.
    (["train", str(EXAMPLES / "detect-synth.yaml"), "--epochs", "1", "--data", "nowhere.json"],
     "COCO file 'nowhere.json' not found"),
    (["train", str(EXAMPLES / "detect-pagexml.yaml"), "--iterations", "4"],
     "PAGE-XML path 'scans/page' not found"),
    (["compare", str(EXAMPLES / "detect-synth.yaml"), "--backbone", "resnt18", "--epochs", "1"],
     "Unknown backbone 'resnt18'"),
    (["train", str(EXAMPLES / "detect-synth.yaml"), "--epochs", "1", "--iterations", "4"],
     "give the budget as epochs or as iterations, not both"),
])
def test_user_errors_are_one_line_with_status_2(cli_inproc, workdir, args, message):
    proc = cli_inproc("detect", *args, cwd=workdir, env={"COLUMNS": "200"})
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 2


def test_synth_refuses_a_file_as_output_folder(workdir):
    (workdir / "afile").write_text("mine")
    proc = detect("synth", "--out", "afile", "--pages", "1", "--size", "64", cwd=workdir)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == "error: Cannot write pages into 'afile': it is a file. Give a " \
                                  "new or empty folder."


def test_backbones_lists_the_registry(workdir):
    proc = detect("backbones", "--json", cwd=workdir)
    names = [r["name"] for r in json.loads(proc.stdout)]
    assert {"resnet50c", "resnet50-deep", "vovnet99", "mobilenet_v3_large"} <= set(names)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium")
def test_compare_two_backbones_writes_a_report_chromium_shows(workdir, config_file, tmp_path):
    from playwright.sync_api import sync_playwright

    proc = detect("compare", str(config_file), "--backbone", "resnet18", "--backbone",
                  "vovnet19-lite", "--report", "report.html", "--store", "cmp.db", "--json",
                  "--name", "two backbones", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    group = json.loads(proc.stdout)
    assert group["kind"] == "detect-compare" and len(group["run_ids"]) == 2
    assert [r["status"] for r in group["runs"]] == ["completed", "completed"]
    report = workdir / "report.html"
    table = (workdir / "report.md").read_text()
    assert "| Variant |" in table and "resnet18" in table and "vovnet19-lite" in table
    rows = (workdir / "report.csv").read_text().splitlines()
    assert rows[0].startswith("label,run_id,backbone,status,box_AP") and len(rows) == 3
    raw = json.loads((workdir / "report.json").read_text())
    assert [r["run_id"] for r in raw["runs"]] == group["run_ids"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM),
                                    args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        outside: list[str] = []
        page.on("request", lambda r: None if r.url.startswith(("file:", "data:"))
                else outside.append(r.url))
        page.goto(report.resolve().as_uri(), wait_until="load")
        assert page.locator("h1").inner_text() == "two backbones"
        rows = page.locator("#summary table tbody tr")
        assert rows.count() == 2
        headers = page.locator("#summary th").all_inner_texts()
        first = dict(zip(headers, rows.nth(0).locator("td").all_inner_texts(), strict=True))
        assert first["Variant"] == "resnet18" and "Status" not in first  # same for both
        assert "All variants: completed" in page.locator("#summary .note").inner_text()
        assert len(first["Box AP"].split(".")[1]) == 3  # AP always with three decimals
        for h in ("Box AP", "Mask AP", "Train time", "Peak memory", "Energy (kWh)", "Cost"):
            assert h in headers
        assert page.locator("#ap-per-class table tbody tr").count() == 2
        base_case = page.locator("#against-the-base-case table tbody tr")
        assert base_case.count() == 2
        assert "base" in base_case.nth(0).inner_text()
        assert "%" in base_case.nth(1).inner_text()
        assert page.locator("#training-loss figure svg").count() == 1
        assert page.locator("#memory figure svg").count() == 1
        assert page.locator("#ap-against-cost figure svg").count() == 2
        images = page.locator("#sample-predictions img")
        assert images.count() == 4
        widths = page.eval_on_selector_all("#sample-predictions img",
                                           "els => els.map(e => e.naturalWidth)")
        assert all(w == 96 for w in widths)
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        assert (tmp_path / "report.png").stat().st_size > 50_000
        assert outside == []
        browser.close()


def test_sigterm_stops_a_run_that_resume_finishes(workdir, pages, tiny_config):
    import signal
    import time

    cfg = tiny_config(pages.parent, iterations=24, checkpoint_every=1)
    (workdir / "long.yaml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.Popen([sys.executable, "-m", "convbench.detection.cli", "train",
                             "long.yaml", "--store", "sig.db", "--quiet"], cwd=workdir,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not list(workdir.glob("sig-artifacts/*/last.pt")) and time.monotonic() < deadline:
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Stopped" in stderr and "Traceback" not in stderr
    run_id = next(workdir.glob("sig-artifacts/*/last.pt")).parent.name
    assert f"`convbench detect train --resume {run_id} --store sig.db`" in stderr
    done = detect("train", "--resume", run_id, "--store", "sig.db", "--json", cwd=workdir)
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert run["id"] == run_id and run["status"] == "completed"
    assert run["metrics"]["iterations"] == 24


def test_convbench_report_of_detection_runs_and_a_mixed_set(workdir, config_file, cli,
                                                              tmp_path):
    store = str(workdir / "mixed.db")
    proc = detect("compare", str(config_file), "--variant", "model.backbone=resnet18",
                  "--variant", "model.backbone=resnet18 train.lr=0.01", "--report", "m.html",
                  "--store", store, "--json", "--quiet", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    run_ids = json.loads(proc.stdout)["run_ids"]
    again = cli("report", *run_ids, "-o", "again.html", "--store", store, check=True)
    assert "again.md" in again.stdout
    html = (tmp_path / "again.html").read_text()  # the cli fixture runs in tmp_path
    assert "Against the base case" in html and "resnet18 lr=0.01" in html
    cli("train", "--dataset", "digits", "--model", "B1FL4", "--epochs", "1", "--quiet",
        "--store", store, check=True)
    classification = json.loads(cli("runs", "list", "--kind", "train", "--json", "--store",
                                     store).stdout)[0]["id"]
    mixed = cli("report", run_ids[0], classification, "--store", store)
    assert mixed.returncode == 2 and "one kind per report" in mixed.stderr


def test_compare_with_seeds_in_two_workers_then_report_by_group(workdir, config_file, cli,
                                                                 tmp_path):
    store = str(workdir / "seeds.db")
    proc = detect("compare", str(config_file), "--backbone", "resnet18", "--variant",
                  "model.backbone=resnet18; train.lr=0.01", "--seeds", "0,1", "--workers", "2",
                  "--report", "seeds.html", "--store", store, "--json", "--quiet", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    group = json.loads(proc.stdout)
    assert group["kind"] == "detect-compare" and group["errors"] == []
    runs = group["runs"]
    assert sorted((r["name"], r["seed"]) for r in runs) == [
        ("resnet18 lr=0.01-s0", 0), ("resnet18 lr=0.01-s1", 1), ("resnet18-s0", 0),
        ("resnet18-s1", 1)]
    assert all(r["status"] == "completed" and r["group_id"] == group["id"] for r in runs)
    assert all(r["config"]["train"]["seed"] == r["seed"] for r in runs)
    # two workers share the cores rather than each taking the file's two threads
    from convbench.training.device import available_cores

    assert {r["config"]["train"]["threads"] for r in runs} == {max(1, available_cores() // 2)}
    assert len((workdir / "seeds.csv").read_text().splitlines()) == 1 + 4
    # `convbench report` of the group id picks the detection writer by the group's kind
    again = cli("report", group["id"][:6], "-o", "by-group.html", "--store", store, check=True)
    assert "by-group.md" in again.stdout
    html = (tmp_path / "by-group.html").read_text()
    assert "Against the base case" in html and "AP per class" in html
    assert f"4 runs · group {group['id']}" in html


def test_compare_in_two_workers_tells_the_data_problems_once(workdir, pages, tiny_config):
    # The runs train in worker processes; their annotation problems still reach the user,
    # once for the data set all four runs share.
    data = json.loads(pages.read_text())
    data["annotations"].append({"id": 10**6, "image_id": data["images"][0]["id"],
                                "iscrowd": 0, "category_id": 77, "bbox": [1, 1, 5, 5]})
    bad = pages.parent / "unknown-class.json"
    bad.write_text(json.dumps(data))
    cfg = tiny_config(pages.parent)
    cfg["data"] = {**cfg["data"], "source": "coco", "path": str(bad)}
    (workdir / "issues.yaml").write_text(yaml.safe_dump(cfg))
    proc = detect("compare", "issues.yaml", "--backbone", "resnet18", "--seeds", "0,1,2,3",
                  "--workers", "2", "--store", "issues.db", "--json", "--quiet", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    group = json.loads(proc.stdout)
    assert group["errors"] == [] and len(group["runs"]) == 4
    assert proc.stderr.count("category 77") == 1, proc.stderr


def test_the_resume_hint_never_shows_a_database_password():
    from convbench.detection.cli import _resume_command

    stop = KeyboardInterrupt()
    stop.run_id = "abc12345"
    hint = _resume_command(stop, "postgresql://me:s3cret@db.example/runs")
    assert "s3cret" not in hint and "--resume abc12345" in hint and "db.example" in hint
    assert _resume_command(stop, "runs.db").endswith("--store runs.db")
