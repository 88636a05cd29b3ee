import numpy as np
import pytest
from PIL import Image

from convbench.config import DataConfig
from convbench.data import load_data
from convbench.data.folder import scan_folder
from convbench.errors import DataError


def _cfg(root, **kw):
    return DataConfig(dataset="folder", data_dir=str(root), **kw)


def test_flat_folder_skips_corrupt_image(image_folder):
    b = load_data(_cfg(image_folder, val_fraction=0), seed=0)
    assert b.name == "folder" and b.classes == ["bird", "cat", "dog"]
    assert b.skipped == 1
    assert any("skipped 1" in n for n in b.notes)
    assert any("broken.png" in n for n in b.notes)
    assert any(str(image_folder) in n for n in b.notes)
    # 15 good images: a stratified 20 % test carve, no val.
    assert (len(b.train), len(b.test)) == (12, 3)
    assert sorted(b.test.y.tolist()) == [0, 1, 2]
    # Most common size wins: the lone 16×10 image was resized to 12×12.
    assert b.image_size == (12, 12) and b.channels == 3
    assert b.train.x.dtype.itemsize == 1


def test_strict_mode_raises_on_corrupt_image(image_folder):
    with pytest.raises(DataError, match="broken.png"):
        load_data(_cfg(image_folder, strict=True), seed=0)


def test_pixels_survive_unchanged_when_no_resize(tmp_path, image_writer):
    root = tmp_path / "r"
    for cls in ("x", "y"):
        (root / cls).mkdir(parents=True)
        for i in range(5):
            image_writer(root / cls / f"{i}.png", (9, 7), seed=i + (10 if cls == "y" else 0))
    b = load_data(_cfg(root, val_fraction=0), seed=0)
    expected = {np.asarray(Image.open(p)).transpose(2, 0, 1).tobytes()
                for p in root.rglob("*.png")}
    got = {img.numpy().tobytes() for split in (b.train, b.test) for img in split.x}
    assert got == expected and b.image_size == (9, 7)


def test_image_size_resizes_everything(image_folder):
    b = load_data(_cfg(image_folder, image_size=5, val_fraction=0), seed=0)
    assert tuple(b.train.x.shape[1:]) == (3, 5, 5) and b.image_size == (5, 5)


def test_all_grey_images_stay_single_channel(split_folder):
    b = load_data(_cfg(split_folder), seed=0)
    assert b.channels == 1 and tuple(b.test.x.shape[1:]) == (1, 8, 8)


def test_split_layout_uses_given_test_and_carves_val(split_folder):
    b = load_data(_cfg(split_folder, val_fraction=0.2), seed=0)
    assert b.classes == ["a", "b"]
    assert (len(b.train), len(b.val), len(b.test)) == (16, 4, 6)
    assert np.bincount(b.val.y.numpy()).tolist() == [2, 2]
    # The test images are exactly those in root/test.
    expected = sorted(np.asarray(Image.open(p)).tobytes()
                      for p in (split_folder / "test").rglob("*.*"))
    assert sorted(x.numpy().tobytes() for x in b.test.x) == expected


def test_given_val_split_is_used(split_folder):
    for cls in ("a", "b"):
        (split_folder / "val" / cls).mkdir(parents=True)
        for p in sorted((split_folder / "train" / cls).iterdir())[:2]:
            p.rename(split_folder / "val" / cls / p.name)
    b = load_data(_cfg(split_folder, val_fraction=0.5), seed=0)
    assert (len(b.train), len(b.val), len(b.test)) == (16, 4, 6)
    assert any("given by the source" in n for n in b.notes)


def test_empty_folder_is_a_data_error(tmp_path):
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(DataError, match="no images"):
        load_data(_cfg(tmp_path / "empty"), seed=0)


def test_missing_folder_and_missing_data_dir(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_data(_cfg(tmp_path / "nope"), seed=0)
    with pytest.raises(DataError, match="--data-dir"):
        load_data(DataConfig(dataset="folder"), seed=0)


def test_sixteen_bit_grey_tiff_is_scaled_not_clipped(tmp_path):
    root = tmp_path / "t"
    for cls, value in (("dark", 1000), ("bright", 60000)):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            image = Image.fromarray(np.full((4, 4), value, np.uint16))
            assert image.mode == "I;16"
            image.save(root / cls / f"{i}.tif")
    b = load_data(_cfg(root, val_fraction=0), seed=0)
    values = {int(x.max()) for split in (b.train, b.test) for x in split.x}
    assert values == {round(1000 * 255 / 65535), round(60000 * 255 / 65535)}


def test_scan_ignores_hidden_and_non_images(image_folder):
    (image_folder / "dog" / ".hidden.png").write_bytes(b"x")
    tree = scan_folder(image_folder)
    assert len(tree["train"]["cat"]) == 6  # 5 images + broken.png; notes.txt ignored
    assert all(not p.name.startswith(".") for p in tree["train"]["dog"])


def test_truncated_image_body_is_skipped_after_header_probe(image_folder):
    path = image_folder / "dog" / "1.jpg"
    path.write_bytes(path.read_bytes()[:200])  # header intact, pixel data cut
    b = load_data(_cfg(image_folder, val_fraction=0), seed=0)
    assert b.skipped == 2
    assert len(b.train) + len(b.test) == 14
    # the log (the run's notes) names every skipped file, not just the first
    assert any("1.jpg" in n for n in b.notes) and any("broken.png" in n for n in b.notes)


def test_a_single_class_is_a_data_error(tmp_path, image_writer):
    (tmp_path / "one" / "cat").mkdir(parents=True)
    for i in range(6):
        image_writer(tmp_path / "one" / "cat" / f"{i}.png", seed=i)
    with pytest.raises(DataError, match="two or more"):
        load_data(_cfg(tmp_path / "one"), seed=0)


def test_train_tells_the_user_images_were_skipped(image_folder, cli):
    proc = cli("train", "--dataset", "folder", "--data-dir", str(image_folder), "--model",
               "B1FL4", "--epochs", "1", "--quiet", check=True)
    assert "note: 1 unreadable image(s) skipped" in proc.stderr
