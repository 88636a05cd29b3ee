import os
import signal
import sqlite3
import subprocess
import sys
import time

import psutil
import pytest
import yaml

# Tiny and deterministic: digits (8×8), 2-block nets with 4 or 8 base filters, one thread per
# run. With plain SGD (no momentum) at 1e-4..1e-2 the nets stay at chance in two epochs while
# Adam learns: screening must discard the SGD configurations as non-converging.
BASE = {"data": {"dataset": "digits"}, "optim": {"momentum": 0.0},
        "train": {"batch_size": 64, "threads": 1}, "measure": {"cost": False}}


# The study's screen (every cheaper option off): the tests of the classic mechanism keep it;
# test_screen_early.py switches the options on one by one.
STUDY_SCREEN = {"stop_at_chance": None, "stop_diverged": None, "stop_hopeless": False,
                "adaptive_seeds": False, "survivors": "full"}


@pytest.fixture
def space():
    def make(**sections):
        data = {"name": "t", "base": BASE,
                "params": {"model.name": ["B2FL4", "B2FL8"], "optim.name": ["adam", "sgd"],
                           "lr_range": [[1.0e-4, 1.0e-2]]},
                "search": {"strategy": "screen", "epochs": 3},
                "screen": {"epochs": 2, "seeds": [0, 1], **STUDY_SCREEN}}
        for key, value in sections.items():
            data[key] = value if not isinstance(value, dict) else {**data.get(key, {}), **value}
        return data

    return make


def completed_screen_trials(db, state: str = "COMPLETE") -> int:
    """Range-test trials of the search in ``db`` in ``state`` (COMPLETE, RUNNING, …)."""
    try:
        with sqlite3.connect(db, timeout=30) as conn:
            return conn.execute(
                "select count(*) from trials t join studies s on t.study_id = s.study_id "
                "where s.study_name like '%-screen' and t.state = ?", (state,)).fetchone()[0]
    except sqlite3.OperationalError:  # tables not created yet
        return 0


@pytest.fixture
def killed_search(tmp_path):
    """Start `convbench search` on a space (the real console script, in tmp_path), SIGKILL it
    once ``screened`` range-test trials have completed and another is running, and return the
    worker processes it had (to check that they stop too)."""
    exe = os.path.join(os.path.dirname(sys.executable), "convbench")

    def run(spec: dict, db, *, workers: int, screened: int) -> list[psutil.Process]:
        path = tmp_path / "space.yaml"
        path.write_text(yaml.safe_dump(spec))
        proc = subprocess.Popen([exe, "search", str(path), "--workers", str(workers),
                                 "--store", str(db), "--quiet"], cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            deadline = time.time() + 400
            # Screened enough, and a trial running (not every worker between two trials).
            while (completed_screen_trials(db) < screened
                   or not completed_screen_trials(db, "RUNNING")):
                assert proc.poll() is None and time.time() < deadline, "search ended or hung"
                time.sleep(0.2)
            workers_of = psutil.Process(proc.pid).children(recursive=True)
            proc.send_signal(signal.SIGKILL)  # no chance to clean up
            proc.wait(30)
            return workers_of
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)

    return run
