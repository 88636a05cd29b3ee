"""End-to-end searches on digits: screening with two workers and an audit, a pruner, the
online screen pruner with TPE, time budgets, and a search killed midway and resumed."""

import json

import psutil
import pytest
import yaml
from optuna.trial import TrialState

from convbench.search import search
from convbench.search import space as sp
from convbench.search.rules import verdict
from convbench.search.storage import get_study, open_storage, trials
from convbench.store import Store


def _write(tmp_path, data, name="space.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_screening_with_two_workers_discards_trains_audits_and_reports(cli, tmp_path, space):
    path = _write(tmp_path, space())
    proc = cli("search", str(path), "--workers", "2", "--audit", "--report", "out/search.html",
               "--store", "runs.db", check=True)
    # --audit prints the correlations, the regret and the compute saved.
    assert "Spearman" in proc.stdout and "Kendall" in proc.stdout
    assert "regret" in proc.stdout and "saved" in proc.stdout
    store = Store(str(tmp_path / "runs.db"))
    group = store.list_groups(kind="search")[0]
    summary = group["metrics"]["summary"]
    rows = {r["label"]: r for r in summary["rows"]}
    assert len(rows) == 4 and group["status"] == "completed"
    # The verdicts are checked against the rule, not against borderline scores: the early
    # accuracies differ between bf16 (AVX-512) and fp32 (AVX2) numerics, and a second Adam
    # configuration may land on either side of "best − margin". Plain SGD at 1e-4..1e-2 stays
    # at chance in two epochs on every CPU; Adam clearly learns.
    rule = sp.parse(space()).screen
    groups: dict = {}
    for row in rows.values():
        groups.setdefault(row["group"], []).append(row["early"])
    for label, row in rows.items():
        found = verdict(row["early"], row["chance"], groups[row["group"]], rule)
        expected = found and found[1]
        if expected is None:
            assert row["status"] == "kept", (label, row["status"])
            assert row["final"] is not None
        else:
            assert row["status"] == f"discarded: {expected}", (label, row["status"])
            assert row["audit_final"] is not None  # the audit trained it anyway
        if "optim=sgd" in label:
            assert row["status"].startswith("discarded: no convergence"), row["status"]
        if row["status"] == "kept":
            lo, hi = row["lr_bounds"]
            assert 1e-4 <= lo < hi <= 1e-2
    kept = [r for r in rows.values() if r["status"] == "kept"]
    assert kept and all("optim=adam" in r["label"] for r in kept)
    assert all(r["final"] > r["early"] > 0.3 for r in kept)
    winner = summary["winner"]
    assert "optim=adam" in winner["label"] and winner["test"]["value"] > 0.5
    cfg = yaml.safe_load((tmp_path / "out" / "search-winner.yaml").read_text())
    assert cfg["schedule"]["name"] == "triangular2" and cfg["train"]["epochs"] == 3
    assert cfg["optim"]["lr"] == pytest.approx(rows[winner["label"]]["lr_bounds"][0])
    audit = summary["audit"]
    discarded = 4 - len(kept)
    assert audit["pairs"] == 4 and audit["audited"] == audit["discarded"] == discarded >= 2
    assert audit["spearman"] is not None and audit["regret_points"] >= 0
    # Trust per rule: its discards, how many the audit trained, how many ended in the top k
    # (here the top 1: Adam learns, plain SGD stays at chance), and one sentence for it.
    trust = audit["rules"]["no convergence"]
    assert trust["audited"] == trust["discarded"] >= 2 and trust["in_top_k"] == 0
    assert trust["sentence"].startswith("no convergence: none of its")
    assert "trust" in proc.stdout
    compute = summary["compute"]
    assert compute["trained_in_full"] == 4 and not compute["exhaustive_estimated"]
    # Every trial is a run of the group: 4 configs × 2 seeds range tests, and each config
    # trained once (kept ones by the search, discarded ones by the audit).
    kinds = [r["kind"] for r in store.list_runs(group_id=group["id"])]
    assert kinds.count("lr-find") == 8 and kinds.count("train") == 4
    html = (tmp_path / "out" / "search.html").read_text()
    for heading in ("Trials", "LR range curves", "Early against final", "Compute",
                    "Winning config", "no convergence", "How far to trust each rule"):
        assert heading in html
    assert json.loads((tmp_path / "out" / "search.json").read_text())["id"] == group["id"]
    # Adam against plain SGD decides everything here; the model barely matters.
    importance = summary["importance"]
    assert importance["optim.name"] > importance["model.name"]
    # The winner's YAML reproduces its run with `convbench train` as it is (same seed, same
    # threads, same numbers).
    assert cfg["train"]["threads"] == 1
    proc = cli("train", "out/search-winner.yaml", "--json", "--store", "again.db", check=True)
    assert json.loads(proc.stdout)["metrics"]["best_val_accuracy"] == winner["val"]


def test_median_pruner_prunes_and_the_audit_trains_the_pruned(store_url, space):
    spec = space(params={"optim.name": ["adam", "sgd"], "model.name": ["B2FL8"],
                         "lr_range": [[1.0e-3, 1.0e-2]]},
                 search={"strategy": "grid", "epochs": 3,
                         "pruner": {"name": "median", "startup_trials": 1,
                                    "warmup_epochs": 0}},
                 audit={"enabled": True})
    result = search(spec, store=store_url)
    # The entry point returns the search's group with its runs, the summary's keys on top.
    assert result.kind == "search" and result.id == result["summary"]["id"]
    assert {r.id for r in result.runs} == set(result["run_ids"]) and result.runs
    rows = {r["point"]["optim.name"]: r for r in result["rows"]}
    assert rows["adam"]["status"] == "completed"
    assert rows["sgd"]["status"].startswith("pruned after epoch")
    run = Store(store_url).get_run(rows["sgd"]["train_runs"][0])
    assert run["status"] == "stopped" and run["metrics"]["pruned"] is True
    assert len(run["epochs"]) < 3
    assert rows["sgd"]["audit_final"] is not None and result["audit"]["audited"] == 1
    assert result["early_measure"].startswith("validation accuracy of the first seed after")
    assert result["compute"]["used"]["epochs"] < 6


def test_tpe_with_the_online_screen_pruner(store_url, space):
    spec = space(search={"strategy": "tpe", "trials": 3, "epochs": 2,
                         "pruner": {"name": "screen"}},
                 screen={"epochs": 1, "seeds": [0]})
    result = search(spec, store=store_url)
    assert len(result["rows"]) <= 3 and result["status"] == "completed"
    store = Store(store_url)
    for row in result["rows"]:
        assert row["early"] is not None and len(row["screen_runs"]) == 1
        if row["status"].startswith("discarded"):
            assert not row.get("train_runs")
        else:
            run = store.get_run(row["train_runs"][0])
            lo, hi = row["lr_bounds"] if row["lr_bounds"][0] else row["swept"]
            assert run["config"]["schedule"]["name"] == "triangular2"
            assert (run["config"]["optim"]["lr"], run["config"]["schedule"]["max_lr"]) == (lo, hi)


def test_time_budget_stops_and_resume_finishes(store_url, space):
    spec = space(params={"model.name": ["B2FL4"], "optim.name": ["adam"],
                         "lr_range": [[1.0e-3, 1.0e-2]]},
                 search={"strategy": "screen", "epochs": 1, "time_budget_s": 1e-6},
                 screen={"epochs": 1, "seeds": [0]})
    first = search(spec, store=store_url)
    assert first["status"] == "stopped"
    assert [r["status"] for r in first["rows"]] == ["pending"]
    assert Store(store_url).list_runs(group_id=first["id"]) == []
    stored = Store(store_url).get_group(first["id"])["metrics"]["summary"]
    assert "time budget" in stored["stopped_reason"]
    done = search(resume=first["id"], store=store_url, time_budget_s=3600)
    assert done["status"] == "completed" and done["winner"] is not None
    # The stored summary is the finished one: no stale "stopped" reason from the first start.
    stored = Store(store_url).get_group(first["id"])["metrics"]["summary"]
    assert stored["status"] == "completed" and not stored.get("stopped_reason")


@pytest.mark.parametrize("params, options, message", [
    ({"model.name": ["B2FL4", "nosuchnet"]}, [], "nosuchnet"),
    # random strategy: every choice is checked up front, not when a trial draws it
    ({"model.name": ["B2FL4"], "optim.name": ["adam", "adamm"]}, ["--strategy", "random"],
     "Unknown optimizer 'adamm'"),
    ({"schedule.name": ["cosine", "bogus"]}, [], "Unknown schedule 'bogus'"),
    ({"optim.lr": {"low": 1e-3, "high": 1e-2, "step": -1e-3}}, ["--strategy", "random"],
     "step"),
    ({"model.name": ["B2FL4"]}, ["--audit-sample", "-1"], "--audit-sample -1"),
    ({"model.name": ["B2FL4"]}, ["--time-budget", "-5"], "--time-budget -5"),
    ({"model.name": ["B2FL4"]}, ["--seeds", "0,0"], "twice"),
    ({"model.name": ["B2FL4"]}, ["--seeds", ""], "comma-separated"),
    ({"model.name": ["B2FL4"]}, ["--workers", "-1"], "--workers -1"),
    ({"model.name": ["B2FL4"]}, ["--workers", "0"], "needs a PostgreSQL store"),
])
def test_bad_space_is_a_one_line_error(cli_inproc, tmp_path, params, options, message):
    path = _write(tmp_path, {"base": {"data": {"dataset": "digits"}}, "params": params})
    proc = cli_inproc("search", str(path), "--store", "runs.db", *options)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) <= 2
    assert "Traceback" not in proc.stderr
    # nothing trained
    assert not (tmp_path / "runs.db").exists() or Store(str(tmp_path / "runs.db")).list_runs() == []


def test_random_repeats_reuse_results_and_a_resume_draws_anew(store_url, space, monkeypatch):
    from convbench.search import worker

    # Two configurations, six random trials: repeats take the earlier result, untrained.
    spec = space(params={"model.name": ["B2FL4"], "optim.name": ["adam", "sgd"]},
                 search={"strategy": "random", "trials": 6, "epochs": 1})
    result = search(spec, store=store_url)
    runs = Store(store_url).list_runs(group_id=result["id"])
    assert len(runs) == len(result["rows"]) == 2
    assert result["repeats"] == 4 and result["compute"]["used"]["epochs"] == 2

    # A float range never repeats by chance; interrupted after two trials and resumed, the
    # search must not replay the first start's draws.
    spec = space(params={"model.name": ["B2FL4"],
                         "optim.lr": {"low": 1e-4, "high": 1e-2, "log": True}},
                 search={"strategy": "random", "trials": 5, "epochs": 1})
    real, calls = worker.execute, []

    def interrupted(ctx, trial):
        calls.append(trial.number)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(ctx, trial)

    monkeypatch.setattr(worker, "execute", interrupted)
    with pytest.raises(KeyboardInterrupt):
        search(spec, store=store_url)
    monkeypatch.setattr(worker, "execute", real)
    gid = Store(store_url).list_groups(kind="search")[0]["id"]
    done = search(resume=gid, store=store_url)
    assert done["status"] == "completed" and len(done["rows"]) == 5
    study = get_study(open_storage(Store(store_url)), gid, "train")
    lrs = [t.params["optim.lr"] for t in trials(study, (TrialState.COMPLETE,))]
    assert len(lrs) == 5 and len(set(lrs)) == 5


def test_a_search_whose_every_trial_failed_says_so(store_url, space, monkeypatch):
    from convbench.search import worker

    def broken(ctx, trial):
        raise RuntimeError("boom")

    monkeypatch.setattr(worker, "execute", broken)
    spec = space(params={"model.name": ["B2FL4"], "optim.name": ["adam", "sgd"]},
                 search={"strategy": "grid", "epochs": 1})
    result = search(spec, store=store_url)
    assert result["status"] == "failed"
    assert all("boom" in r["status"] for r in result["rows"])


def test_killed_search_resumes_without_losing_or_repeating_trials(cli, tmp_path, space,
                                                                  killed_search):
    spec = space(params={"model.name": ["B2FL4", "B2FL8"], "optim.name": ["adam", "sgd"],
                         "lr_range": [[1.0e-4, 1.0e-2], [1.0e-3, 1.0e-1]]},
                 search={"strategy": "screen", "epochs": 2})
    db = tmp_path / "runs.db"
    workers = killed_search(spec, db, workers=2, screened=2)
    # The workers notice their coordinator died and stop (Linux parent-death signal).
    _, alive = psutil.wait_procs(workers, timeout=60)
    assert not alive

    store = Store(str(db))
    group = store.list_groups(kind="search")[0]
    before = {r["name"]: r["id"] for r in store.list_runs(group_id=group["id"], status="completed")}
    assert before and group["status"] == "running"

    cli("search", "--resume", group["id"], "--workers", "2", "--store", str(db), check=True)

    group = store.get_group(group["id"])
    assert group["status"] == "completed"
    storage = open_storage(store, create=False)
    screen = get_study(storage, group["id"], "screen")
    orphans = [t for t in trials(screen) if t.user_attrs.get("orphaned")]
    assert orphans and all(t.state == TrialState.FAIL for t in orphans)  # killed mid-trial
    live = [t for t in trials(screen) if not t.user_attrs.get("orphaned")]
    keys = [t.user_attrs["key"] for t in live]
    expected = {sp.key_of(p) for p in sp.grid(sp.parse(spec))}
    assert sorted(keys) == sorted(expected)  # every configuration once, none lost
    assert all(t.state == TrialState.COMPLETE for t in live)
    runs = store.list_runs(group_id=group["id"], status="completed")
    names = [r["name"] for r in runs]
    assert len(names) == len(set(names))  # nothing finished was done twice
    assert sum(r["kind"] == "lr-find" for r in runs) == len(expected) * 2
    after = {r["name"]: r["id"] for r in runs}
    assert all(after[name] == rid for name, rid in before.items())  # finished runs kept
    used = {rid for t in live for rid in t.user_attrs["screen_runs"]}
    assert {rid for name, rid in before.items() if "screen" in name} <= used
