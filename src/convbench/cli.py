"""The `convbench` command line: parse → build a config → call the Python API → print."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from . import __version__
from . import config as cfgmod
from .cli_common import (
    ArtifactsOpt,
    JsonOpt,
    QuietOpt,
    SetOpt,
    StoreOpt,
    build_config,
    default_help,
    defaults_later,
    err,
    fmt_value,
    out,
    print_json,
    run_app,
    show_run_summary,
)
from .cli_common import csv_list as _csv
from .cli_common import open_store as _store
from .config import RunConfig
from .errors import ConfigError

app = typer.Typer(
    help="Design, train, compare and tune convolutional networks, measuring "
    "quality and cost. Every run is kept in a store (SQLite by default).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
runs_app = typer.Typer(help="List, show and delete stored runs.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")

ConfigArg = Annotated[Path | None, typer.Argument(help="YAML run config (optional).")]
DatasetOpt = Annotated[str | None, typer.Option(help="Data set (see `convbench datasets`).")]
DataDirOpt = Annotated[str | None, typer.Option(help="Where the data set's files are.")]
DownloadOpt = Annotated[
    bool,
    typer.Option(
        "--download",
        help="Fetch a missing data set (mnist, fashion-mnist, cifar10/100) from its official "
        "source into the cache (needs a network).",
    ),
]
# Help texts name the config's defaults, read from the models so they cannot drift.
EpochsOpt = Annotated[int | None, typer.Option(
    help=default_help("Training epochs", RunConfig, "train.epochs"))]
BatchOpt = Annotated[int | None, typer.Option(
    help=default_help("Batch size", RunConfig, "train.batch_size")
    + " auto is 128, 64 or 32: the largest that leaves 200 steps an epoch.")]
LrOpt = Annotated[float | None, typer.Option(
    help=default_help("Learning rate, the lower bound of cyclical schedules", RunConfig,
                      "optim.lr"))]
OptimizerOpt = Annotated[str | None, typer.Option(
    help=default_help("sgd, adam, adamw or rmsprop", RunConfig, "optim.name"))]
ScheduleOpt = Annotated[str | None, typer.Option(help=default_help(
    "constant, step, cosine, one-cycle, plateau, triangular, triangular2, exp_range",
    RunConfig, "schedule.name"))]


def training_flags(dataset, data_dir, epochs, batch_size, lr, optimizer, schedule,
                   download=False) -> dict:
    """The flags `train` and `compare` share, as dotted config paths."""
    return {
        "data.dataset": dataset,
        "data.data_dir": data_dir,
        "data.download": True if download else None,
        "train.epochs": epochs,
        "train.batch_size": batch_size,
        "optim.lr": lr,
        "optim.name": optimizer,
        "schedule.name": schedule,
    }


def _version(value: bool) -> None:
    if value:
        out.print(f"convbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
):
    """convbench."""



@app.command()
def train(
    config_file: ConfigArg = None,
    dataset: DatasetOpt = None,
    model: Annotated[
        str | None,
        typer.Option(help="Model (see `convbench models`), e.g. B2FL32 or timm/rexnet_100."),
    ] = None,
    epochs: EpochsOpt = None,
    batch_size: BatchOpt = None,
    lr: LrOpt = None,
    optimizer: OptimizerOpt = None,
    schedule: ScheduleOpt = None,
    seed: Annotated[int | None, typer.Option(help=default_help(
        "Random seed (data split, init, order)", RunConfig, "train.seed"))] = None,
    device: Annotated[str | None, typer.Option(help=default_help(
        "auto, cpu, cuda or cuda:N", RunConfig, "train.device"))] = None,
    data_dir: DataDirOpt = None,
    download: DownloadOpt = False,
    sets: SetOpt = None,
    name: Annotated[str | None, typer.Option(help="A name for the run.")] = None,
    resume: Annotated[
        str | None,
        typer.Option(
            help="Continue a killed or stopped run (id or unique prefix) from its last checkpoint."
        ),
    ] = None,
    store: StoreOpt = None,
    artifacts: ArtifactsOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """Train one network and record the run (config, epochs, metrics, cost) in the store.

    Flags override the YAML file; --set overrides both. Example:

      convbench train --dataset digits --model B2FL16 --epochs 5
    """
    from .training import train as run_training
    from .training.lifecycle import Stopped

    if resume:
        cfg = None
    else:
        cfg = build_config(
            config_file,
            {
                **training_flags(dataset, data_dir, epochs, batch_size, lr, optimizer, schedule,
                               download),
                "model.name": model,
                "train.seed": seed,
                "train.device": device,
                "name": name,
            },
            sets,
        )
    s = _store(store, artifacts=artifacts)
    try:
        run = run_training(cfg, store=s, quiet=quiet or as_json, resume=resume)
    except (KeyboardInterrupt, Stopped) as stop:
        rid = getattr(stop, "run_id", None)
        if rid and s.get_run(rid).get("epochs"):
            err.print(f"Stopped. The last finished epoch is checkpointed: continue with "
                      f"`convbench train --resume {rid}`.", markup=False)
        elif rid:
            err.print(f"Stopped before the first epoch finished: `convbench train --resume "
                      f"{rid}` starts it over under the same id.", markup=False)
        else:
            err.print("Stopped before the run started: start it again.")
        raise typer.Exit(130) from None
    if as_json:
        print_json(dict(run))
    else:
        show_run_summary(run)
    if run.status == "diverged":
        epoch, loss = run.metrics.get("diverged_epoch"), run.metrics.get("diverged_loss")
        what = "became NaN/inf" if loss is None else f"exploded to {loss:.3g}"
        err.print(
            f"error: run {run.id} diverged in epoch {epoch} (training loss {what}). "
            "Lower the learning rate (--lr), add warm-up or gradient clipping "
            "(--set optim.grad_clip=1)."
        )
        raise typer.Exit(2)


@app.command()
def compare(
    models: Annotated[
        str | None,
        typer.Option(help="Comma-separated models, e.g. B2FL16,custom-cnn,resnet20 (each is "
                          "crossed with every --variant)."),
    ] = None,
    config_file: ConfigArg = None,
    dataset: DatasetOpt = None,
    epochs: EpochsOpt = None,
    batch_size: BatchOpt = None,
    lr: LrOpt = None,
    optimizer: OptimizerOpt = None,
    schedule: ScheduleOpt = None,
    seeds: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated seeds, e.g. 0,1,2: mean ± std and median of every metric."
        ),
    ] = None,
    data_dir: DataDirOpt = None,
    download: DownloadOpt = False,
    sets: SetOpt = None,
    variant: Annotated[
        list[str] | None,
        typer.Option(help="A variant: key=value overrides separated by spaces or ';', e.g. "
                          "'optim.name=sgd optim.lr=0.01' (repeatable).")
    ] = None,
    workers: Annotated[
        int,
        typer.Option(help="Train models in N local worker processes that drain the "
                          "comparison's queue (cores are split between them); 0 only queues "
                          "the runs in a PostgreSQL store for `convbench worker` on any "
                          "machine (docs/distributed.md)."),
    ] = 1,
    name: Annotated[str | None, typer.Option(help="A name for the comparison.")] = None,
    report: Annotated[
        Path | None, typer.Option(help="Write the HTML report here (+ .md, .csv, .json beside it).")
    ] = None,
    store: StoreOpt = None,
    artifacts: ArtifactsOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """Train several models (or variants of one) under the same data, split, augmentation,
    schedule and budget; record them as one comparison and write a report.

      convbench compare --dataset digits --models simple-cnn,custom-cnn,B2FL16 --epochs 3 \\
          --seeds 0,1 --report out/report.html
      convbench compare --dataset digits --models B2FL8 --variant optim.name=adam \\
          --variant optim.name=sgd --seeds 0,1
    """
    from .compare import compare as run_compare
    from .compare import parse_variant
    from .report.summary import model_name

    base = build_config(
        config_file,
        training_flags(dataset, data_dir, epochs, batch_size, lr, optimizer, schedule,
                               download),
        sets,
    )
    names = _csv(models, "models") if models is not None else None
    variants = [parse_variant(v) for v in variant or []]
    from .training.lifecycle import Stopped

    try:
        group = run_compare(
            base,
            variants,
            models=names,
            seeds=_csv(seeds, "seeds", int) or None,
            workers=workers,
            store=_store(store, artifacts=artifacts),
            name=name,
            report=report,
            quiet=quiet or as_json,
        )
    except (KeyboardInterrupt, Stopped):
        err.print("Stopped. Finished runs stay in the store; a stopped one continues from its "
                  "checkpoint with `convbench train --resume RUN_ID` (`convbench runs list` "
                  "shows it).", markup=False)
        raise typer.Exit(130) from None
    if as_json:
        print_json(group)
    elif group["status"] == "queued":
        out.print(f"comparison {group['id']}: {group['waiting']} run(s) queued; run "
                  f"`convbench worker --store URL --group {group['id']}` on each machine.",
                  markup=False)
    else:
        # Variants of one model differ in more than the model: their run names tell them apart.
        named = ("variant",) if variants else ()
        table = Table("run", *named, "model", "seed", "status", "test acc", "train s", "params")
        for r in group["runs"]:
            m = r.get("metrics") or {}
            table.add_row(
                r["id"],
                *((r.get("name") or "",) if variants else ()),
                model_name(r),
                str(r["seed"]),
                r["status"],
                fmt_value(m.get("test_accuracy")),
                fmt_value(m.get("train_time_s"), digits=1),
                fmt_value(m.get("params_total")),
            )
        out.print(f"[bold]comparison {group['id']}[/]")
        out.print(table)
        for path in (group.get("report") or {}).values():
            out.print(f"wrote {path}")
    for msg in group["errors"]:
        err.print(f"failed: {msg}", markup=False)


@app.command("report")
def report_cmd(
    ids: Annotated[
        list[str],
        typer.Argument(help="Run ids and/or comparison or search ids (prefixes work)."),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "-o", "--output", help="HTML file to write (.md, .csv and .json are written beside it)."
        ),
    ] = Path("report.html"),
    title: Annotated[
        str | None,
        typer.Option(help="Report title [default: convbench comparison; a search: convbench "
                          "search NAME]."),
    ] = None,
    store: StoreOpt = None,
):
    """Write the report of runs already in the store: a comparison (classification or
    detection, by the runs' kind) or, for a search id, the search report."""
    from .report import report_kind, write
    from .results import collect_runs

    s = _store(store, existing=True)
    runs, group = collect_runs(s, ids)
    kind = report_kind(runs, group)  # refuses detection and classification runs together
    datasets = sorted({str(((r.get("config") or {}).get("data") or {}).get("dataset"))
                       for r in runs} - {"None"})
    if len(datasets) > 1 and kind == "compare":
        err.print(f"note: these runs used different data sets ({', '.join(datasets)}); their "
                  "numbers are side by side, not comparable.", markup=False)
    paths = write(runs, output, group=group, store=s, title=title, kind=kind)
    for path in paths.values():
        out.print(f"wrote {path}")


@runs_app.command("list")
def runs_list(
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    kind: Annotated[str | None, typer.Option(help="train, svm, detect, …")] = None,
    status: Annotated[str | None, typer.Option(help="completed, failed, …")] = None,
):
    """List stored runs, newest first (`convbench runs groups` lists comparisons and searches)."""
    from .report.summary import model_name
    from .store.store import RUN_STATUSES

    if status is not None and status not in RUN_STATUSES:
        raise ConfigError(f"--status {status!r}: expected one of {', '.join(RUN_STATUSES)}.")
    s = _store(store, existing=True)
    runs = s.list_runs(kind=kind, status=status)
    if as_json:
        return print_json(runs)
    if not runs:
        kinds = sorted({r.get("kind") or "" for r in s.list_runs()})
        if not kinds:
            return out.print("No runs yet. Start one with `convbench train`.")
        if kind is not None and kind not in kinds:
            raise ConfigError(f"--kind {kind!r}: this store holds runs of kind "
                              f"{', '.join(kinds)}.")
        return out.print("No runs match these filters.")
    table = Table(
        "id", "name", "kind", "status", "dataset", "model", "epochs", "test acc / AP",
        "started", "group",
    )
    for r in runs:
        c, m = r.get("config") or {}, r.get("metrics") or {}
        table.add_row(
            r["id"],
            r.get("name") or "",
            r.get("kind") or "",
            r["status"],
            # detection runs name their data by source (synth, coco, pagexml)
            (c.get("data") or {}).get("dataset") or (c.get("data") or {}).get("source", ""),
            model_name(r) if c else "",
            fmt_value(m.get("epochs_run", m.get("epochs")) or r.get("epochs_done")),
            _quality(m),
            (r.get("started_at") or "")[:19],
            (r.get("group_id") or "")[:8],
        )
    out.print(table)


@runs_app.command("groups")
def runs_groups(
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    kind: Annotated[
        str | None, typer.Option(help="compare, search, detect-compare or lr-find.")
    ] = None,
):
    """List comparisons, searches and LR range tests, newest first: their ids give
    `convbench report ID`."""
    s = _store(store, existing=True)
    groups = s.list_groups(kind=kind)
    if as_json:
        return print_json(groups)
    table = Table("id", "kind", "name", "status", "runs", "created")
    for g in groups:
        table.add_row(g["id"], g.get("kind") or "", g.get("name") or "", g["status"],
                      str(len(g.get("run_ids") or [])), (g.get("created_at") or "")[:19])
    out.print(table if groups else "No comparisons or searches yet. Start one with "
              "`convbench compare`.")
    # Searches and queued comparisons still running: what each worker is doing.
    from .search.status import search_status
    from .search.worker import is_queued

    for g in groups:
        if g["status"] == "running" and is_queued(g) and (g.get("metrics") or {}).get("workers"):
            _print_status(search_status(s, g["id"]))


def _quality(metrics: dict) -> str:
    """Test accuracy, or a detector's box AP (labelled, since it is another scale)."""
    if metrics.get("test_accuracy") is None and metrics.get("box_AP") is not None:
        return f"box AP {fmt_value(metrics['box_AP'])}"
    return fmt_value(metrics.get("test_accuracy"))


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="Run id or unique prefix.")],
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    card: Annotated[bool, typer.Option("--card", help="Print the Markdown model card.")] = False,
):
    """Show one run: status, config, final metrics and the per-epoch table."""
    from .report.summary import model_name

    s = _store(store, existing=True)
    run = s.get_run(s.resolve_id(run_id))
    if card:
        from .inference.card import model_card
        sys.stdout.write(model_card(s, run))
        return
    if as_json:
        return print_json(run)
    show_run_summary(run)
    c = run.get("config") or {}
    setting = [
        f"{name} {value}"
        for name, value in (
            ("data", (c.get("data") or {}).get("dataset") or (c.get("data") or {}).get("source")),
            ("model", model_name(run) if c else None),
            ("epochs", (c.get("train") or {}).get("epochs")),
            ("iterations", (c.get("train") or {}).get("iterations")),
            ("batch", (c.get("train") or {}).get("batch_size")),
            ("optimizer", (c.get("optim") or {}).get("name")),
            ("lr", (c.get("optim") or {}).get("lr")),
            ("schedule", (c.get("schedule") or {}).get("name")),
            ("seed", (c.get("train") or {}).get("seed")),
        )
        if value is not None
    ]
    if setting:
        out.print("config: " + " · ".join(setting) + " (all of it: --json)", markup=False)
    if (run.get("metrics") or {}).get("error"):
        err.print(f"error: {run['metrics']['error']}", markup=False)
    table = Table(
        "epoch", "train loss", "train acc", "val loss", "val acc", "lr", "time s", "img/s"
    )
    for e in run.get("epochs") or []:
        table.add_row(
            *(
                fmt_value(e.get(k))
                for k in (
                    "epoch",
                    "train_loss",
                    "train_accuracy",
                    "val_loss",
                    "val_accuracy",
                    "lr",
                    "time_s",
                    "images_per_s",
                )
            )
        )
    out.print(table)


@runs_app.command("delete")
def runs_delete(
    run_id: Annotated[str, typer.Argument(help="Run id or unique prefix.")], store: StoreOpt = None
):
    """Delete a run and its artifacts (checkpoints, logs, plots)."""
    s = _store(store, existing=True)
    full = s.resolve_id(run_id)
    s.delete_run(full)
    out.print(f"Deleted run {full}.")


def _lr_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _lr_find_spec():
    from .training.lr_finder import LRFindSpec

    return LRFindSpec()


# The sweep's defaults live in LRFindSpec, which loads torch: named in the help only when the
# help is shown ({field} below).
@app.command("lr-find", cls=defaults_later(_lr_find_spec))
def lr_find_cmd(
    config_file: Annotated[Path | None, typer.Argument(help="YAML run config (optional).")] = None,
    dataset: Annotated[str | None, typer.Option(help="Data set (`convbench datasets`).")] = None,
    model: Annotated[str | None, typer.Option(help="Model, e.g. B2FL16.")] = None,
    optimizer: OptimizerOpt = None,
    batch_size: BatchOpt = None,
    min_lr: Annotated[float | None, typer.Option(
        help="Start of the sweep (default {min_lr:g}).")] = None,
    max_lr: Annotated[float | None, typer.Option(
        help="End of the sweep (default {max_lr:g}).")] = None,
    mode: Annotated[
        str | None,
        typer.Option(help="linear, exp, or auto: linear up to two decades, else exp "
                     "(default {mode})."),
    ] = None,
    epochs: Annotated[int | None, typer.Option(
        help="Length of the sweep in epochs (default {epochs}).")] = None,
    iters: Annotated[
        int | None, typer.Option(help="Length in iterations (overrides --epochs).")
    ] = None,
    seeds: Annotated[
        str | None, typer.Option(help="Comma-separated seeds; bounds are medians.")
    ] = None,
    diverge: Annotated[float | None, typer.Option(
        help="Stop when the smoothed loss exceeds K × its minimum (default {diverge:g}).")
    ] = None,
    metric: Annotated[str | None, typer.Option(
        help="Read the bounds off accuracy or loss (default {rule.metric}).")
    ] = None,
    rule: Annotated[
        list[str] | None,
        typer.Option("--rule", help="Bound rule field, e.g. --rule start=0.2 (docs/lr-find.md)."),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            help="Write the plot here (.png/.svg/.pdf; default: the first run's artifact "
            "folder)."
        ),
    ] = None,
    log_x: Annotated[
        bool | None,
        typer.Option("--log-x/--linear-x",
                     help="LR axis (default: log over two decades or more)."),
    ] = None,
    device: Annotated[str | None, typer.Option(help=default_help(
        "auto, cpu, cuda or cuda:N", RunConfig, "train.device"))] = None,
    data_dir: DataDirOpt = None,
    download: DownloadOpt = False,
    sets: SetOpt = None,
    name: Annotated[str | None, typer.Option(help="A name for the runs.")] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
):
    """LR range test: train while the LR rises from --min-lr to --max-lr, record loss and
    accuracy against the LR, suggest lower/upper bounds for cyclical schedules and plot it.

      convbench lr-find --dataset digits --model B2FL16 --optimizer sgd --min-lr 1e-4 \\
          --max-lr 1 --epochs 3 --json
    """
    from .search.plots import save_lr_plot
    from .training.lr_finder import lr_find, make_spec

    cfg = build_config(
        config_file,
        {
            "data.dataset": dataset,
            "data.data_dir": data_dir,
            "data.download": True if download else None,
            "model.name": model,
            "train.batch_size": batch_size,
            "optim.name": optimizer,
            "train.device": device,
            "name": name,
        },
        sets,
    )
    rule_fields: dict[str, Any] = {"metric": metric} if metric else {}
    rule_fields.update(cfgmod.parse_sets(rule, flag="--rule", example="start=0.2",
                                         what="field"))
    spec = make_spec(
        min_lr=min_lr,
        max_lr=max_lr,
        mode=mode,
        epochs=epochs,
        iters=iters,
        diverge=diverge,
        rule=rule_fields or None,
    )
    s = _store(store)
    result = lr_find(
        cfg,
        spec,
        seeds=_csv(seeds, "seeds", int) or None,
        store=s,
        name=name,
        quiet=quiet or as_json,
    )
    runs, group_id = result.runs, result.id
    target = plot or Path(runs[0]["artifacts"]["lr_find"]).with_name("lr_find.png")
    result["plot"] = save_lr_plot(
        runs,
        str(target),
        lower=result["lower"],
        upper=result["upper"],
        log_x=log_x,
        title=f"LR range test: {cfg.model.name} on {cfg.data.dataset}",
    )
    for r in runs:
        s.update(r["id"], artifacts={"plot": result["plot"]})
    keys = (
        "lr_lower",
        "lr_upper",
        "bounds_reason",
        "best_val_accuracy",
        "stop_reason",
        "iterations",
        "train_time_s",
    )
    # The JSON is the bounds and a line per run (and the group's id), not the whole group.
    result = {k: result[k] for k in ("lower", "upper", "seeds_with_bounds", "suggestions",
                                     "min_lr", "max_lr", "mode", "rule", "plot")}
    result["group"] = group_id
    result["runs"] = [
        {"id": r["id"], "seed": r["seed"], **{k: (r.get("metrics") or {}).get(k) for k in keys}}
        for r in runs
    ]
    if as_json:
        return print_json(result)
    table = Table("run", "seed", "lower", "upper", "best val acc", "stopped by", "iters", "note")
    for r in result["runs"]:
        table.add_row(
            r["id"],
            str(r["seed"]),
            _lr_text(r["lr_lower"]),
            _lr_text(r["lr_upper"]),
            fmt_value(r["best_val_accuracy"]),
            r["stop_reason"],
            fmt_value(r["iterations"]),
            r["bounds_reason"] or "",
        )
    out.print(table)
    if result["lower"] is None:
        err.print(
            "No bounds: the metric never improved over this range. Try another range "
            "(--min-lr/--max-lr), more epochs, or --metric loss."
        )
    else:
        out.print(
            f"[bold]bounds[/] lower {result['lower']:.3g}  upper {result['upper']:.3g}   "
            "(train with --schedule triangular2 --lr LOWER --set schedule.max_lr=UPPER)"
        )
    sug = result["suggestions"]
    out.print("single values: " + ", ".join(f"{k} {_lr_text(v)}" for k, v in sug.items()))
    out.print(f"wrote {result['plot']}")


def _pct(value: Any) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"


@app.command("search")
def search_cmd(
    space: Annotated[
        Path | None, typer.Argument(help="Search space YAML (docs/search.md).")
    ] = None,
    resume: Annotated[
        str | None, typer.Option(help="Continue a killed or stopped search (id, prefix or name).")
    ] = None,
    workers: Annotated[int, typer.Option(
        help="Local worker processes that run the trials; 0 only queues them for "
        "`convbench worker` on other machines (docs/distributed.md).")] = 1,
    strategy: Annotated[str | None, typer.Option(help="grid, random, tpe or screen.")] = None,
    pruner: Annotated[
        str | None, typer.Option(help="none, median, percentile, asha, hyperband or screen.")
    ] = None,
    trials: Annotated[int | None, typer.Option(help="Configurations to try.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Full-training epochs per trial.")] = None,
    seeds: Annotated[str | None, typer.Option(help="Seeds of each full training: 0,1,2.")] = None,
    time_budget: Annotated[
        float | None,
        typer.Option(help="Total wall time in seconds (a resumed search gets what is left)."),
    ] = None,
    audit: Annotated[
        bool | None,
        typer.Option(
            "--audit/--no-audit",
            help="Also train discarded/pruned configurations in full and "
            "report correlations, regret and compute saved.",
        ),
    ] = None,
    audit_sample: Annotated[
        int | None, typer.Option(help="Audit only this many discarded configurations.")
    ] = None,
    sets: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Override any field of the space, e.g. --set screen.epochs=4 "
            "--set base.train.batch_size=64.",
        ),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(help="Write the HTML report here (+ -winner.yaml and .json beside it)."),
    ] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the searches in the store.")] = False,
    status: Annotated[str | None, typer.Option(
        help="Show a search's trials per state and its workers (id, prefix or name).")] = None,
    store: StoreOpt = None,
    artifacts: ArtifactsOpt = None,
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No per-trial lines.")] = False,
):
    """Search a space of configurations (grid, random, TPE or the study's LR-range-test
    screening) with optional pruning, several seeds and worker processes; resumable.

      convbench search examples/digits-screen-search.yaml --workers 2 --audit \\
          --report out/search.html
    """
    from .search import search as run_search
    from .training.lifecycle import Stopped

    s = _store(store, artifacts=artifacts)
    if status:
        return _show_status(s, status, as_json)
    if list_:
        groups = s.list_groups(kind="search")
        if as_json:
            return print_json(groups)
        table = Table("id", "name", "status", "runs", "created")
        for g in groups:
            table.add_row(
                g["id"],
                g.get("name") or "",
                g["status"],
                str(len(g["run_ids"])),
                (g.get("created_at") or "")[:19],
            )
        return out.print(table if groups else "No searches yet.")
    overrides = list(sets or [])
    for key, value in (
        ("search.strategy", strategy),
        ("search.pruner.name", pruner),
        ("search.trials", trials),
        ("search.epochs", epochs),
    ):
        if value is not None:
            overrides.append(f"{key}={value}")
    if seeds is not None:
        overrides.append(f"search.seeds=[{','.join(map(str, _csv(seeds, 'seeds', int)))}]")
    if resume and (space or overrides):
        raise ConfigError(
            "--resume continues a search with its own space: drop the YAML, "
            "--set and the space options (--workers, --audit, --time-budget and "
            "--report may be given)."
        )

    def say(text: str) -> None:
        if not (quiet or as_json):
            err.print(text, markup=False)

    try:
        result = run_search(
            space,
            store=s,
            workers=workers,
            resume=resume,
            audit=audit,
            audit_sample=audit_sample,
            time_budget_s=time_budget,
            overrides=overrides,
            report=report,
            quiet=quiet or as_json,
            echo=say,
        )
    except (KeyboardInterrupt, Stopped) as stop:
        gid = getattr(stop, "group_id", None)
        err.print(f"Stopped. Finished trials are kept: continue with `convbench search --resume "
                  f"{gid}`." if gid else "Stopped before the search was recorded.", markup=False)
        raise typer.Exit(130) from None
    if result["status"] == "queued":
        if as_json:
            return print_json({"id": result["id"], "status": "queued",
                               "waiting": result["waiting"]})
        out.print(f"search {result['id']}: {result['waiting']} trial(s) queued. Start workers "
                  f"on any machine that reaches the store: `convbench worker --store URL "
                  f"--group {result['id']}`; watch them with `convbench search --status "
                  f"{result['id']}`.", markup=False)
        return None
    if as_json:
        return print_json(result["summary"])
    table = Table("configuration", "status", "early val", "LR bounds", "final val", "test")
    for r in result["rows"]:
        b = r.get("lr_bounds") or [None, None]
        bounds = f"{b[0]:.3g}–{b[1]:.3g}" if None not in b else "-"
        table.add_row(
            r.get("label", r["key"]),
            r["status"],
            _pct(r.get("early")),
            bounds,
            _pct(r.get("full")),
            _pct(result["winner"]["test"]["value"]) if r.get("winner") else "",
        )
    out.print(f"[bold]search {result['id']}[/] {result.get('name') or ''} — {result['status']}")
    out.print(table)
    w, a, c = result["winner"], result["audit"], result["compute"]
    if w:
        out.print(
            f"[bold]winner[/] {w['label']}: validation {_pct(w['val'])}, "
            f"test {_pct(w['test']['value'])}"
        )
    if a:
        out.print(
            f"[bold]audit[/] Spearman {fmt_value(a['spearman'])}, "
            f"Kendall {fmt_value(a['kendall'])} "
            f"(n={a['pairs']}); winner is the true best: "
            f"{'yes' if a['winner_is_best'] else 'no'}; regret {a['regret_points']:.2f} "
            f"points ({a['audited']} of {a['discarded']} discarded audited)"
        )
        for trust in (a.get("rules") or {}).values():
            out.print(f"[bold]trust[/] {trust['sentence']}")
    if result.get("seeding"):
        out.print(f"[bold]seeds[/] {result['seeding']}")
    stops = result.get("early_stops") or []
    if stops:
        out.print(f"[bold]early stops[/] {len(stops)} range test(s) stopped when decided; "
                  "the report lists when and why")
    if c.get("savings_pct"):
        sv, used, ex = c["savings_pct"], c["used"], c["exhaustive"]
        out.print(
            f"[bold]compute[/] used {used['epochs']:.1f} epochs / {used['seconds']:.1f} s / "
            f"{used['energy_j']:.0f} J against exhaustive {ex['epochs']:.1f} / "
            f"{ex['seconds']:.1f} s / {ex['energy_j']:.0f} J: saved {sv['epochs']:.1f} % "
            f"epochs, {sv['seconds']:.1f} % time, {sv['energy_j']:.1f} % energy"
            + (" (exhaustive partly estimated)" if c["exhaustive_estimated"] else "")
        )
    for path in (result.get("report") or {}).values():
        out.print(f"wrote {path}")
    if result.get("repeats"):
        out.print(f"{result['repeats']} sampled trial(s) repeated an earlier configuration and "
                  "reused its result instead of training again.")
    if result.get("stopped_reason"):
        err.print(f"stopped: {result['stopped_reason']}.", markup=False)
    if result["status"] == "failed":
        first = next((r.get("error") for r in result["rows"] if r.get("error")), None)
        raise ConfigError(f"every trial of search {result['id']} failed"
                          + (f"; the first: {first}" if first else "") + ".")


def _show_status(s: Any, ident: str, as_json: bool) -> None:
    from .search.runner import find_search
    from .search.status import search_status

    status = search_status(s, find_search(s, ident, option="--status")["id"])
    if as_json:
        return print_json(status)
    _print_status(status)
    return None


def _print_status(status: dict) -> None:
    """A search's or queued comparison's trials per phase and state, and its workers."""
    from .search.status import STATES

    out.print(f"[bold]{status['kind']} {status['id']}[/] {status.get('name') or ''} — "
              f"{status['status']}")
    table = Table("phase", *STATES)
    for phase, counts in [*status["phases"].items(), ("all", status["totals"])]:
        table.add_row(phase, *(str(counts[k]) for k in STATES))
    out.print(table)
    workers = Table("host", "pid", "state", "trial", "last heartbeat (UTC)")
    for w in status["workers"]:
        workers.add_row(str(w.get("host")), str(w.get("pid")), str(w.get("state")),
                        str(w.get("trial") or "-"), str(w.get("heartbeat") or "-"))
    out.print(workers if status["workers"] else "No worker has taken a trial yet.")


@app.command("worker")
def worker_cmd(
    store: StoreOpt = None,
    group: Annotated[str | None, typer.Option(
        help="Only this search or queued comparison (id, prefix or name) [default: every "
        "open one].")] = None,
    max_trials: Annotated[int | None, typer.Option(
        help="Stop after running this many trials.", min=1)] = None,
    until_empty: Annotated[bool, typer.Option(
        "--until-empty", help="Stop when no open search has a waiting trial (default: "
        "keep waiting for new work).")] = False,
    artifacts: ArtifactsOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No per-trial lines.")] = False,
):
    """Join searches and comparisons from this machine: claim waiting trials of open searches
    (and runs of comparisons queued with `convbench compare --workers 0`) in a shared
    PostgreSQL store, run them, and keep going; any number of workers on any number of
    machines (docs/distributed.md). Stop one with Ctrl-C: its trial goes back in the queue.

      convbench worker --store postgresql://me:pw@db.lab/runs --artifacts /mnt/shared/cb
    """
    from .compare import queued_kinds
    from .search.runner import find_work, work
    from .search.worker import WorkerSpec, host_name
    from .training.lifecycle import Stopped, stop_on_signals

    s = _store(store, artifacts=artifacts)
    if s.is_sqlite:
        raise ConfigError(
            "convbench worker needs a PostgreSQL store that every machine reaches "
            "(--store postgresql://user:password@host/db); a SQLite file serves one machine: "
            "there, use `convbench search ... --workers N`.")
    s.check_artifacts()
    gid = find_work(s, group)["id"] if group else None
    say = (lambda text: None) if quiet else (lambda text: err.print(text, markup=False))
    say(f"worker {host_name()}/{os.getpid()} on {s!r}, artifacts in {s.artifacts.location}"
        + (f", group {gid}" if gid else ", every open search and queued comparison"))
    spec = WorkerSpec(s.url, s.artifacts.location, group=gid, max_trials=max_trials,
                      until_empty=until_empty, follow=gid is not None and not until_empty,
                      quiet=quiet)
    try:
        with stop_on_signals():
            ran = work(spec, queued_kinds())
    except (KeyboardInterrupt, Stopped):
        err.print("Stopped. The trial this worker ran is back in the queue; its run resumes "
                  "from its last checkpoint on whichever worker claims it.", markup=False)
        raise typer.Exit(130) from None
    say(f"worker done: {ran} trial(s) run")


@app.command()
def datasets(
    data_dir: Annotated[str | None, typer.Option(help="Also look here.")] = None,
    as_json: JsonOpt = False,
):
    """List the data sets, their classes and sizes, and whether their files were found."""
    from .data import dataset_info

    info = dataset_info(data_dir)
    if as_json:
        return print_json(info)
    table = Table("name", "classes", "image", "train", "test", "found", "where / how to get")
    for d in info:
        table.add_row(
            d["name"],
            fmt_value(d.get("classes")),
            str(d.get("image_shape") or "-"),
            fmt_value(d.get("train_size")),
            fmt_value(d.get("test_size")),
            "yes" if d["found"] else "no",
            str(d.get("location") or d.get("how_to_get") or ""),
        )
    out.print(table)


@app.command()
def models(as_json: JsonOpt = False):
    """List the models, with parameter counts for 10 classes and 32×32 RGB input."""
    from rich.markup import escape  # descriptions hold "pip install 'convbench[pretrained]'"

    from .models import list_models

    rows = list_models()
    if as_json:
        return print_json(rows)
    table = Table("name", "family", "params", "description")
    for r in rows:
        table.add_row(
            r["name"], r.get("family", ""), fmt_value(r.get("params")),
            escape(r.get("description", "")),
        )
    out.print(table)
    out.print(
        "Shorthand: B<blocks>FL<filters> (e.g. B3FL32) is `blocks` with those values; "
        "any timm model as timm/<name>."
    )


@app.command("config")
def show_config(
    config_file: Annotated[Path | None, typer.Argument(help="YAML to validate.")] = None,
    sets: SetOpt = None,
):
    """Print every config field with its type, default and meaning, or the resolved YAML of a
    file plus --set."""
    if config_file or sets:
        cfg = build_config(config_file, {}, sets)
        sys.stdout.write(cfgmod.dump(cfg))
        return
    import json

    from rich.markup import escape  # types and defaults hold [ ] (list[int], [0.667, 0.889])

    table = Table("field (--set key=value)", "type", "default", "description")
    for key, typ, default, description in cfgmod.config_fields():
        # the exact value, written the way --set takes it (0.99994, 1e-07, true, [16, 32])
        shown = "-" if default is None else default if isinstance(default, str) \
            else json.dumps(default)
        table.add_row(key, escape(typ), escape(shown), escape(description))
    out.print(table)


# Transfer learning and analysis (cli_transfer.py): features, svm, analyze …, data …
from .cli_transfer import SVM_COMMAND, analyze_app, data_app, features_cmd, svm_cmd  # noqa: E402

app.command("features")(features_cmd)
app.command("svm", cls=SVM_COMMAND)(svm_cmd)
app.add_typer(analyze_app, name="analyze")
app.add_typer(data_app, name="data")

# Using a trained run (cli_use.py): predict, evaluate, export
from .cli_use import evaluate_cmd, export_cmd, predict_cmd  # noqa: E402

app.command("predict")(predict_cmd)
app.command("evaluate")(evaluate_cmd)
app.command("export")(export_cmd)

@app.command()
def serve(
    store: StoreOpt = None,
    host: Annotated[str, typer.Option(
        help="Address to listen on; anything but loopback needs the token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
    no_browser: Annotated[bool, typer.Option(
        "--no-browser", help="Do not open a browser tab.")] = False,
    token: Annotated[str | None, typer.Option(
        help="Secret every API call must carry (default: none on 127.0.0.1, generated "
        "and printed in the URL on any other host).")] = None,
    max_runs: Annotated[int, typer.Option(
        help="Runs trained at once from the page; more wait in a queue.")] = 1,
):
    """Open the playground: a local web app to design, train, watch and compare runs.

    Needs FastAPI and uvicorn, the `serve` extra of the package. Example:

      convbench serve --store runs.db
    """
    try:
        from .server.app import serve as run_server
        from .server.settings import Settings
    except ImportError as missing:
        raise ConfigError(f"convbench serve needs {missing.name}: pip install "
                          "'convbench[serve]'.") from None
    run_server(Settings(store=store, host=host, port=port, token=token, max_runs=max_runs,
                        open_browser=not no_browser))


# Document-layout detection and segmentation (detection/cli.py)
from .detection.cli import app as detect_app  # noqa: E402

app.add_typer(detect_app, name="detect")


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one or two lines and exit status 2, never a traceback."""
    run_app(app, argv)


if __name__ == "__main__":
    main()
