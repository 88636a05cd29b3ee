import numpy as np
import pytest
import torch

from convbench.config import DataConfig
from convbench.data import DataBundle, load_data
from convbench.errors import UnknownNameError


def _digits(**kw):
    return load_data(DataConfig(dataset="digits", **kw), seed=kw.pop("seed", 0))


def test_digits_loads_all_1797_images():
    b = _digits(val_fraction=0.1)
    assert isinstance(b, DataBundle)
    assert len(b.train) + len(b.val) + len(b.test) == 1797
    assert len(b.test) == round(0.2 * 1797)
    assert b.train.x.dtype == torch.uint8 and b.train.y.dtype == torch.int64
    assert tuple(b.train.x.shape[1:]) == (1, 8, 8) and b.num_classes == 10
    assert int(b.train.x.max()) == 255 and int(b.train.x.min()) == 0


def test_val_carve_sizes_and_stratification():
    b = _digits(val_fraction=0.25, train_limit=400)
    assert (len(b.train), len(b.val)) == (300, 100)
    counts = np.bincount(b.val.y.numpy(), minlength=10)
    assert counts.min() >= 9 and counts.max() <= 11


def test_val_fraction_zero_gives_empty_val():
    b = _digits(val_fraction=0)
    assert len(b.val) == 0 and tuple(b.val.x.shape[1:]) == (1, 8, 8)


def test_test_limit_and_determinism():
    a = _digits(train_limit=200, test_limit=50)
    b = _digits(train_limit=200, test_limit=50)
    assert len(a.test) == 50 and np.bincount(a.test.y.numpy()).tolist() == [5] * 10
    for sa, sb in ((a.train, b.train), (a.val, b.val), (a.test, b.test)):
        assert torch.equal(sa.x, sb.x) and torch.equal(sa.y, sb.y)


def test_seed_moves_train_val_but_never_test():
    a = load_data(DataConfig(dataset="digits"), seed=0)
    b = load_data(DataConfig(dataset="digits"), seed=1)
    assert torch.equal(a.test.x, b.test.x)
    assert not torch.equal(a.val.y, b.val.y) or not torch.equal(a.val.x, b.val.x)


def test_splits_do_not_overlap():
    b = _digits()
    rows = [x.numpy().tobytes() + bytes([int(y)]) for s in (b.train, b.val, b.test)
            for x, y in zip(s.x, s.y, strict=True)]
    # Digits has a few duplicate images; every (image, label) occurrence is used exactly once.
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.rint(d.images * 255 / 16).astype(np.uint8)
    expected = sorted(img.tobytes() + bytes([int(t)]) for img, t in zip(x, d.target,
                                                                        strict=True))
    assert sorted(rows) == expected


def test_channels_grey_to_rgb_and_back():
    rgb = _digits(channels=3)
    assert rgb.channels == 3 and tuple(rgb.train.x.shape[1:]) == (3, 8, 8)
    assert torch.equal(rgb.train.x[:, 0], rgb.train.x[:, 2])
    assert len(rgb.mean) == 3 and rgb.mean[0] == pytest.approx(rgb.mean[1])

    syn = load_data(DataConfig(dataset="synthetic", synthetic_size=60, channels=1,
                               val_fraction=0), seed=0)
    ref = load_data(DataConfig(dataset="synthetic", synthetic_size=60, val_fraction=0), seed=0)
    luma = (ref.train.x.double() * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1)
    assert syn.channels == 1
    diff = (syn.train.x[:, 0].double() - luma).abs()
    assert float(diff.max()) <= 0.5 + 1e-4  # rounding of float32 luma
    assert not torch.equal(syn.train.x[:, 0], ref.train.x[:, 0])


def test_resize_uses_antialiased_bilinear():
    b = _digits(image_size=16, val_fraction=0)
    ref = _digits(val_fraction=0)
    assert b.image_size == (16, 16) and tuple(b.test.x.shape[1:]) == (1, 16, 16)
    want = torch.nn.functional.interpolate(ref.test.x.float(), size=(16, 16), mode="bilinear",
                                           antialias=True).round().clamp(0, 255).to(torch.uint8)
    assert torch.equal(b.test.x, want)


def test_mean_std_match_numpy_on_train():
    b = _digits(channels=3, train_limit=500)
    x = b.train.x.numpy().astype(np.float64) / 255
    np.testing.assert_allclose(b.mean, x.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(b.std, x.std(axis=(0, 2, 3)), rtol=1e-10)


def test_unknown_dataset_suggests_close_names():
    with pytest.raises(UnknownNameError, match="cifar10") as err:
        load_data(DataConfig(dataset="cifar-10"), seed=0)
    assert "convbench datasets" in str(err.value)
