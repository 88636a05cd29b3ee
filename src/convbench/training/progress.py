"""A live progress bar for training (rich), silent with ``quiet``."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress


class Progress:
    """Per-epoch bar with live loss/accuracy; one summary line per finished epoch."""

    def __init__(self, epochs: int, quiet: bool = False, interval_s: float = 0.5):
        self.epochs, self.quiet, self.interval_s = epochs, quiet, interval_s
        self._last = 0.0
        self._bar: RichProgress | None = None
        self._task = None

    def __enter__(self) -> Progress:
        if not self.quiet:
            # stderr, so `--json` output on stdout stays machine-readable.
            self._bar = RichProgress(
                TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"),
                TimeRemainingColumn(),
                console=Console(file=sys.stderr),
                transient=True,
            )
            self._bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def due(self) -> bool:
        """True when it is time to refresh (the caller then pays for one host sync)."""
        now = time.monotonic()
        if now - self._last >= self.interval_s:
            self._last = now
            return True
        return False

    def start_epoch(self, epoch: int, steps: int) -> None:
        if self._bar is None:
            return
        if self._task is not None:
            self._bar.remove_task(self._task)
        self._task = self._bar.add_task(
            "train", total=steps, epoch=epoch, epochs=self.epochs, stats=""
        )

    def update(self, step: int, *, loss: float, acc: float, lr: float) -> None:
        if self._bar is not None:
            self._bar.update(
                self._task, completed=step, stats=f"loss {loss:.4f} acc {acc:.3f} lr {lr:.2e}"
            )

    def end_epoch(self, epoch: int, row: dict) -> None:
        if self._bar is None:
            return
        val = (
            f" val_loss {row['val_loss']:.4f} val_acc {row['val_accuracy']:.4f}"
            if row.get("val_accuracy") is not None
            else ""
        )
        self._bar.console.print(
            f"epoch {epoch}/{self.epochs}  loss {row['train_loss']:.4f} "
            f"acc {row['train_accuracy']:.4f}{val}  {row['time_s']:.1f}s "
            f"{row['images_per_s']:.0f} img/s"
        )
