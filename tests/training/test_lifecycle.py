"""The one run lifecycle: every kind of run is created, ended, stopped and failed the same way,
with energy, peak memory and the artifacts that exist (real SQLite store)."""

import pytest

from convbench.errors import DataError
from convbench.store import Store
from convbench.training.lifecycle import Stopped, recorded_run, resume_target


@pytest.fixture
def store(tmp_path):
    return Store(str(tmp_path / "runs.db"))


def test_a_finished_run_keeps_its_metrics_energy_memory_and_existing_artifacts(store):
    with recorded_run(store, "demo", {"name": "x"}, seed=3, name="x") as run:
        (run.dir / "made.json").write_text("{}")
        run.artifacts |= {"made": "made.json", "never": "never.json"}
        run.metrics = {"answer": 42}
    stored = store.get_run(run.id)
    assert stored["status"] == "completed" and stored["kind"] == "demo" and stored["seed"] == 3
    m = stored["metrics"]
    assert m["answer"] == 42 and m["energy_j"] > 0 and m["peak_memory_bytes"] > 0
    assert m["cost"] == pytest.approx(m["energy_kwh"] * 0.246) and m["energy_method"]
    assert set(stored["artifacts"]) == {"made"}  # no log written, "never" never made
    assert stored["env"]["python"] and stored["ended_at"]


def test_errors_are_stored_as_text_and_raised_again(store):
    with pytest.raises(DataError), recorded_run(store, "demo", {}) as user:
        raise DataError("No images in pages/: add some.")
    with pytest.raises(ValueError), recorded_run(store, "demo", {}) as crash:
        raise ValueError("bad shape")
    assert store.get_run(user.id)["metrics"]["error"] == "No images in pages/: add some."
    assert store.get_run(crash.id)["metrics"]["error"] == "ValueError: bad shape"
    assert {store.get_run(r.id)["status"] for r in (user, crash)} == {"failed"}


@pytest.mark.parametrize("stop", [KeyboardInterrupt, Stopped])
def test_a_stop_leaves_a_resumable_run_that_names_itself(store, stop):
    with pytest.raises(stop) as info, recorded_run(store, "demo", {}) as run:
        raise stop()
    assert info.value.run_id == run.id and store.get_run(run.id)["status"] == "stopped"
    # Taken back: running again, then completed; energy counts the earlier segment's joules.
    assert resume_target(store, run.id[:5], "demo")["id"] == run.id
    with recorded_run(store, "demo", {}, resume=run.id) as again:
        assert store.get_run(run.id)["status"] == "running"
        again.energy_before_j = 1000.0
        assert again.energy_j() >= 1000.0
    stored = store.get_run(run.id)
    assert again.id == run.id and stored["status"] == "completed"
    assert stored["metrics"]["energy_j"] >= 1000.0


def test_only_a_run_of_the_same_kind_that_has_not_completed_is_taken_back(store):
    from convbench.errors import StoreError

    with recorded_run(store, "demo", {}) as done:
        pass
    with pytest.raises(StoreError, match="already completed"):
        resume_target(store, done.id, "demo")
    with pytest.raises(StoreError, match="is a demo run, not a detection run"):
        resume_target(store, done.id, "detect", "detection")


def test_mean_power_is_the_energy_over_the_whole_run_not_its_last_segment(store):
    import time

    start = time.perf_counter()
    with recorded_run(store, "demo", {}) as run:
        end = time.process_time() + 0.6
        while time.process_time() < end:  # busy: about one core's power
            pass
        run.energy_j()  # banked, as every checkpoint does
        time.sleep(0.6)  # idle: almost none
    wall = time.perf_counter() - start
    m = store.get_run(run.id)["metrics"]
    assert m["mean_power_w"] == pytest.approx(m["energy_j"] / wall, rel=0.25)


def test_a_resumed_run_averages_power_over_all_its_segments(store):
    with pytest.raises(KeyboardInterrupt), recorded_run(store, "demo", {}) as run:
        raise KeyboardInterrupt
    with recorded_run(store, "demo", {}, resume=run.id) as again:
        again.energy_before_j, again.energy_before_s = 500.0, 10.0  # from its checkpoint
    m = store.get_run(run.id)["metrics"]
    assert m["energy_j"] >= 500.0 and m["mean_power_w"] == pytest.approx(50.0, rel=0.1)


def test_a_stop_between_two_energy_readings_still_records_stopped(store):
    # SIGTERM can land inside run.energy_j(), after the meter stopped and before it starts
    # again (a checkpoint asks for the joules so far): the run must end `stopped`, not
    # `failed` with "EnergyMeter.stop() called before start()".
    with pytest.raises(Stopped), recorded_run(store, "demo", {}) as run:
        run.energy_j()
        run._meter.stop()  # where the signal interrupted energy_j
        raise Stopped("SIGTERM")
    assert store.get_run(run.id)["status"] == "stopped"


def test_an_abandoned_run_is_left_to_its_new_owner(store):
    from convbench.training.lifecycle import Abandoned

    with pytest.raises(Abandoned), recorded_run(store, "demo", {}) as run:
        raise Abandoned("re-queued")
    assert store.get_run(run.id)["status"] == "running"  # untouched: another worker has it
