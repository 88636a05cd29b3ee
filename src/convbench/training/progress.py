"""A live progress bar for training (rich), silent with ``quiet``: one bar per epoch with
the running loss (and accuracy when the task has one), one summary line per finished epoch."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress


class Progress:
    """Per-epoch bar with the live loss (accuracy, LR); one summary line per finished epoch."""

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

    def update(self, step: int, *, loss: float, lr: float, acc: float | None = None) -> None:
        if self._bar is not None:
            accuracy = f" acc {acc:.3f}" if acc is not None else ""
            self._bar.update(
                self._task, completed=step, stats=f"loss {loss:.4f}{accuracy} lr {lr:.2e}"
            )

    def end_epoch(self, epoch: int, row: dict) -> None:
        if self._bar is None:
            return
        self._bar.console.print(epoch_summary(epoch, self.epochs, row))


def epoch_summary(epoch: int, epochs: int, row: dict) -> str:
    """The line printed for a finished epoch; figures a task does not have are left out.

    >>> epoch_summary(2, 5, {"train_loss": 0.5, "lr": 0.02, "time_s": 3.0, "images_per_s": 0.67})
    'epoch 2/5  loss 0.5000  lr 2.00e-02  3.0s 0.67 img/s'
    """
    parts = [f"epoch {epoch}/{epochs}  loss {row['train_loss']:.4f}"]
    if row.get("train_accuracy") is not None:
        parts.append(f" acc {row['train_accuracy']:.4f}")
    if row.get("val_accuracy") is not None:
        parts.append(f" val_loss {row['val_loss']:.4f} val_acc {row['val_accuracy']:.4f}")
    elif row.get("lr") is not None and row.get("train_accuracy") is None:
        parts.append(f"  lr {row['lr']:.2e}")
    parts.append(f"  {row.get('time_s') or 0.0:.1f}s")
    if ips := row.get("images_per_s"):
        parts.append(f" {ips:.0f} img/s" if ips >= 10 else f" {ips:.2g} img/s")
    return "".join(parts)
