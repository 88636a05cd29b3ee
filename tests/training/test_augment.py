import torch

from convbench.config import AugmentConfig
from convbench.training.augment import BatchPrep, plan_for, random_crop, random_erase


def prep(preset="none", in_ch=1, ch=1, side=8, **kw):
    return BatchPrep(AugmentConfig(preset=preset, **kw), in_channels=in_ch, channels=ch, side=side,
                     mean=(0.5,) * in_ch, std=(0.25,) * in_ch, device=torch.device("cpu"))


def test_normalises_with_train_statistics():
    x = torch.full((2, 1, 8, 8), 255, dtype=torch.uint8)
    out = prep()(x, train=False)
    assert torch.allclose(out, torch.full_like(out, (1.0 - 0.5) / 0.25))


def test_grey_to_rgb_and_resize():
    x = torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8)
    out = prep(in_ch=1, ch=3, side=16)(x, train=False)
    assert out.shape == (3, 3, 16, 16)
    assert torch.equal(out[:, 0], out[:, 2])


def test_rgb_to_grey():
    x = torch.randint(0, 256, (3, 3, 8, 8), dtype=torch.uint8)
    assert prep(in_ch=3, ch=1)(x, train=False).shape == (3, 1, 8, 8)


def test_crop_is_a_translation_with_zero_fill():
    x = torch.arange(16.0).view(1, 1, 4, 4).repeat(64, 1, 1, 1)
    out = random_crop(x, 1, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    # every crop keeps a 3×3 window of the original, shifted by at most one pixel
    assert (out == 0).any() and not torch.equal(out, x.expand_as(out))
    centre = out[:, 0, 1:3, 1:3]
    assert set(centre.unique().tolist()) <= set(range(16))


def test_augmentation_is_seeded_and_only_in_training():
    p = prep("strong", side=8)
    x = torch.randint(0, 256, (16, 1, 8, 8), dtype=torch.uint8)
    a = p(x, train=True, generator=torch.Generator().manual_seed(3))
    b = p(x, train=True, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert not torch.equal(a, p(x, train=False))


def test_erase_sets_a_rectangle_to_the_mean():
    x = torch.ones(32, 1, 16, 16)
    out = random_erase(x, 1.0, torch.Generator().manual_seed(0))
    erased = (out == 0).flatten(1).sum(1)
    assert (erased > 0).all() and (erased < 16 * 16).all()


def test_explicit_fields_override_preset():
    plan = plan_for(AugmentConfig(preset="standard", hflip=False), side=32)
    assert plan.crop_padding == 4 and not plan.hflip
