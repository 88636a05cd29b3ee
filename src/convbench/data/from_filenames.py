"""A labelled image folder from file names (the clip-art study's Algorithm 1).

File names and class names are split into words (separators, camelCase and digits split
them; case is ignored) and stop-words are dropped; every image is linked (or copied) into the
folder of every class that shares a word with its name, so ``terrier-1.png`` lands in
``terrier/`` — and ``dog.png`` in both ``dog/`` and ``hot dog/``, the ambiguity the study
cured with ``single_word``. Classes with fewer than ``min_images`` images are dropped. The
result is a ``root/<class>/<image>`` tree for ``--dataset folder --data-dir OUT``.

The classes file has one class per line; ``#`` starts a comment; a line may list synonyms
separated by commas (all contribute words, the first names the folder), and a leading
WordNet id (``n01440764 tench, Tinca tinca``, as ImageNet's list) is ignored.

>>> tokens("GreatWhite_shark-02.png")
['great', 'white', 'shark', 'png']
"""

from __future__ import annotations

import os
import re
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp"}
WORDNET_ID = re.compile(r"^n\d{8}\s+")
Mode = Literal["link", "symlink", "copy"]


def stop_words() -> frozenset[str]:
    """scikit-learn's English stop-word list (318 words: "the", "of", "and", …)."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
    return frozenset(ENGLISH_STOP_WORDS)


def tokens(text: str, drop: frozenset[str] = frozenset()) -> list[str]:
    """Lower-case words of ``text`` (letters only, 2+ characters), without ``drop``.

    >>> tokens("the_pelican-and-fish3", drop=frozenset({"the", "and"}))
    ['pelican', 'fish']
    """
    text = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", text)
    words = re.findall(r"[^\W\d_]+", text.lower())
    return [w for w in words if len(w) > 1 and w not in drop]


@dataclass
class ClassName:
    """One class of the classes file: its folder name and the words that select it."""

    folder: str
    words: frozenset[str]
    single_word: bool


def read_classes(path: str | Path, drop: frozenset[str]) -> list[ClassName]:
    """Parse the classes file (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Classes file {str(path)!r} not found: give a text file with one "
                        "class name per line.")
    classes, seen = [], set()
    for line in path.read_text(encoding="utf-8").splitlines():
        line = WORDNET_ID.sub("", line.split("#", 1)[0]).strip()
        if not line:
            continue
        names = [n.strip() for n in line.split(",") if n.strip()]
        folder = re.sub(r"[\\/:*?\"<>|]", "_", names[0])
        words = frozenset(w for n in names for w in tokens(n, drop))
        if folder in seen or not words:
            continue
        seen.add(folder)
        classes.append(ClassName(folder, words, bool(re.fullmatch(r"[^\W\d_]+", names[0]))))
    if not classes:
        raise DataError(f"{path} names no classes (one per line; '#' starts a comment).")
    return classes


@dataclass
class FromFilenamesResult:
    """What :func:`from_filenames` did: images per kept class, images in several classes,
    classes dropped (and why), images matching no class."""

    counts: dict[str, int]
    multi: dict[str, list[str]]
    dropped: dict[str, str] = field(default_factory=dict)
    unmatched: int = 0
    images: int = 0
    out: Path = Path()


def _images(src: Path) -> list[Path]:
    if not src.is_dir():
        raise DataError(f"Source folder {str(src)!r} not found.")
    return sorted(p for p in src.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _place(source: Path, target: Path, mode: Mode) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if mode == "symlink":
        target.symlink_to(source.resolve())
        return
    if mode == "link":
        try:
            os.link(source, target)
            return
        except OSError:  # another file system, or links not allowed: copy instead
            pass
    shutil.copy2(source, target)


def from_filenames(src: str | Path, classes_file: str | Path, out: str | Path, *,
                   min_images: int = 25, single_word: bool = False, mode: Mode = "link",
                   extra_stop_words: list[str] | None = None) -> FromFilenamesResult:
    """Build ``out/<class>/<image>`` from the images under ``src`` and a classes file.

    >>> r = from_filenames("clipart/", "classes.txt", "noisy/", min_images=25)  # doctest: +SKIP
    >>> r.counts["pelican"]                                                     # doctest: +SKIP
    59
    """
    src, out = Path(src), Path(out)
    if out.exists() and any(out.iterdir()):
        raise DataError(f"Output folder {str(out)!r} is not empty; give a new folder.")
    if min_images < 1:
        raise DataError("--min-images must be at least 1.")
    drop = stop_words() | {w.lower() for w in extra_stop_words or []}
    classes = read_classes(classes_file, drop)
    by_word: dict[str, list[int]] = defaultdict(list)
    for i, c in enumerate(classes):
        for w in c.words:
            by_word[w].append(i)
    images = _images(src)
    members: dict[int, list[Path]] = defaultdict(list)
    unmatched = 0
    for image in images:
        hits = sorted({i for w in tokens(image.stem, drop) for i in by_word.get(w, ())})
        unmatched += not hits
        for i in hits:
            members[i].append(image)
    dropped: dict[str, str] = {}
    kept: list[int] = []
    for i, c in enumerate(classes):
        n = len(members.get(i, []))
        if single_word and not c.single_word:
            dropped[c.folder] = "more than one word"
        elif n == 0:  # listed too, so a misspelt class name is noticed
            dropped[c.folder] = "no image matched"
        elif n < min_images:
            dropped[c.folder] = f"{n} image{'s' * (n != 1)} < {min_images}"
        else:
            kept.append(i)
    if not kept:
        raise DataError(f"No class has {min_images} or more images ({len(dropped)} classes "
                        "matched fewer); lower --min-images"
                        + (" or drop --single-word." if single_word else "."))
    where: dict[Path, list[str]] = defaultdict(list)
    for i in kept:
        folder = out / classes[i].folder
        taken: set[str] = set()
        for image in members[i]:
            name = image.name
            if name in taken:  # same file name in two source sub-folders
                name = "__".join(image.relative_to(src).parts)
            taken.add(name)
            _place(image, folder / name, mode)
            where[image].append(classes[i].folder)
    out.mkdir(parents=True, exist_ok=True)
    return FromFilenamesResult(
        counts={classes[i].folder: len(members[i]) for i in kept},
        multi={str(p.relative_to(src)): c for p, c in where.items() if len(c) > 1},
        dropped=dropped, unmatched=unmatched, images=len(images), out=out)
