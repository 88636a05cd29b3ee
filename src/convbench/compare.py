"""Comparisons: train several models under the same conditions and report them side by side.

>>> import convbench.compare as cmp
>>> group = cmp.compare({"data": {"dataset": "digits"}, "train": {"epochs": 2}},
...                     models=["simple-cnn", "B2FL16"], seeds=[0, 1],
...                     report="out/report.html")                      # doctest: +SKIP
>>> group["summary"][0]["label"]                                        # doctest: +SKIP
'simple-cnn'
"""

from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from . import config as cfgmod
from .config import RunConfig
from .errors import ConvbenchError, StoreError
from .results import load_group
from .store import Store
from .training.device import available_cores


def _variants(
    base: RunConfig, models: list[str], seeds: list[int], threads: int | None
) -> list[RunConfig]:
    out = []
    for model in models:
        for seed in seeds:
            data = base.model_dump(mode="json")
            data["model"]["name"] = model
            data["train"]["seed"] = seed
            if threads:
                data["train"]["threads"] = threads
            data["name"] = f"{base.name + '-' if base.name else ''}{model}-s{seed}"
            out.append(cfgmod.build(data, source=f"compare ({model})"))
    return out


def _train_one(
    cfg_json: dict, store_url: str, group_id: str, quiet: bool
) -> tuple[str, str | None]:
    """Worker body: train, never raise (a failed model is reported, not fatal)."""
    from .training import train

    store = Store(store_url)
    try:
        run = train(cfg_json, store=store, quiet=quiet, group_id=group_id)
        return run.id, None
    except ConvbenchError as err:
        return "", f"{cfg_json['model']['name']}: {err}"
    except Exception as err:  # a crash in one model must not lose the others
        return "", f"{cfg_json['model']['name']}: {err.__class__.__name__}: {err}"


def compare(
    base: RunConfig | dict,
    models: list[str],
    *,
    seeds: list[int] | None = None,
    workers: int = 1,
    store: Store | str | None = None,
    name: str | None = None,
    report: str | Path | None = None,
    quiet: bool = True,
) -> dict[str, Any]:
    """Train every model (× seed) with the same data, split, augmentation, schedule and budget,
    record them as one comparison group, and write the report when ``report`` is given.

    Returns the group dict plus ``errors`` (models that failed before recording a run) and
    ``report`` (paths written).
    """
    if not models:
        raise ConvbenchError("No models to compare: pass --models a,b,c (see `convbench models`).")
    base = base if isinstance(base, RunConfig) else cfgmod.build(base)
    store = store if isinstance(store, Store) else Store(store)
    seeds = seeds or [base.train.seed]
    workers = max(1, min(workers, len(models) * len(seeds)))
    # Workers share the cores instead of each grabbing all of them.
    threads = max(1, available_cores() // workers) if workers > 1 else base.train.threads
    variants = _variants(base, models, seeds, threads)
    from .data import check_available
    from .training import prepare_config

    # Fail fast, before any training: unknown names, missing data, an unwritable report path.
    for v in variants:
        prepare_config(v)
    check_available(base.data)
    if report:
        from .report.writer import check_report_path

        check_report_path(report)
    group_id = store.create_group(
        kind="compare",
        name=name,
        config={"models": models, "seeds": seeds, "base": base.model_dump(mode="json")},
    )
    jobs = [
        (v.model_dump(mode="json"), store.url, group_id, quiet or workers > 1) for v in variants
    ]
    if workers == 1:
        results = [_train_one(*job) for job in jobs]
    else:
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            results = list(pool.map(_train_one, *zip(*jobs, strict=True)))
    errors = [msg for _, msg in results if msg]
    group = load_group(store, group_id)
    statuses = [r["status"] for r in group["runs"]]
    store.update_group(
        group_id,
        status="completed" if statuses and not errors else "failed",
        metrics={"errors": errors, "runs": len(statuses)},
    )
    group = load_group(store, group_id)
    group["errors"] = errors
    if report:
        from .report import write_report

        group["report"] = {
            k: str(p)
            for k, p in write_report(
                group["runs"], report, title=name or "convbench comparison", group=group
            ).items()
        }
    return group


def collect_runs(store: Store, ids: list[str]) -> tuple[list[dict], dict | None]:
    """Runs named by run ids and/or comparison (group) ids, in the order given."""
    runs: list[dict] = []
    group = None
    for ident in dict.fromkeys(ids):  # an id given twice is one run, not two
        try:
            runs.append(store.get_run(store.resolve_id(ident)))
            continue
        except StoreError as err:
            run_error = err
        groups = [g for g in store.list_groups() if g["id"].startswith(ident)]
        if len(groups) != 1:
            raise run_error
        group = load_group(store, groups[0]["id"])
        runs.extend(group["runs"])
    # A run named on its own and inside a named comparison also counts once: a repeat would
    # weigh its model's mean and std as an extra seed.
    unique = {r["id"]: r for r in runs}
    return list(unique.values()), group
