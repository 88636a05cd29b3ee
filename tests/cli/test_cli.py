import json

import pytest


def test_version(cli):
    proc = cli("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("convbench ")


def test_done_when_digits_blocks(cli):
    proc = cli("train", "--dataset", "digits", "--model", "blocks", "--set", "model.blocks=2",
               "--set", "model.base_filters=16", "--epochs", "5", "--json")
    assert proc.returncode == 0, proc.stderr
    run = json.loads(proc.stdout)
    assert run["status"] == "completed"
    assert run["metrics"]["test_accuracy"] >= 0.90
    for key in ("id", "name", "status", "config", "metrics", "epochs"):
        assert key in run
    shown = json.loads(cli("runs", "show", run["id"], "--json").stdout)
    assert shown["metrics"]["test_accuracy"] == run["metrics"]["test_accuracy"]
    listed = json.loads(cli("runs", "list", "--json").stdout)
    assert [r["id"] for r in listed] == [run["id"]]
    assert cli("runs", "delete", run["id"]).returncode == 0
    assert json.loads(cli("runs", "list", "--json").stdout) == []


@pytest.mark.parametrize("args, needle", [
    (["train", "--model", "resnt20", "--epochs", "1"], "resnet20"),
    (["train", "--dataset", "fashion-mnst", "--epochs", "1"], "fashion-mnist"),
    (["train", "--optimizer", "adamm", "--epochs", "1"], "adam"),
    (["train", "--epochs", "0"], "train.epochs"),
    (["train", "--set", "optim.lr=-1"], "optim.lr"),
    (["train", "--set", "model.nope=1"], "unknown config field"),
    (["train", "--set", "noequals"], "key=value"),
    (["train", "missing.yaml"], "not found"),
    (["train", "--dataset", "cifar10", "--data-dir", "nowhere"], "nowhere"),
    (["train", "--dataset", "folder", "--data-dir", "nowhere"], "nowhere"),
    (["runs", "show", "deadbeef"], "runs list"),
    (["train", "--resume", "deadbeef"], "runs list"),
    (["train", "--device", "cuda:0", "--epochs", "1"], "cuda"),
    (["lr-find", "--min-lr", "1", "--max-lr", "0.1"], "lr-find: max_lr (0.1) must be above"),
    (["lr-find", "--rule", "foo=1"], "unknown field 'rule.foo'"),
    (["lr-find", "--rule", "start"], "expected field=value"),
    (["lr-find", "--seeds", ""], "comma-separated"),
    (["train", "--schedule", "bogus", "--epochs", "1"], "Known: constant, cosine"),
    # one LR cannot hold two bounds: refused, not trained at the lower bound
    (["train", "--schedule", "cosine", "--set", "schedule.bounds=auto"], "uses one"),
    (["compare", "--models", "B2FL4", "--seeds", "0,0"], "twice"),
    # a --data-dir that is not there must not fall back to files found elsewhere
    (["train", "--dataset", "fashion-mnist", "--data-dir", "nowhere"], "not a folder"),
    # the study's default head (as wide as the flattened features) at 224 px: 20 G weights
    (["train", "--dataset", "synthetic", "--set", "data.image_size=224", "--model", "B2FL16"],
     "model.dense_units"),
    (["runs", "list", "--status", "bogus"], "expected one of"),
    (["runs", "list", "--store", "typo/runs.db"], "No run store"),
    (["report", "abc", "--store", "typo/runs.db"], "No run store"),
])
def test_user_errors_exit_2_with_one_clear_line(cli_inproc, args, needle):
    proc = cli_inproc(*args)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert needle.lower() in proc.stderr.lower()
    assert len(proc.stderr.strip().splitlines()) <= 3
    assert "Value error" not in proc.stderr  # pydantic's wording, not ours


def test_bad_yaml_is_a_clear_error(cli, tmp_path):
    (tmp_path / "bad.yaml").write_text("train: [epochs: 3\n")
    proc = cli("train", "bad.yaml")
    assert proc.returncode == 2 and "not valid YAML" in proc.stderr


def test_diverging_run_exits_2_and_says_what_to_do(cli):
    proc = cli("train", "--dataset", "digits", "--model", "B2FL8", "--epochs", "2",
               "--optimizer", "sgd", "--lr", "1e6", "--quiet")
    assert proc.returncode == 2
    assert "diverged" in proc.stderr and "--lr" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_listings(cli):
    ds = json.loads(cli("datasets", "--json").stdout)
    names = {d["name"]: d for d in ds}
    assert names["digits"]["found"] is True
    assert {"fashion-mnist", "mnist", "cifar10", "cifar100", "folder", "synthetic"} <= set(names)
    models = {m["name"] for m in json.loads(cli("models", "--json").stdout)}
    assert {"blocks", "custom-cnn", "resnet20", "vgg16", "alexnet", "resnet18"} <= models


def test_config_resolves_file_and_sets(cli, tmp_path):
    (tmp_path / "c.yaml").write_text("train:\n  epochs: 7\n")
    proc = cli("config", "c.yaml", "--set", "model.name=B3FL4")
    assert proc.returncode == 0
    assert "epochs: 7" in proc.stdout and "name: B3FL4" in proc.stdout


def test_runs_list_shows_a_detection_run_by_backbone_source_and_box_ap(cli, tmp_path):
    from convbench.store import Store

    store = Store(str(tmp_path / "convbench-runs" / "runs.db"))
    config = {"data": {"source": "coco"}, "model": {"arch": "maskrcnn", "backbone": "vovnet39"}}
    run_id = store.create_run(name="layout", config=config, seed=0, env={}, kind="detect")
    store.update(run_id, status="completed", metrics={"box_AP": 0.8156, "epochs": 26.5})
    listed = cli("runs", "list", env={"COLUMNS": "200"}, check=True).stdout
    row = next(line for line in listed.splitlines() if run_id in line)
    for shown in ("layout", "detect", "coco", "vovnet39", "26.5", "box AP 0.8156"):
        assert shown in row


def test_a_config_that_is_not_utf8_text_is_a_clear_error(cli, tmp_path):
    (tmp_path / "bad.yaml").write_bytes(b"\xff\xfe\x00binary")
    proc = cli("train", "bad.yaml")
    assert proc.returncode == 2 and "UTF-8" in proc.stderr and "Traceback" not in proc.stderr


def test_folder_too_small_for_a_test_split_is_a_clear_error(cli, tmp_path):
    from PIL import Image

    for i, cls in enumerate(("a", "b")):
        (tmp_path / "tiny" / cls).mkdir(parents=True)
        Image.new("RGB", (16, 16), (200 * i, 40, 90)).save(tmp_path / "tiny" / cls / "1.png")
    proc = cli("train", "--dataset", "folder", "--data-dir", "tiny", "--epochs", "1", "-q")
    assert proc.returncode == 2 and "test split" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_runs_groups_lists_comparisons_and_runs_list_names_their_group(cli, tmp_path):
    proc = cli("compare", "--dataset", "digits", "--models", "B2FL4", "--epochs", "1",
               "--set", "measure.cost=false", "--json", check=True)
    gid = json.loads(proc.stdout)["id"]
    groups = cli("runs", "groups", check=True).stdout
    assert gid in groups and "compare" in groups
    assert gid in cli("runs", "list", check=True).stdout
    shown = cli("runs", "show", json.loads(proc.stdout)["runs"][0]["id"], check=True).stdout
    assert "data digits" in shown and "model B2FL4" in shown


def test_config_lists_readable_types_and_a_description_per_field(cli):
    listed = cli("config", check=True).stdout
    assert "<class" not in listed and "typing." not in listed and "Literal[" not in listed
    rows = {line.split("│")[1].strip(): line for line in listed.splitlines()
            if line.startswith("│") and line.split("│")[1].strip()}
    assert '"fine" | "coarse"' in rows["data.label_mode"]
    assert "float | None" in rows["train.max_time_s"] and "stop after" in rows["train.max_time_s"]
    assert "cosine floor" in rows["schedule.min_lr"]  # not "cyclical lower bound": optim.lr is
    assert "0.99994" in rows["schedule.exp_gamma"]    # exact defaults, not rounded cells


def test_help_texts_name_the_models_defaults(cli_inproc):
    from convbench.config import RunConfig
    from convbench.detection.config import DetectConfig
    from convbench.training.lr_finder import LRFindSpec

    def help_of(*command):
        proc = cli_inproc(*command, "--help", env={"COLUMNS": "300"})
        assert proc.returncode == 0, proc.stderr
        text = proc.stdout
        return " ".join(text.replace("│", " ").split())  # one line: wrapping varies

    run, spec, detect = RunConfig(), LRFindSpec(), DetectConfig()
    train = help_of("train")
    assert f"Batch size (default {run.train.batch_size})." in train
    assert f"(default {run.optim.name})." in train and f"(default {run.train.epochs})." in train
    lr_find = help_of("lr-find")
    assert f"Start of the sweep (default {spec.min_lr:g})." in lr_find
    assert f"(default {spec.epochs})." in lr_find and f"(default {spec.rule.metric})." in lr_find
    assert "{" not in lr_find  # every placeholder filled
    assert f"Images per iteration (default {detect.train.batch_size})." in help_of(
        "detect", "train")
    from convbench.analysis.svm import DEFAULT_KERNELS

    assert f"(default {','.join(DEFAULT_KERNELS)})." in help_of("svm")
