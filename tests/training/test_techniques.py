"""The training techniques of issue 10, each an option: weight EMA, mixup/cutmix, no weight
decay on norms and biases, test-time augmentation (real training on the digits data set)."""

import pytest
import torch
from safetensors.torch import load_file

import convbench
from convbench.config import AugmentConfig, OptimConfig
from convbench.store import Store
from convbench.training.augment import mix_batch, plan_for
from convbench.training.ema import WeightEma
from convbench.training.optim import make_optimizer
from convbench.training.tta import tta_logits, views

QUICK = {
    "data": {"dataset": "digits"},
    "model": {"name": "B2FL8", "batch_norm": True},
    "optim": {"name": "adam", "lr": 0.003},
    "train": {"epochs": 2, "batch_size": 64},
    "measure": {"cost": False},
}


def _with(**sections):
    cfg = {k: dict(v) for k, v in QUICK.items()}
    for section, values in sections.items():
        cfg[section] = {**cfg.get(section, {}), **values}
    return cfg


# ----- mixup and cutmix ---------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["mixup_alpha", "cutmix_alpha"])
def test_mixed_pixels_and_soft_targets_blend_in_the_same_proportion(kind):
    # Image i is the constant i and has class i: each mixed image's mean must be its target's
    # expected class, whatever the draw (mixup blends everywhere, cutmix pastes a box).
    n = 16
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 8, 8).contiguous()
    plan = plan_for(AugmentConfig(**{kind: 1.0}), side=8)
    for seed in range(5):
        out, target = mix_batch(x, torch.arange(n), n, plan, torch.Generator().manual_seed(seed))
        assert torch.allclose(target.sum(1), torch.ones(n))
        expected = target @ torch.arange(n, dtype=torch.float32)
        assert torch.allclose(out.mean((1, 2, 3)), expected, atol=1e-4)
    assert not torch.equal(out, x)  # it did mix


def test_mixing_is_seeded_and_mix_p_zero_leaves_the_batch_alone():
    x, y = torch.randn(8, 1, 6, 6), torch.arange(8) % 4
    plan = plan_for(AugmentConfig(mixup_alpha=0.4, cutmix_alpha=1.0), side=6)
    a = mix_batch(x, y, 4, plan, torch.Generator().manual_seed(1))
    b = mix_batch(x, y, 4, plan, torch.Generator().manual_seed(1))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    off = plan_for(AugmentConfig(mixup_alpha=0.4, mix_p=0.0), side=6)
    out, target = mix_batch(x, y, 4, off, torch.Generator().manual_seed(1))
    assert torch.equal(out, x) and torch.equal(target.argmax(1), y)


def test_a_run_with_mixup_and_cutmix_trains(tmp_path):
    run = convbench.train(_with(data={"augment": {"mixup_alpha": 0.2, "cutmix_alpha": 1.0}}),
                          store=str(tmp_path / "runs.db"))
    assert run.status == "completed" and run.metrics["test_accuracy"] > 0.5


# ----- no weight decay on norms and biases -------------------------------------------------

def test_no_decay_groups_keep_their_lr_scale_and_spare_biases_and_norms():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2),
                              torch.nn.Flatten(), torch.nn.Linear(2, 3))
    groups = [{"params": list(net[:2].parameters()), "lr_scale": 0.1},
              {"params": list(net[3].parameters()), "lr_scale": 1.0}]
    cfg = OptimConfig(name="sgd", lr=0.1, momentum=0.0, weight_decay=0.5,
                      no_decay_norm_bias=True)
    opt = make_optimizer(cfg, groups)
    seen = {id(p): (g["weight_decay"], g["lr_scale"]) for g in opt.param_groups
            for p in g["params"]}
    assert seen[id(net[0].weight)] == (0.5, 0.1) and seen[id(net[0].bias)] == (0.0, 0.1)
    assert seen[id(net[1].weight)] == (0.0, 0.1) and seen[id(net[3].weight)] == (0.5, 1.0)
    assert len(seen) == len(list(net.parameters()))
    # One step with zero gradients: only weight decay moves anything.
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for name, p in net.named_parameters():
        assert torch.equal(p, before[name]) == (p.ndim <= 1), name


# ----- weight EMA --------------------------------------------------------------------------

def test_ema_follows_the_decay_rule_with_its_warm_up():
    net = torch.nn.Linear(3, 1, bias=False)
    ema = WeightEma(net, decay=0.99)
    start = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    ema.update()  # t=1: decay min(0.99, 2/11)
    d = 2 / 11
    assert torch.allclose(ema.model.weight, d * start + (1 - d) * net.weight)


def test_with_ema_the_best_weights_are_the_averaged_ones(tmp_path):
    url = str(tmp_path / "runs.db")
    run = convbench.train(_with(train={"ema": 0.9, "epochs": 1}), store=url)
    assert run.status == "completed"
    best = load_file(run["artifacts"]["best_weights"])
    last = torch.load(run["artifacts"]["checkpoint"], weights_only=True)
    ema = last["task"]["ema"]
    assert ema["updates"] == last["state"]["iteration"] > 0  # one update per optimiser step
    for name, tensor in best.items():
        assert torch.equal(tensor, ema["weights"][name].contiguous()), name
    assert any(not torch.equal(best[k], v) for k, v in last["model"].items()
               if v.is_floating_point())


def test_a_stopped_run_with_every_technique_resumes_to_the_uninterrupted_numbers(tmp_path):
    cfg = _with(train={"ema": 0.95, "tta": True, "epochs": 3},
                optim={"weight_decay": 1e-4, "no_decay_norm_bias": True, "name": "adamw"},
                data={"augment": {"preset": "standard", "mixup_alpha": 0.2,
                                  "cutmix_alpha": 1.0, "mix_p": 0.5}})
    url = str(tmp_path / "runs.db")
    clean = convbench.train(cfg, store=url)

    def stop_after_one(epoch, row):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as info:
        convbench.train(cfg, store=url, on_epoch=stop_after_one)
    resumed = convbench.train(store=url, resume=info.value.run_id)
    assert resumed.status == clean.status == "completed"
    for key in ("test_accuracy", "test_loss", "best_val_accuracy"):
        assert resumed.metrics[key] == clean.metrics[key], key
    assert ([e["val_loss"] for e in resumed.epochs] == [e["val_loss"] for e in clean.epochs])


# ----- test-time augmentation --------------------------------------------------------------

def test_tta_evaluation_averages_the_logits_of_the_six_views(tmp_path):
    from convbench.data import load_data
    from convbench.training.engine import Trainer, prepare_config

    cfg = prepare_config(_with(train={"tta": True, "epochs": 1, "amp": False}))
    store = Store(str(tmp_path / "runs.db"))
    run_id = store.create_run(name=None, config={}, seed=0, env={}, kind="train", device="cpu")
    bundle = load_data(cfg.data, 0)
    trainer = Trainer(cfg, store, run_id, bundle, quiet=True)
    split = bundle.test
    got = trainer.logits(split)
    model = trainer.model.eval()
    with torch.inference_mode():
        x = trainer.prep(split.x, train=False)
        expected = torch.stack([model(v).float() for v in views(x)]).mean(0)
        plain = model(x).float()
    assert torch.allclose(got, expected, atol=1e-5) and not torch.allclose(got, plain, atol=1e-3)
    with torch.inference_mode():
        assert torch.allclose(tta_logits(model, x), expected)
