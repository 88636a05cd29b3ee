"""Image files → uint8 batches in a run's training-data format, decoded the way the ``folder``
data set decodes them (EXIF rotation, wide grey scaled, bilinear resize; the same code), so a
new picture reaches the network as the training pictures did.

>>> paths = image_paths(["photos/"])                         # doctest: +SKIP
>>> for batch in decoded_batches(paths, channels=1, size=(28, 28), batch_size=256):
...     batch.x.shape, batch.skipped                          # doctest: +SKIP
(torch.Size([20, 1, 28, 28]), [])
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.folder import IMAGE_EXTS, decoder, images_in, parallel_map
from ..errors import DataError


@dataclass
class Batch:
    """Decoded images (uint8 N×C×H×W), their files, and the files that could not be read."""

    x: torch.Tensor
    paths: list[Path]
    skipped: list[tuple[Path, str]]


def image_paths(inputs: list[str | Path]) -> list[Path]:
    """Files as given, folders expanded to the images under them (sorted).

    A path that does not exist and a folder without images are errors; a given file with an
    unusual extension is still tried (and skipped if it is not an image).
    """
    if not inputs:
        raise DataError("Give one or more image files or folders.")
    paths: list[Path] = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            found = images_in(path)
            if not found:
                raise DataError(f"{path}: no images found (looked for "
                                f"{', '.join(sorted(IMAGE_EXTS))} files).")
            paths += found
        elif path.is_file():
            paths.append(path)
        else:
            raise DataError(f"{path}: no such file or folder.")
    return paths


def decoded_batches(paths: list[Path], *, channels: int, size: tuple[int, int],
                    batch_size: int) -> Iterator[Batch]:
    """Decode ``paths`` in batches of ``batch_size`` files (in a thread pool)."""
    decode = decoder(tuple(size), grey=channels == 1)
    for start in range(0, len(paths), batch_size):
        chunk = paths[start:start + batch_size]
        arrays = parallel_map(decode, chunk)
        ok = [(p, a) for p, a in zip(chunk, arrays, strict=True) if not isinstance(a, Exception)]
        skipped = [(p, f"{a.__class__.__name__}: {a}") for p, a in zip(chunk, arrays, strict=True)
                   if isinstance(a, Exception)]
        x = (torch.from_numpy(np.stack([a for _, a in ok])) if ok
             else torch.zeros(0, channels, *size, dtype=torch.uint8))
        yield Batch(x, [p for p, _ in ok], skipped)
