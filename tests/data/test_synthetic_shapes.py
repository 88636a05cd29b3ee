import numpy as np
import torch
from torch import nn

from convbench.config import DataConfig
from convbench.data import load_data
from convbench.data.synthetic import SHAPES, make_shapes


def test_sizes_classes_and_balance():
    b = load_data(DataConfig(dataset="synthetic", synthetic_size=120, val_fraction=0), seed=0)
    assert (len(b.train), len(b.test)) == (120, 60)
    assert b.classes == SHAPES and b.channels == 3 and b.image_size == (32, 32)
    assert np.bincount(b.train.y.numpy()).tolist() == [20] * 6


def test_image_size_is_generated_not_resized():
    b = load_data(DataConfig(dataset="synthetic", synthetic_size=12, image_size=20), seed=0)
    assert tuple(b.train.x.shape[1:]) == (3, 20, 20)
    assert not any("resized" in n for n in b.notes)


def test_deterministic_and_seed_dependent():
    x1, y1 = make_shapes(30, 16, seed=4)
    x2, y2 = make_shapes(30, 16, seed=4)
    x3, _ = make_shapes(30, 16, seed=5)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert not np.array_equal(x1, x3)
    a = load_data(DataConfig(dataset="synthetic", synthetic_size=40), seed=0)
    b = load_data(DataConfig(dataset="synthetic", synthetic_size=40), seed=0)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.x, b.test.x)


def test_a_tiny_cnn_learns_the_shapes():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: threads only add overhead on shared cores
    torch.manual_seed(0)
    try:
        b = load_data(DataConfig(dataset="synthetic", synthetic_size=900, image_size=16,
                                 val_fraction=0), seed=0)
        mean = torch.tensor(b.mean).view(1, 3, 1, 1)
        std = torch.tensor(b.std).view(1, 3, 1, 1)

        def prep(x):
            return (x.float() / 255 - mean) / std

        net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                            nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1),
                            nn.BatchNorm2d(32), nn.ReLU(), nn.AdaptiveMaxPool2d(1),
                            nn.Flatten(), nn.Linear(32, 6))
        opt = torch.optim.Adam(net.parameters(), lr=5e-3)
        x, y = prep(b.train.x), b.train.y
        for _ in range(6):
            for idx in torch.randperm(len(y)).split(32):
                opt.zero_grad()
                nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
                opt.step()
        net.eval()
        with torch.no_grad():
            acc = (net(prep(b.test.x)).argmax(1) == b.test.y).float().mean().item()
    finally:
        torch.set_num_threads(threads)
    assert acc > 0.6, acc  # chance is 1/6
