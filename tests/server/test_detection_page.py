"""A detection run's page: the detection report's sections (one implementation) in chromium."""

from __future__ import annotations

from pathlib import Path

import pytest

from convbench.store import Store

pytest.importorskip("torchvision", reason="detection needs torchvision")

from convbench.detection.synth import synthesize  # noqa: E402
from convbench.detection.train import train_detector  # noqa: E402
from convbench.report.writers.detection import detect_sections  # noqa: E402
from detection.conftest import _tiny_config  # noqa: E402  (tests/ is on the path: conftest)


def test_a_detection_run_page_shows_ap_per_class_losses_memory_and_mask_overlays(
        page, server, tmp_path):
    pages = synthesize(tmp_path / "pages", pages=6, size=128, seed=3)
    cfg = _tiny_config(pages.parent, iterations=3, checkpoint_every=1)
    with Store(str(server.store)) as store:
        run = train_detector(cfg, store=store)
        stored = store.get_run(run.id)
    metrics = stored["metrics"]
    page.goto(server.url(f"/run/{run.id}"))
    page.wait_for_selector('section[data-section="AP per class"] table')
    titles = page.locator("section[data-section] > h2").all_text_contents()
    # The same sections the detection report writes for this run, in its order.
    assert titles == [t for t, _ in detect_sections([stored])]
    assert {"Summary", "AP per class", "Training loss", "Memory", "Sample predictions"} <= set(
        titles)
    per_class = page.locator('section[data-section="AP per class"] th').all_text_contents()
    assert per_class == ["Variant"] + [f"{kind} AP {c}" for kind in ("box", "mask")
                                       for c in metrics["classes"]]
    summary = page.locator('section[data-section="Summary"]')
    column = summary.locator("thead th").all_text_contents().index("Box AP")
    assert summary.locator("tbody td").nth(column).inner_text() == f"{metrics['box_AP']:.3f}"
    for name in ("Training loss", "Memory"):
        assert page.locator(f'section[data-section="{name}"] svg').count() == 1
    # Every test page with its predicted masks, drawn in the fixed class colours.
    overlays = page.locator('section[data-section="Sample predictions"] figure img')
    written = sorted((Path(stored["artifacts"]["predictions"]) / "overlays").glob("*.png"))
    assert overlays.count() == len(written) >= 2
    assert overlays.first.evaluate("i => i.naturalWidth") > 0
    legend = page.inner_text('section[data-section="Sample predictions"] .note')
    assert all(c in legend for c in metrics["classes"])
    # The epoch curves of a classification run (accuracy) are not drawn for it.
    assert page.locator(".charts svg").count() == 0
