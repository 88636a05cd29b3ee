"""Synthetic pages: deterministic, all classes present, COCO and PAGE-XML agree."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image

from convbench.detection.coco import read_coco
from convbench.detection.pagexml import read_pagexml
from convbench.detection.synth import CLASSES, synthesize
from convbench.errors import DataError


def _digest(folder):
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(f.relative_to(folder).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def test_same_seed_same_files_other_seed_other_pages(tmp_path):
    a = synthesize(tmp_path / "a", pages=3, size=128, seed=7).parent
    b = synthesize(tmp_path / "b", pages=3, size=128, seed=7).parent
    c = synthesize(tmp_path / "c", pages=3, size=128, seed=8).parent
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)
    assert sorted(p.name for p in a.iterdir()) == [
        "annotations.json", "page", "page_0000.png", "page_0001.png", "page_0002.png"]


def test_a_new_run_replaces_an_earlier_one_with_more_pages(tmp_path):
    synthesize(tmp_path / "pages", pages=3, size=64, seed=1)
    again = synthesize(tmp_path / "pages", pages=2, size=64, seed=2).parent
    fresh = synthesize(tmp_path / "fresh", pages=2, size=64, seed=2).parent
    assert _digest(again) == _digest(fresh)  # no page of the first run is left
    xml_pages = list((again / "page").glob("*.xml"))
    assert len(xml_pages) == len(read_coco(again / "annotations.json").pages) == 2


def test_a_file_or_a_folder_of_other_files_is_refused_untouched(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    with pytest.raises(DataError, match="it is a file"):
        synthesize(afile, pages=1, size=64)
    scans = tmp_path / "scans"
    (scans / "page").mkdir(parents=True)
    (scans / "page_0000.png").write_bytes(b"my scan")  # named as synth would name it
    (scans / "page" / "page_0000.xml").write_text("<PcGts/>")
    with pytest.raises(DataError, match="not the output of a finished `convbench detect synth`"):
        synthesize(scans, pages=1, size=64)
    (scans / "annotations.json").write_text('{"images": []}')
    with pytest.raises(DataError, match="not empty"):
        synthesize(scans, pages=1, size=64)
    assert afile.read_text() == "mine" and (scans / "page_0000.png").read_bytes() == b"my scan"
    done = synthesize(tmp_path / "done", pages=1, size=64).parent
    (done / "notes.txt").write_text("mine too")
    with pytest.raises(DataError, match="notes.txt"):
        synthesize(done, pages=1, size=64)


def test_pages_hold_every_class_inside_the_page(pages):
    ds = read_coco(pages)
    assert ds.classes == CLASSES
    counts = ds.count_instances()
    assert all(counts[c] > 0 for c in CLASSES), counts
    assert not ds.issues
    for page in ds.pages:
        image = Image.open(ds.image_path(page))
        assert image.size == (page.width, page.height) == (96, 128)
        for inst in page.instances:
            x, y, w, h = inst.bbox
            assert 0 <= x and 0 <= y and x + w <= page.width and y + h <= page.height
            assert w > 0 and h > 0 and inst.area > 0 and len(inst.polygons[0]) == 8


def test_staff_regions_contain_dark_staff_lines(pages):
    # The labels must sit on what is drawn: a staff box is darker than the page margin.
    ds = read_coco(pages)
    page = ds.pages[0]
    gray = np.asarray(Image.open(ds.image_path(page)).convert("L"), dtype=np.float32)
    staff = [i for i in page.instances if i.label == "staff"][0]
    x, y, w, h = (int(round(v)) for v in staff.bbox)
    inside = gray[y:y + h, x:x + w].mean()
    margin = gray[: max(2, y - 2), :].mean()
    assert inside < margin - 5


def test_pagexml_and_coco_describe_the_same_regions(pages):
    coco = read_coco(pages)
    page = read_pagexml(pages.parent / "page")
    assert page.classes == coco.classes and not page.issues
    for a, b in zip(coco.pages, page.pages, strict=True):
        assert a.file_name == b.file_name
        assert [(i.label, i.polygons, i.bbox, i.area) for i in a.instances] == \
               [(i.label, i.polygons, i.bbox, i.area) for i in b.instances]
