"""`convbench report` picks the writer by the kind of what it is given: a search id makes the
search report, runs of a comparison the comparison report; the writers are registered by kind."""

from __future__ import annotations

import json

import pytest
import yaml

from convbench.errors import ConvbenchError
from convbench.report import report_kind, report_kinds, write
from convbench.store import Store

SPACE = {"name": "tiny", "base": {"data": {"dataset": "digits"},
                                  "train": {"batch_size": 64, "threads": 1},
                                  "measure": {"cost": False}},
         "params": {"optim.name": ["adam", "sgd"]},
         "search": {"strategy": "grid", "epochs": 1}}


def test_every_kind_has_one_writer():
    assert sorted(report_kinds()) == ["analysis", "compare", "detect-compare", "search"]


def test_a_search_id_gets_the_search_report_and_its_runs_the_comparison(cli, tmp_path):
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    cli("search", "space.yaml", "--store", "runs.db", "--quiet", check=True)
    [group] = Store(str(tmp_path / "runs.db")).list_groups(kind="search")
    proc = cli("report", group["id"][:6], "-o", "s.html", "--store", "runs.db", check=True)
    assert proc.stdout.split() == ["wrote", "s.html", "wrote", "s.json", "wrote",
                                   "s-winner.yaml"]
    html = (tmp_path / "s.html").read_text()
    assert "<title>convbench search tiny</title>" in html
    assert '<section id="trials">' in html and '<section id="winning-config">' in html
    assert json.loads((tmp_path / "s.json").read_text())["id"] == group["id"]
    assert "convbench train s-winner.yaml" in (tmp_path / "s-winner.yaml").read_text()
    # The Python API takes the same ids and picks the same writer.
    import convbench

    paths = convbench.report(group["id"][:6], tmp_path / "p.html", store=str(tmp_path / "runs.db"))
    assert paths["html"] == tmp_path / "p.html"
    assert "<title>convbench search tiny</title>" in (tmp_path / "p.html").read_text()
    # The same runs named one by one are runs, not a search: the comparison report.
    proc = cli("report", *group["run_ids"], "-o", "c.html", "--store", "runs.db", check=True)
    assert "wrote c.md" in proc.stdout
    html = (tmp_path / "c.html").read_text()
    assert "<title>convbench comparison</title>" in html
    assert '<section id="learning-curves">' in html
    # A search's report covers that search alone.
    other = cli("train", "--dataset", "digits", "--model", "B1FL4", "--epochs", "1", "--quiet",
                "--store", "runs.db", "--json", check=True)
    mixed = cli("report", group["id"], json.loads(other.stdout)["id"], "--store", "runs.db")
    assert mixed.returncode == 2 and "give the search's id alone" in mixed.stderr


def test_the_kind_comes_from_the_runs_and_the_group():
    assert report_kind([{"kind": "train"}, {"kind": "svm"}], None) == "compare"
    assert report_kind([{"kind": "detect"}], {"kind": "detect-compare"}) == "detect-compare"
    assert report_kind([{"id": "a"}], {"kind": "search", "run_ids": ["a"]}) == "search"
    with pytest.raises(ConvbenchError, match="one kind per report"):
        report_kind([{"kind": "detect"}, {"kind": "train"}], None)


def test_an_unknown_kind_is_a_clear_error(tmp_path):
    with pytest.raises(ConvbenchError, match="Unknown report kind 'searh'.*'search'"):
        write([{"id": "a"}], tmp_path / "r.html", kind="searh")
