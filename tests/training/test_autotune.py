"""train.amp / channels_last / compile = auto: chosen by timing on this machine, cached, recorded,
and without effect on the run's numbers beyond the choice itself (real runs on digits)."""

import json

import pytest
from safetensors.torch import load_file

import convbench
from convbench.config import ModelConfig
from convbench.models import create_model
from convbench.store import Store
from convbench.training import autotune
from convbench.training.device import amp_dtype, select_device

QUICK = {
    "data": {"dataset": "digits"},
    "model": {"name": "B2FL8"},
    "optim": {"name": "adam", "lr": 0.003},
    "train": {"epochs": 2, "batch_size": 32},
    "measure": {"cost": False},
}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache of our own, and runs long enough to be timed (digits has ~40 steps an epoch)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(autotune, "MIN_STEPS", 10)
    return tmp_path / "cache" / "convbench" / "autotune.json"


def _train(tmp_path, **train):
    cfg = {**QUICK, "train": {**QUICK["train"], **train}}
    return convbench.train(cfg, store=Store(str(tmp_path / "runs.db")))


def test_auto_times_every_combination_caches_the_choice_and_stores_it_resolved(tmp_path, cache):
    first = _train(tmp_path)
    record = first.metrics["autotune"]
    chosen = record["chosen"]
    assert set(chosen) == {"amp", "channels_last", "compile"}
    assert all(isinstance(v, bool) for v in chosen.values())
    # Both layouts always; both precisions only where mixed precision exists on this device.
    has_amp = amp_dtype(select_device("auto"), True) is not None
    assert len(record["ms"]) == (4 if has_amp else 2)
    if not has_amp:  # an AVX2-only CPU: the run is fp32, and its record says so
        assert chosen["amp"] is False and all(name.startswith("fp32") for name in record["ms"])
    assert not chosen["compile"] and "too short to repay compiling" in record["why"]
    # The stored config holds what was chosen, so a resume or an evaluation uses the same.
    assert {k: first["config"]["train"][k] for k in chosen} == chosen
    assert json.loads(cache.read_text())  # written for this machine
    again = _train(tmp_path)
    assert again.metrics["autotune"]["cached"] is True
    assert again.metrics["autotune"]["chosen"] == chosen
    log = (Store(str(tmp_path / "runs.db")).run_dir(first.id) / "train.log").read_text()
    assert "auto: amp=" in log


def test_timing_does_not_change_the_numbers(tmp_path, cache):
    # The timed steps train throw-away models; the run itself must start from the same RNG
    # state as a run whose choices were given explicitly.
    timed = _train(tmp_path)
    given = _train(tmp_path, **timed.metrics["autotune"]["chosen"])
    assert "autotune" not in given.metrics
    assert [e["train_loss"] for e in given.epochs] == [e["train_loss"] for e in timed.epochs]
    assert given.metrics["test_accuracy"] == timed.metrics["test_accuracy"]


def test_a_short_run_is_not_timed_and_explicit_values_are_left_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    short = _train(tmp_path, epochs=1, batch_size=512)  # 3 steps
    record = short.metrics["autotune"]
    assert "too few to be worth timing" in record["why"] and "ms" not in record
    assert record["chosen"] == {"amp": True, "channels_last": True, "compile": False}
    assert not (tmp_path / "cache" / "convbench" / "autotune.json").exists()
    fixed = _train(tmp_path, epochs=1, batch_size=512, amp=False, channels_last=False,
                   compile=False)
    assert "autotune" not in fixed.metrics
    assert fixed["config"]["train"]["amp"] is False


def test_a_damaged_cache_costs_a_new_timing_not_the_run(tmp_path, cache):
    cache.parent.mkdir(parents=True)
    cache.write_text("{not json")
    run = _train(tmp_path, epochs=1)
    assert run.status == "completed" and run.metrics["autotune"]["cached"] is False
    assert json.loads(cache.read_text())


def test_auto_is_accepted_from_the_command_line_and_bad_values_are_refused(cli):
    bad = cli("train", "--dataset", "digits", "--set", "train.compile=sometimes")
    assert bad.returncode == 2
    assert "train.compile" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow
def test_a_compiled_run_trains_and_writes_the_weights_of_an_eager_model(tmp_path):
    # torch.compile in place keeps the module's parameter names: the best-weights file loads
    # into a plain model (what evaluation, export and transfer learning do).
    run = _train(tmp_path, epochs=1, batch_size=256, compile=True)
    assert run.status == "completed" and run["config"]["train"]["compile"] is True
    weights = load_file(run["artifacts"]["best_weights"])
    model = create_model(ModelConfig(**run["config"]["model"]), 10, 1, 8)
    model.load_state_dict(weights)
