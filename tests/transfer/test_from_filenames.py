"""`convbench data from-filenames` on a fixture of real image files (PNG and JPEG)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from convbench.config import DataConfig
from convbench.data import load_data
from convbench.data.from_filenames import from_filenames, read_classes, stop_words, tokens
from convbench.errors import DataError

NAMES = {  # file → what it shows (its colour, so the class folder can be checked)
    "terrier-1.png": 40, "Terrier_2.png": 41, "happyTerrier3.jpg": 42,
    "hot-dog.png": 80, "dog_and_cat.png": 81, "sleeping-dog.jpg": 82,
    "the-pelican.png": 120, "pelican on a rock.png": 121, "PelicanFlying.png": 122,
    "cat01.png": 160, "a-cat.jpg": 161, "sub/cat01.png": 162,
    "tench.png": 200, "unrelated-thing.png": 220,
}
CLASSES = """# clip-art classes
terrier
hot dog
dog
cat
pelican
n01440764 tench, Tinca tinca
"""


@pytest.fixture
def clipart(tmp_path):
    src = tmp_path / "clipart"
    for name, value in NAMES.items():
        path = src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        img = np.full((12, 12, 3), value, np.uint8)
        Image.fromarray(img).save(path)
    (tmp_path / "classes.txt").write_text(CLASSES)
    return src, tmp_path / "classes.txt"


def test_tokens_split_case_separators_and_digits():
    drop = stop_words()
    assert tokens("happyTerrier3", drop) == ["happy", "terrier"]
    assert tokens("pelican on a rock", drop) == ["pelican", "rock"]
    assert tokens("the-pelican", drop) == ["pelican"]


def test_classes_file_synonyms_and_wordnet_ids(clipart):
    classes = read_classes(clipart[1], stop_words())
    assert [c.folder for c in classes] == ["terrier", "hot dog", "dog", "cat", "pelican", "tench"]
    assert classes[5].words == {"tench", "tinca"}
    assert classes[1].single_word is False and classes[0].single_word is True


def test_images_land_in_every_class_sharing_a_word(clipart, tmp_path):
    src, classes = clipart
    r = from_filenames(src, classes, tmp_path / "noisy", min_images=1)
    assert r.counts == {"terrier": 3, "hot dog": 3, "dog": 3, "cat": 4, "pelican": 3,
                        "tench": 1}
    assert r.unmatched == 1 and r.images == len(NAMES)
    assert r.multi == {"dog_and_cat.png": ["hot dog", "dog", "cat"],
                       "hot-dog.png": ["hot dog", "dog"], "sleeping-dog.jpg": ["hot dog", "dog"]}
    out = tmp_path / "noisy"
    assert sorted(p.name for p in (out / "cat").iterdir()) == [
        "a-cat.jpg", "cat01.png", "dog_and_cat.png", "sub__cat01.png"]  # same name: renamed
    linked = out / "pelican" / "the-pelican.png"
    assert os.stat(linked).st_ino == os.stat(src / "the-pelican.png").st_ino  # hard link


def test_min_images_and_single_word_filters(clipart, tmp_path):
    src, classes = clipart
    r = from_filenames(src, classes, tmp_path / "out", min_images=3, single_word=True,
                       mode="copy")
    assert set(r.counts) == {"terrier", "dog", "cat", "pelican"}
    assert r.dropped == {"hot dog": "more than one word", "tench": "1 image < 3"}
    assert not (tmp_path / "out" / "tench").exists()
    copied = tmp_path / "out" / "pelican" / "the-pelican.png"
    assert os.stat(copied).st_ino != os.stat(src / "the-pelican.png").st_ino


def test_result_is_a_folder_data_set(clipart, tmp_path):
    src, classes = clipart
    from_filenames(src, classes, tmp_path / "ds", min_images=3, single_word=True)
    bundle = load_data(DataConfig(dataset="folder", data_dir=str(tmp_path / "ds"),
                                  val_fraction=0), seed=0)
    assert bundle.classes == ["cat", "dog", "pelican", "terrier"]
    assert len(bundle.train) + len(bundle.test) == 13
    # Every pelican image kept its pixels (values 120-122).
    pelican = bundle.classes.index("pelican")
    for split in (bundle.train, bundle.test):
        x = split.x[split.y == pelican]
        assert x.numel() == 0 or 119 <= int(x.float().mean()) <= 123


def test_refuses_a_non_empty_output(clipart, tmp_path):
    src, classes = clipart
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x.txt").write_text("x")
    with pytest.raises(DataError, match="not empty"):
        from_filenames(src, classes, tmp_path / "busy")


def test_command_line(clipart, cli, tmp_path):
    src, classes = clipart
    proc = cli("data", "from-filenames", str(src), "--classes", str(classes),
               "--out", str(tmp_path / "cli"), "--min-images", "2", "--json", check=True)
    result = json.loads(proc.stdout)
    assert result["counts"]["pelican"] == 3 and "dog_and_cat.png" in result["multi"]
    text = cli("data", "from-filenames", str(src), "--classes", str(classes),
               "--out", str(tmp_path / "cli2"), "--single-word", "--min-images", "2",
               check=True).stdout
    assert "images are in more than one class" in text and "dog_and_cat.png: dog, cat" in text
    failed = cli("data", "from-filenames", str(src), "--classes", str(classes),
                 "--out", str(tmp_path / "cli3"))  # default --min-images 25: nothing left
    assert failed.returncode == 2 and "--min-images" in failed.stderr


def test_a_class_that_matched_no_file_is_listed_among_the_dropped(clipart, tmp_path):
    src, classes = clipart
    (tmp_path / "more.txt").write_text(classes.read_text() + "walrus\n")
    r = from_filenames(src, tmp_path / "more.txt", tmp_path / "out", min_images=3)
    assert r.dropped["walrus"] == "no image matched"
    assert r.dropped["tench"] == "1 image < 3" and "walrus" not in r.counts
