"""``import convbench`` gives the command line's names, lazily, in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

import convbench

NAMES = ["train", "compare", "report", "lr_find", "search", "features", "svm", "detect",
         "predict", "evaluate", "export", "Store", "Run", "Group", "RunConfig", "config",
         "replace"]


def fresh(code: str) -> str:
    """Run ``code`` in a new interpreter (nothing of convbench imported before)."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_the_issue_s_one_liner_works_in_a_fresh_interpreter():
    out = fresh("import convbench; print(convbench.compare, convbench.search, "
                "convbench.lr_find, convbench.detect)")
    assert out.startswith("<module 'convbench.compare'") and "<module 'convbench.search'" in out
    assert "<function lr_find" in out and "convbench.detection.api" in out


def test_compare_search_and_report_are_callable_modules():
    # They share their name with a submodule: the module is the entry point, so both
    # `convbench.compare(...)` and `import convbench.report.html as h` work.
    import pytest

    from convbench.errors import ConvbenchError

    with pytest.raises(ConvbenchError, match="No models to compare|[Nn]othing to compare"):
        convbench.compare({"data": {"dataset": "digits"}}, variants=[], models=[])
    with pytest.raises(ConvbenchError):
        convbench.search("no-such-space.yaml")
    out = fresh("import convbench.report.html as h, convbench.search.plots as p\n"
                "import convbench\n"
                "print(callable(convbench.report), callable(convbench.search), "
                "convbench.report.report.__name__, h.__name__, p.__name__)")
    assert out.split() == ["True", "True", "report", "convbench.report.html",
                           "convbench.search.plots"]


def test_importing_convbench_loads_nothing_heavy_and_lists_every_name():
    out = json.loads(fresh(
        "import sys, json, convbench\n"
        "torch = 'torch' in sys.modules\n"
        "import convbench.cli\n"
        "print(json.dumps({'torch': torch, 'cli_torch': 'torch' in sys.modules,"
        " 'dir': dir(convbench), 'all': convbench.__all__}))"))
    # neither `import convbench` nor `convbench --help` may pay for torch
    assert out["torch"] is False and out["cli_torch"] is False
    assert set(NAMES) <= set(out["dir"]) and set(NAMES) <= set(out["all"])


def test_every_name_resolves_to_its_entry_point_even_after_its_module_is_imported():
    # compare, search and report are submodules that are their own entry points: importing
    # one first still gives the callable module
    out = json.loads(fresh(
        "import json\n"
        "import convbench.compare, convbench.search.space, convbench.report.html\n"
        "import convbench\n"
        "from convbench.compare import compare as direct\n"
        f"names = {NAMES!r}\n"
        "print(json.dumps({'same': convbench.compare.compare is direct, 'names': {n: getattr("
        "getattr(convbench, n), '__qualname__', getattr(convbench, n).__name__) "
        "for n in names}}))"))
    assert out["same"] is True
    assert out["names"] == {
        "train": "train", "compare": "convbench.compare", "report": "convbench.report",
        "lr_find": "lr_find", "search": "convbench.search", "features": "extract_features",
        "svm": "svm_run",
        "detect": "convbench.detection.api", "predict": "predict", "evaluate": "evaluate",
        "export": "export", "Store": "Store", "Run": "Run", "Group": "Group",
        "RunConfig": "RunConfig", "config": "convbench.config", "replace": "replace"}


def test_detect_is_a_namespace_with_the_cli_s_commands():
    for name in ("train", "eval", "predict", "compare"):
        assert callable(getattr(convbench.detect, name))
        assert ">>>" in getattr(convbench.detect, name).__doc__


def test_an_unknown_name_is_an_attribute_error():
    try:
        convbench.trian  # noqa: B018
    except AttributeError as err:
        assert "trian" in str(err)
    else:
        raise AssertionError("convbench.trian resolved")


def test_the_package_docstring_shows_every_entry_point():
    for name in NAMES:
        if name not in ("RunConfig", "Run", "Group"):
            assert f"convbench.{name}" in convbench.__doc__, name
