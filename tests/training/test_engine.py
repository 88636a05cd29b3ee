import json
import os
import signal
import subprocess
import sys
import time

import pytest

import convbench
from convbench.errors import ConvbenchError
from convbench.store import Store
from convbench.training.trainer import DIVERGED_FACTOR, diverged

QUICK = {
    "data": {"dataset": "digits"},
    "model": {"name": "B2FL8"},
    "optim": {"name": "adam", "lr": 0.003},
    "train": {"epochs": 2, "batch_size": 64},
    "measure": {"latency_repeats": 3, "throughput_batch": 32},
}


def test_train_records_everything(store_url):
    run = convbench.train(QUICK, store=store_url)
    assert run.status == "completed"
    m = run.metrics
    for key in (
        "test_accuracy",
        "test_loss",
        "test_top5",
        "macro_f1",
        "train_time_s",
        "best_val_accuracy",
        "epochs_run",
        "params_total",
        "flops",
        "macs",
        "disk_bytes",
        "peak_memory_bytes",
        "latency_ms",
        "energy_j",
        "cost",
    ):
        assert m[key] is not None, key
    assert m["epochs_run"] == 2 and len(run.epochs) == 2
    assert len(m["per_class_accuracy"]) == 10 and len(m["confusion"]) == 10
    for row in run.epochs:
        for key in (
            "epoch",
            "train_loss",
            "train_accuracy",
            "val_loss",
            "val_accuracy",
            "lr",
            "time_s",
            "images_per_s",
        ):
            assert row[key] is not None, key
    stored = Store(store_url).get_run(run.id)
    assert stored["config"]["model"] == {
        **stored["config"]["model"],
        "name": "blocks",
        "blocks": 2,
        "base_filters": 8,
    }
    assert stored["env"]["torch"] and stored["seed"] == 0
    assert os.path.exists(stored["artifacts"]["best_weights"])


def test_same_seed_same_numbers(store_url):
    a = convbench.train(QUICK, store=store_url)
    b = convbench.train(QUICK, store=store_url)
    assert a.metrics["test_loss"] == b.metrics["test_loss"]
    assert [e["train_loss"] for e in a.epochs] == [e["train_loss"] for e in b.epochs]


def test_without_timed_probes_the_static_costs_are_still_recorded(store_url):
    run = convbench.train({**QUICK, "measure": {"cost": False}}, store=store_url)
    m = run.metrics
    assert m["params_total"] > 0 and m["flops"] > 0 and m["disk_bytes"] > 0
    assert m.get("latency_ms") is None and m.get("throughput_ips") is None


def test_nan_loss_ends_run_as_diverged(store_url):
    cfg = {**QUICK, "optim": {"name": "sgd", "lr": 1e6, "momentum": 0.9}}
    run = convbench.train(cfg, store=store_url)
    assert run.status == "diverged"
    assert run.metrics["diverged_epoch"] == 1


def test_early_stopping_stops_and_keeps_best(store_url):
    cfg = {
        **QUICK,
        "optim": {"name": "sgd", "lr": 1e-9},
        "train": {
            "epochs": 8,
            "early_stopping": {"enabled": True, "patience": 2, "min_delta": 0.5},
        },
    }
    run = convbench.train(cfg, store=store_url)
    assert run.status == "completed"
    assert run.metrics["epochs_run"] == 3 and run.metrics["best_epoch"] == 1


def _store_epochs(url, run_id=None):
    runs = Store(url).list_runs()
    if not runs:
        return None, 0
    run = Store(url).get_run(runs[0]["id"])
    return run["id"], len(run["epochs"])


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(tmp_path, cli):
    args = [
        "train",
        "--dataset",
        "synthetic",
        "--model",
        "B2FL16",
        "--epochs",
        "4",
        "--batch-size",
        "16",
        "--optimizer",
        "adam",
        "--lr",
        "0.002",
        "--set",
        "data.synthetic_size=1200",
        "--set",
        "measure.cost=false",
        "--quiet",
    ]
    killed = str(tmp_path / "killed.db")
    exe = os.path.join(os.path.dirname(sys.executable), "convbench")
    proc = subprocess.Popen(
        [exe, *args, "--store", killed],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while time.time() < deadline:
        run_id, done = _store_epochs(killed)
        if done >= 2:
            break
        time.sleep(0.05)
    time.sleep(0.3)  # into the third epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_id, done = _store_epochs(killed)
    assert 2 <= done < 4, "the kill must land before the run finished"
    assert Store(killed).get_run(run_id)["status"] == "running"

    resumed = cli("train", "--resume", run_id[:5], "--store", killed, "--json", check=True)
    resumed = json.loads(resumed.stdout)
    clean = json.loads(
        cli(*args, "--store", str(tmp_path / "clean.db"), "--json", check=True).stdout
    )
    assert resumed["status"] == "completed"
    assert [e["epoch"] for e in resumed["epochs"]] == [1, 2, 3, 4]
    for key in ("test_accuracy", "test_loss", "macro_f1", "best_val_accuracy"):
        assert resumed["metrics"][key] == clean["metrics"][key], key
    assert [e["train_loss"] for e in resumed["epochs"]] == [
        e["train_loss"] for e in clean["epochs"]
    ]


def test_an_exploding_loss_ends_the_run_as_diverged(store_url):
    # Adam at LR 1e6 keeps the loss finite (1e21) but useless: that is divergence too.
    cfg = {**QUICK, "model": {"name": "simple-cnn"}, "optim": {"name": "adam", "lr": 1e6},
           "measure": {"cost": False}}
    run = convbench.train(cfg, store=store_url)
    assert run.status == "diverged"
    m = run.metrics
    assert m["diverged_epoch"] == 1
    assert m["diverged_loss"] > DIVERGED_FACTOR * max(1.0, m["first_loss"])


def test_a_normal_run_is_not_called_diverged():
    assert not diverged(2.1, first=2.3) and not diverged(5.0, first=0.01)
    assert diverged(float("nan"), first=2.3) and diverged(float("inf"), first=None)
    assert diverged(1e21, first=2.3) and not diverged(1e21, first=None)


def _kill_when(args, store, ready, tmp_path):
    """Start `convbench train ARGS --store STORE`, SIGKILL it once ``ready(run_id, epochs)``."""
    exe = os.path.join(os.path.dirname(sys.executable), "convbench")
    proc = subprocess.Popen([exe, *args, "--store", store], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        run_id, done = _store_epochs(store)
        if run_id and ready(run_id, done):
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return _store_epochs(store)


@pytest.mark.slow
def test_sigkill_before_the_first_epoch_then_resume_starts_over(tmp_path, cli):
    args = ["train", "--dataset", "synthetic", "--model", "B2FL16", "--epochs", "2",
            "--batch-size", "16", "--set", "data.synthetic_size=3000", "--set",
            "measure.cost=false", "--quiet"]
    killed = str(tmp_path / "killed.db")
    run_id, done = _kill_when(args, killed, lambda rid, done: True, tmp_path)
    assert done == 0, "the kill must land inside the first epoch"
    run_dir = Store(killed).run_dir(run_id)
    assert not (run_dir / "last.pt").exists()
    assert Store(killed).get_run(run_id)["status"] == "running"

    resumed = json.loads(cli("train", "--resume", run_id, "--store", killed, "--json",
                             check=True).stdout)
    clean = json.loads(cli(*args, "--store", str(tmp_path / "clean.db"), "--json",
                           check=True).stdout)
    assert resumed["id"] == run_id and resumed["status"] == "completed"
    assert [e["epoch"] for e in resumed["epochs"]] == [1, 2]
    for key in ("test_accuracy", "test_loss", "best_val_accuracy"):
        assert resumed["metrics"][key] == clean["metrics"][key], key
    assert "starting over" in (run_dir / "train.log").read_text()


def test_a_refused_resume_leaves_the_run_as_it_was(store_url):
    def stop(epoch, row):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as info:
        convbench.train(QUICK, store=store_url, on_epoch=stop)
    run_id = info.value.run_id
    store = Store(store_url)
    (store.run_dir(run_id) / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ConvbenchError, match="unreadable"):
        convbench.train(store=store_url, resume=run_id)
    assert store.get_run(run_id)["status"] == "stopped"  # not "failed"


@pytest.mark.slow
def test_sigkill_with_ema_tta_and_mixing_then_resume_matches_uninterrupted(tmp_path, cli):
    # The EMA runs across epochs: its state is in the checkpoint, or the resumed average
    # (and every metric evaluated with it) would differ.
    args = ["train", "--dataset", "synthetic", "--model", "B2FL16", "--epochs", "3",
            "--batch-size", "16", "--set", "data.synthetic_size=1200", "--set",
            "measure.cost=false", "--set", "train.ema=0.99", "--set", "train.tta=true",
            "--set", "data.augment.mixup_alpha=0.2", "--set", "data.augment.cutmix_alpha=1",
            "--set", "optim.no_decay_norm_bias=true", "--set", "optim.weight_decay=1e-4",
            "--quiet"]
    killed = str(tmp_path / "killed.db")
    # Killed once a checkpoint is on disk (an epoch's row is stored just before it).
    run_id, done = _kill_when(
        args, killed,
        lambda rid, done: done >= 1 and (Store(killed).run_dir(rid) / "last.pt").is_file(),
        tmp_path)
    # The kill must land between the first checkpoint and the end, and leave the run as a
    # crash does: still "running", with an epoch checkpoint to resume from.
    assert done >= 1, f"no checkpoint within the wait: the kill landed after {done} epochs"
    assert done < 3, "the run finished before the kill: nothing was left to resume"
    assert Store(killed).get_run(run_id)["status"] == "running"
    assert (Store(killed).run_dir(run_id) / "last.pt").is_file()
    resumed = json.loads(cli("train", "--resume", run_id, "--store", killed, "--json",
                             check=True).stdout)
    clean = json.loads(cli(*args, "--store", str(tmp_path / "clean.db"), "--json",
                           check=True).stdout)
    assert resumed["status"] == "completed"
    for key in ("test_accuracy", "test_loss", "best_val_accuracy"):
        assert resumed["metrics"][key] == clean["metrics"][key], key
    assert [e["val_loss"] for e in resumed["epochs"]] == [e["val_loss"] for e in clean["epochs"]]


def test_the_cli_says_an_exploding_run_diverged_and_exits_2(cli, tmp_path):
    proc = cli("train", "--dataset", "digits", "--model", "simple-cnn", "--epochs", "2",
               "--lr", "1e6", "--set", "measure.cost=false", "--quiet", "--store",
               str(tmp_path / "runs.db"))
    assert proc.returncode == 2
    assert "diverged in epoch 1 (training loss exploded to" in proc.stderr
    assert "Lower the learning rate" in proc.stderr and "Traceback" not in proc.stderr


def test_the_step_hook_reads_figures_only_when_asked_and_they_match_the_epoch_row(store_url):
    # The loop calls on_step after every step without reading anything from the device; a
    # hook that asks gets the task's running figures, so at an epoch's last step they are the
    # stored epoch row's.
    calls, asked = [], {}

    def hook(iteration, sample):
        calls.append(iteration)
        if iteration % 2 == 0:  # the odd steps are never read (nothing is computed for them)
            asked[iteration] = sample()

    run = convbench.train({**QUICK, "measure": {"cost": False}}, store=store_url,
                          on_step=hook)
    steps = len(calls) // 2  # two epochs of equal length
    assert calls == list(range(1, 2 * steps + 1)) and steps > 4
    epochs = {row["epoch"]: row for row in Store(store_url).get_run(run.id)["epochs"]}
    ends = {it: f for it, f in asked.items() if f["step"] == steps}
    assert [f["epoch"] for f in ends.values()] == ([2] if steps % 2 else [1, 2])
    for figures in ends.values():
        row = epochs[figures["epoch"]]
        assert figures["loss"] == pytest.approx(row["train_loss"], rel=1e-6)
        assert figures["acc"] == pytest.approx(row["train_accuracy"], rel=1e-6)
        assert figures["lr"] == pytest.approx(row["lr"], rel=1e-9)
    assert asked[2]["step"] == 2 and asked[2]["epoch"] == 1


# `convbench train` in a process that SIGKILLs itself when its second checkpoint is written
# to its temporary file, just before the rename (the kill the atomic write is there for).
_KILLED_BEFORE_RENAME = """
import os, signal, sys
rename = os.replace
def replace(src, dst, *args, **kwargs):
    if str(dst).endswith("last.pt") and os.path.exists(dst):  # epoch 1's is there already
        os.kill(os.getpid(), signal.SIGKILL)
    return rename(src, dst, *args, **kwargs)
os.replace = replace
from convbench.cli import main
main(sys.argv[1:])
"""


def test_a_kill_between_checkpoint_write_and_rename_then_resume_matches_uninterrupted(
        tmp_path, cli):
    args = ["train", "--dataset", "digits", "--model", "B2FL8", "--epochs", "3", "--seed", "0",
            "--set", "train.threads=1", "--set", "measure.cost=false", "--quiet"]
    killed = str(tmp_path / "killed.db")
    proc = subprocess.run([sys.executable, "-c", _KILLED_BEFORE_RENAME, *args, "--store", killed],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    store = Store(killed)
    (run,) = store.list_runs()
    assert run["status"] == "running"
    run_dir = store.artifacts_root / run["id"]
    assert [p.name for p in run_dir.glob(".last.pt.*.tmp")], "the kill left no temporary file"

    resumed = json.loads(cli("train", "--resume", run["id"], "--store", killed, "--json",
                             check=True).stdout)
    clean = json.loads(cli(*args, "--store", str(tmp_path / "clean.db"), "--json",
                           check=True).stdout)
    assert resumed["status"] == "completed"
    assert [e["epoch"] for e in resumed["epochs"]] == [1, 2, 3]
    for key in ("test_accuracy", "test_loss", "best_val_accuracy"):
        assert resumed["metrics"][key] == clean["metrics"][key], key
    assert [e["train_loss"] for e in resumed["epochs"]] == [
        e["train_loss"] for e in clean["epochs"]]
    # Nothing half-written is left behind: the resumed run removed the torn temporary file.
    assert not list(run_dir.glob(".*.tmp"))
