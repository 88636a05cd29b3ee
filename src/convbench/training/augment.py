"""Batch preparation on the device: uint8 → float, channel/size adaptation, augmentation,
normalisation — as whole-batch tensor ops, so the cores train the network instead of running
per-image PIL transforms.

>>> import torch
>>> from convbench.config import AugmentConfig
>>> prep = BatchPrep(AugmentConfig(preset="standard"), in_channels=1, channels=1, side=28,
...                  mean=(0.5,), std=(0.25,), device=torch.device("cpu"))
>>> x = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
>>> prep(x, train=True, generator=torch.Generator().manual_seed(0)).shape
torch.Size([4, 1, 28, 28])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..config import AugmentConfig

# A channel whose train std is below one grey level (0..1 scale) carries no information to
# scale: dividing by it would blow rounding noise up (or, at exactly 0, make every input NaN,
# which then looks like a diverged run). Such a channel is centred and left unscaled.
MIN_STD = 1.0 / 255.0


@dataclass(frozen=True)
class AugmentPlan:
    crop_padding: int = 0
    hflip: bool = False
    vflip: bool = False
    rotate_deg: float = 0.0
    erase_p: float = 0.0
    mixup_alpha: float | None = None
    cutmix_alpha: float | None = None
    mix_p: float = 1.0

    @property
    def active(self) -> bool:
        """Whether any per-image augmentation runs (mixing is :attr:`mixes`)."""
        return bool(
            self.crop_padding or self.hflip or self.vflip or self.rotate_deg or self.erase_p
        )

    @property
    def mixes(self) -> bool:
        """Whether batches are mixed (mixup or cutmix), i.e. targets become soft."""
        return bool((self.mixup_alpha or self.cutmix_alpha) and self.mix_p > 0)


def _preset(name: str, side: int) -> AugmentPlan:
    pad = max(2, side // 8)
    return {
        "none": AugmentPlan(),
        "flip": AugmentPlan(hflip=True),
        "standard": AugmentPlan(crop_padding=pad, hflip=True),
        "strong": AugmentPlan(crop_padding=pad, hflip=True, rotate_deg=15.0, erase_p=0.25),
    }[name]


def plan_for(cfg: AugmentConfig, side: int) -> AugmentPlan:
    """The preset for images of ``side`` px, with any explicitly set field taking precedence."""
    base = _preset(cfg.preset, side)
    explicit = {k: v for k, v in cfg.model_dump(exclude={"preset"}).items() if v is not None}
    return AugmentPlan(**{**base.__dict__, **explicit})


def _rand(n: int, g: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=g)


def random_crop(x: torch.Tensor, pad: int, g: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``pad`` and take one random crop per image (an integer translation)."""
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=g).to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=g).to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chan, rows, cols]


def random_flip(x: torch.Tensor, dim: int, g: torch.Generator) -> torch.Tensor:
    mask = (_rand(x.shape[0], g) < 0.5).to(x.device)[:, None, None, None]
    return torch.where(mask, x.flip(dim), x)


def random_rotate(x: torch.Tensor, max_deg: float, g: torch.Generator) -> torch.Tensor:
    angle = (_rand(x.shape[0], g) * 2 - 1) * math.radians(max_deg)
    cos, sin = angle.cos(), angle.sin()
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_erase(x: torch.Tensor, p: float, g: torch.Generator) -> torch.Tensor:
    """Random erasing (Zhong et al.): a rectangle of 2–33 % of the area, aspect 0.3–3.3, set to 0
    (the mean after normalisation)."""
    n, _, h, w = x.shape
    area = (0.02 + 0.31 * _rand(n, g)) * h * w
    aspect = torch.exp(math.log(0.3) + (math.log(3.3) - math.log(0.3)) * _rand(n, g))
    eh = (area * aspect).sqrt().clamp(1, h).floor()
    ew = (area / aspect).sqrt().clamp(1, w).floor()
    y0 = (_rand(n, g) * (h - eh + 1)).floor()
    x0 = (_rand(n, g) * (w - ew + 1)).floor()
    on = _rand(n, g) < p
    ys = torch.arange(h)[None, :]
    xs = torch.arange(w)[None, :]
    in_y = (ys >= y0[:, None]) & (ys < (y0 + eh)[:, None])
    in_x = (xs >= x0[:, None]) & (xs < (x0 + ew)[:, None])
    mask = (in_y[:, :, None] & in_x[:, None, :] & on[:, None, None]).to(x.device)
    return x.masked_fill(mask[:, None], 0.0)


def _beta(alpha: float, g: torch.Generator) -> float:
    """A Beta(alpha, alpha) draw from the epoch's generator (torch's Beta takes none)."""
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=g))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def paste_box(x: torch.Tensor, perm: torch.Tensor, lam: float,
              g: torch.Generator) -> tuple[torch.Tensor, float]:
    """CutMix (Yun et al.): a box of about ``1 - lam`` of the area, at a random centre (clipped
    at the border), pasted from image ``perm[i]`` into image ``i``; returns the batch and the
    share of each image that is still its own (the label weight).

    >>> x = torch.zeros(2, 1, 4, 4); x[1] = 1
    >>> out, kept = paste_box(x, torch.tensor([1, 0]), 0.75, torch.Generator().manual_seed(0))
    >>> float(out[0].mean()) == 1 - kept
    True
    """
    h, w = x.shape[-2:]
    r = math.sqrt(1.0 - lam)
    ch, cw = int(h * r), int(w * r)
    cy = int(torch.randint(0, h, (1,), generator=g))
    cx = int(torch.randint(0, w, (1,), generator=g))
    y0, y1 = max(cy - ch // 2, 0), min(cy + ch - ch // 2, h)
    x0, x1 = max(cx - cw // 2, 0), min(cx + cw - cw // 2, w)
    out = x.clone()
    out[:, :, y0:y1, x0:x1] = x[perm][:, :, y0:y1, x0:x1]
    return out, 1.0 - (y1 - y0) * (x1 - x0) / (h * w)


def mix_batch(x: torch.Tensor, y: torch.Tensor, num_classes: int, plan: AugmentPlan,
              g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup (Zhang et al.) or CutMix of a prepared batch with a shuffled copy of itself:
    ``(batch, soft targets)``, the targets blended in the same proportion as the pixels.
    With probability ``1 - plan.mix_p`` the batch is left as it is (one-hot targets); with
    both alphas set, each mixed batch is one or the other, half and half.

    >>> plan = AugmentPlan(mixup_alpha=0.4)
    >>> x, t = mix_batch(torch.rand(8, 1, 4, 4), torch.arange(8) % 3, 3, plan,
    ...                  torch.Generator().manual_seed(0))
    >>> x.shape, torch.allclose(t.sum(1), torch.ones(8))
    (torch.Size([8, 1, 4, 4]), True)
    """
    target = F.one_hot(y, num_classes).to(x.dtype)
    kinds = [(k, a) for k, a in (("mixup", plan.mixup_alpha), ("cutmix", plan.cutmix_alpha)) if a]
    if not kinds or float(_rand(1, g)) >= plan.mix_p:
        return x, target
    kind, alpha = kinds[int(_rand(1, g) < 0.5)] if len(kinds) == 2 else kinds[0]
    perm = torch.randperm(len(x), generator=g).to(x.device)
    lam = _beta(alpha, g)
    if kind == "cutmix":
        x, lam = paste_box(x, perm, lam, g)
    else:
        x = x * lam + x[perm] * (1.0 - lam)
    return x, target * lam + target[perm] * (1.0 - lam)


class BatchPrep:
    """Turns a uint8 batch into the float batch the model wants, on the target device."""

    def __init__(
        self,
        augment: AugmentConfig,
        *,
        in_channels: int,
        channels: int,
        side: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        device: torch.device,
        channels_last: bool = False,
    ):
        self.plan = plan_for(augment, side)
        self.in_channels, self.channels, self.side = in_channels, channels, side
        self.device = device
        self.channels_last = channels_last
        mean_t = torch.tensor(mean, dtype=torch.float32)
        std_t = torch.tensor(std, dtype=torch.float32)
        if channels != in_channels:  # statistics follow the channel conversion
            mean_t, std_t = (
                self._convert_channels(mean_t[None, :, None, None])[0, :, 0, 0],
                self._convert_channels(std_t[None, :, None, None])[0, :, 0, 0],
            )
        constant = std_t < MIN_STD
        #: 0-based indices of the (model-input) channels that are constant in the training data
        self.constant_channels: list[int] = constant.nonzero().flatten().tolist()
        std_t = torch.where(constant, torch.ones_like(std_t), std_t)
        # Fold /255 and normalisation into one multiply-add.
        self.scale = (1.0 / (255.0 * std_t)).view(1, -1, 1, 1).to(device)
        self.shift = (-mean_t / std_t).view(1, -1, 1, 1).to(device)

    def constant_note(self) -> str | None:
        """A run-log line naming the constant channels (see ``MIN_STD``), or None."""
        if not self.constant_channels:
            return None
        many = len(self.constant_channels) > 1
        names = ", ".join(str(c + 1) for c in self.constant_channels)
        return (f"data: channel{'s' * many} {names} {'are' if many else 'is'} constant in the "
                "training images (std 0): centred "
                "but not scaled (dividing by its std would make every input NaN)")

    def _convert_channels(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_channels == 1 and self.channels == 3:
            return x.expand(-1, 3, -1, -1)
        if self.in_channels == 3 and self.channels == 1:
            weights = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype)
            return (x * weights.view(1, 3, 1, 1)).sum(1, keepdim=True)
        return x

    def __call__(
        self, x: torch.Tensor, *, train: bool, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True).float()
        x = self._convert_channels(x)
        if x.shape[-1] != self.side or x.shape[-2] != self.side:
            x = F.interpolate(
                x,
                size=(self.side, self.side),
                mode="bilinear",
                align_corners=False,
                antialias=x.shape[-1] > self.side,
            )
        x = x * self.scale + self.shift
        if train and self.plan.active:
            x = self.augment(x, generator or torch.Generator().manual_seed(0))
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def augment(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        plan = self.plan
        if plan.crop_padding:
            x = random_crop(x, plan.crop_padding, g)
        if plan.hflip:
            x = random_flip(x, 3, g)
        if plan.vflip:
            x = random_flip(x, 2, g)
        if plan.rotate_deg:
            x = random_rotate(x, plan.rotate_deg, g)
        if plan.erase_p:
            x = random_erase(x, plan.erase_p, g)
        return x
