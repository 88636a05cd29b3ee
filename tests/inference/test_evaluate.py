"""`convbench evaluate`: the run on a folder copy of its own test images gives its own test
accuracy; the result is a stored `evaluate` run that names its source and fits in reports."""

from __future__ import annotations

import json

from inference_helpers import write_pngs

from convbench.store import Store


def test_evaluate_on_a_folder_copy_of_the_test_images_equals_the_runs_accuracy(shared):
    folder = shared.root / "fashion-test-folder"
    write_pngs(folder, shared.test_x, shared.test_y, shared.classes, by_class=True)
    assert (folder / "T-shirt_top").is_dir()  # "T-shirt/top" cannot be a folder name
    proc = shared.cli("evaluate", shared.run_id, "--dataset", "folder", "--data-dir",
                      str(folder), "--json")
    assert proc.returncode == 0, proc.stderr
    evaluated = json.loads(proc.stdout)
    store = Store(shared.store)
    source = store.get_run(shared.run_id)["metrics"]
    m = evaluated["metrics"]
    assert evaluated["kind"] == "evaluate" and evaluated["status"] == "completed"
    assert m["source_run"] == shared.run_id == evaluated["config"]["source_run"]
    assert m["eval_images"] == 1000 and m["eval_split"] == "all"
    assert m["test_accuracy"] == source["test_accuracy"]
    assert m["confusion"] == source["confusion"]  # same images, same class order as the run
    assert m["classes"] == shared.classes

    report = shared.root / "with-eval.html"
    proc = shared.cli("report", shared.run_id, evaluated["id"], "-o", str(report))
    assert proc.returncode == 0, proc.stderr
    assert f"source_run={shared.run_id}" in report.with_suffix(".md").read_text()


def test_evaluate_on_the_runs_own_data_set_uses_its_test_split(shared):
    proc = shared.cli("evaluate", shared.run_id, "--dataset", "fashion-mnist")
    assert proc.returncode == 0, proc.stderr
    accuracy = Store(shared.store).get_run(shared.run_id)["metrics"]["test_accuracy"]
    assert "the run's own test split" in proc.stdout
    assert f"test_accuracy  {accuracy:.4f}" in proc.stdout
    assert "Ankle boot" in proc.stdout  # the per-class table


def test_a_class_the_run_does_not_know_is_named(shared):
    folder = shared.root / "other-classes"
    write_pngs(folder, shared.test_x[:4], [0, 1, 0, 1], ["cat", "Bag"], by_class=True)
    proc = shared.cli("evaluate", shared.run_id, "--dataset", "folder", "--data-dir",
                      str(folder))
    assert proc.returncode == 2
    assert "not trained on: cat." in proc.stderr and "Traceback" not in proc.stderr
