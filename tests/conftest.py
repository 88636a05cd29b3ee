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


@pytest.fixture
def cli_inproc(tmp_path, monkeypatch, capsys):
    """``convbench ARGS`` run by its own entry point in this process, in tmp_path; returns
    the same CompletedProcess as ``cli``. For commands that fail at once (bad input): a new
    interpreter would spend most of the test importing torch. An exception that escapes the
    CLI's own error handling fails the test, as a traceback on stderr would."""
    from convbench.cli import main

    monkeypatch.chdir(tmp_path)

    def run(*args, cwd=None, env=None):
        if cwd is not None:
            monkeypatch.chdir(cwd)
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
        out = capsys.readouterr()
        return subprocess.CompletedProcess(list(args), code, out.out, out.err)

    return run


# The longest test files, first: `make test` spreads files over two workers (pytest-xdist,
# --dist loadfile) in collection order, and a long file started last would run alone at the
# end while the other worker idles. Measured with --durations on the 2-core machines.
LONGEST_FIRST = (
    "tests/detection/test_detect_cli.py",
    "tests/search/test_distributed.py",
    "tests/server/test_server_browser.py",
    "tests/search/test_search.py",
    "tests/training/test_engine.py",
    "tests/cli/test_cli.py",
    "tests/server/test_restart.py",
    "tests/cli/test_compare.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}

    def order(item):
        path = os.path.relpath(str(item.path), str(config.rootpath))
        return rank.get(path, len(rank))

    items.sort(key=order)  # stable: the order inside a file, and of the other files, stays
