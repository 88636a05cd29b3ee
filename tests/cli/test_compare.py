import json
import os
from pathlib import Path

import convbench
from convbench.compare import compare
from convbench.store import Store

BASE = {"data": {"dataset": "digits"}, "train": {"epochs": 2, "batch_size": 64},
        "measure": {"latency_repeats": 3, "throughput_batch": 32, "target_accuracy": 0.2}}


def test_compare_in_parallel_records_group_and_reports(tmp_path, store_url):
    report = tmp_path / "out" / "report.html"
    group = compare(BASE, ["simple-cnn", "B2FL8"], seeds=[0, 1], workers=2, store=store_url,
                    report=report)
    assert group["errors"] == []
    runs = group["runs"]
    assert sorted((r["config"]["model"]["name"], r["seed"]) for r in runs) == [
        ("blocks", 0), ("blocks", 1), ("simple-cnn", 0), ("simple-cnn", 1)]
    assert all(r["status"] == "completed" and r["group_id"] == group["id"] for r in runs)
    # every cost column filled for every run
    for r in runs:
        for key in ("test_accuracy", "test_top5", "macro_f1", "best_val_accuracy", "epochs_run",
                    "params_total", "flops", "macs", "disk_bytes", "peak_memory_bytes",
                    "train_time_s", "time_to_target_s", "latency_ms", "throughput_ips",
                    "energy_kwh", "cost"):
            assert r["metrics"][key] is not None, (r["config"]["model"]["name"], key)
    # parallel workers split the cores instead of oversubscribing them
    assert all(r["config"]["train"]["threads"] >= 1 for r in runs)
    for suffix in (".html", ".md", ".csv", ".json"):
        assert report.with_suffix(suffix).stat().st_size > 0
    csv_rows = report.with_suffix(".csv").read_text().strip().splitlines()
    assert len(csv_rows) == 1 + 2  # header + one row per model (seeds aggregated)
    _ran_by_local_workers(store_url, group)


def _ran_by_local_workers(store_url, group):
    """The runs went through the comparison's queue (the one `convbench worker` drains), one
    trial per run in the planned order, each finished by a spawned worker process."""
    from optuna.trial import TrialState

    from convbench.search.storage import get_study, open_storage, trials

    study = get_study(open_storage(Store(store_url), create=False), group["id"], "compare")
    done = trials(study)
    assert [t.user_attrs["label"] for t in done] == group["config"]["run_names"]
    assert all(t.state == TrialState.COMPLETE for t in done)
    by_name = {r["name"]: r["metrics"]["test_accuracy"] for r in group["runs"]}
    assert [t.value for t in done] == [by_name[t.user_attrs["label"]] for t in done]
    assert all(t.user_attrs["worker"]["pid"] != os.getpid() for t in done)
    assert Store(store_url).get_group(group["id"])["status"] == "completed"


def test_a_failing_model_is_reported_not_fatal(store_url):
    # six blocks cannot fit 8×8 digits: that model fails, the other completes
    group = compare(BASE, ["B2FL8", "B6FL4"], store=store_url)
    statuses = {r["config"]["model"]["blocks"]: r["status"] for r in group["runs"]}
    assert statuses == {2: "completed", 6: "failed"}
    assert Store(store_url).get_group(group["id"])["status"] == "failed"


def test_cli_compare_then_report_from_store(cli, tmp_path):
    proc = cli("compare", "--dataset", "digits", "--models", "simple-cnn,B2FL8", "--epochs", "1",
               "--set", "measure.latency_repeats=2", "--json", "--report", "r/report.html")
    assert proc.returncode == 0, proc.stderr
    group = json.loads(proc.stdout)
    assert Path(tmp_path / "r" / "report.html").exists()
    run_id = group["runs"][0]["id"]
    again = cli("report", group["id"][:6], "-o", "again.html")
    assert again.returncode == 0, again.stderr
    html = (tmp_path / "again.html").read_text()
    assert "simple-cnn" in html and "<svg" in html
    single = cli("report", run_id, "-o", "one.html")
    assert single.returncode == 0 and (tmp_path / "one.html").exists()


def test_cli_compares_two_optimisers_of_one_model_over_seeds(cli, tmp_path):
    proc = cli("compare", "--dataset", "digits", "--models", "B2FL8", "--epochs", "1",
               "--variant", "optim.name=adam", "--variant", "optim.name=rmsprop; optim.lr=0.002",
               "--seeds", "0,1", "--workers", "2", "--set", "measure.latency_repeats=2",
               "--json", "--report", "v/report.html")
    assert proc.returncode == 0, proc.stderr
    group = json.loads(proc.stdout)
    runs = group["runs"]
    assert group["kind"] == "compare" and group["errors"] == []
    assert len(runs) == 4 and all(r["group_id"] == group["id"] for r in runs)
    assert sorted((r["config"]["optim"]["name"], r["seed"], r["name"]) for r in runs) == [
        ("adam", 0, "B2FL8 optim=adam-s0"), ("adam", 1, "B2FL8 optim=adam-s1"),
        ("rmsprop", 0, "B2FL8 optim=rmsprop lr=0.002-s0"),
        ("rmsprop", 1, "B2FL8 optim=rmsprop lr=0.002-s1")]
    assert {r["config"]["optim"]["lr"] for r in runs if r["config"]["optim"]["name"] ==
            "rmsprop"} == {0.002}
    assert all(r["config"]["model"]["blocks"] == 2 and r["status"] == "completed" for r in runs)
    # The report: one row per optimiser, its two seeds aggregated as mean ± std.
    rows = json.loads((tmp_path / "v" / "report.json").read_text())["rows"]
    assert [r["label"].split(" (")[0] for r in rows] == ["B2FL8", "B2FL8"]
    assert [r["config"]["optim.name"] for r in rows] == ["adam", "rmsprop"]
    for row in rows:
        stats = row["metrics"]["test_accuracy"]
        assert stats["n"] == 2 and stats["std"] is not None and sorted(row["seeds"]) == [0, 1]
    summary = (tmp_path / "v" / "report.md").read_text().split("\n## ")[0]
    table = [line for line in summary.splitlines() if line.startswith("| B2FL8 (")]
    assert [line.split(" | ")[0] for line in table] == ["| B2FL8 (optim=adam, lr=0.001)",
                                                        "| B2FL8 (optim=rmsprop, lr=0.002)"]
    assert all(line.split(" | ")[1] == "2" and "· 2 seeds)" in line for line in table)


def test_variants_without_models_vary_the_base_model(store_url):
    group = compare({**BASE, "model": {"name": "B1FL4"}, "train": {"epochs": 1}},
                    [["optim.name=adam"], ["optim.name=sgd"]], store=store_url)
    assert [r["name"] for r in group.runs] == ["optim=adam-s0", "optim=sgd-s0"]
    assert {r["config"]["model"]["blocks"] for r in group.runs} == {1}
    assert group.kind == "compare" and group.status == "completed"


def test_compare_errors_are_clear(cli_inproc, tmp_path):
    proc = cli_inproc("compare", "--dataset", "digits", "--models", "simple-cnn,resnt20")
    assert proc.returncode == 2 and "resnet20" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli_inproc("compare", "--models", "simple-cnn", "--seeds", "0,x")
    assert proc.returncode == 2 and "--seeds" in proc.stderr
    proc = cli_inproc("compare", "--models", "B2FL8", "--variant", "optim.name")
    assert proc.returncode == 2 and "--variant 'optim.name': expected key=value" in proc.stderr
    proc = cli_inproc("compare", "--models", "B2FL8", "--variant", "optim.nme=adam")
    assert proc.returncode == 2 and "optim.nme" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli_inproc("compare", "--dataset", "digits")
    assert proc.returncode == 2 and "Nothing to compare" in proc.stderr
    proc = cli_inproc("report", "nosuchid", "-o", "x.html")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    # Only queueing (for `convbench worker` on other machines) needs PostgreSQL.
    proc = cli_inproc("compare", "--dataset", "digits", "--models", "B2FL8", "--workers", "0",
                      "--store", "runs.db")
    assert proc.returncode == 2 and "needs a PostgreSQL store" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 2 and "Traceback" not in proc.stderr
    assert Store(str(tmp_path / "runs.db")).list_groups() == []  # nothing recorded


def test_compare_checks_data_and_report_path_before_training(cli, tmp_path):
    (tmp_path / "afile").write_text("not a folder")
    for args, needle in (
        (["--dataset", "digitz"], "Did you mean 'digits'"),
        (["--dataset", "mnist", "--data-dir", "."], "not found"),
        (["--dataset", "digits", "--report", "afile/r.html"], "is a file"),
        (["--dataset", "digits", "--report", "r.md"], "export"),
    ):
        proc = cli("compare", "--models", "simple-cnn", "--epochs", "1", *args)
        assert proc.returncode == 2 and needle in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
    # nothing was trained or recorded
    assert not (tmp_path / "convbench-runs" / "runs.db").exists() or \
        Store(str(tmp_path / "convbench-runs" / "runs.db")).list_runs() == []


def test_report_counts_a_run_named_twice_once(tmp_path, store_url):
    from convbench.results import collect_runs

    group = compare(BASE, ["B2FL8"], seeds=[0, 1], store=store_url)
    store = Store(store_url)
    first = group["runs"][0]["id"]
    runs, _ = collect_runs(store, [group["id"], first, first[:6]])
    assert sorted(r["id"] for r in runs) == sorted(r["id"] for r in group["runs"])


def test_python_api_names():
    assert callable(convbench.train) and convbench.Store is Store


def test_sigterm_stops_the_local_workers_and_puts_their_runs_back(tmp_path):
    """A stop of `compare --workers 2` stops both worker processes: each puts its run back
    in the comparison's queue, the run stays resumable and the comparison is `stopped`."""
    import signal
    import subprocess
    import sys
    import time

    from optuna.trial import TrialState

    from convbench.search.storage import get_study, open_storage, trials

    exe = os.path.join(os.path.dirname(sys.executable), "convbench")
    db = tmp_path / "runs.db"
    proc = subprocess.Popen([exe, "compare", "--dataset", "digits", "--models", "B2FL8,B2FL4",
                             "--epochs", "200", "--workers", "2", "--store", str(db), "--quiet"],
                            cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:  # both runs past an epoch
            runs = Store(str(db)).list_runs(status="running") if db.exists() else []
            if len(runs) == 2 and all(r["epochs_done"] >= 1 for r in runs):
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"the runs never got going: {proc.communicate()[1]}")
        proc.send_signal(signal.SIGTERM)
        stderr = proc.communicate(timeout=120)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and "Stopped." in stderr and "Traceback" not in stderr, stderr
    store = Store(str(db))
    group = store.list_groups()[0]
    assert group["status"] == "stopped"
    study = get_study(open_storage(store, create=False), group["id"], "compare")
    assert not trials(study, (TrialState.RUNNING,))
    back = trials(study, (TrialState.WAITING,))
    assert sorted(t.user_attrs["label"] for t in back) == sorted(group["config"]["run_names"])
    assert sorted(r["status"] for r in store.list_runs(group_id=group["id"])) == \
        ["stopped", "stopped"]
