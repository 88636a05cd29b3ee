"""The `convbench` command line: parse → build a config → call the Python API → print."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from . import __version__
from . import config as cfgmod
from .errors import ConfigError, ConvbenchError

app = typer.Typer(help="Design, train, compare and tune convolutional networks, measuring "
                       "quality and cost. Every run is kept in a store (SQLite by default).",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
runs_app = typer.Typer(help="List, show and delete stored runs.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
out = Console()
err = Console(stderr=True)

StoreOpt = Annotated[str | None, typer.Option(
    "--store", help="SQLite file or postgresql:// URL [env CONVBENCH_STORE; "
                    "default ./convbench-runs/runs.db]")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", help="Override any config field by dotted path, e.g. --set model.blocks=3 "
                  "(repeatable; see `convbench config`).")]


def _version(value: bool) -> None:
    if value:
        out.print(f"convbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Show the version and exit.")] = False):
    """convbench."""


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _store(url: str | None):
    from .store import Store
    return Store(url)


def build_config(config_file: Path | None, flags: dict[str, Any], sets: list[str] | None):
    """YAML file, then flags, then --set overrides (later wins)."""
    data = cfgmod.load_yaml(config_file) if config_file else {}
    for dotted, value in flags.items():
        if value is not None:
            cfgmod.set_path(data, dotted, value)
    cfg = cfgmod.build(data, source=str(config_file or "flags"))
    return cfgmod.apply_overrides(cfg, sets or [])


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def show_run_summary(run: dict) -> None:
    m = run.get("metrics") or {}
    out.print(f"[bold]run {run['id']}[/] {run.get('name') or ''} — {run['status']}")
    keys = ["test_accuracy", "test_top5", "test_loss", "macro_f1", "best_val_accuracy",
            "epochs_run", "train_time_s", "images_per_s", "params_total", "flops", "macs",
            "disk_bytes", "peak_memory_bytes", "latency_ms", "throughput_ips", "energy_kwh",
            "energy_method", "cost"]
    table = Table(show_header=False, box=None)
    for k in keys:
        if k in m:
            table.add_row(k, _fmt(m[k]))
    out.print(table)


@app.command()
def train(
    config_file: Annotated[Path | None, typer.Argument(help="YAML run config (optional).")] = None,
    dataset: Annotated[str | None, typer.Option(help="Data set (see `convbench datasets`).")] = None,
    model: Annotated[str | None, typer.Option(help="Model (see `convbench models`), "
                                                    "e.g. B2FL32 or timm/rexnet_100.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size.")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate (lower bound of cyclical).")] = None,
    optimizer: Annotated[str | None, typer.Option(help="sgd, adam, adamw or rmsprop.")] = None,
    schedule: Annotated[str | None, typer.Option(
        help="constant, step, cosine, one-cycle, plateau, triangular, triangular2, exp_range.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (data split, init, order).")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda or cuda:N.")] = None,
    data_dir: Annotated[str | None, typer.Option(help="Where the data set's files are.")] = None,
    sets: SetOpt = None,
    name: Annotated[str | None, typer.Option(help="A name for the run.")] = None,
    resume: Annotated[str | None, typer.Option(
        help="Continue a killed or stopped run (id or unique prefix) from its last checkpoint.")] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
):
    """Train one network and record the run (config, epochs, metrics, cost) in the store.

    Flags override the YAML file; --set overrides both. Example:

      convbench train --dataset digits --model B2FL16 --epochs 5
    """
    from .training import train as run_training
    from .training.engine import Stopped

    if resume:
        cfg = None
    else:
        cfg = build_config(config_file, {
            "data.dataset": dataset, "data.data_dir": data_dir, "model.name": model,
            "train.epochs": epochs, "train.batch_size": batch_size, "optim.lr": lr,
            "optim.name": optimizer, "schedule.name": schedule, "train.seed": seed,
            "train.device": device, "name": name}, sets)
    try:
        run = run_training(cfg, store=_store(store), quiet=quiet or as_json, resume=resume)
    except (KeyboardInterrupt, Stopped):
        err.print("Stopped. The last finished epoch is checkpointed: continue with "
                  "`convbench train --resume RUN_ID` (`convbench runs list` shows the id).")
        raise typer.Exit(130) from None
    if as_json:
        print_json(dict(run))
    else:
        show_run_summary(run)
    if run.status == "diverged":
        epoch = run.metrics.get("diverged_epoch")
        err.print(f"error: run {run.id} diverged (loss became NaN/inf in epoch {epoch}). "
                  "Lower the learning rate (--lr), add warm-up or gradient clipping "
                  "(--set optim.grad_clip=1).")
        raise typer.Exit(2)


def _csv(text: str | None, what: str, cast=str) -> list:
    items = [t.strip() for t in (text or "").split(",") if t.strip()]
    try:
        return [cast(t) for t in items]
    except ValueError:
        raise ConfigError(f"--{what} {text!r}: expected a comma-separated list, "
                                 f"e.g. --{what} 0,1,2.") from None


@app.command()
def compare(
    models: Annotated[str, typer.Option(help="Comma-separated models, e.g. B2FL16,custom-cnn,resnet20.")],
    config_file: Annotated[Path | None, typer.Argument(help="YAML base config (optional).")] = None,
    dataset: Annotated[str | None, typer.Option(help="Data set (see `convbench datasets`).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs for every model.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size.")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate.")] = None,
    optimizer: Annotated[str | None, typer.Option(help="sgd, adam, adamw or rmsprop.")] = None,
    schedule: Annotated[str | None, typer.Option(help="LR schedule (see `convbench train --help`).")] = None,
    seeds: Annotated[str | None, typer.Option(help="Comma-separated seeds, e.g. 0,1,2: mean ± std "
                                                   "and median of every metric.")] = None,
    data_dir: Annotated[str | None, typer.Option(help="Where the data set's files are.")] = None,
    sets: SetOpt = None,
    workers: Annotated[int, typer.Option(help="Train models in N parallel processes "
                                              "(cores are split between them).")] = 1,
    name: Annotated[str | None, typer.Option(help="A name for the comparison.")] = None,
    report: Annotated[Path | None, typer.Option(
        help="Write the HTML report here (+ .md, .csv, .json beside it).")] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
):
    """Train several models under the same data, split, augmentation, schedule and budget;
    record them as one comparison and write a report.

      convbench compare --dataset digits --models simple-cnn,custom-cnn,B2FL16 --epochs 3 \\
          --seeds 0,1 --report out/report.html
    """
    from .compare import compare as run_compare

    base = build_config(config_file, {
        "data.dataset": dataset, "data.data_dir": data_dir, "train.epochs": epochs,
        "train.batch_size": batch_size, "optim.lr": lr, "optim.name": optimizer,
        "schedule.name": schedule}, sets)
    names = _csv(models, "models")
    if workers < 1:
        raise ConfigError("--workers must be at least 1.")
    group = run_compare(base, names, seeds=_csv(seeds, "seeds", int) or None, workers=workers,
                        store=_store(store), name=name, report=report, quiet=quiet or as_json)
    if as_json:
        print_json(group)
    else:
        table = Table("run", "model", "seed", "status", "test acc", "train s", "params")
        for r in group["runs"]:
            m = r.get("metrics") or {}
            table.add_row(r["id"], r["config"]["model"]["name"], str(r["seed"]), r["status"],
                          _fmt(m.get("test_accuracy")), _fmt(m.get("train_time_s")),
                          _fmt(m.get("params_total")))
        out.print(f"[bold]comparison {group['id']}[/]")
        out.print(table)
        for path in (group.get("report") or {}).values():
            out.print(f"wrote {path}")
    for msg in group["errors"]:
        err.print(f"failed: {msg}", markup=False)


@app.command("report")
def report_cmd(
    ids: Annotated[list[str], typer.Argument(help="Run ids and/or comparison ids (prefixes work).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="HTML file to write "
                                         "(.md, .csv and .json are written beside it).")] = Path("report.html"),
    title: Annotated[str, typer.Option(help="Report title.")] = "convbench comparison",
    store: StoreOpt = None,
):
    """Write a comparison report from runs already in the store."""
    from .compare import collect_runs
    from .report import write_report

    runs, group = collect_runs(_store(store), ids)
    for path in write_report(runs, output, title=title, group=group).values():
        out.print(f"wrote {path}")


@runs_app.command("list")
def runs_list(store: StoreOpt = None, as_json: JsonOpt = False,
              kind: Annotated[str | None, typer.Option(help="train, svm, detect, …")] = None,
              status: Annotated[str | None, typer.Option(help="completed, failed, …")] = None):
    """List stored runs, newest first."""
    runs = _store(store).list_runs(kind=kind, status=status)
    if as_json:
        return print_json(runs)
    table = Table("id", "name", "kind", "status", "dataset", "model", "epochs", "test acc",
                  "started")
    for r in runs:
        c, m = r.get("config") or {}, r.get("metrics") or {}
        table.add_row(r["id"], r.get("name") or "", r.get("kind") or "", r["status"],
                      (c.get("data") or {}).get("dataset", ""), (c.get("model") or {}).get("name", ""),
                      _fmt(m.get("epochs_run")), _fmt(m.get("test_accuracy")),
                      (r.get("started_at") or "")[:19])
    out.print(table if runs else "No runs yet. Start one with `convbench train`.")


@runs_app.command("show")
def runs_show(run_id: Annotated[str, typer.Argument(help="Run id or unique prefix.")],
              store: StoreOpt = None, as_json: JsonOpt = False):
    """Show one run: status, config, final metrics and the per-epoch table."""
    s = _store(store)
    run = s.get_run(s.resolve_id(run_id))
    if as_json:
        return print_json(run)
    show_run_summary(run)
    table = Table("epoch", "train loss", "train acc", "val loss", "val acc", "lr", "time s", "img/s")
    for e in run.get("epochs") or []:
        table.add_row(*(_fmt(e.get(k)) for k in ("epoch", "train_loss", "train_accuracy",
                                                  "val_loss", "val_accuracy", "lr", "time_s",
                                                  "images_per_s")))
    out.print(table)


@runs_app.command("delete")
def runs_delete(run_id: Annotated[str, typer.Argument(help="Run id or unique prefix.")],
                store: StoreOpt = None):
    """Delete a run and its artifacts (checkpoints, logs, plots)."""
    s = _store(store)
    full = s.resolve_id(run_id)
    s.delete_run(full)
    out.print(f"Deleted run {full}.")


@app.command()
def datasets(data_dir: Annotated[str | None, typer.Option(help="Also look here.")] = None,
             as_json: JsonOpt = False):
    """List the data sets, their classes and sizes, and whether their files were found."""
    from .data import dataset_info

    info = dataset_info(data_dir)
    if as_json:
        return print_json(info)
    table = Table("name", "classes", "image", "train", "test", "found", "where / how to get")
    for d in info:
        table.add_row(d["name"], _fmt(d.get("classes")), str(d.get("image_shape") or "-"),
                      _fmt(d.get("train_size")), _fmt(d.get("test_size")),
                      "yes" if d["found"] else "no",
                      str(d.get("location") or d.get("how_to_get") or ""))
    out.print(table)


@app.command()
def models(as_json: JsonOpt = False):
    """List the models, with parameter counts for 10 classes and 32×32 RGB input."""
    from .models import list_models

    rows = list_models()
    if as_json:
        return print_json(rows)
    table = Table("name", "family", "params", "description")
    for r in rows:
        table.add_row(r["name"], r.get("family", ""), _fmt(r.get("params")), r.get("description", ""))
    out.print(table)
    out.print("Shorthand: B<blocks>FL<filters> (e.g. B3FL32) is `blocks` with those values; "
              "any timm model as timm/<name>.")


@app.command("config")
def show_config(config_file: Annotated[Path | None, typer.Argument(help="YAML to validate.")] = None,
                sets: SetOpt = None):
    """Print every config field with its default, or the resolved YAML of a file plus --set."""
    if config_file or sets:
        cfg = build_config(config_file, {}, sets)
        sys.stdout.write(cfgmod.dump(cfg))
        return
    table = Table("field (--set key=value)", "type", "default")
    for key, typ, default in cfgmod.config_fields():
        table.add_row(key, typ, _fmt(default))
    out.print(table)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one or two lines and exit status 2, never a traceback."""
    try:
        app(args=argv, standalone_mode=True)
    except ConvbenchError as e:
        err.print(f"error: {e}", markup=False, highlight=False)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err.print("Interrupted.")
        sys.exit(130)


if __name__ == "__main__":
    main()
