"""Document-layout detection with the command line's names: ``convbench.detect.train``,
``eval``, ``predict`` and ``compare`` do what ``convbench detect train|eval|predict|compare``
do, and return the same things (a stored run, a metrics dict, the predicted pages, a group).

A trained detector is named by its run id (or a unique prefix) in ``store``, or by its
artifacts folder.

>>> import convbench
>>> run = convbench.detect.train("examples/detect-synth.yaml", store="runs.db")  # doctest: +SKIP
>>> convbench.detect.eval(run.id, store="runs.db")["box_AP"]                     # doctest: +SKIP
0.81
>>> pages = convbench.detect.predict(run.id, ["page.png"], "out", store="runs.db")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConvbenchError, StoreError


def detector_folder(model: str | Path, store: Any = None) -> Path:
    """The artifacts folder of a detection run: ``model`` is that folder, or a run id (or
    unique prefix) in ``store`` (a :class:`~convbench.store.Store`, a URL or None for the
    default store)."""
    from ..store import Store

    path = Path(model)
    if path.is_dir():
        return path
    store = store if isinstance(store, Store) else Store(store)
    run = store.get_run(store.resolve_id(str(model)))
    if run["kind"] != "detect":
        raise StoreError(f"Run {run['id']} is a {run['kind']} run, not a detection run.")
    return store.run_dir(run["id"])


def train(config: Any = None, **options: Any):
    """Train a detector, evaluate it on held-out pages (COCO AP) and record the run
    (:func:`convbench.detection.train.train_detector`; ``options`` are its keywords:
    ``store``, ``quiet``, ``resume``, ``on_data_issues``).

    >>> run = train({"train": {"iterations": 50}}, store="runs.db")  # doctest: +SKIP
    >>> run.metrics["box_AP"]                                         # doctest: +SKIP
    0.12
    """
    from .train import train_detector

    return train_detector(config, **options)


def eval(model: str | Path, data: str | None = None, *, source: str | None = None,  # noqa: A001
         image_dir: str | None = None, device: str = "cpu", store: Any = None,
         on_pages: Callable[[Any], None] | None = None,
         on_batch: Callable[[int], None] | None = None) -> dict[str, Any]:
    """COCO AP (boxes and masks, per class) of a trained detector on its own test pages, or
    on ``data`` (a COCO JSON file or PAGE-XML folder; ``source`` is guessed from it).
    ``on_pages(dataset)`` is called once the pages are read, ``on_batch(pages_done)`` as
    they are evaluated.

    >>> eval("3f9c", "pages/annotations.json", store="runs.db")["mask_AP"]  # doctest: +SKIP
    0.74
    """
    from ..config import replace
    from .data import load_dataset, load_split
    from .evaluate import evaluate_dataset
    from .predict import load_detector

    det = load_detector(detector_folder(model, store), device)
    if data is None:
        _, ds = load_split(det.config.data)
    else:
        # Through validation, so that a wrong source is refused rather than read as XML.
        ds = load_dataset(replace(det.config, {
            **data_flags(data, source), "data.image_dir": image_dir,
            "data.classes": det.classes}, source="flags").data)
    if not ds.pages:
        raise ConvbenchError(f"No pages to evaluate ({ds.issue_summary()}).")
    if on_pages is not None:
        on_pages(ds)
    m = det.config.model
    metrics, _ = evaluate_dataset(det.model, ds, m.min_size, m.max_size, det.device,
                                  m.arch == "maskrcnn", on_batch=on_batch)
    metrics["pages"] = len(ds.pages)
    metrics.update(ds.issue_metrics())
    return metrics


def predict(model: str | Path, images: list[str | Path], out_dir: str | Path = "predictions",
            *, score: float | None = None, device: str = "cpu", store: Any = None):
    """Detect regions on page images (or folders of them); write COCO JSON, PAGE-XML and
    colour overlays into ``out_dir`` (regions scored at least ``score``, default that of
    :func:`~convbench.detection.predict.predict_images`); return the predicted pages (a
    ``DetectionDataset``).

    >>> ds = predict("3f9c", ["page1.png"], "predictions", store="runs.db")  # doctest: +SKIP
    """
    from .predict import load_detector, predict_images

    det = load_detector(detector_folder(model, store), device)
    given = {} if score is None else {"score_threshold": score}
    return predict_images(det, list(images), out_dir, **given)


def compare(base: Any, variants: list[str | list[str]] | None = None, **options: Any):
    """Train detection variants (× seeds) of ``base`` under the same conditions as one
    comparison: :func:`convbench.compare` with ``kind="detect"`` (``options``: ``seeds``,
    ``workers``, ``store``, ``name``, ``report``, …); returns the :class:`~convbench.Group`.

    >>> group = compare("examples/detect-synth.yaml", [["model.backbone=resnet18"],
    ...                 ["model.backbone=vovnet19-lite"]], seeds=[0, 1])  # doctest: +SKIP
    """
    from ..compare import compare as run_compare

    return run_compare(base, variants, kind="detect", **options)


def data_flags(data: str | None, source: str | None) -> dict[str, Any]:
    """The config fields of a ``--data PATH`` (and ``--source``) option: a ``.json`` file is
    COCO, anything else a PAGE-XML folder, unless ``source`` says otherwise.

    >>> data_flags("pages/annotations.json", None)
    {'data.source': 'coco', 'data.path': 'pages/annotations.json'}
    """
    if data is None:
        return {"data.source": source}
    guessed = source or ("coco" if data.endswith(".json") else "pagexml")
    return {"data.source": guessed, "data.path": data}
