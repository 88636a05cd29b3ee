"""Random kills against convbench, and whether anything is lost or done twice.

Two drills, N rounds each, on this machine:

* **train**: `convbench train` (digits, 3 epochs) SIGKILLed at a random moment, then
  `convbench train --resume ID` (started again when the kill came before anything could be
  resumed); the final metrics must equal an uninterrupted run's.
* **pool**: a 4-trial grid search queued on a throw-away PostgreSQL server (started like the
  tests do, tests/pg.py) and drained by two `convbench worker`s, one SIGKILLed at a random
  moment and replaced; every trial must complete exactly once, no run may stay `running`, and
  the per-trial accuracies must equal a single-worker search's.

    python benchmarks/chaos.py --rounds 20            # both drills
    python benchmarks/chaos.py --rounds 3 --only pool

Prints one line per drill: "N/N resumed with the uninterrupted metrics, 0 lost, 0 duplicated".
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from optuna.trial import TrialState

from convbench.search import search
from convbench.search.storage import get_study, open_storage, orphaned, trials
from convbench.store import Store

EXE = os.path.join(os.path.dirname(sys.executable), "convbench")
TRAIN = ["--dataset", "digits", "--model", "B2FL8", "--epochs", "3", "--seed", "0",
         "--set", "train.threads=1", "--set", "measure.cost=false", "--quiet", "--json"]
KEYS = ("test_accuracy", "best_val_accuracy", "best_epoch", "test_loss")
SPACE = {"name": "chaos", "params": {"model.name": ["B2FL4", "B2FL8"], "optim.lr": [1e-3, 3e-3]},
         "base": {"data": {"dataset": "digits"}, "train": {"threads": 1, "batch_size": 64},
                  "measure": {"cost": False}},
         "search": {"strategy": "grid", "epochs": 2}}
FAST = {"CONVBENCH_HEARTBEAT_S": "1", "CONVBENCH_GRACE_S": "4"}


def _run(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def _metrics(run: dict) -> dict:
    return {k: run["metrics"].get(k) for k in KEYS}


def train_drill(rounds: int, rng: random.Random, work: Path) -> tuple[int, int, int, int]:
    """(resumed equal, lost, duplicated, started over)."""
    ref_db = work / "reference.db"
    t0 = time.time()
    done = _run("train", *TRAIN, "--store", str(ref_db), cwd=work)
    duration = time.time() - t0
    reference = _metrics(json.loads(done.stdout))
    equal = lost = duplicated = over = 0
    for i in range(rounds):
        db = work / f"train-{i}.db"
        proc = subprocess.Popen([EXE, "train", *TRAIN, "--store", str(db)], cwd=work,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.2, 0.95) * duration)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        runs = Store(str(db)).list_runs() if db.exists() else []
        if runs and runs[0]["status"] != "completed":
            again = _run("train", "--resume", runs[0]["id"], "--store", str(db), "--quiet",
                         "--json", cwd=work)
            if again.returncode != 0:  # nothing to resume yet: start it again, as a user would
                over += 1
                _run("train", *TRAIN, "--store", str(db), cwd=work)
        elif not runs:
            over += 1
            _run("train", *TRAIN, "--store", str(db), cwd=work)
        finished = [r for r in Store(str(db)).list_runs() if r["status"] == "completed"]
        lost += not finished
        duplicated += max(0, len(finished) - 1)
        if finished and _metrics(Store(str(db)).get_run(finished[0]["id"])) == reference:
            equal += 1
        print(f"  train round {i + 1}: killed after {runs[0]['epochs_done'] if runs else 0} "
              "epoch(s); "
              f"{'equal' if finished and _metrics(finished[0]) == reference else 'DIFFERENT'}",
              file=sys.stderr, flush=True)
    return equal, lost, duplicated, over


def pool_drill(rounds: int, rng: random.Random, work: Path) -> tuple[int, int, int, int]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from pg import running_server

    (work / "space.yaml").write_text(yaml.safe_dump(SPACE))
    single = search(SPACE, store=str(work / "single.db"), workers=1)
    reference = {r["key"]: r["final"] for r in single["rows"]}
    equal = lost = duplicated = 0
    requeued = 0
    with running_server() as server:
        for i in range(rounds):
            url = server.url(server.create_database())
            shared = work / f"shared-{i}"
            queued = _run("search", "space.yaml", "--workers", "0", "--store", url,
                          "--artifacts", str(shared), "--json", cwd=work)
            gid = json.loads(queued.stdout)["id"]

            command = [EXE, "worker", "--store", url, "--group", gid, "--artifacts",
                       str(shared), "--quiet"]

            def start(host: str, command: list[str] = command) -> subprocess.Popen:
                return subprocess.Popen(command, cwd=work, stdout=subprocess.DEVNULL,
                                        env={**os.environ, **FAST, "CONVBENCH_HOST": host},
                                        stderr=subprocess.DEVNULL)

            workers = [start("a"), start("b")]
            storage = open_storage(Store(url, artifacts=shared), create=False)
            while not trials(get_study(storage, gid, "train"), (TrialState.RUNNING,)):
                time.sleep(0.2)
            time.sleep(rng.uniform(0, 6))  # a random moment once the workers are busy
            victim = rng.choice(workers)
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            workers.append(start("c"))
            store = Store(url, artifacts=shared)
            deadline = time.time() + 900
            while store.get_group(gid)["status"] == "running" and time.time() < deadline:
                time.sleep(1)
            for w in workers:
                if w.poll() is None:
                    w.wait(120)
            group = store.get_group(gid)
            study = get_study(open_storage(store, create=False), gid, "train")
            live = [t for t in trials(study) if not orphaned(t)]
            requeued += sum(orphaned(t) for t in trials(study))
            runs = store.list_runs(group_id=gid)
            names = [r["name"] for r in runs if r["status"] == "completed"]
            keys = [t.user_attrs.get("key") for t in live]
            lost += len(set(reference) - set(keys)) + sum(r["status"] == "running" for r in runs)
            duplicated += len(names) - len(set(names)) + len(keys) - len(set(keys))
            rows = (group["metrics"].get("summary") or {}).get("rows") or []
            same = group["status"] == "completed" and \
                {r["key"]: r["final"] for r in rows} == reference
            equal += same
            print(f"  pool round {i + 1}: {'equal' if same else 'DIFFERENT'} "
                  f"({sum(orphaned(t) for t in trials(study))} trial(s) re-queued)",
                  file=sys.stderr, flush=True)
            store.close()
            server.drop_database(url.rsplit("/", 1)[1])
    return equal, lost, duplicated, requeued


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--only", choices=["train", "pool"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="convbench-chaos-") as tmp:
        work = Path(tmp)
        if args.only in (None, "train"):
            eq, lost, dup, over = train_drill(args.rounds, rng, work)
            print(f"train: {eq}/{args.rounds} resumed with the uninterrupted metrics, "
                  f"{lost} lost, {dup} duplicated ({over} killed before anything could be "
                  "resumed, started again)")
        if args.only in (None, "pool"):
            eq, lost, dup, requeued = pool_drill(args.rounds, rng, work)
            print(f"worker pool: {eq}/{args.rounds} resumed with the uninterrupted metrics, "
                  f"{lost} lost, {dup} duplicated ({requeued} trial(s) re-queued after kills)")


if __name__ == "__main__":
    main()
