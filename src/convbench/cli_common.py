"""What every command group of the CLI shares: consoles, common options, JSON output, the
store. Kept apart from :mod:`convbench.cli` so sub-apps (transfer, detection) can import it
without a cycle."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
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


def open_store(url: str | None, *, existing: bool = False):
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
    return Store(url)


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
