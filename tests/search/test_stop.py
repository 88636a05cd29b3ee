"""Stopping a search with local workers: SIGTERM ends it as cleanly as Ctrl-C (no worker
tracebacks, no leaked semaphores, the search recorded ``stopped``, the hint names its id),
and the resumed trials print the numbers their runs carry."""

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time

import yaml

from convbench.store import Store


def _completed(db, phase="train"):
    try:
        with sqlite3.connect(db, timeout=30) as conn:
            return conn.execute(
                "select count(*) from trials t join studies s on t.study_id = s.study_id "
                f"where s.study_name like '%-{phase}' and t.state = 'COMPLETE'").fetchone()[0]
    except sqlite3.OperationalError:  # tables not created yet
        return 0


def _trial_lines(stderr):
    """(phase, number, label) of each ``[phase #n] label: …`` line."""
    return re.findall(r"^\[(\w+) #(\d+)\] (.+?): ", stderr, re.M)


def test_sigterm_stops_a_search_cleanly_and_resumed_trials_keep_their_numbers(cli, tmp_path,
                                                                              space):
    spec = space(params={"model.name": ["B2FL4", "B2FL8"], "optim.name": ["adam", "sgd"],
                         "optim.lr": [1e-3, 3e-3]},
                 search={"strategy": "grid", "epochs": 3})
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(spec))
    db = tmp_path / "runs.db"
    exe = os.path.join(os.path.dirname(sys.executable), "convbench")
    proc = subprocess.Popen([exe, "search", "space.yaml", "--workers", "2", "--store", str(db)],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        deadline = time.time() + 400
        while _completed(db) < 1:
            assert proc.poll() is None and time.time() < deadline, "search ended or hung"
            time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)  # to the coordinator only, as `kill PID` does
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    store = Store(str(db))
    group = store.list_groups(kind="search")[0]
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "leaked" not in stderr, stderr
    assert f"convbench search --resume {group['id']}" in stderr
    assert group["status"] == "stopped"
    assert not store.list_runs(group_id=group["id"], status="running")

    done = cli("search", "--resume", group["id"], "--workers", "2", "--store", str(db),
               check=True)
    names = {r["name"] for r in store.list_runs(group_id=group["id"], status="completed")}
    lines = _trial_lines(done.stderr)
    assert lines, done.stderr
    # The trials the stop put back run again under new Optuna numbers; what they print is
    # the number in their runs' names.
    for phase, number, label in lines:
        assert f"{label} · {phase} #{number} · s0" in names, (phase, number, label, names)
    assert store.get_group(group["id"])["status"] == "completed"
