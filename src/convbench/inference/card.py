"""A Markdown model card of a stored run, from the store only (the run record and the files
in its artifacts folder): data set and split sizes, test metrics with per-class numbers,
cost figures, environment, seed and the full config.

>>> print(model_card(store, store.get_run("3f9c01ab")))   # doctest: +SKIP
# Model card: custom-cnn (run 3f9c01ab)
…
"""

from __future__ import annotations

from typing import Any

import yaml

from ..store import Store
from .trained import stored_record

QUALITY = (("test_accuracy", "test accuracy"), ("test_top5", "test top-5 accuracy"),
           ("macro_f1", "macro F1"), ("test_loss", "test loss (cross-entropy)"),
           ("best_val_accuracy", "best validation accuracy"), ("best_epoch", "best epoch"),
           ("epochs_run", "epochs run"), ("box_AP", "box AP"), ("mask_AP", "mask AP"))
COST = (("params_total", "parameters"), ("params_trainable", "trainable parameters"),
        ("flops", "FLOPs per image (forward)"), ("macs", "MACs per image (forward)"),
        ("disk_bytes", "weights on disk (bytes)"), ("train_time_s", "training time (s)"),
        ("images_per_s", "training speed (images/s)"),
        ("latency_ms", "latency, batch 1 (ms, median)"),
        ("throughput_ips", "throughput (images/s)"), ("peak_memory_bytes", "peak memory (bytes)"),
        ("energy_kwh", "energy (kWh)"), ("energy_method", "energy measured by"),
        ("cost", "energy cost"), ("co2_g", "CO₂ (g)"))


def _cell(value: Any) -> str:
    """A table cell: 4 significant digits, whole numbers with separators, text as it is."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-" if value is None else str(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:.4g}"


def _table(rows: list[tuple[str, Any]], head: tuple[str, str]) -> list[str]:
    lines = [f"| {head[0]} | {head[1]} |", "|---|---|"]
    return lines + [f"| {k} | {_cell(v)} |" for k, v in rows]


def _per_class(m: dict) -> list[str]:
    classes, confusion = m.get("classes") or [], m.get("confusion") or []
    if not classes or len(confusion) != len(classes):
        return []
    lines = ["| class | images | accuracy (recall) | precision | F1 |", "|---|---|---|---|---|"]
    for i, name in enumerate(classes):
        support = sum(confusion[i])
        predicted = sum(row[i] for row in confusion)
        tp = confusion[i][i]
        recall = tp / support if support else None
        precision = tp / predicted if predicted else None
        f1 = 2 * tp / (support + predicted) if support + predicted else None
        lines.append(f"| {name} | {support} | {_cell(recall)} | {_cell(precision)} "
                     f"| {_cell(f1)} |")
    return lines


def _data(run: dict, record: dict | None) -> list[str]:
    m, data = run.get("metrics") or {}, (run.get("config") or {}).get("data") or {}
    sizes = dict((record or {}).get("split_sizes") or {})
    if m.get("confusion") and "test" not in sizes:
        sizes["test"] = sum(map(sum, m["confusion"]))
    rows = [("data set", data.get("dataset") or data.get("source")),
            ("data folder", data.get("data_dir")),
            *((f"{split} images", sizes.get(split)) for split in ("train", "val", "test"))]
    if record:
        rows += [("image size", "×".join(map(str, record["image_size"]))),
                 ("channels", record["channels"]),
                 ("mean / std (train, 0..1)",
                  f"{[round(v, 4) for v in record['mean']]} / "
                  f"{[round(v, 4) for v in record['std']]}")]
    if m.get("source_run"):
        rows.insert(0, ("evaluated network", f"run {m['source_run']} ({m.get('eval_note')})"))
    lines = _table([r for r in rows if r[1] is not None], ("data", ""))
    if not record and "train" not in sizes and (run.get("kind") or "train") == "train":
        lines.append("\nTrain/val sizes are recorded by the first `convbench predict`, "
                     "`evaluate` or `export` of this run.")
    if m.get("classes"):
        lines.append(f"\nClasses ({len(m['classes'])}): {', '.join(m['classes'])}")
    return lines


def model_card(store: Store, run: dict) -> str:
    """The Markdown model card of ``run`` (a dict from ``store.get_run``).

    >>> card = model_card(store, store.get_run("3f9c01ab"))  # doctest: +SKIP
    >>> "## Test metrics" in card                             # doctest: +SKIP
    True
    """
    from ..report.summary import model_name

    m, env = run.get("metrics") or {}, run.get("env") or {}
    record = stored_record(store, run) if (run.get("kind") or "train") == "train" else None
    quality = [(label, m[k]) for k, label in QUALITY if k in m]
    cost = [(label, m[k]) for k, label in COST if k in m]
    lines = [f"# Model card: {model_name(run)} (run {run['id']})", "",
             f"{run.get('kind') or 'train'} run, status **{run['status']}**, started "
             f"{(run.get('started_at') or '')[:19]}, seed {run.get('seed')}.", "",
             "## Data", "", *_data(run, record), "",
             "## Test metrics", "", *_table(quality, ("metric", "value"))]
    if per_class := _per_class(m):
        lines += ["", "Per class (test split):", "", *per_class]
    lines += ["", "## Cost", "", *_table(cost, ("cost", "value")),
              "", "## Environment", "",
              *_table([*env.items(), ("seed", run.get("seed"))], ("environment", "")),
              "", "## Full config", "", "```yaml",
              yaml.safe_dump(run.get("config") or {}, sort_keys=False).rstrip(), "```", ""]
    if m.get("error"):
        lines[4:4] = [f"Error: {m['error']}", ""]
    return "\n".join(lines)
