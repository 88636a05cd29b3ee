"""Searches shared by workers on several "machines" (processes with their own host names) on a
real PostgreSQL server: queued with ``--workers 0``, drained by ``convbench worker``s of which
two are SIGKILLed mid-trial and one joins late — every trial completes exactly once, with the
numbers of a single-worker run — plus the refusals and bad inputs of ``convbench worker``."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from optuna.trial import TrialState

from convbench.search import search
from convbench.search.status import search_status
from convbench.search.storage import get_study, open_storage, orphaned, trials
from convbench.store import Store

_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from pg import PASSWORD, postgres_server, postgres_url  # noqa: E402, F401

EXE = os.path.join(os.path.dirname(sys.executable), "convbench")
# Beat every second, re-queue after 4 s without one: a dead worker's trial comes back fast.
FAST = {"CONVBENCH_HEARTBEAT_S": "1", "CONVBENCH_GRACE_S": "4"}


def _grid(space):
    # 2 models × 2 optimisers × 3 learning rates = 12 trials of 2 epochs each.
    return space(params={"model.name": ["B2FL4", "B2FL8"], "optim.name": ["adam", "sgd"],
                         "optim.lr": [1e-3, 3e-3, 1e-2]},
                 search={"strategy": "grid", "epochs": 2})


def _start(url, gid, host, shared, tmp_path, *options):
    """A worker as on another machine: its own host name and artifacts cache (used when
    ``shared`` is a URL)."""
    env = {**os.environ, **FAST, "CONVBENCH_HOST": host,
           "CONVBENCH_ARTIFACTS_CACHE": str(tmp_path / f"cache-{host}")}
    log = open(tmp_path / f"{host}.log", "w")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen([EXE, "worker", "--store", url, "--group", gid,
                             "--artifacts", str(shared), *options], cwd=tmp_path, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _queue(spec, url, tmp_path):
    """Queue ``spec`` with ``convbench search --workers 0``: (search id, shared folder, store)."""
    shared = tmp_path / "shared"
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(spec))
    queued = subprocess.run([EXE, "search", "space.yaml", "--workers", "0", "--store", url,
                             "--artifacts", str(shared), "--json"],
                            cwd=tmp_path, capture_output=True, text=True, check=True)
    answer = json.loads(queued.stdout)
    assert answer["status"] == "queued"
    return answer["id"], shared, Store(url, artifacts=shared), answer["waiting"]


def _until_done(store, gid, deadline):
    while store.get_group(gid)["status"] == "running":
        assert time.time() < deadline, "the search did not finish"
        time.sleep(1)


def _all_done(store, gid, procs, deadline):
    """Wait for the search to end; every worker then stops by itself, with status 0."""
    _until_done(store, gid, deadline)
    for proc in procs.values():
        assert proc.wait(120) == 0


def _kill_all(procs):
    for proc in procs.values():
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)  # in case a test left it stopped
            os.killpg(proc.pid, signal.SIGKILL)


def _victim(store, storage, gid, procs, after_checkpoint, second_epoch=True):
    """The pid of a live worker whose trial's run is training its second epoch (its first
    epoch stored and, with ``after_checkpoint``, checkpointed), or None. Not
    ``second_epoch``: any epoch after the first (a wider window to catch it in)."""
    study = get_study(storage, gid, "train")
    owners = {t.user_attrs.get("origin", t.number): t.user_attrs.get("worker", {}).get("pid")
              for t in trials(study, (TrialState.RUNNING,))}
    live = {p.pid for p in procs.values() if p.poll() is None}
    for run in store.list_runs(group_id=gid, status="running"):
        if run["epochs_done"] < 1 or (second_epoch and run["epochs_done"] != 1):
            continue
        if after_checkpoint and not (store.artifacts_root / run["id"] / "last.pt").exists():
            continue
        origin = int(run["name"].split(" #")[1].split(" ")[0])
        if owners.get(origin) in live:
            return owners[origin]
    return None


def _kill_one(store, storage, gid, procs, after_checkpoint, deadline):
    while time.time() < deadline:
        pid = _victim(store, storage, gid, procs, after_checkpoint)
        if pid is not None:
            host = next(host for host, p in procs.items() if p.pid == pid)
            os.kill(pid, signal.SIGKILL)
            procs[host].wait(30)  # dead before the next look: a victim is not chosen twice
            return host
        time.sleep(0.1)
    raise AssertionError("no worker was found mid-trial")


@pytest.mark.postgres
def test_workers_on_several_hosts_survive_kills_and_match_one_worker(
        postgres_url, tmp_path, space, monkeypatch):  # noqa: F811
    spec = _grid(space)
    single = search(spec, store=str(tmp_path / "single.db"), workers=1)

    gid, shared, store, waiting = _queue(spec, postgres_url, tmp_path)
    assert waiting == 12
    storage = open_storage(store, create=False)
    # At most 3 trials each: the worker started late is sure to find work left.
    procs = {h: _start(postgres_url, gid, h, shared, tmp_path, "--max-trials", "3")
             for h in ("host-a", "host-b", "host-c")}
    try:
        deadline = time.time() + 600
        # One killed after its run checkpointed epoch 1 (it must resume from there), one
        # as soon as its run stored epoch 1 (maybe while writing the checkpoint).
        killed = [_kill_one(store, storage, gid, procs, True, deadline)]
        killed.append(_kill_one(store, storage, gid, procs, False, deadline))
        assert len(set(killed)) == 2
        procs["host-d"] = _start(postgres_url, gid, "host-d", shared, tmp_path)  # joins late
        while store.get_group(gid)["status"] == "running":
            assert time.time() < deadline, "the search did not finish"
            assert any(p.poll() is None for p in procs.values()), "every worker ended"
            time.sleep(1)
        for host, proc in procs.items():  # the others stop once the search has ended
            assert proc.wait(120) == (-signal.SIGKILL if host in killed else 0), host
    finally:
        _kill_all(procs)

    group = store.get_group(gid)
    assert group["status"] == "completed"
    study = get_study(storage, gid, "train")
    live = [t for t in trials(study) if not orphaned(t)]
    assert all(t.state == TrialState.COMPLETE for t in live)
    assert sorted(t.user_attrs["key"] for t in live) == \
        sorted(r["key"] for r in single["rows"])  # every configuration exactly once
    runs = store.list_runs(group_id=gid)
    assert not [r for r in runs if r["status"] == "running"]
    names = [r["name"] for r in runs if r["status"] == "completed"]
    assert len(names) == len(set(names)) == 12  # nothing completed twice
    # The run killed after its checkpoint went on from epoch 1 on another worker.
    logs = [(store.artifacts_root / r["id"] / "train.log").read_text() for r in runs
            if r["status"] == "completed"]
    assert any("resumed after epoch 1" in log for log in logs)
    # The same numbers as one worker alone: the winner and every configuration's score.
    summary = group["metrics"]["summary"]
    assert summary["winner"]["key"] == single["winner"]["key"]
    assert summary["winner"]["test"] == single["winner"]["test"]
    assert {r["key"]: r["final"] for r in summary["rows"]} == \
        {r["key"]: r["final"] for r in single["rows"]}
    # Status: both killed attempts were re-queued by the heartbeat; four hosts took part.
    status = search_status(store, gid)
    seen = [(t.number, t.state.name, t.user_attrs.get("origin"), t.user_attrs.get("worker"),
             t.user_attrs.get("requeued_by")) for t in trials(study)]
    assert status["totals"]["re-queued"] == 2 and status["totals"]["done"] == 12, (killed, seen)
    assert status["totals"]["waiting"] == status["totals"]["running"] == 0
    assert {w["host"] for w in status["workers"]} == {"host-a", "host-b", "host-c", "host-d"}
    requeued = [t for t in trials(study) if orphaned(t)]
    assert {t.user_attrs["worker"]["host"] for t in requeued} == set(killed)
    shown = subprocess.run([EXE, "search", "--status", gid, "--store", postgres_url],
                           cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert "re-queued" in shown and "host-d" in shown


def test_worker_refuses_a_sqlite_store(cli, tmp_path):
    proc = cli("worker", "--store", str(tmp_path / "runs.db"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "PostgreSQL" in proc.stderr and "--workers N" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.postgres
def test_bad_worker_inputs_are_one_line_errors(cli, postgres_url, tmp_path):  # noqa: F811
    store = Store(postgres_url, artifacts=tmp_path / "a")
    compare_id = store.create_group(kind="compare", name="c", config={})
    unreachable = "postgresql://me:pw@127.0.0.1:1/runs?connect_timeout=3"
    no_database = postgres_url.rsplit("/", 1)[0] + "/no_such_db"
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    for args, message in [
        (["--store", unreachable], "Cannot open run store"),
        (["--store", no_database], "no_such_db"),
        (["--store", postgres_url, "--group", compare_id], "matches no search"),
        (["--store", postgres_url, "--group", "nosuch"], "matches no search"),
        (["--store", postgres_url, "--artifacts", str(blocked / "sub")],
         "Cannot write to the artifacts folder"),
        (["--store", postgres_url, "--artifacts", f"file://{blocked}/sub"],
         "Cannot write to the artifacts location"),
        (["--store", postgres_url, "--artifacts", "nosuch://bucket/cb"], "Protocol not known"),
    ] + ([] if importlib.util.find_spec("s3fs") else [  # s3fs absent: say what to install
        (["--store", postgres_url, "--artifacts", "s3://bucket/cb"], "s3fs"),
    ]):
        proc = cli("worker", *args, "--until-empty", timeout=120)
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "pw@" not in proc.stderr  # passwords stay out of messages


@pytest.mark.postgres
def test_workers_wait_out_a_database_restart(postgres_server, postgres_url, tmp_path,  # noqa: F811
                                             space):
    spec = space(params={"model.name": ["B2FL4", "B2FL8"], "optim.name": ["adam", "sgd"]},
                 search={"strategy": "grid", "epochs": 3})
    gid, shared, store, _ = _queue(spec, postgres_url, tmp_path)
    procs = {h: _start(postgres_url, gid, h, shared, tmp_path) for h in ("host-a", "host-b")}
    try:
        deadline = time.time() + 600
        while not [r for r in store.list_runs(group_id=gid, status="running")
                   if r["epochs_done"] >= 1]:
            assert time.time() < deadline and all(p.poll() is None for p in procs.values())
            time.sleep(0.2)
        postgres_server.restart()  # every connection cut while both workers train
        _all_done(store, gid, procs, deadline)
    finally:
        _kill_all(procs)
    assert store.get_group(gid)["status"] == "completed"
    status = search_status(store, gid)
    assert status["totals"]["done"] == 4 and status["totals"]["failed"] == 0
    runs = store.list_runs(group_id=gid)
    assert not [r for r in runs if r["status"] in ("running", "failed")]
    names = [r["name"] for r in runs if r["status"] == "completed"]
    assert len(names) == len(set(names)) == 4  # nothing lost, nothing done twice


# A worker process that holds the search's row lock inside a transaction and is then stopped
# (SIGSTOP: as if its machine froze or its network were cut mid-transaction).
_HOLD_THE_ROW = """
import sys, time
import sqlalchemy as sa
from convbench.store import Store
with Store(sys.argv[1]).engine.connect() as conn:
    conn.begin()
    conn.execute(sa.text("select id from groups where id = :g for update"), {"g": sys.argv[2]})
    print("locked", flush=True)
    time.sleep(600)
"""


@pytest.mark.postgres
def test_a_worker_stopped_inside_a_transaction_does_not_block_the_others(
        postgres_url, tmp_path):  # noqa: F811
    # The cause of the SIGSTOP test's old 600 s hang: the stopped worker's status update held
    # the group's row lock, so every other worker's status update waited for it forever.
    store = Store(postgres_url, artifacts=tmp_path / "a")
    gid = store.create_group(kind="search", name="s", config={})
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_THE_ROW, postgres_url, gid],
                              env={**os.environ, "CONVBENCH_PG_IDLE_TX_S": "2"},
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        os.kill(holder.pid, signal.SIGSTOP)
        other = threading.Thread(target=store.update_group, args=(gid,),
                                 kwargs={"metrics": {"workers": {"b": {"state": "idle"}}}},
                                 daemon=True)
        other.start()
        other.join(60)
        assert not other.is_alive(), \
            "another worker's update still waits for the stopped worker's row lock after 60 s"
    finally:
        os.kill(holder.pid, signal.SIGCONT)
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait(30)
    assert store.get_group(gid)["metrics"]["workers"]["b"] == {"state": "idle"}


def _wait(what, done, deadline, procs):
    """Wait until ``done()``; fail at once when every worker has ended, or at the deadline,
    saying what did not happen and how each worker ended (never a silent wait)."""
    while not done():
        ended = {h: p.poll() for h, p in procs.items()}
        if time.time() >= deadline or all(code is not None for code in ended.values()):
            raise AssertionError(f"gave up waiting for {what} (workers' exit codes: {ended})")
        time.sleep(0.1)


@pytest.mark.postgres
def test_a_worker_cut_off_past_the_grace_period_abandons_its_trial(postgres_url, tmp_path,  # noqa: F811
                                                                    space):
    # Six epochs: a worker is caught mid-trial in any of five (one epoch of these tiny nets
    # can pass between two looks on a fast CPU: the old test then waited 600 s for nothing).
    spec = space(params={"model.name": ["B2FL4", "B2FL8"], "optim.name": ["adam"]},
                 search={"strategy": "grid", "epochs": 6})
    gid, shared, store, _ = _queue(spec, postgres_url, tmp_path)
    storage = open_storage(store, create=False)
    procs = {"host-a": _start(postgres_url, gid, "host-a", shared, tmp_path)}
    victim: list[int] = []
    try:
        deadline = time.time() + 300
        _wait("host-a to checkpoint an epoch of a trial",
              lambda: victim.append(pid) or True
              if (pid := _victim(store, storage, gid, procs, True, False)) else False,
              deadline, procs)
        os.kill(victim[0], signal.SIGSTOP)  # as if its network were cut mid-trial
        procs["host-b"] = _start(postgres_url, gid, "host-b", shared, tmp_path)
        study = get_study(storage, gid, "train")
        _wait("host-b to re-queue host-a's trial",
              lambda: [t for t in trials(study) if orphaned(t)], deadline, procs)
        os.kill(victim[0], signal.SIGCONT)  # A comes back and must give the trial up
        _wait("the search to end", lambda: store.get_group(gid)["status"] != "running",
              deadline, procs)
        for host, proc in procs.items():
            assert proc.wait(120) == 0, (host, (tmp_path / f"{host}.log").read_text()[-2000:])
    finally:
        _kill_all(procs)
    assert "abandoned it here" in (tmp_path / "host-a.log").read_text()
    assert store.get_group(gid)["status"] == "completed"
    runs = store.list_runs(group_id=gid)
    assert not [r for r in runs if r["status"] in ("running", "failed")]
    names = [r["name"] for r in runs if r["status"] == "completed"]
    assert len(names) == len(set(names)) == 2
    assert search_status(store, gid)["totals"] == {"waiting": 0, "running": 0, "done": 2,
                                                   "re-queued": 1, "failed": 0}


@pytest.mark.postgres
def test_a_comparison_queued_for_workers_survives_a_kill_and_matches_a_local_one(
        postgres_url, tmp_path):  # noqa: F811
    flags = ["--dataset", "digits", "--models", "B2FL4,B2FL8", "--seeds", "0,1", "--epochs", "3",
             "--set", "train.threads=1", "--set", "measure.cost=false"]
    # The artifacts as an fsspec URL: each worker trains in a cache of its own, so the killed
    # run's checkpoint reaches the other worker only through the URL.
    shared = tmp_path / "shared"
    url = f"file://{shared}"
    queued = subprocess.run([EXE, "compare", *flags, "--workers", "0", "--store", postgres_url,
                             "--artifacts", url, "--json"],
                            cwd=tmp_path, capture_output=True, text=True, check=True)
    answer = json.loads(queued.stdout)
    assert answer["status"] == "queued" and answer["waiting"] == 4
    gid = answer["id"]
    store = Store(postgres_url, artifacts=shared)
    storage = open_storage(store, create=False)
    study = get_study(storage, gid, "compare")
    procs = {h: _start(postgres_url, gid, h, url, tmp_path) for h in ("host-a", "host-b")}
    try:
        deadline = time.time() + 400
        killed: list[str] = []

        def kill_one_mid_run() -> bool:
            # A worker whose run checkpointed an epoch and is training the next.
            owners = {t.user_attrs["label"]: t.user_attrs.get("worker", {}).get("pid")
                      for t in trials(study, (TrialState.RUNNING,))}
            for run in store.list_runs(group_id=gid, status="running"):
                pid = owners.get(run["name"])
                if run["epochs_done"] >= 1 and pid and \
                        (shared / run["id"] / "last.pt").exists():
                    host = next(h for h, p in procs.items() if p.pid == pid)
                    os.kill(pid, signal.SIGKILL)
                    procs[host].wait(30)
                    killed.append(host)
                    return True
            return False

        _wait("a worker mid-run", kill_one_mid_run, deadline, procs)
        _wait("the comparison to end", lambda: store.get_group(gid)["status"] != "running",
              deadline, procs)
        for host, proc in procs.items():
            expected = -signal.SIGKILL if host in killed else 0
            assert proc.wait(120) == expected, (host, (tmp_path / f"{host}.log").read_text())
    finally:
        _kill_all(procs)
    assert store.get_group(gid)["status"] == "completed"
    runs = store.list_runs(group_id=gid)
    done = {r["name"]: r for r in runs if r["status"] == "completed"}
    assert len(done) == 4 and not [r for r in runs if r["status"] in ("running", "failed")]
    logs = [(shared / r["id"] / "train.log").read_text() for r in done.values()]
    assert any("resumed after epoch" in log for log in logs)  # the killed run went on
    assert {r["metrics"]["artifacts_at"] for r in done.values()} == \
        {f"{url}/{r['id']}" for r in done.values()}
    requeued = [t for t in trials(study) if orphaned(t)]
    assert [t.user_attrs["worker"]["host"] for t in requeued] == killed
    # The same numbers as the comparison run here, in one process on a SQLite store.
    local = subprocess.run([EXE, "compare", *flags, "--store", str(tmp_path / "local.db"),
                            "--json"], cwd=tmp_path, capture_output=True, text=True, check=True)
    for run in json.loads(local.stdout)["runs"]:
        assert done[run["name"]]["metrics"]["test_accuracy"] == \
            run["metrics"]["test_accuracy"], run["name"]


@pytest.mark.postgres
def test_a_wrong_password_is_one_line_and_the_right_one_gets_in(
        cli, postgres_server, postgres_url, tmp_path):  # noqa: F811
    database = postgres_url.rsplit("/", 1)[1]
    wrong = postgres_server.password_url(database, "wrong-pw")
    proc = cli("worker", "--store", wrong, "--until-empty", "--artifacts", str(tmp_path / "a"),
               timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "password authentication failed" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "wrong-pw" not in proc.stderr
    assert not (tmp_path / "a").exists()  # nothing written before the store was reached
    right = postgres_server.password_url(database, PASSWORD)
    proc = cli("worker", "--store", right, "--until-empty", "--artifacts", str(tmp_path / "a"),
               timeout=300)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.postgres
def test_a_store_from_a_newer_convbench_is_refused_by_the_worker(cli, postgres_url, tmp_path):  # noqa: F811
    import sqlalchemy as sa

    store = Store(postgres_url, artifacts=tmp_path / "a")
    with store.engine.begin() as conn:
        conn.execute(sa.text("update convbench_info set value = '99' where key = 'schema_version'"))
    store.close()
    proc = cli("worker", "--store", postgres_url, "--until-empty", timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "newer convbench" in proc.stderr and "Upgrade convbench" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    engine = sa.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:  # the store as it was: no table, no row added
        assert conn.execute(sa.text("select value from convbench_info")).scalar_one() == "99"
        assert conn.execute(sa.text("select count(*) from groups")).scalar_one() == 0
        tables = set(sa.inspect(conn).get_table_names())
    engine.dispose()
    assert not {"studies", "trials"} & tables  # Optuna's tables were not created either


@pytest.mark.postgres
def test_runs_groups_shows_each_worker_of_a_running_queue(cli, postgres_url, tmp_path):  # noqa: F811
    shared = tmp_path / "shared"
    queued = cli("compare", "--dataset", "digits", "--models", "B2FL4", "--seeds", "0,1",
                 "--epochs", "3", "--set", "train.threads=1", "--set", "measure.cost=false",
                 "--workers", "0", "--store", postgres_url, "--artifacts", str(shared),
                 "--json", check=True)
    gid = json.loads(queued.stdout)["id"]
    store = Store(postgres_url, artifacts=shared)
    procs = {"host-a": _start(postgres_url, gid, "host-a", shared, tmp_path)}
    try:
        _wait("host-a to train a run", lambda: store.list_runs(group_id=gid, status="running"),
              time.time() + 300, procs)
        os.kill(procs["host-a"].pid, signal.SIGSTOP)  # its status line stays as it is now
        shown = cli("runs", "groups", "--store", postgres_url, check=True).stdout
    finally:
        _kill_all(procs)
    assert f"compare {gid}" in shown
    line = next(line for line in shown.splitlines() if "host-a" in line)
    assert str(procs["host-a"].pid) in line and "running" in line and "compare #" in line
    assert "UTC" in shown and "waiting" in shown  # last heartbeat; trials per state


@pytest.mark.postgres
def test_compare_with_local_workers_drains_its_queue_in_postgresql(cli, postgres_url,  # noqa: F811
                                                                   tmp_path):
    # `compare --workers 2` is the queue of `--workers 0` with two local workers on it.
    proc = cli("compare", "--dataset", "digits", "--models", "B2FL4,B1FL4", "--epochs", "1",
               "--set", "measure.cost=false", "--workers", "2", "--store", postgres_url,
               "--artifacts", str(tmp_path / "art"), "--json", check=True)
    group = json.loads(proc.stdout)
    assert group["status"] == "completed" and group["errors"] == []
    assert [r["name"] for r in group["runs"]] == group["config"]["run_names"]
    store = Store(postgres_url, artifacts=tmp_path / "art")
    study = get_study(open_storage(store, create=False), group["id"], "compare")
    done = trials(study, (TrialState.COMPLETE,))
    assert sorted(t.user_attrs["label"] for t in done) == sorted(group["config"]["run_names"])
    assert len(trials(study)) == 2
