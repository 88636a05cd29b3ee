"""Transfer-learning and analysis commands of the CLI: ``features``, ``svm``,
``analyze tsne|per-class|rank|weights|layers|report`` and ``data from-filenames``.

They live here to keep :mod:`convbench.cli` short; ``cli`` registers them. Shared helpers
(console, store, JSON output, the config builder, lists, the run summary) come from
:mod:`convbench.cli_common`; this module never imports ``cli``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .cli_common import (
    JsonOpt,
    SetOpt,
    StoreOpt,
    build_config,
    csv_list,
    defaults_later,
    fmt_value,
    open_store,
    out,
    print_json,
    show_run_summary,
)

OutDirOpt = Annotated[Path | None, typer.Option(
    "--out-dir", help="Write the figure here instead of the run's artifacts folder.")]

analyze_app = typer.Typer(help="Analyse stored runs: t-SNE maps, per-class bars, true-class "
                               "ranks, per-layer weight change, model units.",
                          no_args_is_help=True)
data_app = typer.Typer(help="Build data sets.", no_args_is_help=True)


def _wrote(paths: dict) -> None:
    for path in paths.values():
        out.print(f"wrote {path}")


def features_cmd(
    run_id: Annotated[str | None, typer.Argument(help="A trained run (its best weights).")] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Features file (.npz).")] = Path(
        "features.npz"),
    model: Annotated[str | None, typer.Option(help="Instead of a run: a model name.")] = None,
    pretrained: Annotated[bool, typer.Option(
        "--pretrained", help="With --model: its published ImageNet weights.")] = False,
    layer: Annotated[str | None, typer.Option(
        help="Module name (see `convbench analyze layers`); default: penultimate.")] = None,
    pool: Annotated[str, typer.Option(help="avg, max or flatten for conv maps.")] = "avg",
    dataset: Annotated[str | None, typer.Option(help="Data set (default: the run's).")] = None,
    data_dir: Annotated[str | None, typer.Option(help="Where the data set's files are.")] = None,
    image_size: Annotated[int | None, typer.Option(help="With --model: input side (px).")] = None,
    sets: SetOpt = None,
    store: StoreOpt = None,
):
    """Extract one layer's activations for every image of every split into an .npz file.

      convbench features 3f9c01ab -o feats.npz
      convbench features --model efficientnet-lite0-imagenet --dataset fashion-mnist \\
          --image-size 64 -o lite0.npz
    """
    from .analysis.features import extract_features
    from .errors import ConfigError

    if bool(run_id) == bool(model):
        raise ConfigError("Give either a run id or --model NAME (with --pretrained for "
                          "published weights).")
    model_only = [flag for flag, given in (("--pretrained", pretrained),
                                           ("--image-size", image_size is not None),
                                           ("--set", sets)) if given]
    if run_id and model_only:
        raise ConfigError(f"{model_only[0]} goes with --model: a run's features come from its "
                          "own best weights at its own input size.")
    config = None
    if model:
        config = build_config(None, {
            "model.name": model, "model.pretrained": True if pretrained else None,
            "data.dataset": dataset, "data.data_dir": data_dir,
            "data.image_size": image_size}, sets)
    feats, path = extract_features(open_store(store), run=run_id, config=config, layer=layer,
                                   pool=pool, out=output, dataset=dataset if run_id else None,
                                   data_dir=data_dir if run_id else None)
    sizes = ", ".join(f"{s} {len(y)}" for s, (_, y) in feats.splits.items())
    out.print(f"{feats.meta['layer']}: {feats.dim} features per image ({sizes}) → {path}")


def _svm_defaults() -> dict[str, str]:
    import inspect

    from .analysis import svm

    params = inspect.signature(svm.svm_run).parameters
    return {"kernels": ",".join(svm.DEFAULT_KERNELS),
            "C": ",".join(f"{c:g}" for c in svm.DEFAULT_C),
            "gamma": ",".join(str(g) for g in svm.DEFAULT_GAMMA),
            "folds": params["folds"].default, "seed": params["seed"].default}


# The grid's defaults are analysis.svm's (which loads torch and scikit-learn): named in the
# help only when it is shown; an option not given leaves svm_run its default.
SVM_COMMAND = defaults_later(_svm_defaults)


def svm_cmd(
    features: Annotated[Path, typer.Argument(help="Features file from `convbench features`.")],
    kernels: Annotated[str | None, typer.Option(
        help="Kernels to try (default {kernels}).")] = None,
    c: Annotated[str | None, typer.Option("--C", help="C values to try (default {C}).")] = None,
    gamma: Annotated[str | None, typer.Option(
        help="γ values (or 'scale'; default {gamma}).")] = None,
    folds: Annotated[int | None, typer.Option(
        help="Cross-validation folds on the train split (default {folds}).")] = None,
    seed: Annotated[int | None, typer.Option(
        help="Seed of the folds and Platt scaling (default {seed}).")] = None,
    name: Annotated[str | None, typer.Option(help="A name for the run.")] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
):
    """Grid-search an SVM on deep features (cross-validated on train), test it, store a run.

      convbench svm feats.npz --kernels rbf,sigmoid --C 1,10 --gamma scale,1e-4
    """
    from .analysis.svm import svm_run
    from .errors import ConfigError

    grid: dict = {"folds": folds, "seed": seed}
    if gamma is not None:
        try:
            grid["gammas"] = [g if g in ("scale", "auto") else float(g)
                              for g in csv_list(gamma, "gamma")]
        except ValueError:
            raise ConfigError(f"--gamma {gamma!r}: numbers or 'scale', e.g. scale,1e-3.") \
                from None
    if kernels is not None:
        grid["kernels"] = csv_list(kernels, "kernels")
    if c is not None:
        grid["cs"] = csv_list(c, "C", float)
    run = svm_run(features, store=open_store(store), name=name,
                  **{k: v for k, v in grid.items() if v is not None})
    if as_json:
        return print_json(run)
    m = run["metrics"]
    out.print(f"SVM {m['svm_kernel']} C={m['svm_C']} γ={m['svm_gamma']} "
                  f"(cv accuracy {m['best_val_accuracy']:.4f})")
    show_run_summary(run)


@analyze_app.command("tsne")
def tsne_cmd(
    source: Annotated[str, typer.Argument(help="Run id (trained or SVM) or a features file.")],
    split: Annotated[str, typer.Option(help="train, val or test.")] = "test",
    layer: Annotated[str | None, typer.Option(help="For a trained run: the layer.")] = None,
    perplexity: Annotated[float, typer.Option(help="t-SNE perplexity.")] = 30.0,
    max_points: Annotated[int, typer.Option(help="Stratified subset size.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of subset and embedding.")] = 0,
    out_dir: OutDirOpt = None,
    store: StoreOpt = None,
):
    """t-SNE map of deep features coloured by class (PNG + SVG, recorded in the run)."""
    from .analysis.tsne import tsne_plot

    _wrote(tsne_plot(open_store(store), source, split=split, layer=layer, perplexity=perplexity,
                     max_points=max_points, seed=seed, out_dir=out_dir))


@analyze_app.command("per-class")
def per_class_cmd(
    run_id: Annotated[str, typer.Argument(help="Run id (trained or SVM).")],
    out_dir: OutDirOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
):
    """Per-class top-1, top-5 and cross-entropy bars of a run's test predictions."""
    from rich.table import Table

    from .analysis.per_class import per_class_plot

    rows, paths = per_class_plot(open_store(store), run_id, out_dir=out_dir)
    if as_json:
        return print_json({"classes": rows, "paths": paths})
    table = Table("class", "images", "top-1", "top-5", "cross-entropy")
    for r in rows:
        table.add_row(r["class"], str(r["images"]), fmt_value(r["top1"]),
                      fmt_value(r["top5"]), fmt_value(r["cross_entropy"]))
    out.print(table)
    _wrote(paths)


@analyze_app.command("rank")
def rank_cmd(
    run_a: Annotated[str, typer.Argument(help="The 'before' run (e.g. the base network).")],
    run_b: Annotated[str, typer.Argument(help="The 'after' run (e.g. fine-tuned or SVM).")],
    class_name: Annotated[str, typer.Option("--class", help="Class name, e.g. pelican.")],
    limit: Annotated[int, typer.Option(help="Images shown.")] = 12,
    out_dir: OutDirOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
):
    """Probability and rank of the true class for one class's test images, two runs side by
    side (recorded in the second run)."""
    from rich.table import Table

    from .analysis.rank import rank_plot

    rows, paths = rank_plot(open_store(store), run_a, run_b, class_name, limit, out_dir=out_dir)
    if as_json:
        return print_json({"images": rows, "paths": paths})
    table = Table("test image", "A prob", "A rank", "B prob", "B rank")
    for r in rows:
        table.add_row(str(r["index"]), f"{r['a_prob']:.4f}", str(r["a_rank"]),
                      f"{r['b_prob']:.4f}", str(r["b_rank"]))
    out.print(table)
    _wrote(paths)


@analyze_app.command("weights")
def weights_cmd(
    run_id: Annotated[str, typer.Argument(help="A trained run (its best weights).")],
    other: Annotated[str | None, typer.Argument(
        help="Another run id or a weights file; default: the run's own start.")] = None,
    out_dir: OutDirOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
):
    """Per-layer weight change (sum of squared differences) against the start or another
    checkpoint."""
    from .analysis.weights import weights_plot

    rows, paths = weights_plot(open_store(store), run_id, other, out_dir=out_dir)
    if as_json:
        return print_json({"layers": rows, "paths": paths})
    moved = sorted(rows, key=lambda r: -r["ssd"])[:10]
    out.print("most changed: " + ", ".join(f"{r['layer']} {r['ssd']:.4g}" for r in moved))
    unchanged = sum(r["ssd"] == 0 for r in rows)
    out.print(f"{len(rows)} layers, {unchanged} unchanged")
    _wrote(paths)


@analyze_app.command("layers")
def layers_cmd(
    run_id: Annotated[str | None, typer.Argument(help="A run (else give --model).")] = None,
    model: Annotated[str | None, typer.Option(help="A model name.")] = None,
    image_size: Annotated[int, typer.Option(help="With --model: input side.")] = 32,
    channels: Annotated[int, typer.Option(help="With --model: input channels.")] = 3,
    classes: Annotated[int, typer.Option(help="With --model: classes.")] = 10,
    modules: Annotated[bool, typer.Option("--modules", help="Also list every module name "
                                                            "(for --layer).")] = False,
    sets: SetOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
):
    """The backbone units (for model.transfer selectors) and, with --modules, layer names."""
    from rich.table import Table

    from .errors import ConfigError
    from .models import create_model, input_requirements
    from .models.anatomy import describe_units

    if bool(run_id) == bool(model):
        raise ConfigError("Give either a run id or --model NAME.")
    if run_id:
        from .analysis.runs import open_run
        net = open_run(open_store(store), run_id, weights="start").model
    else:
        cfg = build_config(None, {"model.name": model}, sets)
        ch, side = input_requirements(cfg.model, image_size, channels)
        net = create_model(cfg.model, classes, ch, side)
    rows = describe_units(net)
    names = [n for n, _ in net.named_modules() if n]
    if as_json:
        return print_json({"units": rows, "modules": names if modules else None})
    table = Table("index", "unit", "params", "modules")
    for r in rows:
        table.add_row("-" if r["index"] is None else str(r["index"]), r["name"],
                      fmt_value(r["params"]), ", ".join(r["modules"]))
    out.print(table)
    if modules:
        out.print("\n".join(names))


@analyze_app.command("report")
def report_cmd(
    ids: Annotated[list[str], typer.Argument(help="Run ids.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="HTML file.")] = Path(
        "analysis.html"),
    title: Annotated[str, typer.Option(help="Page title.")] = "convbench analysis",
    store: StoreOpt = None,
):
    """One self-contained HTML page with the runs and all their analysis figures."""
    from .analysis.report import write_analysis_report

    out.print(f"wrote {write_analysis_report(open_store(store), ids, output, title)}")


@data_app.command("from-filenames")
def from_filenames_cmd(
    src: Annotated[Path, typer.Argument(help="Folder of images (searched recursively).")],
    classes: Annotated[Path, typer.Option(help="Text file, one class name per line.")],
    out_dir: Annotated[Path, typer.Option("--out", help="New folder for <class>/<image>.")],
    min_images: Annotated[int, typer.Option(help="Drop classes with fewer images.")] = 25,
    single_word: Annotated[bool, typer.Option(
        "--single-word", help="Keep only classes named by one word.")] = False,
    mode: Annotated[str, typer.Option(
        help="link (hard link, else copy), symlink or copy.")] = "link",
    stop_words: Annotated[str | None, typer.Option(
        help="Extra stop-words, comma-separated (e.g. clipart,free).")] = None,
    as_json: JsonOpt = False,
):
    """A labelled image folder from file names (the clip-art study's Algorithm 1)."""
    from rich.table import Table

    from .data.from_filenames import from_filenames
    from .errors import ConfigError

    if mode not in ("link", "symlink", "copy"):
        raise ConfigError(f"--mode {mode!r}: use link, symlink or copy.")
    r = from_filenames(src, classes, out_dir, min_images=min_images, single_word=single_word,
                       mode=mode, extra_stop_words=csv_list(stop_words, "stop-words"))
    if as_json:
        return print_json({"counts": r.counts, "multi": r.multi, "dropped": r.dropped,
                               "unmatched": r.unmatched, "images": r.images, "out": str(r.out)})
    table = Table("class", "images")
    for name, n in sorted(r.counts.items(), key=lambda kv: -kv[1]):
        table.add_row(name, str(n))
    out.print(table)
    out.print(f"{len(r.counts)} classes, {sum(r.counts.values())} placements of "
                  f"{r.images} images; {r.unmatched} images matched no class; "
                  f"{len(r.dropped)} classes dropped")
    for name, why in sorted(r.dropped.items()):
        out.print(f"  dropped {name}: {why}", markup=False)
    if r.multi:
        out.print(f"{len(r.multi)} images are in more than one class:")
        for image, where in sorted(r.multi.items()):
            out.print(f"  {image}: {', '.join(where)}", markup=False)
    out.print(f"Train on it: convbench train --dataset folder --data-dir {r.out}")
