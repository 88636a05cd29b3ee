"""LR range test: sweep, recording, divergence stop, bound rules, state restoration, CLI."""

import copy
import json
import random

import numpy as np
import pytest
import torch

import convbench
from convbench.config import build
from convbench.data import load_data
from convbench.store import Store
from convbench.training.engine import Trainer, prepare_config
from convbench.training.lr_finder import (
    BoundsRule,
    LRCurve,
    LRFindSpec,
    range_test,
    suggest_bounds,
    suggest_values,
    sweep_lrs,
)
from convbench.training.progress import Progress

BASE = {"data": {"dataset": "digits"}, "model": {"name": "B2FL8", "batch_norm": True},
        "optim": {"name": "adam", "lr": 1e-3}, "train": {"epochs": 1, "batch_size": 64,
                                                          "threads": 1}}


def _trainer(store_url, cfg=BASE):
    cfg = prepare_config(build(cfg))
    store = Store(store_url)
    run_id = store.create_run(name="t", config={}, seed=0, env={})
    return Trainer(cfg, store, run_id, load_data(cfg.data, 0), quiet=True)


def _state(trainer):
    m = trainer.model
    return {
        "model": {k: v.clone() for k, v in m.state_dict().items()},
        "modes": [mod.training for mod in m.modules()],
        "grads": [None if p.grad is None else p.grad.clone() for p in m.parameters()],
        "trainable": [p.requires_grad for p in m.parameters()],
        "optim": copy.deepcopy(trainer.optimizer.state_dict()),
        "fit": copy.deepcopy(trainer.state.__dict__),
        "torch_rng": torch.get_rng_state(),
        "py_rng": random.getstate(),
        "np_rng": np.random.get_state()[1].copy(),
    }


def _same(a, b):
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    return a == b


def test_range_test_leaves_model_optimiser_bn_and_rng_untouched(store_url):
    trainer = _trainer(store_url)
    # Give the optimiser real state (Adam moments), BN real statistics and leave gradients.
    trainer.train_epoch(1, Progress(1, quiet=True))
    trainer.model.eval()
    random.seed(5)
    np.random.seed(5)
    before = _state(trainer)
    assert before["optim"]["state"] and any(g is not None for g in before["grads"])
    bn_means = [k for k in before["model"] if k.endswith("running_mean")]
    assert bn_means

    curve = range_test(trainer, LRFindSpec(min_lr=1e-4, max_lr=1e-1, epochs=2))

    assert curve.iterations == 2 * trainer.iters_per_epoch  # it really trained
    after = _state(trainer)
    for key in before:
        assert _same(before[key], after[key]), key


def test_training_after_a_range_test_equals_training_without_one(store_url):
    plain, tested = _trainer(store_url), _trainer(store_url)
    range_test(tested, LRFindSpec(min_lr=1e-4, max_lr=1.0, epochs=1))
    a = plain.train_epoch(1, Progress(1, quiet=True))
    b = tested.train_epoch(1, Progress(1, quiet=True))
    assert a["train_loss"] == b["train_loss"]
    assert _same(plain.model.state_dict(), tested.model.state_dict())


def test_recorded_lrs_follow_the_sweep_and_validation_runs_each_epoch(store_url):
    trainer = _trainer(store_url)
    for mode in ("linear", "exp"):
        curve = range_test(trainer, LRFindSpec(min_lr=1e-4, max_lr=1e-2, mode=mode, epochs=2,
                                               diverge=None))
        total = 2 * trainer.iters_per_epoch
        assert curve.lr == pytest.approx(sweep_lrs(1e-4, 1e-2, total, mode))
        assert [e["epoch"] for e in curve.epochs] == [1, 2]
        assert all(0 <= e["val_accuracy"] <= 1 for e in curve.epochs)
        assert len(curve.loss_smooth) == len(curve.accuracy_smooth) == total


def test_iteration_budget_shorter_than_an_epoch(store_url):
    trainer = _trainer(store_url)
    curve = range_test(trainer, LRFindSpec(min_lr=1e-4, max_lr=1e-2, iters=7))
    assert curve.iterations == 7 and len(curve.epochs) == 1
    assert curve.epochs[0]["iterations"] == 7 and curve.epochs[0]["val_accuracy"] is not None


def test_divergence_stops_the_sweep_early(store_url):
    cfg = {**BASE, "model": {"name": "B2FL8"}, "optim": {"name": "sgd", "momentum": 0.9}}
    trainer = _trainer(store_url, cfg)
    spec = LRFindSpec(min_lr=1e-3, max_lr=1e4, mode="exp", epochs=3)
    curve = range_test(trainer, spec)
    assert curve.stop_reason == "diverged"
    assert curve.iterations < 3 * trainer.iters_per_epoch


def _curve(acc, loss=None):
    n = len(acc)
    return LRCurve(lr=[0.01 * (i + 1) for i in range(n)], loss=[1.0] * n, accuracy=acc,
                   loss_smooth=loss or [2.0 - 0.01 * i for i in range(n)], accuracy_smooth=acc)


def test_bound_rules_are_the_documented_ones():
    acc = [0.10] * 10 + [0.10 + 0.05 * i for i in range(1, 11)] + [0.6] * 10
    b = suggest_bounds(_curve(acc), BoundsRule())
    # The climb starts after the last point below 10 % of the gain (index 10, lr 0.11); 90 %
    # of the 0.5 gain is reached at acc 0.55 (index 18, lr 0.19).
    assert (round(b["lower"], 4), round(b["upper"], 4)) == (0.11, 0.19)
    ratio = suggest_bounds(_curve(acc), BoundsRule(lower="ratio", ratio=4))
    assert ratio["lower"] == pytest.approx(ratio["upper"] / 4)
    # The loss turning up at index 14 caps the upper bound there.
    loss = [2.0 - 0.05 * i for i in range(15)] + [1.3 + 0.1 * i for i in range(15)]
    capped = suggest_bounds(_curve(acc, loss), BoundsRule())
    assert capped["upper"] == pytest.approx(0.15)
    flat = suggest_bounds(_curve([0.1] * 30), BoundsRule())
    assert flat["lower"] is None and "no improvement" in flat["reason"]


def test_single_value_suggestions_sit_on_the_descent():
    lr = list(np.logspace(-4, 0, 60))
    loss = [2.3 - 1.5 / (1 + np.exp(-(np.log10(x) + 2) * 4)) for x in lr[:45]]
    loss += [loss[-1] + 0.2 * i for i in range(1, 16)]
    curve = LRCurve(lr=lr, loss=loss, accuracy=[0.0] * 60, loss_smooth=loss,
                    accuracy_smooth=[0.0] * 60)
    s = suggest_values(curve)
    assert s["steepest"] == pytest.approx(1e-2, rel=0.3)
    low = lr[int(np.argmin(loss))]
    assert s["min_div10"] == pytest.approx(low / 10)
    assert 1e-4 < s["valley"] < low


def test_bounds_auto_trains_between_the_bounds_its_range_test_found(store_url):
    cfg = {"data": {"dataset": "digits"}, "model": {"name": "B2FL8"},
           "optim": {"name": "adam", "lr": 1e-4}, "train": {"epochs": 2, "threads": 1},
           "schedule": {"name": "triangular2", "max_lr": 1e-1, "bounds": "auto"},
           "measure": {"cost": False}}
    run = convbench.train(cfg, store=store_url)
    assert run.status == "completed"
    b = run.metrics["lr_bounds"]
    assert 1e-4 <= b["lower"] < b["upper"] <= 1e-1 and b["mode"] == "linear"
    assert run["config"]["optim"]["lr"] == b["lower"]
    assert run["config"]["schedule"]["max_lr"] == b["upper"]
    test_run = Store(store_url).get_run(b["lr_find_run"])
    assert test_run["kind"] == "lr-find" and test_run["metrics"]["lr_upper"] == b["upper"]


def test_cli_lr_find_prints_bounds_and_writes_the_plot(cli, tmp_path):
    proc = cli("lr-find", "--dataset", "digits", "--model", "B2FL8", "--optimizer", "adam",
               "--min-lr", "1e-4", "--max-lr", "1", "--epochs", "2", "--json",
               "--set", "train.threads=1", "--plot", "lr.png", check=True)
    out = json.loads(proc.stdout)
    assert out["lower"] < out["upper"] and out["mode"] == "exp"
    assert (tmp_path / "lr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    run = Store(str(tmp_path / "convbench-runs" / "runs.db")).get_run(out["runs"][0]["id"])
    assert run["kind"] == "lr-find" and len(run["epochs"]) == 2
    assert set(out["suggestions"]) == {"steepest", "valley", "min_div10"}
    # The range tests are one group (like a comparison), with the bounds in its metrics.
    group = Store(str(tmp_path / "convbench-runs" / "runs.db")).get_group(out["group"])
    assert group["kind"] == "lr-find" and group["status"] == "completed"
    assert group["run_ids"] == [run["id"]] and group["metrics"]["bounds"]["lower"] == out["lower"]


def test_cli_lr_find_rejects_an_empty_range(cli):
    proc = cli("lr-find", "--min-lr", "1", "--max-lr", "0.1")
    assert proc.returncode == 2
    assert "max_lr" in proc.stderr and len(proc.stderr.strip().splitlines()) <= 2
