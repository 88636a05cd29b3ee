"""Training end to end on tiny real pages: store record, checkpoints, resume, predictions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from convbench.detection.coco import read_coco
from convbench.detection.config import DetectTrainConfig, budget, build
from convbench.detection.pagexml import read_pagexml
from convbench.detection.predict import load_detector, predict_images
from convbench.detection.train import train_detector
from convbench.errors import ConfigError, StoreError, UnknownNameError
from convbench.store import Store


def test_budget_converts_epochs_and_iterations_both_ways():
    assert budget(DetectTrainConfig(epochs=3, batch_size=2), train_images=45) == (68, 3.0)
    iters, epochs = budget(DetectTrainConfig(iterations=90, batch_size=4), train_images=45)
    assert iters == 90 and epochs == pytest.approx(8.0)
    with pytest.raises(ConfigError, match="epochs or as iterations"):
        build({"train": {"epochs": 2, "iterations": 10}})
    with pytest.raises(ConfigError, match="unknown config field 'model.backbon'"):
        build({"model": {"backbon": "resnet18"}})
    with pytest.raises(ConfigError, match="steps"):
        build({"train": {"steps": [0.9, 0.5]}})


def test_a_command_line_budget_replaces_the_files_other_budget():
    from convbench.detection.config import apply_overrides, load

    root = Path(__file__).resolve().parents[2] / "examples"
    in_iterations, in_epochs = load(root / "detect-synth.yaml"), load(root / "detect-pagexml.yaml")
    flag = apply_overrides(in_iterations, [], {"train.epochs": 1})
    assert (flag.train.epochs, flag.train.iterations) == (1, None)
    flag = apply_overrides(in_epochs, [], {"train.iterations": 4})
    assert (flag.train.epochs, flag.train.iterations) == (None, 4)
    variant = apply_overrides(in_iterations, ["train.epochs=2"])  # a compare --variant
    assert (variant.train.epochs, variant.train.iterations) == (2, None)
    cleared = apply_overrides(in_iterations, ["train.iterations=null"])
    assert (cleared.train.epochs, cleared.train.iterations) == (None, None)
    with pytest.raises(ConfigError, match="epochs or as iterations, not both"):
        apply_overrides(in_iterations, [], {"train.epochs": 1, "train.iterations": 3})
    with pytest.raises(ConfigError, match="epochs or as iterations, not both"):
        apply_overrides(in_iterations, ["train.iterations=3"], {"train.epochs": 1})


def test_training_records_a_detect_run_with_ap_cost_and_files(pages, tmp_path, tiny_config):
    store = Store(str(tmp_path / "runs.db"))
    run = train_detector(tiny_config(pages.parent, iterations=3), store=store)
    assert run["kind"] == "detect" and run.status == "completed"
    m = run.metrics
    for key in ("box_AP", "box_AP50", "box_AP75", "mask_AP", "mask_AP50", "train_time_s",
                "iters_per_s", "peak_memory_bytes", "energy_j", "energy_kwh", "cost",
                "params_total"):
        assert key in m, key
    assert 0 <= m["box_AP50"] <= 1 and 0 <= m["mask_AP"] <= 1
    assert set(m["box_AP_per_class"]) == {"staff", "lyrics", "drop-capital"}
    assert m["iterations"] == 3 and m["epochs"] == pytest.approx(1.5)  # 4 train pages, batch 2
    assert m["train_images"] == 4 and m["test_images"] == 2
    assert m["peak_memory_bytes"] > 10_000_000 and m["energy_j"] > 0 and m["cost"] > 0
    # The cost figures of classification runs, from a forward on a 128×96 page (max × min).
    assert m["flops"] > 0 and m["macs"] == m["flops"] // 2
    assert m["disk_bytes"] > 4 * m["params_total"] * 0.9
    assert m["latency_ms"] > 0 and m["throughput_ips"] > 0
    assert [e["epoch"] for e in run.epochs] == [1, 2]
    assert {"train_loss", "loss_mask", "lr", "time_s", "iters_per_s"} <= set(run.epochs[0])
    art = run["artifacts"]
    for key in ("checkpoint", "weights", "config", "detector", "losses", "predictions"):
        assert Path(art[key]).exists(), key
    assert len(json.loads(Path(art["losses"]).read_text())) == 3
    preds = read_coco(Path(art["predictions"]) / "predictions.json", image_root=pages.parent)
    assert len(preds.pages) == 2 and not preds.issues
    assert len(list((Path(art["predictions"]) / "overlays").glob("*.png"))) == 2
    checkpoint = torch.load(art["checkpoint"], map_location="cpu", weights_only=True)
    assert checkpoint["state"]["iteration"] == 3


def test_a_stopped_run_resumes_to_the_same_result(pages, tmp_path, tiny_config):
    cfg = tiny_config(pages.parent, iterations=4, checkpoint_every=1, hflip=True)
    store = Store(str(tmp_path / "runs.db"))
    whole = train_detector(cfg, store=store)

    def stop_after_two(iteration: int, sample) -> None:
        if iteration == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_detector(cfg, store=store, on_iteration=stop_after_two)
    stopped = [r for r in store.list_runs(kind="detect") if r["status"] == "stopped"]
    assert len(stopped) == 1
    resumed = train_detector(store=store, resume=stopped[0]["id"][:5])
    assert resumed.status == "completed" and resumed.id == stopped[0]["id"]
    a = json.loads(Path(whole["artifacts"]["losses"]).read_text())
    b = json.loads(Path(resumed["artifacts"]["losses"]).read_text())
    assert [i for i, _ in b] == [1, 2, 3, 4]
    assert [v for _, v in b] == pytest.approx([v for _, v in a], rel=1e-4)
    assert resumed.metrics["box_AP"] == pytest.approx(whole.metrics["box_AP"], abs=1e-6)
    with pytest.raises(StoreError, match="already completed"):
        train_detector(store=store, resume=resumed.id)


def test_a_run_stopped_before_its_first_checkpoint_resumes_by_starting_over(pages, tmp_path,
                                                                            tiny_config):
    cfg = tiny_config(pages.parent, iterations=3, checkpoint_every=3)
    store = Store(str(tmp_path / "runs.db"))
    whole = train_detector(cfg, store=store)

    def stop_at_one(iteration: int, sample) -> None:
        if iteration == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as info:
        train_detector(cfg, store=store, on_iteration=stop_at_one)
    run_id = info.value.run_id
    assert not (store.run_dir(run_id) / "last.pt").exists()
    resumed = train_detector(store=store, resume=run_id)
    assert resumed.status == "completed" and resumed.id == run_id
    a = json.loads(Path(whole["artifacts"]["losses"]).read_text())
    b = json.loads(Path(resumed["artifacts"]["losses"]).read_text())
    assert [i for i, _ in b] == [1, 2, 3]
    assert [v for _, v in b] == pytest.approx([v for _, v in a], rel=1e-4)


def test_the_optimiser_and_schedule_come_from_the_shared_registries(pages, tmp_path,
                                                                     tiny_config):
    with pytest.raises(UnknownNameError, match="adam"):
        build({"train": {"optimizer": "adamm"}})
    cfg = tiny_config(pages.parent, iterations=3, optimizer="adam", schedule="constant",
                      lr=1e-3)
    cfg["measure"]["cost"] = False
    run = train_detector(cfg, store=str(tmp_path / "runs.db"))
    assert run.status == "completed"
    assert [e["lr"] for e in run.epochs] == [1e-3, 1e-3]  # constant: no warm-up, no steps
    assert "latency_ms" not in run.metrics and run.metrics["flops"] > 0
    checkpoint = torch.load(run["artifacts"]["checkpoint"], map_location="cpu",
                            weights_only=True)
    moments = next(iter(checkpoint["optimizer"]["state"].values()))
    assert "exp_avg" in moments  # Adam's, where SGD keeps a momentum buffer


def test_a_time_budget_ends_training_inside_an_epoch(pages, tmp_path, tiny_config):
    cfg = tiny_config(pages.parent, iterations=3, max_time_s=1e-6)
    cfg["measure"]["cost"] = False
    run = train_detector(cfg, store=str(tmp_path / "runs.db"))
    assert run.status == "completed" and run.metrics["time_limited"] is True
    assert run.metrics["iterations"] == 1 and run.metrics["budget_iterations"] == 3
    assert [(e["epoch"], e["iteration"]) for e in run.epochs] == [(1, 1)]  # a partial epoch
    assert "time budget 1e-06s reached after iteration 1" in Path(
        run["artifacts"]["log"]).read_text()


def test_a_loss_that_overflows_ends_the_run_as_diverged(pages, tmp_path, tiny_config):
    cfg = tiny_config(pages.parent, iterations=4, lr=1e30, grad_clip=None, warmup_iters=0)
    run = train_detector(cfg, store=str(tmp_path / "runs.db"))
    assert run.status == "diverged"
    assert 2 <= run.metrics["diverged_iteration"] <= 4
    assert run.metrics["iterations"] == run.metrics["diverged_iteration"] - 1


def test_faster_rcnn_reports_box_ap_only(pages, tmp_path, tiny_config):
    cfg = tiny_config(pages.parent)
    cfg["model"]["arch"] = "fasterrcnn"
    run = train_detector(cfg, store=str(tmp_path / "runs.db"))
    assert run.status == "completed" and "box_AP" in run.metrics
    assert "mask_AP" not in run.metrics


def test_a_trained_detector_predicts_files_with_fixed_colours(pages, tmp_path, tiny_config):
    run = train_detector(tiny_config(pages.parent), store=str(tmp_path / "runs.db"))
    det = load_detector(run["artifacts"]["detector"].rsplit("/", 1)[0])
    assert det.classes == ["staff", "lyrics", "drop-capital"]
    images = sorted(pages.parent.glob("page_000[01].png"))
    ds = predict_images(det, images, tmp_path / "pred", score_threshold=0.0)
    out = tmp_path / "pred"
    assert (out / "predictions.json").is_file()
    assert sorted(p.name for p in (out / "overlays").iterdir()) == ["page_0000.png",
                                                                    "page_0001.png"]
    back = read_coco(out / "predictions.json", image_root=pages.parent)
    assert [len(p.instances) for p in back.pages] == [len(p.instances) for p in ds.pages]
    assert all(i.score is not None for p in back.pages for i in p.instances)
    xml = read_pagexml(out / "page", image_dir=pages.parent)
    assert len(xml.pages) == 2


def test_example_configs_are_valid():
    from convbench.detection.config import load

    root = Path(__file__).resolve().parents[2] / "examples"
    files = sorted(root.glob("detect-*.yaml"))
    assert len(files) >= 3
    for path in files:
        cfg = load(path)
        assert cfg.model.arch in ("maskrcnn", "fasterrcnn"), path
