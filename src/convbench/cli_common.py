"""What every command group of the CLI shares: consoles, common options, JSON output, the
store, the config builder, comma-separated lists, the run summary, help texts that name model
defaults, and the error handling of :func:`run_app`. Kept apart from :mod:`convbench.cli` so
the command groups (cli_transfer, detection.cli, …) never import the main CLI."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperCommand

from . import config as cfgmod
from .errors import ConfigError, ConvbenchError

# Piped output (files, CI logs) gets wide tables instead of rich's 80-column default.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

ArtifactsOpt = Annotated[
    str | None,
    typer.Option(
        "--artifacts",
        help="Folder for checkpoints, weights and plots that every worker reaches (NFS…), or "
        "an fsspec URL such as s3://bucket/prefix (with s3fs installed) "
        "[env CONVBENCH_ARTIFACTS; SQLite default: beside the database]",
    ),
]
StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="SQLite file or postgresql:// URL [env CONVBENCH_STORE; "
        "default ./convbench-runs/runs.db]",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Override any config field by dotted path, e.g. --set model.blocks=3 "
        "(repeatable; see `convbench config`).",
    ),
]


def build_config(config_file: Path | None, flags: dict[str, Any], sets: list[str] | None,
                 schema: type[cfgmod.Section] = cfgmod.RunConfig):
    """YAML file, then flags, then --set overrides (later wins): :func:`convbench.config.
    build_config`, the one builder of every command."""
    return cfgmod.build_config(config_file, flags, sets, schema)


def csv_list(text: str | None, what: str, cast: Callable[[str], Any] = str) -> list:
    """A comma-separated option as a list; given but empty, or with repeats, is an error.

    >>> csv_list("0, 1,2", "seeds", int), csv_list(None, "seeds")
    ([0, 1, 2], [])
    """
    items = [t.strip() for t in (text or "").split(",") if t.strip()]
    try:
        values = [cast(t) for t in items]
    except ValueError:
        values = None
    if values is None or (text is not None and not values):
        raise ConfigError(
            f"--{what} {text!r}: expected a comma-separated list, e.g. --{what} 0,1,2."
        )
    if len(set(values)) < len(values):
        raise ConfigError(f"--{what} {text!r} names a value twice; each is used once.")
    return values


def default_help(text: str, schema: type[cfgmod.Section], dotted: str) -> str:
    """A help text ending with the field's default, read from the model (never copied).

    >>> default_help("Training epochs", cfgmod.RunConfig, "train.epochs")
    'Training epochs (default 10).'
    """
    return f"{text} (default {cfgmod.default_of(schema, dotted)})."


def defaults_later(load: Callable[[], cfgmod.BaseModel]) -> type[TyperCommand]:
    """A command class whose option help may name ``{field}`` defaults of a model that is
    slow to import (the LR range test's spec loads torch): the model is loaded only when
    the help is shown, so ``convbench …`` stays quick and the help never drifts from it.

    >>> cls = defaults_later(lambda: cfgmod.TrainConfig())
    >>> cls.fill("Epochs (default {epochs}).")
    'Epochs (default 10).'
    """

    class DefaultsLater(TyperCommand):
        @staticmethod
        def fill(text: str) -> str:
            return text.format(**dict(load()))

        def format_help(self, ctx, formatter) -> None:
            for param in self.params:
                if getattr(param, "help", None) and "{" in param.help:
                    param.help = self.fill(param.help)
            super().format_help(ctx, formatter)

    return DefaultsLater


SUMMARY_KEYS = ("test_accuracy", "test_top5", "test_loss", "macro_f1", "best_val_accuracy",
                "epochs_run", "train_time_s", "images_per_s", "params_total", "flops", "macs",
                "disk_bytes", "peak_memory_bytes", "latency_ms", "throughput_ips",
                "energy_kwh", "energy_method", "cost")


def metrics_table(metrics: dict[str, Any], keys: list[str] | tuple[str, ...]) -> Table:
    """The ``keys`` a run has, in that order, as a two-column table of formatted values."""
    table = Table(show_header=False, box=None)
    for k in keys:
        if k in metrics:
            table.add_row(k, fmt_value(metrics[k]))
    return table


def show_run_summary(run: dict) -> None:
    """A finished run's main metrics as a two-column table (train, svm, runs show)."""
    m = run.get("metrics") or {}
    out.print(f"[bold]run {run['id']}[/] {run.get('name') or ''} — {run['status']}")
    out.print(metrics_table(m, SUMMARY_KEYS))
    if m.get("skipped_images"):
        err.print(
            f"note: {m['skipped_images']} unreadable image(s) skipped; train.log in the run's "
            "artifacts folder names them (data.strict=true makes this an error)."
        )


def run_app(typer_app: typer.Typer, argv: list[str] | None = None) -> None:
    """Run a typer app; :class:`ConvbenchError` becomes ``error: …`` and its exit status."""
    try:
        typer_app(args=argv, standalone_mode=True)
    except ConvbenchError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err.print("Interrupted.")
        sys.exit(130)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def open_store(url: str | None, *, existing: bool = False, artifacts: str | None = None):
    """The run store at ``url`` (or CONVBENCH_STORE, or the default). With ``existing``, a
    SQLite file that is not there is an error: commands that only read must not create an
    empty store for a mistyped path and then report "no runs"."""
    from .errors import StoreError
    from .store import Store
    from .store import database as db

    if existing and (url or os.environ.get("CONVBENCH_STORE")):  # the default may be new
        resolved = db.resolve_url(url)
        if db.is_sqlite(resolved) and not Path(resolved.database or "").is_file():
            raise StoreError(f"No run store at {resolved.database!r}. Check --store (or "
                             "CONVBENCH_STORE); `convbench train` creates the store.")
    return Store(url, artifacts=artifacts)


def fmt_value(value: Any, digits: int = 4) -> str:
    """A metric as a table cell: ``-`` for missing, ``digits`` decimals (scientific notation
    below that precision), thousands separators for large numbers.

    >>> fmt_value(None), fmt_value(0.91333), fmt_value(32.9596, digits=1), fmt_value(4952442)
    ('-', '0.9133', '33.0', '4,952,442')
    >>> fmt_value(0.0000461), fmt_value(0.0)
    ('4.61e-05', '0.0000')
    """
    if value is None:
        return "-"
    if isinstance(value, float):
        if 0 < abs(value) < 10**-digits:  # a tiny cost or energy is not zero
            return f"{value:.2e}"
        return f"{value:.{digits}f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)
