"""A run's ``train.log``: time-stamped lines appended as they happen (classification and
detection runs alike), so a killed run's log ends where the run stopped.

>>> import tempfile, pathlib
>>> log = pathlib.Path(tempfile.mkdtemp()) / "train.log"
>>> append_log(log, ["data: 2 unknown class", "epoch 1"])
>>> [line.split(" ", 2)[2] for line in log.read_text().splitlines()]
['data: 2 unknown class', 'epoch 1']
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

LOG = "train.log"


def append_log(path: str | Path, lines: Iterable[str]) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    with open(path, "a") as fh:
        fh.writelines(f"{stamp} {line}\n" for line in lines)
