"""Commands that use a trained run: ``predict``, ``evaluate`` and ``export`` (the work is in
:mod:`convbench.inference`; ``cli`` registers these functions)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .cli_common import JsonOpt, QuietOpt, StoreOpt, err, fmt_value, open_store, out, print_json

RunArg = Annotated[str, typer.Argument(help="Run id (or unique prefix) of a trained run.")]


def predict_cmd(
    run_id: RunArg,
    images: Annotated[list[str], typer.Argument(help="Image files and/or folders of images.")],
    top_k: Annotated[int, typer.Option("--top-k", help="Classes to list per image.")] = 5,
    tta: Annotated[bool, typer.Option(
        "--tta", help="Average each image's logits over its mirror image and 1 px shifts "
        "(as train.tta).")] = False,
    output: Annotated[Path | None, typer.Option(
        "--out", help="Also write the predictions to a .csv or .json file.")] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """Classify new images with a trained run (its own channels, size and normalisation).

      convbench predict 3f9c01ab shoe.png photos/ --top-k 3 --out preds.csv
    """
    from .inference.images import image_paths
    from .inference.predict import check_out, predict_with
    from .inference.trained import load_trained

    check_out(output)
    paths = image_paths(images)
    trained = load_trained(open_store(store, existing=True), run_id)
    result = predict_with(trained, list(paths), top_k=top_k, tta=tta, quiet=quiet,
                          on_skip=lambda p, why: err.print(f"skipped {p}: {why}", markup=False))
    if output:
        result.write(output)
    if as_json:
        return print_json(result.as_dict())
    k = max(len(i.top) for i in result.items)
    table = Table("image", *(f"top {r}" for r in range(1, k + 1)))
    for item in result.items:
        table.add_row(item.path, *(f"{c} {p:.3f}" for c, p in item.top))
    out.print(table)
    if result.skipped:
        err.print(f"{len(result.skipped)} unreadable file(s) skipped (listed above).")
    if output:
        out.print(f"wrote {output}")


def evaluate_cmd(
    run_id: RunArg,
    dataset: Annotated[str, typer.Option(help="Data set to evaluate on (see `convbench "
                                              "datasets`; `folder` for your images).")],
    data_dir: Annotated[str | None, typer.Option(help="Where the data set's files are.")] = None,
    split: Annotated[str | None, typer.Option(
        help="train, val, test or all (default: test; every image of a data set that has "
             "no test split of its own).")] = None,
    name: Annotated[str | None, typer.Option(help="A name for the evaluation run.")] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
):
    """Evaluate a trained run on another data set with the same classes; store the result
    as a run of kind `evaluate` (usable in `convbench report`).

      convbench evaluate 3f9c01ab --dataset folder --data-dir new-photos/
    """
    from .inference.evaluate import evaluate

    run = evaluate(run_id, dataset, data_dir=data_dir, split=split,
                   store=open_store(store, existing=True), name=name)
    if as_json:
        return print_json(run)
    m = run.metrics
    out.print(f"[bold]run {run.id}[/] evaluate of run {m['source_run']}: {m['eval_note']}")
    table = Table(show_header=False, box=None)
    for key in ("test_accuracy", "test_top5", "macro_f1", "test_loss"):
        table.add_row(key, fmt_value(m.get(key)))
    out.print(table)
    per_class = Table("class", "accuracy", "images")
    for name_, acc, row in zip(m["classes"], m["per_class_accuracy"], m["confusion"],
                               strict=True):
        per_class.add_row(name_, fmt_value(acc), fmt_value(sum(row)))
    out.print(per_class)


def export_cmd(
    run_id: RunArg,
    fmt: Annotated[str, typer.Option("--format", help="onnx, torchscript or safetensors.")],
    output: Annotated[Path | None, typer.Option(
        "--out", help="File to write (default ./RUN_ID.onnx|.pt|.safetensors).")] = None,
    opset: Annotated[int | None, typer.Option(help="ONNX opset (default 18).")] = None,
    dynamic_batch: Annotated[bool, typer.Option(
        "--dynamic-batch", help="ONNX: any batch size (default: batch 1).")] = False,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
):
    """Export a trained run to ONNX, TorchScript or safetensors, with its preparation and
    classes (metadata + FILE.json) and a model card beside it; check it on test images.

      convbench export 3f9c01ab --format onnx --dynamic-batch
    """
    from .inference.export import export

    done = export(run_id, fmt, out=output, opset=opset, dynamic_batch=dynamic_batch,
                  store=open_store(store, existing=True))
    check = done.check
    if as_json:
        return print_json({"path": str(done.path), "meta": str(done.meta_path),
                           "card": str(done.card_path), "exporter": done.meta.get("exporter"),
                           "check": None if check is None else check.__dict__})
    out.print(f"wrote {done.path} ({done.meta.get('exporter')}), {done.meta_path}, "
              f"{done.card_path}", markup=False)
    if check is not None:
        every = "every top-1 agrees" if check.measure == "logit" else \
            f"the detected labels agree on every one of the {check.unit}"
        agree = every if check.top1_agree else (
            f"top-1 agrees on {check.top1_agreement:.1%} only")
        out.print(f"check on {check.images} {check.unit} against PyTorch: largest "
                  f"{check.measure} difference {check.max_abs_diff:.2e}; {agree}")
