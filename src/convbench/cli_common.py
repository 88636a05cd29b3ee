"""What every command group of the CLI shares: consoles, common options, JSON output, the
store. Kept apart from :mod:`convbench.cli` so sub-apps (transfer, detection) can import it
without a cycle."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console

# Piped output (files, CI logs) gets wide tables instead of rich's 80-column default.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

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


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def open_store(url: str | None):
    from .store import Store

    return Store(url)
