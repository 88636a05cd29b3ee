"""Training on data a new user may well have: a colour channel that never changes."""

import numpy as np
import torch
from PIL import Image

import convbench
from convbench.config import AugmentConfig
from convbench.training.augment import BatchPrep


def test_a_constant_channel_is_left_unscaled_not_divided_by_zero():
    prep = BatchPrep(AugmentConfig(), in_channels=3, channels=3, side=4, mean=(0.5, 0.2, 0.0),
                     std=(0.25, 0.1, 0.0), device=torch.device("cpu"))
    out = prep(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), train=False)
    assert torch.isfinite(out).all()
    assert prep.constant_channels == [2]
    assert torch.equal(out[:, 2], torch.zeros(2, 4, 4))  # (0 - mean 0) / 1


def test_a_folder_whose_blue_channel_is_constant_trains(tmp_path):
    rng = np.random.default_rng(0)
    for c, name in enumerate(["light", "dark"]):
        (tmp_path / "img" / name).mkdir(parents=True)
        for i in range(24):
            img = np.zeros((8, 8, 3), np.uint8)
            img[..., 0] = rng.integers(0, 128, (8, 8)) + 120 * (1 - c)
            img[..., 1] = rng.integers(0, 256, (8, 8))
            img[..., 2] = 9  # constant in every image: std 0
            Image.fromarray(img).save(tmp_path / "img" / name / f"{i}.png")
    cfg = {"data": {"dataset": "folder", "data_dir": str(tmp_path / "img")},
           "model": {"name": "B2FL8"}, "train": {"epochs": 1, "batch_size": 8},
           "measure": {"cost": False}}
    run = convbench.train(cfg, store=str(tmp_path / "runs.db"))
    assert run.status == "completed"
    assert np.isfinite(run.epochs[0]["train_loss"])
    log = open(run["artifacts"]["log"]).read()
    assert "channel 3 is constant" in log
