"""Pages as tensors at the model's scale, and batches of (images, targets) for torchvision.

Images are decoded and resized once (so the model's own resize is an identity) and kept in
memory as uint8; masks are kept as run-length encodings at that scale and decoded per batch,
which keeps memory small even for pages with many regions.

>>> data = PageTensors(ds, min_size=448, max_size=640, masks=True)   # doctest: +SKIP
>>> images, targets = data.batch([0, 1], flips=[False, True])       # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from pycocotools import mask as mask_utils

from ..errors import DataError
from .dataset import DetectionDataset, Instance, PageRecord, instance_mask


def model_scale(width: int, height: int, min_size: int, max_size: int) -> float:
    """torchvision's resize rule: shorter side to ``min_size`` unless the longer exceeds
    ``max_size``.

    >>> model_scale(336, 448, min_size=224, max_size=1000)
    0.6666666666666666
    """
    return min(min_size / min(width, height), max_size / max(width, height))


def load_image(path) -> Image.Image:
    """An RGB PIL image, or :class:`DataError` naming the unreadable file."""
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, UnidentifiedImageError) as err:
        raise DataError(f"Cannot read image {str(path)!r} ({err}). Replace or remove it.") from None


@dataclass
class PageTensor:
    page: PageRecord
    image: torch.Tensor  # uint8 3×h×w at model scale
    scale_x: float
    scale_y: float
    boxes: torch.Tensor  # float N×4, x1 y1 x2 y2 at model scale
    labels: torch.Tensor  # int64 N, 1-based class index
    rles: list[dict]  # compressed RLE per instance at model scale (pycocotools form)


class PageTensors:
    """The pages of a data set, ready for a torchvision detection model."""

    def __init__(self, ds: DetectionDataset, min_size: int, max_size: int, masks: bool):
        self.classes = ds.classes
        self.masks = masks
        self.items = [self._load(ds, p, min_size, max_size) for p in ds.pages]

    def __len__(self) -> int:
        return len(self.items)

    def _load(self, ds: DetectionDataset, page: PageRecord, min_size: int, max_size: int
              ) -> PageTensor:
        im = load_image(ds.image_path(page))
        if im.size != (page.width, page.height):
            raise DataError(f"{ds.image_path(page)} is {im.width}×{im.height} but its "
                            f"annotation says {page.width}×{page.height}.")
        s = model_scale(page.width, page.height, min_size, max_size)
        w, h = max(1, round(page.width * s)), max(1, round(page.height * s))
        if (w, h) != im.size:
            im = im.resize((w, h), Image.BILINEAR)
        image = torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).contiguous()
        sx, sy = w / page.width, h / page.height
        kept = [i for i in page.instances if not i.iscrowd]
        boxes = torch.tensor([[x * sx, y * sy, (x + bw) * sx, (y + bh) * sy]
                              for x, y, bw, bh in (i.bbox for i in kept)],
                             dtype=torch.float32).reshape(-1, 4)
        # torchvision rejects boxes without width or height; slivers get one pixel.
        boxes[:, 2] = torch.maximum(boxes[:, 2], boxes[:, 0] + 1)
        boxes[:, 3] = torch.maximum(boxes[:, 3], boxes[:, 1] + 1)
        labels = torch.tensor([self.classes.index(i.label) + 1 for i in kept], dtype=torch.int64)
        rles = [self._scaled_rle(i, page, w, h) for i in kept] if self.masks else []
        return PageTensor(page, image, sx, sy, boxes, labels, rles)

    @staticmethod
    def _scaled_rle(inst: Instance, page: PageRecord, w: int, h: int) -> dict:
        if inst.polygons and inst.rle is None:
            sx, sy = w / page.width, h / page.height
            polys = [[v * (sx if k % 2 == 0 else sy) for k, v in enumerate(p)]
                     for p in inst.polygons]
            return mask_utils.merge(mask_utils.frPyObjects(polys, h, w))
        full = torch.from_numpy(instance_mask(inst, page.height, page.width))[None, None]
        small = F.interpolate(full.float(), size=(h, w), mode="nearest")[0, 0]
        return mask_utils.encode(np.asfortranarray(small.numpy().astype(np.uint8)))

    def batch(self, indices: list[int], flips: list[bool] | None = None
              ) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
        """Float images in 0..1 and their targets (boxes, labels, masks when enabled)."""
        images, targets = [], []
        for k, idx in enumerate(indices):
            item = self.items[idx]
            image = item.image.float().div_(255)
            boxes = item.boxes.clone()
            target: dict[str, torch.Tensor] = {"labels": item.labels}
            masks = None
            if self.masks:
                h, w = image.shape[-2:]
                masks = (torch.from_numpy(mask_utils.decode(item.rles)).permute(2, 0, 1)
                         if item.rles else torch.zeros((0, h, w), dtype=torch.uint8))
            if flips is not None and flips[k]:
                width = image.shape[-1]
                image = image.flip(-1)
                boxes[:, [0, 2]] = width - boxes[:, [2, 0]]
                if masks is not None:
                    masks = masks.flip(-1)
            target["boxes"] = boxes
            if masks is not None:
                target["masks"] = masks
            images.append(image)
            targets.append(target)
        return images, targets
