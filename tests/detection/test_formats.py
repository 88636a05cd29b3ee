"""COCO and PAGE-XML: round trips, RLE masks, bad annotations, region maps, splits."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from convbench.detection.coco import read_coco, write_coco
from convbench.detection.config import DetectDataConfig
from convbench.detection.data import load_dataset
from convbench.detection.dataset import (
    DetectionDataset,
    Instance,
    PageRecord,
    instance_mask,
    mask_to_polygons,
    split_pages,
)
from convbench.detection.pagexml import NAMESPACE, read_pagexml, write_pagexml
from convbench.errors import DataError


def _same(a: DetectionDataset, b: DetectionDataset) -> None:
    assert a.classes == b.classes
    assert a.pages == b.pages


def test_coco_round_trip_is_unchanged(pages, tmp_path):
    first = read_coco(pages)
    copy = write_coco(first, tmp_path / "copy.json")
    _same(first, read_coco(copy, image_root=pages.parent))


def test_pagexml_round_trip_is_unchanged(pages, tmp_path):
    first = read_pagexml(pages.parent / "page")
    write_pagexml(first, tmp_path / "page")
    again = read_pagexml(tmp_path / "page", image_dir=pages.parent)
    _same(first, again)
    text = (tmp_path / "page" / "page_0000.xml").read_text()
    assert NAMESPACE in text and "MusicRegion" in text and 'type="drop-capital"' in text
    assert "structure {type:lyrics;}" in text


def _rle_coco(tmp_path):
    """A real COCO file with one compressed and one uncompressed RLE mask."""
    Image.new("RGB", (40, 30), "white").save(tmp_path / "img.png")
    mask = np.zeros((30, 40), np.uint8)
    mask[5:15, 10:30] = 1
    compressed = mask_utils.encode(np.asfortranarray(mask))
    compressed["counts"] = compressed["counts"].decode("ascii")
    flat = mask.flatten(order="F")
    runs, current, n = [], 0, 0
    for v in flat:  # uncompressed RLE: alternating run lengths, starting with zeros
        if v != current:
            runs.append(n)
            current, n = v, 0
        n += 1
    runs.append(n)
    data = {"images": [{"id": 1, "file_name": "img.png", "width": 40, "height": 30}],
            "categories": [{"id": 5, "name": "staff"}, {"id": 9, "name": "lyrics"}],
            "annotations": [
                {"id": 1, "image_id": 1, "category_id": 5, "bbox": [10, 5, 20, 10],
                 "area": 200, "iscrowd": 0, "segmentation": compressed},
                {"id": 2, "image_id": 1, "category_id": 9, "bbox": [10, 5, 20, 10],
                 "iscrowd": 0, "segmentation": {"size": [30, 40], "counts": runs}}]}
    path = tmp_path / "rle.json"
    path.write_text(json.dumps(data))
    return path, mask


def test_rle_masks_are_read_and_round_trip(tmp_path):
    path, mask = _rle_coco(tmp_path)
    ds = read_coco(path)
    assert ds.classes == ["staff", "lyrics"] and not ds.issues
    a, b = ds.pages[0].instances
    assert a.rle is not None and b.rle is not None
    assert (instance_mask(a, 30, 40) == mask).all() and (instance_mask(b, 30, 40) == mask).all()
    assert b.area == 200.0  # computed from the mask when the file has none
    _same(ds, read_coco(write_coco(ds, tmp_path / "out.json"), image_root=tmp_path))


def test_rle_masks_become_polygons_in_pagexml(tmp_path):
    path, mask = _rle_coco(tmp_path)
    ds = read_coco(path)
    write_pagexml(ds, tmp_path / "page", region_map={"MusicRegion": "staff",
                                                     "TextRegion:lyrics": "lyrics"})
    back = read_pagexml(tmp_path / "page", region_map={"MusicRegion": "staff",
                                                       "TextRegion:lyrics": "lyrics"})
    inst = back.pages[0].instances[0]
    assert inst.label == "staff"
    x, y, w, h = inst.bbox
    assert abs(x - 10) <= 1 and abs(y - 5) <= 1 and abs(w - 20) <= 1 and abs(h - 10) <= 1


def test_bad_coco_annotations_are_skipped_and_counted(pages, tmp_path):
    data = json.loads(pages.read_text())
    image = data["images"][0]
    base = {"image_id": image["id"], "iscrowd": 0}
    data["annotations"] += [
        {**base, "id": 901, "category_id": 1, "bbox": [1, 1, 5, 5], "segmentation": [[1, 1]]},
        {**base, "id": 902, "category_id": 1, "bbox": [500, 500, 5, 5]},
        {**base, "id": 903, "category_id": 77, "bbox": [1, 1, 5, 5]},
        {**base, "id": 904, "category_id": 1, "bbox": [-4, 2, 10, 5]},
        {**base, "id": 905, "category_id": 1, "bbox": [2, 2, 0, 5]},
        {**base, "id": 906, "image_id": 4242, "category_id": 1, "bbox": [1, 1, 5, 5]}]
    data["images"].append({"id": 99, "file_name": "gone.png", "width": 10, "height": 10})
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    ds = read_coco(bad, image_root=pages.parent)
    assert dict(ds.issues) == {"empty polygon": 1, "box outside page": 1, "unknown class": 1,
                               "clipped to page": 1, "degenerate box": 1, "unknown image": 1,
                               "missing image": 1}
    clipped = [i for i in ds.pages[0].instances if i.bbox == (0.0, 2.0, 6.0, 5.0)]
    assert len(clipped) == 1  # kept, cut at the page border
    assert "page_0000.png annotation 903: category 77" in " ".join(ds.notes)  # page first
    assert len(ds.notes) == sum(ds.issues.values())  # one message each, none dropped
    with pytest.raises(DataError, match="gone.png.*strict mode"):
        read_coco(bad, image_root=pages.parent, strict=True)


def test_a_path_of_the_other_format_is_refused_saying_what_was_given(pages):
    with pytest.raises(DataError, match=r"pagexml expects a folder of PAGE-XML files or one "
                                        r"\.xml file, but .* is a JSON file: use --source coco"):
        load_dataset(DetectDataConfig(source="pagexml", path=str(pages)))
    with pytest.raises(DataError, match=r"coco expects one COCO JSON file, but .* is a folder: "
                                        r"use --source pagexml"):
        load_dataset(DetectDataConfig(source="coco", path=str(pages.parent / "page")))


def test_unmapped_page_regions_are_counted_and_mappable(pages, tmp_path):
    xml = (pages.parent / "page" / "page_0000.xml").read_text()
    xml = xml.replace("<MusicRegion", '<GraphicRegion type="decoration"', 1)
    xml = xml.replace("</MusicRegion>", "</GraphicRegion>", 1)
    folder = tmp_path / "page"
    folder.mkdir()
    (folder / "page_0000.xml").write_text(xml)
    ds = read_pagexml(folder, image_dir=pages.parent)
    assert ds.issues == {"unknown class": 1}
    assert "GraphicRegion:decoration" in ds.notes[0]
    mapped = read_pagexml(folder, image_dir=pages.parent, region_map={
        "GraphicRegion:decoration": "staff", "MusicRegion": "staff",
        "TextRegion:lyrics": "lyrics", "TextRegion:drop-capital": "drop-capital"})
    assert not mapped.issues
    assert mapped.count_instances()["staff"] == ds.count_instances()["staff"] + 1


def test_broken_files_give_data_errors(tmp_path):
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        read_coco(tmp_path / "x.json")
    with pytest.raises(DataError, match="not found"):
        read_coco(tmp_path / "missing.json")
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "a.xml").write_text("<html/>")
    with pytest.raises(DataError, match="not a PAGE-XML"):
        read_pagexml(tmp_path / "p")
    with pytest.raises(DataError, match="No .xml files"):
        read_pagexml(tmp_path)


def test_split_is_fixed_by_seed_and_disjoint(pages):
    ds = read_coco(pages)
    tr1, te1 = split_pages(ds, 0.34, seed=1)
    tr2, te2 = split_pages(ds, 0.34, seed=1)
    _, te3 = split_pages(ds, 0.34, seed=2)
    ids = lambda d: [p.id for p in d.pages]  # noqa: E731
    assert ids(te1) == ids(te2) and len(ids(te1)) == 2
    assert not set(ids(tr1)) & set(ids(te1))
    assert sorted(ids(tr1) + ids(te1)) == ids(ds)
    assert ids(te3) != ids(te1) or ids(split_pages(ds, 0.34, seed=3)[1]) != ids(te1)


def test_mask_to_polygons_outlines_each_blob_largest_first():
    m = np.zeros((20, 20), np.uint8)
    m[1:4, 1:4] = 1
    m[8:18, 5:15] = 1
    polys = mask_to_polygons(m)
    assert len(polys) == 2
    page = PageRecord(1, "x.png", 20, 20)
    back = instance_mask(Instance("a", (0, 0, 1, 1), polygons=[polys[0]]), page.height, page.width)
    assert back[8:18, 5:15].mean() > 0.9 and back[1:4, 1:4].sum() == 0


def test_mask_outlines_have_a_point_per_corner_not_per_pixel():
    m = np.zeros((200, 300), np.uint8)
    m[20:180, 30:270] = 1  # a 240 × 160 region
    m[20:60, 30:70] = 0  # with a notch: 6 corners, each cut by the 0.5-level contour
    (poly,) = mask_to_polygons(m)
    assert len(poly) // 2 <= 12  # was one point per pixel edge (≈ 800)
    xy = list(zip(poly[::2], poly[1::2], strict=True))
    assert len(set(xy)) == len(xy)  # no repeated points
    page = PageRecord(1, "x.png", 300, 200)
    back = instance_mask(Instance("a", (0, 0, 1, 1), polygons=[poly]), page.height, page.width)
    assert (back != m).sum() <= 10  # the same region, give or take the corner pixels


def test_a_synth_cache_cut_short_is_drawn_again(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cfg = DetectDataConfig(source="synth", synth_pages=2, synth_size=64)
    from convbench.detection.data import synth_dir

    partial = synth_dir(cfg)  # pages drawn, killed before annotations.json was written
    partial.mkdir(parents=True)
    (partial / "page_0000.png").write_bytes(b"half a page")
    ds = load_dataset(cfg)
    assert len(ds.pages) == 2 and (partial / "annotations.json").is_file()
