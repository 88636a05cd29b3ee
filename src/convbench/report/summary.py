"""Group runs into model/config variants and aggregate their metrics over seeds.

Runs whose configs differ only in ``train.seed`` (and the free-text ``name``) are one
variant. Only completed runs are aggregated: a diverged or failed seed is reported with its
status, not averaged into the numbers.

>>> runs = [{"id": i, "status": "completed", "seed": i,
...          "config": {"model": {"name": "B2FL32"}, "train": {"seed": i}},
...          "metrics": {"test_accuracy": acc}} for i, acc in enumerate([0.7, 0.8, 0.9])]
>>> row = summary_table(runs)[0]
>>> row["label"], row["n"], round(row["metrics"]["test_accuracy"]["mean"], 3)
('B2FL32', 3, 0.8)
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from ..config import JOULES_PER_KWH
from .configdiff import canonical, differing_fields, flatten
from .fmt import number

# Paths that never make two runs different variants.
SEED_PATH = "train.seed"
IGNORED_PATHS = (SEED_PATH, "name")
CURVE_KEYS = ("train_loss", "val_loss", "train_accuracy", "val_accuracy")
LABEL_FIELDS = 3  # differing fields shown in a label before it is cut with "…"


@dataclass
class Variant:
    """Runs that share one config up to the seed."""

    key: str
    model: str
    fields: dict[str, Any]  # flattened config without the ignored paths
    runs: list[dict] = field(default_factory=list)
    label: str = ""

    @property
    def completed(self) -> list[dict]:
        """The runs whose metrics are aggregated."""
        return [r for r in self.runs if status_of(r) == "completed"]


def status_of(run: dict) -> str:
    """A run's status; hand-made dicts without one count as completed."""
    return str(run.get("status") or "completed")


def seed_of(run: dict) -> Any:
    """The run's seed, from the run record or else its config."""
    if run.get("seed") is not None:
        return run["seed"]
    return ((run.get("config") or {}).get("train") or {}).get("seed")


def metrics_of(run: dict) -> dict[str, Any]:
    """The run's final metrics, with energy in both J and kWh and ``epochs_run`` filled in.

    >>> metrics_of({"metrics": {"energy_kwh": 0.001}, "epochs": [{}, {}]})["energy_j"]
    3600.0
    """
    metrics = dict(run.get("metrics") or {})
    joules, kwh = number(metrics.get("energy_j")), number(metrics.get("energy_kwh"))
    if joules is None and kwh is not None:
        metrics["energy_j"] = kwh * JOULES_PER_KWH
    elif kwh is None and joules is not None:
        metrics["energy_kwh"] = joules / JOULES_PER_KWH
    if metrics.get("epochs_run") is None and run.get("epochs"):
        metrics["epochs_run"] = len(run["epochs"])
    return metrics


def model_name(run: dict) -> str:
    """The model name in the run's config (a detector's backbone; else the run's name or id).

    The ``blocks`` constructor is called by the studies' shorthand, which its resolved
    config no longer spells:

    >>> model_name({"config": {"model": {"name": "blocks", "blocks": 2, "base_filters": 32}}})
    'B2FL32'
    >>> model_name({"config": {"model": {"arch": "maskrcnn", "backbone": "vovnet39"}}})
    'vovnet39'
    """
    model = (run.get("config") or {}).get("model") or {}
    name = model.get("name")
    if name == "blocks" and model.get("blocks") and model.get("base_filters"):
        return f"B{model['blocks']}FL{model['base_filters']}"
    return str(name or model.get("backbone") or run.get("name") or run.get("id") or "run")


def short_names(paths: list[str]) -> dict[str, str]:
    """Short display names of dotted config paths, unambiguous among ``paths``.

    A section's ``name`` field is called by the section; other fields by their last part.

    >>> short_names(["optim.name", "optim.lr", "data.augment.hflip"])
    {'optim.name': 'optim', 'optim.lr': 'lr', 'data.augment.hflip': 'hflip'}
    """
    short = {}
    for path in paths:
        parts = path.split(".")
        short[path] = parts[-2] if parts[-1] == "name" and len(parts) > 1 else parts[-1]
    clashes = {s for s in short.values() if list(short.values()).count(s) > 1}
    return {p: (p if s in clashes else s) for p, s in short.items()}


def _label_value(value: Any) -> str:
    # A searched learning rate is 0.0034140160192; four digits tell variants apart.
    if isinstance(value, float):
        return f"{value:.4g}"
    return canonical(value)


def _label_suffix(fields: dict[str, Any], paths: list[str]) -> str:
    names = short_names(paths)
    parts = [f"{names[p]}={_label_value(fields.get(p))}" for p in paths[:LABEL_FIELDS]]
    if len(paths) > LABEL_FIELDS:
        parts.append("…")
    return ", ".join(parts)


def group_variants(runs: list[dict]) -> list[Variant]:
    """Group runs into variants, in order of first appearance, each with a unique label.

    The label is the model name, plus the config fields that differ when several variants
    share a model name (``B2FL32 (optim=adam)``, ``B2FL32 (optim=sgd)``).
    """
    variants: dict[str, Variant] = {}
    for run in runs:
        config = run.get("config")
        if config:
            fields = {k: v for k, v in flatten(config).items() if k not in IGNORED_PATHS}
            key = canonical(fields)
        else:
            fields, key = {}, f"run:{run.get('id')}"
        if key not in variants:
            variants[key] = Variant(key=key, model=model_name(run), fields=fields)
        variants[key].runs.append(run)
    ordered = list(variants.values())
    by_model: dict[str, list[Variant]] = {}
    for variant in ordered:
        by_model.setdefault(variant.model, []).append(variant)
    for same in by_model.values():
        if len(same) == 1:
            same[0].label = same[0].model
            continue
        paths = [p for p in differing_fields([v.fields for v in same]) if p != "model.name"]
        for variant in same:
            suffix = _label_suffix(variant.fields, paths)
            variant.label = f"{variant.model} ({suffix})" if suffix else variant.model
    _make_unique(ordered)
    return ordered


def _make_unique(variants: list[Variant]) -> None:
    # Labels cut with "…" (or runs without configs) may still collide; number the repeats.
    seen: dict[str, int] = {}
    for variant in variants:
        n = seen.get(variant.label, 0) + 1
        seen[variant.label] = n
        if n > 1:
            variant.label = f"{variant.label} #{n}"


def aggregate(values: list[Any]) -> dict[str, float | int | None]:
    """Mean, sample std, median and count of the finite numbers in ``values``.

    ``std`` is None below two values (one seed says nothing about spread).

    >>> aggregate([1, 2, None, 4])
    {'mean': 2.3333333333333335, 'std': 1.5275252316519468, 'median': 2, 'n': 3}
    """
    numbers = [v for v in values if number(v) is not None]
    if not numbers:
        return {"mean": None, "std": None, "median": None, "n": 0}
    return {
        "mean": statistics.fmean(numbers),
        "std": statistics.stdev(numbers) if len(numbers) > 1 else None,
        "median": statistics.median(numbers),
        "n": len(numbers),
    }


def _elementwise_mean(lists: list[list[Any]]) -> list[float | None]:
    width = max(len(values) for values in lists)
    return [
        aggregate([values[i] if i < len(values) else None for values in lists])["mean"]
        for i in range(width)
    ]


def _summed_confusion(matrices: list[list[list[Any]]]) -> list[list[float]] | None:
    # Counts add up over seeds; matrices of different shapes (other classes) cannot.
    shape = {(len(m), tuple(len(row) for row in m)) for m in matrices}
    if len(shape) != 1:
        return None
    first = matrices[0]
    return [
        [sum(number(m[i][j]) or 0.0 for m in matrices) for j in range(len(first[i]))]
        for i in range(len(first))
    ]


def _status_text(runs: list[dict]) -> tuple[str, dict[str, int]]:
    """"completed" when every run completed, else the other statuses: "1 diverged"."""
    counts: dict[str, int] = {}
    for run in runs:
        counts[status_of(run)] = counts.get(status_of(run), 0) + 1
    others = {s: n for s, n in counts.items() if s != "completed"}
    if not others:
        return "completed", counts
    return ", ".join(f"{n} {status}" for status, n in others.items()), counts


def common_target(variants: list[Variant]) -> float | None:
    """The best validation accuracy every completed run reached: the lowest of their bests.
    Without a ``measure.target_accuracy``, the time each run took to reach it still says who
    gets to a shared level first."""
    bests = [number(metrics_of(r).get("best_val_accuracy"))
             for v in variants for r in v.completed]
    return min(bests) if bests and None not in bests else None


def time_to(run: dict, target: float) -> float | None:
    """Training seconds until the first epoch whose validation accuracy reached ``target``.

    >>> time_to({"epochs": [{"val_accuracy": 0.5, "time_s": 2.0},
    ...                     {"val_accuracy": 0.8, "time_s": 3.0}]}, 0.75)
    5.0
    """
    elapsed = 0.0
    for epoch in run.get("epochs") or []:
        elapsed += number(epoch.get("time_s")) or 0.0
        acc = number(epoch.get("val_accuracy"))
        if acc is not None and acc >= target:
            return elapsed
    return None


def variant_row(variant: Variant, config: dict[str, Any],
                target: float | None = None) -> dict[str, Any]:
    """The summary row of one variant (see :func:`summary_table`); with ``target``, each
    run's ``time_to_common_target_s`` too."""
    done = variant.completed
    metrics = [metrics_of(r) for r in done]
    if target is not None:
        for m, run in zip(metrics, done, strict=True):
            m["time_to_common_target_s"] = time_to(run, target)
            m["common_target"] = target
    numeric_keys: list[str] = []
    for m in metrics:
        for key, value in m.items():
            if key not in numeric_keys and number(value) is not None:
                numeric_keys.append(key)
    per_class = [m["per_class_accuracy"] for m in metrics if m.get("per_class_accuracy")]
    confusions = [m["confusion"] for m in metrics if m.get("confusion")]
    classes = next((m["classes"] for m in metrics if m.get("classes")), None)
    status, counts = _status_text(variant.runs)
    return {
        "label": variant.label,
        "model": variant.model,
        "config": config,
        "run_ids": [r.get("id") for r in variant.runs],
        "seeds": [seed_of(r) for r in variant.runs],
        "runs": len(variant.runs),
        "n": len(done),
        "status": status,
        "statuses": counts,
        "metrics": {key: aggregate([m.get(key) for m in metrics]) for key in numeric_keys},
        "energy_estimated": any(bool(m.get("energy_estimated")) for m in metrics),
        "energy_method": next((m["energy_method"] for m in metrics if m.get("energy_method")),
                              None),
        "classes": classes,
        "per_class_accuracy": _elementwise_mean(per_class) if per_class else None,
        "confusion": _summed_confusion(confusions) if confusions else None,
    }


def summary_table(runs: list[dict]) -> list[dict]:
    """One row per model/config variant, its completed seeds aggregated.

    Each row has ``label`` (model name, plus the differing config fields when two variants
    share a model name), ``model``, ``config`` (the config fields that differ between
    variants, dotted), ``run_ids``, ``seeds``, ``runs`` (all runs), ``n`` (completed runs),
    ``status`` and ``statuses`` (counts), ``metrics`` (every numeric metric as
    ``{"mean", "std", "median", "n"}``; energy in both ``energy_j`` and ``energy_kwh``),
    ``energy_estimated``, ``energy_method``, ``classes``, ``per_class_accuracy`` (mean over
    seeds) and ``confusion`` (summed over seeds).

    >>> summary_table([])
    []
    """
    return variant_rows(group_variants(runs))


def variant_rows(variants: list[Variant]) -> list[dict]:
    """The :func:`summary_table` rows of already grouped variants."""
    paths = differing_fields([v.fields for v in variants]) if len(variants) > 1 else []
    explicit = any(number(metrics_of(r).get("time_to_target_s")) is not None
                   for v in variants for r in v.completed)
    target = None if explicit else common_target(variants)
    return [variant_row(v, {p: v.fields.get(p) for p in paths}, target) for v in variants]


def mean_curves(variant: Variant) -> dict[str, dict[str, list[float | None]]]:
    """Per-epoch mean and std over the variant's completed runs, for each curve key.

    Returns ``{"train_loss": {"epoch": [...], "mean": [...], "std": [...]}, ...}``; runs that
    stopped early simply contribute fewer epochs.
    """
    by_epoch: dict[int, dict[str, list[Any]]] = {}
    for run in variant.completed:
        for i, row in enumerate(run.get("epochs") or []):
            epoch = int(row.get("epoch") or i + 1)
            slot = by_epoch.setdefault(epoch, {k: [] for k in CURVE_KEYS})
            for key in CURVE_KEYS:
                slot[key].append(row.get(key))
    epochs = sorted(by_epoch)
    curves: dict[str, dict[str, list[float | None]]] = {}
    for key in CURVE_KEYS:
        stats = [aggregate(by_epoch[e][key]) for e in epochs]
        curves[key] = {
            "epoch": [float(e) for e in epochs],
            "mean": [s["mean"] for s in stats],
            "std": [s["std"] for s in stats],
        }
    return curves
