"""Read and write PAGE-XML (PRImA PAGE, 2019-07-15 schema; older namespaces are read too).

A region's *key* is its element name plus an optional subtype: ``MusicRegion``,
``TextRegion:drop-capital`` (from the ``type`` attribute) or ``TextRegion:lyrics`` (from
``custom="structure {type:lyrics;}"``, the PAGE way to name types the schema does not list).
A region map turns keys into class names; the most specific key wins.

>>> region_key("TextRegion", {"type": "paragraph", "custom": "structure {type:lyrics;}"})
'TextRegion:lyrics'
>>> ds = read_pagexml("pages/page", region_map=DEFAULT_REGION_MAP)   # doctest: +SKIP
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

from ..atomic import atomic_write
from ..errors import DataError
from .dataset import (
    DetectionDataset,
    Instance,
    IssueLog,
    PageRecord,
    check_instance,
    instance_mask,
    mask_to_polygons,
    polygon_bbox,
    polygons_area,
)

NAMESPACE = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"
SCHEMA = f"{NAMESPACE} {NAMESPACE}/pagecontent.xsd"
XSI = "http://www.w3.org/2001/XMLSchema-instance"

# Music manuscripts: staves are MusicRegions, decorated initials are the schema's own
# "drop-capital" text type, lyrics lines are text regions typed through `custom`.
DEFAULT_REGION_MAP: dict[str, str] = {
    "MusicRegion": "staff",
    "TextRegion:lyrics": "lyrics",
    "TextRegion:drop-capital": "drop-capital",
}

# Values the 2019 schema allows in @type; other subtypes are written through @custom.
_SCHEMA_TYPES = {
    "TextRegion": {"paragraph", "heading", "caption", "header", "footer", "page-number",
                   "drop-capital", "credit", "floating", "signature-mark", "catch-word",
                   "marginalia", "footnote", "footnote-continued", "endnote", "TOC-entry",
                   "list-label", "other"},
    "GraphicRegion": {"logo", "letterhead", "decoration", "frame", "handwritten-annotation",
                      "stamp", "signature", "barcode", "paper-grow", "punch-hole", "other"},
    "ChartRegion": {"bar", "line", "pie", "scatter", "surface", "other"},
}
_CUSTOM_TYPE = re.compile(r"structure\s*\{[^}]*?type\s*:\s*([^;}\s]+)")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def region_key(element: str, attrib: dict[str, str]) -> str:
    """The mapping key of a region element: ``Element`` or ``Element:subtype``."""
    m = _CUSTOM_TYPE.search(attrib.get("custom", ""))
    subtype = m.group(1) if m else attrib.get("type")
    return f"{element}:{subtype}" if subtype else element


def read_pagexml(source: str | Path | list[Path], region_map: dict[str, str] | None = None,
                 image_dir: str | Path | None = None, classes: list[str] | None = None,
                 strict: bool = False) -> DetectionDataset:
    """Read PAGE-XML files (a folder of ``*.xml``, one file, or a list) into a data set.

    ``region_map`` maps region keys to classes (default :data:`DEFAULT_REGION_MAP`);
    regions with unmapped keys are skipped and counted as ``unknown class``. Images are
    looked up in ``image_dir``, else beside the XML, else in the XML folder's parent (the
    usual ``images/page/*.xml`` layout).
    """
    region_map = dict(region_map or DEFAULT_REGION_MAP)
    files = _xml_files(source)
    names = list(classes) if classes is not None else list(dict.fromkeys(region_map.values()))
    log = IssueLog(strict)
    root: Path | None = Path(image_dir) if image_dir is not None else None
    pages = []
    for idx, xml in enumerate(files, start=1):
        page_el, attrs = _parse(xml)
        fname = attrs.get("imageFilename", "")
        if root is None:
            root = next((d for d in (xml.parent, xml.parent.parent) if (d / fname).is_file()),
                        xml.parent)
        if not fname or not (root / fname).is_file():
            log.add("missing image", f"{xml}: image {fname!r} not found under {root}")
            continue
        try:
            page = PageRecord(idx, fname, int(attrs["imageWidth"]), int(attrs["imageHeight"]))
        except (KeyError, ValueError):
            raise DataError(f"{xml}: <Page> needs imageWidth and imageHeight.") from None
        for el in page_el.iter():
            element = _local(el.tag)
            if not element.endswith("Region") or el is page_el:
                continue
            inst = _region(el, element, region_map, names, page, f"{xml.name} region "
                           f"{el.get('id', '?')}", log)
            if inst is not None:
                page.instances.append(inst)
        pages.append(page)
    ds = DetectionDataset(root or Path("."), names, pages)
    ds.issues, ds.notes = log.counts, log.notes
    return ds


def _xml_files(source: str | Path | list[Path]) -> list[Path]:
    if isinstance(source, list):
        files = [Path(p) for p in source]
    else:
        source = Path(source)
        if source.is_dir():
            files = sorted(source.glob("*.xml"))
        elif source.is_file():
            files = [source]
        else:
            raise DataError(f"PAGE-XML path {str(source)!r} not found. Give a folder of .xml "
                            "files or one file.")
    if not files:
        raise DataError(f"No .xml files in {str(source)!r}. Point to the folder of PAGE-XML "
                        "files (often called 'page').")
    return files


def _parse(xml: Path) -> tuple[ET.Element, dict[str, str]]:
    try:
        tree = ET.parse(xml)
    except (ET.ParseError, OSError) as err:
        raise DataError(f"{xml}: not readable XML ({err}).") from None
    page = next((el for el in tree.getroot().iter() if _local(el.tag) == "Page"), None)
    if page is None or _local(tree.getroot().tag) != "PcGts":
        raise DataError(f"{xml}: not a PAGE-XML file (expected <PcGts> with a <Page>).")
    return page, dict(page.attrib)


def _region(el: ET.Element, element: str, region_map: dict[str, str], names: list[str],
            page: PageRecord, where: str, log: IssueLog) -> Instance | None:
    key = region_key(element, el.attrib)
    label = region_map.get(key, region_map.get(element))
    if label is None or label not in names:
        log.add("unknown class", f"{where}: {key} is not mapped to a class (map it in "
                "data.region_map)")
        return None
    coords = next((c for c in el if _local(c.tag) == "Coords"), None)
    poly = _points(coords) if coords is not None else []
    if len(poly) < 6:
        log.add("empty polygon", f"{where}: Coords has fewer than 3 points")
        return None
    conf = coords.get("conf") if coords is not None else None
    inst = Instance(label, polygon_bbox([poly]), [poly],
                    area=polygons_area([poly], page.height, page.width),
                    score=None if conf is None else float(conf))
    return check_instance(inst, page, where, log)


def _points(coords: ET.Element) -> list[float]:
    text = coords.get("points")
    try:
        if text is not None:
            return [float(v) for pair in text.split() for v in pair.split(",")]
        # PAGE 2010 stored <Point x= y=/> children instead of @points.
        return [float(p.get(a)) for p in coords if _local(p.tag) == "Point" for a in ("x", "y")]
    except (TypeError, ValueError):
        return []


def write_pagexml(ds: DetectionDataset, out_dir: str | Path,
                  region_map: dict[str, str] | None = None,
                  created: str | None = None) -> list[Path]:
    """Write one PAGE-XML file per page (``<image stem>.xml``) into ``out_dir``.

    Each class is written as the first key of ``region_map`` that maps to it. A mask given
    as RLE, or as several polygons, is written as its largest outer polygon (PAGE regions
    have one outline). ``created`` fills the Metadata dates (default: now, UTC); give a fixed
    one for byte-reproducible output.

    >>> write_pagexml(ds, "out/page")   # doctest: +SKIP
    [PosixPath('out/page/page_0000.xml'), ...]
    """
    region_map = dict(region_map or DEFAULT_REGION_MAP)
    created = created or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    spec = {}
    for key, label in region_map.items():
        spec.setdefault(label, key)
    missing = [c for c in ds.classes if c not in spec]
    if missing:
        raise DataError(f"No PAGE region type for classes {missing}: add them to the region "
                        "map, e.g. 'TextRegion:" + missing[0] + "'.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ET.register_namespace("", NAMESPACE)
    written = []
    for page in ds.pages:
        path = out / (Path(page.file_name).stem + ".xml")
        tree = _page_tree(page, spec, created)
        atomic_write(path, lambda tmp, tree=tree: tree.write(tmp, encoding="UTF-8",
                                                              xml_declaration=True))
        written.append(path)
    return written


def _page_tree(page: PageRecord, spec: dict[str, str], created: str) -> ET.ElementTree:
    ns = f"{{{NAMESPACE}}}"
    root = ET.Element(f"{ns}PcGts", {f"{{{XSI}}}schemaLocation": SCHEMA})
    meta = ET.SubElement(root, f"{ns}Metadata")
    ET.SubElement(meta, f"{ns}Creator").text = "convbench"
    ET.SubElement(meta, f"{ns}Created").text = created
    ET.SubElement(meta, f"{ns}LastChange").text = created
    page_el = ET.SubElement(root, f"{ns}Page", {
        "imageFilename": page.file_name, "imageWidth": str(page.width),
        "imageHeight": str(page.height)})
    for n, inst in enumerate(page.instances, start=1):
        element, _, subtype = spec[inst.label].partition(":")
        attrs = {"id": f"r{n}"}
        if subtype and subtype in _SCHEMA_TYPES.get(element, ()):
            attrs["type"] = subtype
        elif subtype:
            if element in _SCHEMA_TYPES:
                attrs["type"] = "other"
            attrs["custom"] = f"structure {{type:{subtype};}}"
        region = ET.SubElement(page_el, f"{ns}{element}", attrs)
        coords = {"points": _format_points(_outline(inst, page))}
        if inst.score is not None:
            coords["conf"] = f"{inst.score:.6g}"
        ET.SubElement(region, f"{ns}Coords", coords)
    ET.indent(root)
    return ET.ElementTree(root)


def _outline(inst: Instance, page: PageRecord) -> list[float]:
    if len(inst.polygons) == 1:
        return inst.polygons[0]
    if inst.polygons or inst.rle is not None:
        polys = mask_to_polygons(instance_mask(inst, page.height, page.width))
        if polys:
            return polys[0]
    x, y, w, h = inst.bbox
    return [x, y, x + w, y, x + w, y + h, x, y + h]


def _format_points(poly: list[float]) -> str:
    # PAGE coordinates are integers (pixel indices).
    return " ".join(f"{round(poly[i])},{round(poly[i + 1])}" for i in range(0, len(poly), 2))
