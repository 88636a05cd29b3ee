"""The pages in Debian's chromium against the real server and a real SQLite store."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from serving import cli

from convbench.config import RunConfig, apply_overrides
from convbench.store import Store

SETUP = {"data.dataset": "digits", "model.name": "B2FL8", "train.epochs": "2"}
# A run long enough to be paused on any machine: digits trains 2 epochs in about a second on a
# fast one, which can end before the page has shown Pause enabled (the live view is up to 2 s
# behind). 10,000 Fashion-MNIST images take seconds an epoch on every CPU kind, and a pause
# requested in the last epoch still stops the run after it.
PAUSABLE = {"data.dataset": "fashion-mnist", "data.train_limit": "10000", "model.name": "B2FL8",
            "train.epochs": "3"}
WAIT_MS = 180_000  # a worker imports torch and loads the data before its first batch


def _query(values: dict[str, str]) -> str:
    return "&".join(f"{k}={v}" for k, v in values.items())


def _field(page, path: str):
    return page.locator(f'[data-path="{path}"]')


def test_train_watch_pause_resume_equals_the_cli(page, server, tmp_path):
    # The same config trained by `convbench train`, alongside (same seed, same defaults).
    sets = [a for k, v in PAUSABLE.items() for a in ("--set", f"{k}={v}")]
    reference = subprocess.Popen(
        [sys.executable, "-m", "convbench.cli", "train", *sets, "--store",
         str(tmp_path / "cli.db"), "--json", "--quiet"], stdout=subprocess.PIPE, text=True)
    try:
        page.goto(server.url("/?" + _query(PAUSABLE)))
        page.wait_for_selector("#est-params")
        page.click("#train")
        page.wait_for_selector('#run-status [data-status="running"]', timeout=WAIT_MS)
        # Per-batch points appear while the run trains.
        page.wait_for_function(
            "() => +(document.querySelector('#live-chart-0 path.series')"
            "?.dataset.points || 0) >= 2", timeout=WAIT_MS)
        # … and so do the per-batch accuracy and LR (the same points carry all three).
        for chart in ("#live-chart-1", "#live-chart-2"):
            assert int(page.get_attribute(f"{chart} path.series", "data-points")) >= 2
        assert page.text_content("#live-chart-1 .chart-title") == "Accuracy per batch (smoothed)"
        run_id = parse_qs(urlsplit(page.url).query)["run"][0]
        page.wait_for_selector("#pause:not([disabled])")
        page.click("#pause")
        page.wait_for_selector('#run-status [data-status="stopped"]', timeout=WAIT_MS)
        with Store(str(server.store)) as store:
            paused = store.get_run(run_id)
        assert paused["status"] == "stopped" and 1 <= len(paused["epochs"]) <= 3
        page.click("#resume")
        page.wait_for_selector('#run-status [data-status="completed"]', timeout=WAIT_MS)
        page.wait_for_selector("#test-accuracy")
        shown = float(page.get_attribute("#test-accuracy", "data-value"))
    finally:
        out, _ = reference.communicate(timeout=600)
    assert reference.returncode == 0
    expected = json.loads(out)["metrics"]["test_accuracy"]
    with Store(str(server.store)) as store:
        done = store.get_run(run_id)
    assert done["status"] == "completed" and len(done["epochs"]) == 3
    assert done["metrics"]["test_accuracy"] == shown == expected


def test_url_round_trip_restores_every_field(page, server, browser):
    page.goto(server.url("/"))
    page.wait_for_selector("#est-params")
    page.select_option('[data-path="data.dataset"]', "digits")
    _field(page, "model.name").fill("blocks")
    _field(page, "model.blocks").fill("3")
    _field(page, "model.base_filters").fill("8")
    page.select_option('[data-path="model.batch_norm"]', "true")
    page.select_option('[data-path="optim.name"]', "sgd")
    _field(page, "optim.lr").fill("0.05")
    page.select_option('[data-path="schedule.name"]', "triangular")
    _field(page, "schedule.max_lr").fill("0.2")
    page.select_option('[data-path="data.augment.preset"]', "flip")
    _field(page, "train.epochs").fill("4")
    _field(page, "data.train_limit").fill("500")
    _field(page, "name").fill("my run")
    page.wait_for_selector('#knobs[data-state="idle"] ~ *, #knobs[data-state="idle"]')
    params_3 = page.inner_text("#est-params")
    shared = page.url
    values = {el.get_attribute("data-path"): el.input_value()
              for el in page.locator("[data-path]").all()}
    assert sum(1 for v in values.values() if v) == 13

    other = browser.new_context().new_page()
    other.goto(shared)
    other.wait_for_selector('#knobs[data-state="idle"]')
    restored = {el.get_attribute("data-path"): el.input_value()
                for el in other.locator("[data-path]").all()}
    assert restored == values
    assert other.inner_text("#est-params") == params_3
    # The epoch time, measured on this machine by a probe process (a few timed steps).
    other.wait_for_selector("#est-epoch[data-seconds]", timeout=WAIT_MS)
    assert float(other.get_attribute("#est-epoch", "data-seconds")) > 0
    # A knob changes the live figures before anything trains.
    _field(other, "model.blocks").fill("2")
    other.wait_for_function(f"() => document.querySelector('#est-params')?.textContent "
                            f"!== {params_3!r}")
    other.context.close()


def test_bad_value_shows_the_cli_message_and_starts_nothing(page, server, tmp_path):
    page.goto(server.url("/?data.dataset=digits"))
    page.wait_for_selector("#est-params")
    _field(page, "train.batch_size").fill("0")
    message = page.locator('.msg[data-for="train.batch_size"]')
    message.wait_for()
    page.wait_for_function("() => document.querySelector('.msg[data-for=\"train.batch_size\"]')"
                           ".textContent.length > 0")
    said = cli("train", "--set", "data.dataset=digits", "--set", "train.batch_size=0",
               store=tmp_path / "cli.db", check=False)
    assert said.stderr.strip() == f"error: {message.inner_text()}"
    page.click("#train")
    page.wait_for_timeout(1500)
    assert server.call("/api/jobs")[1] == []
    assert server.call("/api/runs")[1]["total"] == 0
    assert page.locator('.field.invalid[data-field="train.batch_size"]').count() == 1


def _record(store: Store, i: int) -> str:
    """A finished run record (config as the engine stores it), for listing and comparing."""
    dataset = "digits" if i % 3 else "synthetic"
    cfg = apply_overrides(RunConfig(), [f"data.dataset={dataset}", f"train.seed={i % 2}",
                                        "model.name=B2FL8", "optim.name=sgd"
                                        if i % 2 else "optim.name=adam"])
    rid = store.create_run(name=f"run-{i:03d}", config=cfg.model_dump(mode="json"),
                           seed=i % 2, env={"python": "3.11", "threads": 2})
    for epoch in (1, 2):
        store.add_epoch(rid, epoch, {"train_loss": 1.0 / epoch, "val_loss": 1.2 / epoch,
                                     "train_accuracy": 0.5 + 0.1 * epoch,
                                     "val_accuracy": 0.45 + 0.1 * epoch, "time_s": 1.0})
    store.update(rid, status="completed", ended=True, metrics={
        "test_accuracy": 0.5 + i / 1000, "train_time_s": 10.0 + i, "params_total": 1000 + i,
        "flops": 2e5, "energy_j": 50.0 + i})
    return rid


def test_runs_filter_sort_and_paging(page, server):
    with Store(str(server.store)) as store:
        for i in range(120):
            _record(store, i)
    page.goto(server.url("/runs"))
    page.wait_for_selector("#runs-table tbody tr")
    assert page.inner_text("#runs-total") == "120 runs"
    assert page.inner_text("#page-info") == "1–50 of 120"
    assert page.locator("#runs-table tbody tr").count() == 50
    page.click("#next")
    page.wait_for_function("() => document.querySelector('#page-info').textContent"
                           ".startsWith('51–100')")
    page.click("#next")
    page.wait_for_function("() => document.querySelector('#page-info').textContent"
                           " === '101–120 of 120'")
    assert page.locator("#runs-table tbody tr").count() == 20
    page.select_option("#f-dataset", "synthetic")
    page.wait_for_function("() => document.querySelector('#runs-total').textContent"
                           " === '40 runs'")
    page.fill("#q", "run-11")  # run-011, run-110 … run-119; synthetic: i % 3 == 0
    page.wait_for_function("() => document.querySelector('#runs-total').textContent"
                           " === '3 runs'")
    names = page.locator("#runs-table tbody tr td:nth-child(3)").all_inner_texts()
    assert sorted(names) == ["run-111", "run-114", "run-117"]
    page.click('th[data-sort="test_accuracy"]')  # descending first
    page.wait_for_function("() => document.querySelector('#runs-table tbody td:nth-child(3)')"
                           ".textContent === 'run-117'")
    # The filters live in the URL: a reload shows the same listing.
    page.reload()
    page.wait_for_function("() => document.querySelector('#runs-total')?.textContent"
                           " === '3 runs'")
    assert page.input_value("#f-dataset") == "synthetic" and page.input_value("#q") == "run-11"


def test_compare_shows_exactly_the_differing_fields(page, server):
    with Store(str(server.store)) as store:
        a, b = _record(store, 1), _record(store, 4)  # digits both; sgd/seed 1 vs adam/seed 0
    page.goto(server.url(f"/compare?ids={a},{b}"))
    section = page.locator('[data-section="Configuration differences"]')
    section.wait_for()
    fields = section.locator("tbody tr td:first-child").all_inner_texts()
    assert fields == ["optim.name", "train.seed"]  # the differing field, then every seed
    summary = page.locator('[data-section="Summary"]')
    assert summary.locator("td.best").count() >= 3  # accuracy, time, parameters…
    page.wait_for_selector("#pareto svg circle.dot")
    assert page.locator("#compare-curves svg").count() == 4
    assert page.get_attribute("#pareto", "data-front")


def test_a_run_started_from_the_cli_appears_live(page, server):
    page.goto(server.url("/runs"))
    page.wait_for_selector("#runs-total")
    assert page.inner_text("#runs-total") == "0 runs"
    process = subprocess.Popen(
        [sys.executable, "-m", "convbench.cli", "train", "--dataset", "digits", "--model",
         "B2FL8", "--epochs", "1", "--store", str(server.store), "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        # No reload: the row comes through the event stream.
        page.wait_for_selector("#runs-table tbody tr", timeout=WAIT_MS)
        assert page.inner_text("#runs-total") == "1 run"
        page.wait_for_selector('#runs-table [data-status="completed"]', timeout=WAIT_MS)
    finally:
        _, err = process.communicate(timeout=600)
    assert process.returncode == 0, err


@pytest.mark.parametrize("path", ["/", "/runs"])
def test_pages_load_nothing_from_outside(page, server, path):
    page.goto(server.url(path))
    page.wait_for_selector(".live.on")
    assert page.evaluate("document.fonts.size") == 0


def test_lr_range_test_from_the_page_puts_its_bounds_into_the_schedule(page, server):
    page.goto(server.url("/?" + _query(SETUP)))
    page.wait_for_selector('#knobs[data-state="idle"]')
    page.click("#lrf summary")
    page.fill("#lrf-max", "0")  # the spec's own check, as `convbench lr-find` says it
    page.click("#lr-find")
    page.wait_for_function("() => document.querySelector('#lrf-status').textContent"
                           ".includes('max_lr')")
    page.fill("#lrf-max", "1")
    page.fill("#lrf-epochs", "1")
    page.click("#lr-find")
    page.wait_for_selector("#lrf-chart svg path.series", timeout=WAIT_MS)
    runs = server.call("/api/runs?kind=lr-find")[1]["runs"]
    assert len(runs) == 1 and runs[0]["status"] == "completed"
    with Store(str(server.store)) as store:
        metrics = store.get_run(runs[0]["id"])["metrics"]
    assert metrics["lr_lower"] and metrics["lr_upper"], metrics["bounds_reason"]
    page.click("#use-bounds")
    assert float(_field(page, "optim.lr").input_value()) == metrics["lr_lower"]
    assert float(_field(page, "schedule.max_lr").input_value()) == metrics["lr_upper"]
    assert _field(page, "schedule.name").input_value() == "triangular"
    page.wait_for_selector('#knobs[data-state="idle"]')
    assert "schedule.max_lr=" in page.url and page.locator(".field.invalid").count() == 0


def test_reproduce_fills_the_form_from_a_stored_run(page, server):
    with Store(str(server.store)) as store:
        run_id = _record(store, 1)  # digits, B2FL8, sgd, seed 1
        config = store.get_run(run_id)["config"]
    page.goto(server.url(f"/run/{run_id}"))
    page.click("#reproduce")
    page.wait_for_selector('#knobs[data-state="idle"]')
    assert _field(page, "model.name").input_value() == config["model"]["name"] == "B2FL8"
    assert _field(page, "optim.name").input_value() == "sgd"
    assert _field(page, "train.seed").input_value() == "1"
    assert page.locator(".field.invalid").count() == 0
    # The form now builds the stored config exactly (same YAML as the run's).
    status, body = server.call("/api/check", {
        el.get_attribute("data-path"): el.input_value()
        for el in page.locator("[data-path]").all() if el.input_value()})
    assert status == 200 and body["errors"] == []


def test_groups_list_and_a_group_page_is_its_report(page, server):
    with Store(str(server.store)) as store:
        gid = store.create_group(kind="compare", name="optimisers", config={})
        ids = [_record(store, i) for i in (1, 2)]
        with store.engine.begin() as conn:  # the records join the group, as compare's runs do
            from convbench.store.schema import runs

            conn.execute(runs.update().where(runs.c.id.in_(ids)).values(group_id=gid))
        store.update_group(gid, status="completed")
    page.goto(server.url("/groups"))
    row = page.locator(f'#groups-table tr[data-id="{gid}"]')
    row.wait_for()
    assert "optimisers" in row.inner_text() and "compare" in row.inner_text()
    row.locator(f'a[href^="/group/{gid}"]').click()
    frame = page.frame_locator("#group-report")
    frame.locator("#summary table").wait_for()
    assert frame.locator("#summary tbody tr").count() == 2  # adam and sgd variants
    # A comparison's page has no search controls (and no stray "null" where they would be).
    assert page.locator("#stop-search").count() == 0
    assert "null" not in page.inner_text("#app")


TINY_SEARCH = """name: tiny
base:
  data: {dataset: digits, train_limit: 300}
  model: {name: blocks, blocks: 1, base_filters: 4}
  measure: {cost: false}
params:
  optim.name: [adam, sgd]
search:
  strategy: grid
  epochs: 1
"""


def test_a_search_started_from_the_page(page, server, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY_SEARCH.replace("strategy: grid", "strategy: nope"))
    said = cli("search", "bad.yaml", store=tmp_path / "cli.db", check=False, cwd=tmp_path)
    page.goto(server.url("/groups"))
    page.click("#search-form summary")
    page.set_input_files("#search-file", str(bad))  # an upload: named as the CLI names it
    page.wait_for_function("() => document.querySelector('#search-yaml').value.length > 0")
    page.click("#start-search")
    page.wait_for_function("() => document.querySelector('#search-status').textContent")
    assert said.returncode == 2 and said.stderr.strip() == "error: " + page.inner_text(
        "#search-status")
    assert server.call("/api/jobs")[1] == []

    page.fill("#search-yaml", TINY_SEARCH)
    page.click("#start-search")
    row = page.locator("#groups-table tbody tr")
    row.first.wait_for(timeout=WAIT_MS)  # the group shows up while the search runs
    assert "search" in row.first.inner_text()
    page.wait_for_function("() => document.querySelector('#search-status').textContent"
                           " === 'search finished'", timeout=WAIT_MS)
    gid = row.first.get_attribute("data-id")
    page.goto(server.url(f"/group/{gid}"))
    frame = page.frame_locator("#group-report")
    frame.locator("table").first.wait_for()
    assert "optim=adam" in frame.locator("body").inner_text()
    # Parallel coordinates: a line per configuration through its optimiser and its score.
    page.wait_for_selector("#parcoords svg path.trial")
    assert page.locator("#parcoords path.trial").count() == 2
    axes = page.locator("#parcoords .chart-label").all_text_contents()
    assert axes == ["optim.name", "score"]


def test_misclassified_test_images_of_a_trained_run(page, server):
    done = cli("train", "--dataset", "digits", "--model", "B2FL8", "--epochs", "1",
               "--store", str(server.store), "--json", "--quiet")
    run = json.loads(done.stdout)
    wrong = round((1 - run["metrics"]["test_accuracy"]) * 359)  # digits: 359 test images
    page.goto(server.url(f"/run/{run['id']}"))
    page.click("#show-mistakes")
    page.wait_for_function("() => document.querySelector('#mistakes-note').textContent"
                           ".includes('misclassified')", timeout=WAIT_MS)
    assert page.inner_text("#mistakes-note").startswith(f"{wrong} of 359 test images")
    shown = page.locator("#mistakes figure")
    assert shown.count() == min(wrong, 32) and shown.count() > 0
    first = shown.first
    assert first.locator("img").evaluate("i => i.naturalWidth") >= 72
    assert first.locator(".true").inner_text() != first.locator(".pred").inner_text()


# Eight configurations of ten epochs: long enough to be stopped while it runs on any machine.
LONG_SEARCH = """name: long
base:
  data: {dataset: digits, train_limit: 600}
  model: {name: blocks, blocks: 1, base_filters: 4}
  train: {batch_size: 16}
  measure: {cost: false}
params:
  optim.lr: [0.0005, 0.001, 0.002, 0.004]
  optim.name: [adam, sgd]
search:
  strategy: grid
  epochs: 10
"""


def test_stop_a_search_from_its_page_then_resume_it_from_the_cli(page, server):
    status, body = server.call("/api/search", {"yaml": LONG_SEARCH})
    assert status == 200
    job = body["job"]["id"]
    deadline = time.monotonic() + WAIT_MS / 1000
    while not (gid := _job(server, job).get("group_id")):
        assert time.monotonic() < deadline and _job(server, job)["status"] == "running"
        time.sleep(0.3)
    page.goto(server.url(f"/group/{gid}"))
    page.wait_for_selector("#stop-search:not([disabled])", timeout=WAIT_MS)
    page.click("#stop-search")
    page.wait_for_selector('#group-head [data-status="stopped"]', timeout=WAIT_MS)
    assert f"convbench search --resume {gid}" in page.inner_text("#search-note")
    assert page.locator("#stop-search").is_hidden()
    with Store(str(server.store)) as store:
        stopped = store.get_group(gid)
        trained = [store.get_run(r) for r in stopped["run_ids"]]
    assert stopped["status"] == "stopped"
    assert not any(r["status"] == "running" for r in trained)
    assert len([r for r in trained if r["status"] == "completed"]) < 8
    # A stopped search refuses a second stop; the command line continues it to the end.
    said = server.call(f"/api/groups/{gid}/stop", {})
    assert said == (400, {"error": f"Search {gid} is stopped, not running."})
    cli("search", "--resume", gid, "--quiet", store=server.store, timeout=900)  # exit 0
    with Store(str(server.store)) as store:
        done = store.get_group(gid)
    assert done["status"] == "completed"
    page.reload()
    page.wait_for_selector('#group-head [data-status="completed"]')


def _job(server, job_id: str) -> dict:
    return next(j for j in server.call("/api/jobs")[1] if j["id"] == job_id)


def test_a_chart_legend_of_several_rows_stays_clear_of_the_axis_label(page, server):
    # Five variants take two legend rows: they go below the x-axis label, not over it.
    page.goto(server.url("/runs"))
    page.wait_for_function("() => window.convbenchChart")
    boxes = page.evaluate("""() => {
        const box = document.body.appendChild(document.createElement("div"));
        const series = [0, 1, 2, 3, 4].map(i => ({label: `variant number ${i}`, colour: "#000",
                                                  points: [[1, i], [2, i + 1]]}));
        const svg = window.convbenchChart.drawChart(box, {title: "t", xlabel: "epoch",
                                                           ylabel: "loss", series});
        const rect = el => { const r = el.getBoundingClientRect();
                             return [r.left, r.top, r.right, r.bottom]; };
        const label = [...svg.querySelectorAll("text.chart-label")]
            .find(t => t.textContent === "epoch");
        return {label: rect(label), legend: [...svg.querySelectorAll("text.legend")].map(rect),
                svg: rect(svg)};
    }""")
    label = boxes["label"]
    assert len(boxes["legend"]) == 5
    for left, top, right, bottom in boxes["legend"]:
        assert top >= label[3] or bottom <= label[1] or right <= label[0] or left >= label[2]
        assert bottom <= boxes["svg"][3]  # inside the chart, not cut off
