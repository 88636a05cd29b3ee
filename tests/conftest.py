import os
import subprocess
import sys

import pytest

# Tests must never be slowed down by, or depend on, a user's store.
os.environ.pop("CONVBENCH_STORE", None)
# The suite runs beside other work on 2 cores, and some test modules import torch before
# convbench: the same OpenMP wait policy as convbench sets (see convbench/__init__.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture
def store_url(tmp_path):
    return str(tmp_path / "runs.db")


@pytest.fixture
def cli(tmp_path):
    """Run the real `convbench` console script in tmp_path; returns CompletedProcess."""
    exe = os.path.join(os.path.dirname(sys.executable), "convbench")

    def run(*args, timeout=600, env=None, check=False):
        proc = subprocess.run([exe, *args], cwd=tmp_path, capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, **(env or {})})
        if check and proc.returncode != 0:
            raise AssertionError(f"convbench {' '.join(args)} failed:\n{proc.stderr}")
        return proc

    return run
