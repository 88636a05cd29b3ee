"""Grouping runs into variants and aggregating their seeds."""

from __future__ import annotations

import statistics

import pytest

from convbench.report import summary_table
from convbench.report.summary import group_variants, mean_curves


def _by_label(rows: list[dict]) -> dict[str, dict]:
    return {row["label"]: row for row in rows}


def test_seeds_are_aggregated_like_the_statistics_module(runs):
    rows = _by_label(summary_table(runs))
    adam = [r for r in runs if r["config"]["optim"]["name"] == "adam"]
    assert len(adam) == 3
    row = rows["B2FL32 (optim=adam, lr=0.001)"]
    assert row["n"] == row["runs"] == 3 and row["seeds"] == [0, 1, 2]
    for key in ("test_accuracy", "train_time_s", "macro_f1", "energy_j"):
        values = [r["metrics"][key] for r in adam]
        stats = row["metrics"][key]
        assert stats["mean"] == pytest.approx(statistics.fmean(values))
        assert stats["std"] == pytest.approx(statistics.stdev(values))
        assert stats["median"] == pytest.approx(statistics.median(values))
        assert stats["n"] == 3
    # The per-seed accuracies really differ, so a wrong aggregate cannot pass by accident.
    assert len({r["metrics"]["test_accuracy"] for r in adam}) == 3


def test_single_seed_has_no_spread(runs):
    row = _by_label(summary_table(runs))["simple-cnn"]
    stats = row["metrics"]["test_accuracy"]
    assert stats["n"] == 1 and stats["std"] is None
    assert stats["mean"] == stats["median"] == runs[-1]["metrics"]["test_accuracy"]


def test_one_row_per_variant_labelled_by_model_and_differing_fields(runs):
    rows = summary_table(runs)
    assert [r["label"] for r in rows] == [
        "B2FL32 (optim=adam, lr=0.001)", "B2FL32 (optim=sgd, lr=0.01)", "simple-cnn"]
    assert [r["model"] for r in rows] == ["B2FL32", "B2FL32", "simple-cnn"]
    assert set(rows[0]["config"]) == {"model.name", "optim.name", "optim.lr"}
    assert rows[2]["config"]["optim.name"] == "sgd"


def test_incomplete_seeds_are_counted_but_not_averaged(store, add_run):
    ids = [add_run(store, "B2FL32-adam", s) for s in (0, 1)]
    ids.append(add_run(store, "B2FL32-adam", 2, status="diverged",
                          metrics={"test_accuracy": 0.1, "train_time_s": 3.0}))
    runs = [store.get_run(i) for i in ids]
    [row] = summary_table(runs)
    assert (row["runs"], row["n"]) == (3, 2)
    assert row["status"] == "1 diverged"
    assert row["statuses"] == {"completed": 2, "diverged": 1}
    completed = [runs[0]["metrics"]["test_accuracy"], runs[1]["metrics"]["test_accuracy"]]
    assert row["metrics"]["test_accuracy"]["mean"] == pytest.approx(statistics.fmean(completed))


def test_variant_whose_only_run_failed_has_a_row_without_numbers(store):
    run_id = store.create_run(name="broken", config={"model": {"name": "resnet18"}}, seed=0,
                              env={})
    store.update(run_id, status="failed", ended=True)
    [row] = summary_table([store.get_run(run_id)])
    assert row["label"] == "resnet18"
    assert row["n"] == 0 and row["status"] == "1 failed"
    assert row["metrics"] == {} and row["per_class_accuracy"] is None


def test_energy_in_kwh_only_is_converted_to_joules(store, add_run, plausible_metrics):
    metrics = plausible_metrics("simple-cnn", 0, 5)
    del metrics["energy_j"]
    run_id = add_run(store, "simple-cnn", 0, metrics=metrics)
    [row] = summary_table([store.get_run(run_id)])
    assert row["metrics"]["energy_j"]["mean"] == pytest.approx(metrics["energy_kwh"] * 3.6e6)


def test_hand_made_runs_without_config_status_or_metrics(store):
    runs = [{"id": "a", "name": "x", "metrics": None}, {"id": "b", "config": None}]
    rows = summary_table(runs)
    assert [r["label"] for r in rows] == ["x", "b"]
    assert all(r["metrics"] == {} for r in rows)


def test_confusion_is_summed_and_per_class_accuracy_averaged(runs):
    row = _by_label(summary_table(runs))["B2FL32 (optim=sgd, lr=0.01)"]
    sgd = [r for r in runs if r["name"].startswith("B2FL32-sgd")]
    assert len(sgd) == 2
    assert row["confusion"][6][6] == sum(r["metrics"]["confusion"][6][6] for r in sgd)
    assert row["per_class_accuracy"][6] == pytest.approx(
        statistics.fmean(r["metrics"]["per_class_accuracy"][6] for r in sgd))
    assert row["classes"][6] == "Shirt"


def test_learning_curves_average_the_epochs_each_seed_has(store, add_run):
    ids = [add_run(store, "simple-cnn", s) for s in (0, 1)]
    store.truncate_epochs(ids[1], after=3)  # stopped early
    runs = [store.get_run(i) for i in ids]
    [variant] = group_variants(runs)
    curves = mean_curves(variant)
    val = curves["val_accuracy"]
    assert val["epoch"] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert val["mean"][0] == pytest.approx(
        statistics.fmean(r["epochs"][0]["val_accuracy"] for r in runs))
    assert val["mean"][4] == pytest.approx(runs[0]["epochs"][4]["val_accuracy"])
    assert val["std"][4] is None


def _run(model: str, vals: list[float], time_s: float, **metrics) -> dict:
    return {"id": model, "status": "completed", "config": {"model": {"name": model}},
            "metrics": {"best_val_accuracy": max(vals), **metrics},
            "epochs": [{"epoch": i + 1, "val_accuracy": v, "time_s": time_s}
                       for i, v in enumerate(vals)]}


def test_without_a_target_runs_are_timed_to_the_level_all_of_them_reached():
    fast = _run("simple-cnn", [0.70, 0.80, 0.85], time_s=10.0)
    slow = _run("resnet20", [0.50, 0.75, 0.90], time_s=30.0)
    rows = _by_label(summary_table([fast, slow]))
    # common target = 0.85, the lower of the two bests
    assert rows["simple-cnn"]["metrics"]["time_to_common_target_s"]["mean"] == 30.0
    assert rows["resnet20"]["metrics"]["time_to_common_target_s"]["mean"] == 90.0
    assert rows["resnet20"]["metrics"]["common_target"]["mean"] == 0.85
    # a target of the user's own replaces it
    fast["metrics"]["time_to_target_s"] = 20.0
    rows = _by_label(summary_table([fast, slow]))
    assert "time_to_common_target_s" not in rows["simple-cnn"]["metrics"]
