"""Runs with plausible numbers, written through a real SQLite store.

The numbers follow the shape of small Fashion-MNIST runs on a CPU (accuracy ~0.8–0.9,
minutes of training, 10⁵–10⁶ parameters), so the plots and units in a report are realistic.
"""

from __future__ import annotations

import math
import random
from html.parser import HTMLParser

import pytest

from convbench.config import RunConfig, apply_overrides
from convbench.store import Store

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
           "Sneaker", "Bag", "Ankle boot"]
PER_CLASS_TEST = 20
ENV = {"python": "3.11.9", "torch": "2.4.1", "torchvision": "0.19.1", "timm": "1.0.9",
       "convbench": "0.1.0", "device": "cpu", "threads": 2, "cpu": "Intel Xeon (2 cores)",
       "platform": "Linux-6.1-x86_64", "cuda": None}
# (model, overrides, params, flops per image, seconds per epoch, final accuracy)
MODELS = {
    "simple-cnn": (["optim.name=sgd", "optim.lr=0.01"], 93_322, 1.9e6, 11.0, 0.865),
    "B2FL32-adam": (["model.name=B2FL32", "optim.name=adam", "optim.lr=0.001"],
                    1_660_522, 2.6e7, 38.0, 0.905),
    "B2FL32-sgd": (["model.name=B2FL32", "optim.name=sgd", "optim.lr=0.01"],
                   1_660_522, 2.6e7, 36.0, 0.884),
}


def config_for(variant: str, seed: int, epochs: int) -> dict:
    """The full resolved config dump of one run, as the engine stores it."""
    overrides, *_ = MODELS[variant]
    base = [] if "model.name" in " ".join(overrides) else [f"model.name={variant}"]
    cfg = apply_overrides(RunConfig(), [*base, *overrides, f"train.seed={seed}",
                                        f"train.epochs={epochs}", "data.dataset=fashion-mnist",
                                        "measure.target_accuracy=0.8"])
    return cfg.model_dump(mode="json")


def _curves(rng: random.Random, epochs: int, final: float) -> list[dict]:
    rows = []
    for e in range(1, epochs + 1):
        progress = 1 - math.exp(-e / 1.6)
        val_acc = 0.1 + (final - 0.1) * progress + rng.uniform(-0.008, 0.008)
        rows.append({
            "train_loss": 2.3 * (1 - progress) + 0.25 + rng.uniform(0, 0.02),
            "train_accuracy": min(val_acc + 0.02 * progress, 0.999),
            "val_loss": 2.3 * (1 - progress) + 0.33 + rng.uniform(0, 0.03),
            "val_accuracy": val_acc,
            "lr": 0.01,
            "time_s": 10.0,
            "images_per_s": 5400.0,
        })
    return rows


def _confusion(rng: random.Random, per_class: list[float]) -> list[list[int]]:
    matrix = []
    for i, acc in enumerate(per_class):
        right = round(acc * PER_CLASS_TEST)
        row = [0] * len(per_class)
        row[i] = right
        for _ in range(PER_CLASS_TEST - right):
            # Shirts are mistaken for T-shirts and pullovers, as in the real data set.
            row[rng.choice([j for j in range(len(per_class)) if j != i])] += 1
        matrix.append(row)
    return matrix


def final_metrics(variant: str, seed: int, epochs: int, *, estimated: bool = True) -> dict:
    """Final metrics of one run; deterministic in (variant, seed)."""
    _, params, flops, epoch_s, final = MODELS[variant]
    rng = random.Random(f"{variant}-{seed}")
    per_class = [min(max(final + rng.uniform(-0.12, 0.1) - (0.25 if c == "Shirt" else 0), 0), 1)
                 for c in CLASSES]
    per_class = [round(a * PER_CLASS_TEST) / PER_CLASS_TEST for a in per_class]
    confusion = _confusion(rng, per_class)
    acc = sum(row[i] for i, row in enumerate(confusion)) / (PER_CLASS_TEST * len(CLASSES))
    train_time = epoch_s * epochs * rng.uniform(0.95, 1.05)
    energy_j = train_time * 28.0
    return {
        "test_accuracy": acc,
        "test_loss": 0.3 + (1 - acc),
        "test_top5": min(acc + 0.09, 1.0),
        "macro_f1": acc - 0.004,
        "per_class_accuracy": per_class,
        "confusion": confusion,
        "classes": CLASSES,
        "best_val_accuracy": acc + rng.uniform(0, 0.01),
        "best_epoch": epochs,
        "epochs_run": epochs,
        "train_time_s": train_time,
        "time_to_target_s": train_time * 0.4,
        "images_per_s": 5400.0,
        "params_total": params,
        "params_trainable": params,
        "flops": flops,
        "macs": flops / 2,
        "disk_bytes": params * 4 + 1200,
        "peak_memory_bytes": 180e6 + params * 16,
        "memory_method": "rss",
        "latency_ms": flops / 2.5e7 + 0.4,
        "throughput_ips": 2.1e10 / flops,
        "energy_j": energy_j,
        "energy_kwh": energy_j / 3.6e6,
        "energy_method": "estimate" if estimated else "rapl",
        "energy_estimated": estimated,
        "cost": energy_j / 3.6e6 * 0.246,
        "co2_g": None,
        "skipped_images": 0,
    }


def add_run_to(store: Store, variant: str, seed: int, *, epochs: int = 5,
               status: str = "completed", metrics: dict | None = None,
               env: dict | None = None) -> str:
    """Create a run through the Store API (create_run, add_epoch per epoch, update).

    ``metrics=None`` means plausible final metrics. Returns the run id.
    """
    rng = random.Random(f"curves-{variant}-{seed}")
    run_id = store.create_run(name=f"{variant}-s{seed}", config=config_for(variant, seed, epochs),
                              seed=seed, env=env or ENV, device="cpu")
    for epoch, row in enumerate(_curves(rng, epochs, MODELS[variant][-1]), start=1):
        store.add_epoch(run_id, epoch, row)
    final = final_metrics(variant, seed, epochs) if metrics is None else metrics
    store.update(run_id, metrics=final, status=status, ended=True)
    return run_id


@pytest.fixture
def add_run():
    """The :func:`add_run_to` factory."""
    return add_run_to


@pytest.fixture
def plausible_metrics():
    """The :func:`final_metrics` factory."""
    return final_metrics


@pytest.fixture
def store(tmp_path) -> Store:
    with Store(str(tmp_path / "runs.db")) as opened:
        yield opened


def comparison(store: Store) -> list[dict]:
    """Three variants (two sharing the model name B2FL32) with 3 + 2 + 1 seeds."""
    ids = [add_run_to(store, "B2FL32-adam", s) for s in (0, 1, 2)]
    ids += [add_run_to(store, "B2FL32-sgd", s) for s in (0, 1)]
    ids += [add_run_to(store, "simple-cnn", 0)]
    return [store.get_run(i) for i in ids]


@pytest.fixture
def runs(store) -> list[dict]:
    return comparison(store)


@pytest.fixture(scope="session")
def report(tmp_path_factory):
    """A full report (with one diverged run), written once and read by many tests."""
    from convbench.report import write_report

    folder = tmp_path_factory.mktemp("report")
    with Store(str(folder / "runs.db")) as opened:
        ids = [r["id"] for r in comparison(opened)]
        # A third seed of the SGD variant whose loss blew up in epoch 2.
        bad = add_run_to(opened, "B2FL32-sgd", 2, status="diverged",
                         metrics={"test_accuracy": None, "train_time_s": None, "epochs_run": 3})
        opened.truncate_epochs(bad, after=1)
        for epoch in (2, 3):
            opened.add_epoch(bad, epoch, {"train_loss": float("nan"), "val_loss": float("inf"),
                                          "val_accuracy": 0.1, "train_accuracy": None})
        runs = [opened.get_run(i) for i in [*ids, bad]]
        group = {"id": "g1", "kind": "compare", "name": "optimisers", "run_ids": ids}
        paths = write_report(runs, folder / "out" / "deep" / "report.html",
                             title="Fashion-MNIST on a CPU", group=group)
    return {"paths": paths, "runs": runs, "diverged": bad}



class _Tables(HTMLParser):
    """Collects every <table> of a report page with the id of the section it sits in."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict] = []
        self.section = ""
        self._cell: dict | None = None
        self._row: list[dict] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attr = dict(attrs)
        if tag == "section":
            self.section = attr.get("id", "")
        elif tag == "table":
            self.tables.append({"section": self.section, "header": [], "rows": []})
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = {"text": "", "classes": (attr.get("class") or "").split(), "tag": tag}
        elif tag == "span" and self._cell is not None:
            self._cell["text"] += " "  # the second line of a cell (median) is a <span>

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._cell["text"] = " ".join(self._cell["text"].split())
            self._row.append(self._cell)
            self._cell = None
        elif tag == "tr" and self._row is not None:
            table = self.tables[-1]
            if all(c["tag"] == "th" for c in self._row):
                table["header"] = [c["text"] for c in self._row]
            else:
                table["rows"].append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell["text"] += data


def html_tables(html: str) -> list[dict]:
    """Tables of a page: ``{"section", "header": [labels], "rows": [[{"text", "classes"}]]}``."""
    parser = _Tables()
    parser.feed(html)
    return parser.tables


@pytest.fixture
def tables():
    """The :func:`html_tables` parser."""
    return html_tables
