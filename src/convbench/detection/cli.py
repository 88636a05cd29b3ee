"""``convbench detect …``: synthetic pages, training, evaluation, prediction, comparison.

The main CLI mounts :data:`app`; ``python -m convbench.detection.cli`` runs it alone.
User errors raise :class:`~convbench.errors.ConvbenchError` (exit status 2, one line).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from ..cli_common import (
    JsonOpt,
    QuietOpt,
    StoreOpt,
    build_config,
    default_help,
    err,
    fmt_value,
    metrics_table,
    open_store,
    out,
    print_json,
    run_app,
)
from ..errors import ConfigError, ConvbenchError
from .api import data_flags as _data_flags
from .config import DetectConfig, DetectDataConfig

app = typer.Typer(help="Document-layout detection and instance segmentation (Mask R-CNN / "
                       "Faster R-CNN with pluggable backbones): synthetic pages, COCO and "
                       "PAGE-XML data, training, COCO AP evaluation, predictions, comparisons.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", help="Override a detection config field by dotted path, e.g. "
                  "--set model.min_size=384 (repeatable).")]
ModelArg = Annotated[str, typer.Argument(
    help="Run id (or unique prefix) of a detection run, or its artifacts folder.")]


def _config(config_file: Path | None, flags: dict[str, Any], sets: list[str] | None):
    # The builder of every command; DetectConfig's budget rule lets a budget flag (--epochs)
    # replace the file's other budget (train.iterations).
    return build_config(config_file, flags, sets, DetectConfig)


METRIC_ROWS = ["box_AP", "box_AP50", "box_AP75", "box_APs", "box_APm", "box_APl", "mask_AP",
               "mask_AP50", "mask_AP75", "mask_APs", "mask_APm", "mask_APl", "iterations",
               "epochs", "train_time_s", "iters_per_s", "eval_time_s", "peak_memory_bytes",
               "params_total", "energy_kwh", "energy_method", "cost"]


def _show_metrics(title: str, m: dict[str, Any]) -> None:
    out.print(f"[bold]{title}[/]")
    out.print(metrics_table(m, METRIC_ROWS))
    for kind in ("box", "mask"):
        per = m.get(f"{kind}_AP_per_class")
        if per:
            out.print(f"{kind} AP per class: " + ", ".join(f"{c} {fmt_value(v)}"
                                                          for c, v in per.items()))


def _bar(total: int, what: str, quiet: bool) -> Progress | None:
    if quiet:
        return None
    return Progress(TextColumn(f"[bold]{what}"), BarColumn(), MofNCompleteColumn(),
                    console=err, transient=True)


def _warn(lines: list[str]) -> None:
    # On stderr, so that --json output stays parseable; no markup: messages hold [x, y, …];
    # soft wrap keeps long paths whole for copying.
    for line in lines:
        err.print(line, markup=False, highlight=False, emoji=False, soft_wrap=True)


def _resume_command(stop: BaseException, store_url: str | None) -> str:
    """The command that continues the run ``stop`` interrupted (its id is set by
    train_detector; a stop while pages were still loading has none)."""
    run_id = getattr(stop, "run_id", None) or "RUN_ID"
    if store_url and "://" in store_url:  # never echo a database password to the terminal
        from ..store.database import resolve_url, safe_url

        store_url = safe_url(resolve_url(store_url))
    store = f" --store {store_url}" if store_url else ""
    return f"convbench detect train --resume {run_id}{store}"


@app.command()
def synth(out_dir: Annotated[Path, typer.Option("--out", help="Folder to write the pages into.")],
          pages: Annotated[int, typer.Option(min=1, help="Number of pages.")]
          = DetectDataConfig.model_fields["synth_pages"].default,
          size: Annotated[int, typer.Option(min=64, help="Page height in px.")]
          = DetectDataConfig.model_fields["synth_size"].default,
          seed: Annotated[int, typer.Option(min=0, help="Random seed.")]
          = DetectDataConfig.model_fields["synth_seed"].default):
    """Draw synthetic music-manuscript pages: PNGs + COCO JSON + PAGE-XML.

      convbench detect synth --out pages --pages 60 --size 448
    """
    from .synth import synthesize

    ann = synthesize(out_dir, pages, size, seed)
    out.print(f"{pages} pages in {out_dir}: COCO {ann}, PAGE-XML {out_dir / 'page'}")


@app.command()
def train(
    config_file: Annotated[Path | None, typer.Argument(help="YAML detection config.")] = None,
    backbone: Annotated[str | None, typer.Option(help="e.g. resnet18, resnet50c, vovnet39, "
                                                      "timm/resnet18.")] = None,
    arch: Annotated[str | None, typer.Option(help="maskrcnn or fasterrcnn.")] = None,
    data: Annotated[str | None, typer.Option(
        help="COCO JSON file or PAGE-XML folder (default: synthetic pages).")] = None,
    source: Annotated[str | None, typer.Option(help="synth, coco or pagexml.")] = None,
    epochs: Annotated[float | None, typer.Option(
        help="Budget in epochs (replaces the config file's budget).")] = None,
    iterations: Annotated[int | None, typer.Option(
        help="Budget in iterations (replaces the config file's budget).")] = None,
    batch_size: Annotated[int | None, typer.Option(help=default_help(
        "Images per iteration", DetectConfig, "train.batch_size"))] = None,
    lr: Annotated[float | None, typer.Option(help=default_help(
        "Base learning rate", DetectConfig, "train.lr"))] = None,
    seed: Annotated[int | None, typer.Option(help=default_help(
        "Random seed", DetectConfig, "train.seed"))] = None,
    device: Annotated[str | None, typer.Option(help=default_help(
        "auto, cpu, cuda or cuda:N", DetectConfig, "train.device"))] = None,
    name: Annotated[str | None, typer.Option(help="A name for the run.")] = None,
    sets: SetOpt = None,
    resume: Annotated[str | None, typer.Option(
        help="Continue a stopped detection run (id or prefix) from its checkpoint.")] = None,
    store: StoreOpt = None, as_json: JsonOpt = False, quiet: QuietOpt = False,
):
    """Train a detector, evaluate it on held-out pages (COCO AP), record the run.

      convbench detect train --backbone resnet18 --iterations 600
    """
    from ..training.lifecycle import Stopped
    from .train import train_detector

    cfg = None
    if not resume:
        cfg = _config(config_file, {
            "model.backbone": backbone, "model.arch": arch, "train.epochs": epochs,
            "train.iterations": iterations, "train.batch_size": batch_size, "train.lr": lr,
            "train.seed": seed, "train.device": device, "name": name,
            **_data_flags(data, source)}, sets)
    try:
        run = train_detector(cfg, store=open_store(store), quiet=quiet or as_json, resume=resume,
                             on_data_issues=_warn)
    except (KeyboardInterrupt, Stopped) as stop:
        err.print("Stopped. Continue from the last checkpoint with "
                  f"`{_resume_command(stop, store)}`.", markup=False)
        raise typer.Exit(130) from None
    if as_json:
        print_json(dict(run))
    else:
        _show_metrics(f"run {run['id']} {run.get('name') or ''} — {run['status']}",
                      run.get("metrics") or {})
    if run["status"] == "diverged":
        raise ConvbenchError(f"Run {run['id']} diverged (loss became NaN/inf or exploded). "
                             "Lower train.lr or raise train.warmup_iters.")


@app.command("eval")
def eval_cmd(
    model: ModelArg,
    data: Annotated[str | None, typer.Option(
        help="COCO JSON or PAGE-XML folder to evaluate on (default: the run's test pages).")]
        = None,
    source: Annotated[str | None, typer.Option(help="coco or pagexml (guessed from --data).")]
        = None,
    image_dir: Annotated[str | None, typer.Option(help="Images folder for --data.")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")] = "cpu",
    store: StoreOpt = None, as_json: JsonOpt = False, quiet: QuietOpt = False,
):
    """COCO AP (boxes and masks, per class) of a trained detector.

      convbench detect eval 3f9c --data pages/annotations.json
    """
    from . import api

    bar = _bar(0, "eval", quiet or as_json)
    summary: list[str] = []

    def pages_read(ds) -> None:
        _warn(ds.issue_report())
        summary.append(f"{len(ds.pages)} pages ({ds.issue_summary()})")
        if bar is not None:
            bar.start()
            bar.add_task("eval", total=len(ds.pages))

    def batch_done(n: int) -> None:
        bar.update(bar.task_ids[0], completed=n)

    try:
        metrics = api.eval(model, data, source=source, image_dir=image_dir, device=device,
                           store=store, on_pages=pages_read,
                           on_batch=batch_done if bar is not None else None)
    finally:
        if bar is not None:
            bar.stop()
    if as_json:
        print_json(metrics)
    else:
        _show_metrics(summary[0], metrics)


@app.command()
def predict(
    model: ModelArg,
    images: Annotated[list[Path], typer.Argument(
        help="Page images to analyse, or folders of them.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("predictions"),
    score: Annotated[float, typer.Option(min=0, max=1, help="Minimum score for PAGE-XML and "
                                                            "overlays.")] = 0.5,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")] = "cpu",
    store: StoreOpt = None,
):
    """Detect regions on images; write COCO JSON, PAGE-XML and colour overlays.

      convbench detect predict 3f9c page1.png page2.png --out predictions
      convbench detect predict 3f9c scans/ --out predictions
    """
    from . import api

    ds = api.predict(model, list(images), out_dir, score=score, device=device, store=store)
    n = sum(1 for p in ds.pages for i in p.instances if (i.score or 0) >= score)
    out.print(f"{n} regions (score ≥ {score}) on {len(ds.pages)} images → "
              f"{out_dir / 'predictions.json'}, {out_dir / 'page'}, {out_dir / 'overlays'}")


@app.command()
def compare(
    config_file: Annotated[Path | None, typer.Argument(help="YAML base detection config.")]
        = None,
    backbone: Annotated[list[str] | None, typer.Option(
        help="A backbone to compare (repeatable).")] = None,
    variant: Annotated[list[str] | None, typer.Option(
        help="A variant as key=value overrides separated by spaces or ';', e.g. "
             "'model.backbone=resnet18 train.batch_size=4' (repeatable).")] = None,
    seeds: Annotated[str | None, typer.Option(
        help="Comma-separated seeds, e.g. 0,1: one run per variant and seed.")] = None,
    workers: Annotated[int, typer.Option(
        min=1, help="Train N runs at once in N local worker processes that drain the "
                    "comparison's queue (cores are split between them).")] = 1,
    report: Annotated[Path, typer.Option(help="HTML report to write.")]
        = Path("detect-report.html"),
    data: Annotated[str | None, typer.Option(help="COCO JSON or PAGE-XML folder.")] = None,
    iterations: Annotated[int | None, typer.Option(
        help="Budget in iterations (replaces the config file's budget).")] = None,
    epochs: Annotated[float | None, typer.Option(
        help="Budget in epochs (replaces the config file's budget).")] = None,
    name: Annotated[str | None, typer.Option(help="A name for the comparison.")] = None,
    sets: SetOpt = None,
    store: StoreOpt = None, as_json: JsonOpt = False, quiet: QuietOpt = False,
):
    """Train several backbones/settings on the same pages and write an HTML report.

      convbench detect compare --backbone resnet18 --backbone vovnet19-lite --iterations 300
      convbench detect compare --backbone resnet18 --seeds 0,1 --workers 2 --iterations 300
    """
    from ..cli_common import csv_list
    from ..compare import compare as run_compare
    from ..compare import parse_variant
    from ..training.lifecycle import Stopped

    variants = [[f"model.backbone={b}"] for b in backbone or []]
    variants += [parse_variant(v) for v in variant or []]
    if not variants:
        raise ConfigError("Nothing to compare: give --backbone NAME or --variant 'k=v …' at "
                          "least twice (or once, to get a report of one).")
    cfg = _config(config_file, {"train.iterations": iterations, "train.epochs": epochs,
                                **_data_flags(data, None)}, sets)
    try:
        group = run_compare(cfg, variants, kind="detect", seeds=csv_list(seeds, "seeds", int)
                            or None, workers=workers, store=open_store(store), name=name,
                            on_data_issues=_warn, report=report, quiet=quiet or as_json)
    except (KeyboardInterrupt, Stopped) as stop:
        err.print("Stopped. Finished variants stay in the store; the stopped one can be "
                  f"continued with `{_resume_command(stop, store)}`.", markup=False)
        raise typer.Exit(130) from None
    if as_json:
        print_json(group)
        return
    table = Table("variant", "status", "box AP", "box AP50", "mask AP", "train s", "cost")
    for r in group.runs:
        m = r.metrics
        table.add_row(r.name or r.id, r.status, fmt_value(m.get("box_AP")),
                      fmt_value(m.get("box_AP50")), fmt_value(m.get("mask_AP")),
                      fmt_value(m.get("train_time_s"), digits=1), fmt_value(m.get("cost")))
    out.print(table)
    for e in group["errors"]:
        err.print(f"failed: {e}", markup=False)
    for path in group["report"].values():
        out.print(f"wrote {path}")


@app.command()
def backbones(as_json: JsonOpt = False):
    """List the registered backbones (any timm model also works as timm/<name>)."""
    from .backbones import list_backbones

    rows = list_backbones()
    if as_json:
        print_json(rows)
        return
    table = Table("backbone", "family")
    for r in rows:
        table.add_row(r["name"], r["family"])
    out.print(table)
    out.print("Any timm model with feature maps also works: timm/<name>, e.g. timm/resnet18.")


def main(argv: list[str] | None = None) -> None:
    """Run the detection CLI alone, with the main CLI's error handling."""
    run_app(app, argv)


if __name__ == "__main__":
    main()
