"""New image files are decoded into the training data's channels and size, in batches."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from convbench.errors import DataError
from convbench.inference.images import decoded_batches, image_paths


def test_grey_and_colour_files_take_the_training_datas_format(tmp_path):
    grey = np.tile(np.arange(0, 250, 10, dtype=np.uint8), (25, 1))
    Image.fromarray(grey).save(tmp_path / "grey.png")
    Image.fromarray(np.full((40, 30, 3), (200, 100, 50), np.uint8)).save(tmp_path / "rgb.png")
    (tmp_path / "sub").mkdir()
    Image.fromarray(grey).save(tmp_path / "sub" / "deeper.bmp")
    paths = image_paths([tmp_path])
    assert [p.name for p in paths] == ["grey.png", "rgb.png", "deeper.bmp"]  # sorted, recursive

    (rgb_batch,) = decoded_batches(paths, channels=3, size=(25, 25), batch_size=8)
    assert rgb_batch.x.shape == (3, 3, 25, 25) and not rgb_batch.skipped
    first = rgb_batch.x[[p.name for p in rgb_batch.paths].index("grey.png")]
    assert (first[0] == first[1]).all() and (first[1] == first[2]).all()  # grey → RGB repeat

    grey_batches = list(decoded_batches(paths, channels=1, size=(25, 25), batch_size=2))
    assert [len(b.x) for b in grey_batches] == [2, 1]  # batches of at most batch_size files
    luma = round(0.299 * 200 + 0.587 * 100 + 0.114 * 50)
    colour = next(b.x[b.paths.index(p)] for b in grey_batches for p in b.paths
                  if p.name == "rgb.png")
    assert colour.shape == (1, 25, 25) and abs(int(colour[0, 12, 12]) - luma) <= 1


def test_inputs_that_are_not_there_or_hold_no_images(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        image_paths([tmp_path / "missing.png"])
    (tmp_path / "readme.txt").write_text("text")
    with pytest.raises(DataError, match="no images found"):
        image_paths([tmp_path])
