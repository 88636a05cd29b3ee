"""write_report: the HTML page and its Markdown, CSV and JSON twins, from a real store."""

from __future__ import annotations

import csv
import json
import re

import pytest

from convbench.errors import ConvbenchError
from convbench.report import ReportError, summary_table, write_report

LABELS = ["B2FL32 (optim=adam, lr=0.001)", "B2FL32 (optim=sgd, lr=0.01)", "simple-cnn"]
METRIC_HEADERS = ["Test accuracy", "Top-5", "Macro-F1", "Best val. accuracy", "Epochs",
                  "Parameters", "Trainable", "FLOPs / image", "MACs / image", "Disk size",
                  "Peak memory", "Train time", "Time to target", "Latency (batch 1)",
                  "Throughput (img/s)", "Energy", "Cost"]


def _section(html: str, section_id: str) -> str:
    match = re.search(rf'<section id="{section_id}">(.*?)</section>', html, re.S)
    assert match, f"no section {section_id}"
    return match.group(1)


def _table(tables, html: str, section: str) -> dict:
    return next(t for t in tables(html) if t["section"] == section)


def test_writes_html_and_the_three_exports_beside_it(report):
    paths = report["paths"]
    assert set(paths) == {"html", "md", "csv", "json"}
    html_path = paths["html"]
    assert [paths[k].name for k in ("html", "md", "csv", "json")] == [
        "report.html", "report.md", "report.csv", "report.json"]
    assert html_path.parent.name == "deep"  # missing folders are created
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths.values())
    assert not list(html_path.parent.glob("*.tmp"))  # atomic writes leave nothing behind
    html = html_path.read_text()
    assert "<title>Fashion-MNIST on a CPU</title>" in html
    assert "compare optimisers" in html and "fashion-mnist (10 classes)" in html
    # Self-contained: the only URL is the SVG namespace, which is never fetched.
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", html))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}
    assert "<script" not in html and "<link" not in html


def test_summary_table_one_row_per_variant_with_best_cells(report, tables):
    html = report["paths"]["html"].read_text()
    summary = _table(tables, html, "summary")
    assert summary["header"] == ["Model", "Runs", *METRIC_HEADERS]
    assert [r[0]["text"] for r in summary["rows"]] == LABELS
    cells = {r[0]["text"]: dict(zip(summary["header"], r, strict=True)) for r in summary["rows"]}

    def best(column):
        return [label for label, row in cells.items() if "best" in row[column]["classes"]]

    assert best("Test accuracy") == [LABELS[0]]
    assert best("Parameters") == best("Train time") == best("Energy") == ["simple-cnn"]
    assert best("Epochs") == []  # not ranked: more epochs is neither better nor worse
    adam = cells[LABELS[0]]
    assert re.fullmatch(r"\d+\.\d ± \d+\.\d % median \d+\.\d % · 3 seeds",
                        adam["Test accuracy"]["text"])
    assert adam["Parameters"]["text"] == "1.66M" and adam["FLOPs / image"]["text"] == "26M"
    assert adam["Energy"]["text"].endswith("kJ (est.)")
    assert re.fullmatch(r"\d\.\d+ min", adam["Train time"]["text"])
    assert cells[LABELS[1]]["Runs"]["text"] == "2 of 3 1 diverged"
    assert all(c["text"] != "—" for row in cells.values() for c in row.values())


def test_diverged_run_is_listed_with_its_status(report, tables):
    html = report["paths"]["html"].read_text()
    incomplete = _table(tables, html, "runs-not-completed")
    [row] = incomplete["rows"]
    values = dict(zip(incomplete["header"], [c["text"] for c in row], strict=True))
    assert values["Run"] == report["diverged"] and values["Status"] == "diverged"
    assert values["Epochs run"] == "3" and values["Test accuracy"] == "—"
    assert values["Last val. accuracy"] == "10.0 %"
    assert "did not complete" in _section(html, "summary")
    everything = _table(tables, html, "all-runs")
    assert len(everything["rows"]) == len(report["runs"]) == 7


def test_plots_are_embedded(report):
    html = report["paths"]["html"].read_text()
    for section in ("learning-curves", "accuracy-against-cost", "per-class-accuracy"):
        assert _section(html, section).count("<svg") == 1
    assert _section(html, "confusion-matrices").count("<svg") == 3
    cost = _section(html, "accuracy-against-cost")
    assert "Pareto front" in cost and "Train time (min)" in cost
    assert "Shirt" in _section(html, "per-class-accuracy")


def test_config_diff_shows_only_the_differing_fields(report, tables):
    html = report["paths"]["html"].read_text()
    diff = _table(tables, html, "configuration-differences")
    assert diff["header"] == ["Config field", *LABELS]
    fields = {r[0]["text"]: [c["text"] for c in r[1:]] for r in diff["rows"]}
    assert list(fields) == ["model.name", "optim.name", "optim.lr", "train.seed"]
    assert fields["optim.lr"] == ["0.001", "0.01", "0.01"]
    assert fields["train.seed"] == ["0, 1, 2", "0, 1, 2", "0"]
    shared = _section(html, "configuration-differences").split("<details>")[1]
    assert "train.epochs" in shared and "optim.lr" not in shared


def test_environment_shown_once_when_identical(report):
    env = _section(report["paths"]["html"].read_text(), "environment")
    assert env.count("2.4.1") == 1 and env.count("Intel Xeon (2 cores)") == 1
    assert "Differs between runs" not in env


def test_environment_differences_are_tabled_per_run(store, add_run, tables, tmp_path):
    base = {"torch": "2.4.1", "device": "cpu", "threads": 2}
    ids = [add_run(store, "simple-cnn", 0, env=base, metrics={}),
           add_run(store, "simple-cnn", 1, env={**base, "threads": 8}, metrics={})]
    paths = write_report([store.get_run(i) for i in ids], tmp_path / "r.html")
    html = paths["html"].read_text()
    env = _table(tables, html, "environment")
    assert env["header"] == ["Run", "threads"]
    assert [r[1]["text"] for r in env["rows"]] == ["2", "8"]
    assert _section(html, "environment").count("2.4.1") == 1


def test_csv_has_a_header_and_one_row_per_variant(report):
    rows = list(csv.DictReader(report["paths"]["csv"].open()))
    assert [r["label"] for r in rows] == LABELS
    expected = summary_table(report["runs"])
    for row, summary in zip(rows, expected, strict=True):
        assert float(row["test_accuracy"]) == pytest.approx(
            summary["metrics"]["test_accuracy"]["mean"])
        assert float(row["params_total"]) == summary["metrics"]["params_total"]["mean"]
        assert row["config.optim.name"] == summary["config"]["optim.name"]
    assert rows[1]["status"] == "1 diverged" and rows[1]["completed"] == "2"
    assert rows[2]["test_accuracy_std"] == ""  # one seed: no spread
    for key in ("test_top5", "macro_f1", "flops", "macs", "disk_bytes", "peak_memory_bytes",
                "latency_ms", "throughput_ips", "energy_j", "cost", "time_to_target_s"):
        assert all(r[key] for r in rows), key


def test_markdown_table_has_the_same_rows(report):
    lines = report["paths"]["md"].read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| Model | Runs |"))
    assert lines[start + 1].startswith("| :-- | --: |")
    body = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        body.append([c.strip() for c in line.strip("|").split(" | ")])
    assert [row[0] for row in body] == LABELS
    header = [c.strip() for c in lines[start].strip("|").split(" | ")]
    assert header[2:] == METRIC_HEADERS and all(len(r) == len(header) for r in body)
    assert body[0][2].startswith("**") and "median" in body[0][2]
    assert body[2][header.index("Parameters")] == "**93.3k**"
    assert "## Runs not completed" in lines


def test_json_export_is_strict_json(report):
    def no_constants(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    data = json.loads(report["paths"]["json"].read_text(), parse_constant=no_constants)
    assert [r["label"] for r in data["rows"]] == LABELS
    assert data["group"]["name"] == "optimisers"
    assert {r["status"] for r in data["runs"]} == {"completed", "diverged"}
    assert [c["key"] for c in data["columns"]][:2] == ["test_accuracy", "test_top5"]


def test_runs_with_nothing_but_a_status_still_render(store, tmp_path, tables):
    failed = store.create_run(name="oom", config={"model": {"name": "resnet50"}}, seed=0, env={})
    store.update(failed, status="failed", metrics={"error": "out of memory"}, ended=True)
    running = store.create_run(name="live", config={"model": {"name": "vgg11"}}, seed=0, env={})
    paths = write_report([store.get_run(failed), store.get_run(running)], tmp_path / "r.html")
    html = paths["html"].read_text()
    summary = _table(tables, html, "summary")
    assert [r[0]["text"] for r in summary["rows"]] == ["resnet50", "vgg11"]
    assert {c["text"] for r in summary["rows"] for c in r[2:]} == {"—"}
    # Columns that only some configs measure are left out when nobody has them ...
    assert "Time to target" not in summary["header"] and "Test accuracy" in summary["header"]
    # ... but the CSV header stays the same for scripts.
    assert "time_to_target_s" in paths["csv"].read_text().splitlines()[0]
    incomplete = _table(tables, html, "runs-not-completed")
    assert [r[4]["text"] for r in incomplete["rows"]] == ["failed", "running"]
    assert incomplete["header"][-1] == "Error"
    assert incomplete["rows"][0][-1]["text"] == "out of memory"
    md = paths["md"].read_text()  # the Markdown twin names the run and its error too
    assert f"| {failed} |" in md and "out of memory" in md
    assert "<svg" not in html  # nothing to plot, and no empty plots either
    assert len(list(csv.DictReader(paths["csv"].open()))) == 2


def test_user_errors_are_convbench_errors(tmp_path, runs):
    with pytest.raises(ReportError, match="No runs"):
        write_report([], tmp_path / "r.html")
    with pytest.raises(ReportError, match="overwrite"):
        write_report(runs, tmp_path / "r.csv")
    with pytest.raises(ReportError, match="folder"):
        write_report(runs, tmp_path)
    assert issubclass(ReportError, ConvbenchError)


