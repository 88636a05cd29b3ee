"""Helpers of the inference tests: the shared run's handle and PNG writing."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import traceback
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from convbench.cli import main
from convbench.data import dataset_info

EXE = os.path.join(os.path.dirname(sys.executable), "convbench")


def have_fashion() -> bool:
    return any(d["name"] == "fashion-mnist" and d["found"] for d in dataset_info())


@dataclass
class Shared:
    root: Path
    store: str
    run_id: str
    test_x: np.ndarray  # the run's test split, uint8 N×1×28×28
    test_y: np.ndarray
    classes: list[str]

    def cli(self, *args: str, subprocess_: bool = False) -> Result:
        """``convbench ARGS --store STORE`` in this folder: in this process (the same entry
        point, without a second PyTorch start-up), or as the real console script."""
        argv = [*args, "--store", self.store]
        if subprocess_:
            proc = subprocess.run([EXE, *argv], cwd=self.root, capture_output=True, text=True,
                                  timeout=600)
            return Result(proc.returncode, proc.stdout, proc.stderr)
        stdout, stderr, code = io.StringIO(), io.StringIO(), 0
        here = os.getcwd()
        os.chdir(self.root)
        try:
            with redirect_stdout(stdout), redirect_stderr(stderr):
                try:
                    main(argv)
                except SystemExit as done:
                    code = done.code if isinstance(done.code, int) else (done.code is not None)
                except Exception:  # what a user would see as a traceback
                    traceback.print_exc(file=stderr)
                    code = 1
        finally:
            os.chdir(here)
        return Result(int(code), stdout.getvalue(), stderr.getvalue())


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def folder_name(cls: str) -> str:
    """A class name as a folder can be called ("T-shirt/top" → "T-shirt_top")."""
    return cls.replace("/", "_")


def write_pngs(folder: Path, x: np.ndarray, y: np.ndarray, classes: list[str],
               by_class: bool) -> list[Path]:
    """``x`` as grey PNGs: ``folder/<class>/<i>.png`` (by_class) or ``folder/<i>.png``."""
    paths = []
    for i, (img, label) in enumerate(zip(x, y, strict=True)):
        where = folder / folder_name(classes[label]) if by_class else folder
        where.mkdir(parents=True, exist_ok=True)
        path = where / f"{i:05d}.png"
        Image.fromarray(img[0]).save(path)
        paths.append(path)
    return paths
