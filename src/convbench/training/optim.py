"""Optimisers by name.

>>> import torch
>>> from convbench.config import OptimConfig
>>> opt = make_optimizer(OptimConfig(name="adam", lr=1e-3), [torch.nn.Parameter(torch.zeros(2))])
>>> type(opt).__name__
'Adam'
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from ..config import OptimConfig
from ..registry import Registry

OPTIMIZERS: Registry[Callable[..., torch.optim.Optimizer]] = Registry("optimizer")


@OPTIMIZERS.register("sgd")
def _sgd(params, c: OptimConfig):
    return torch.optim.SGD(
        params,
        lr=c.lr,
        momentum=c.momentum,
        nesterov=c.nesterov and c.momentum > 0,
        weight_decay=c.weight_decay,
    )


@OPTIMIZERS.register("adam")
def _adam(params, c: OptimConfig):
    return torch.optim.Adam(params, lr=c.lr, betas=c.betas, eps=c.eps, weight_decay=c.weight_decay)


@OPTIMIZERS.register("adamw")
def _adamw(params, c: OptimConfig):
    return torch.optim.AdamW(params, lr=c.lr, betas=c.betas, eps=c.eps, weight_decay=c.weight_decay)


@OPTIMIZERS.register("rmsprop")
def _rmsprop(params, c: OptimConfig):
    return torch.optim.RMSprop(
        params, lr=c.lr, momentum=c.momentum, eps=c.eps, weight_decay=c.weight_decay
    )


def split_no_decay(groups: list[dict]) -> list[dict]:
    """Each param group split in two: the weights, and the biases and normalisation weights
    (parameters of at most one dimension) with ``weight_decay`` 0 — decaying those only
    shrinks a scale or an offset that the next layer would undo. Every other key of a group
    (``lr_scale``, transfer learning's unfreezing plan) is kept by both halves; empty halves
    are left out.

    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    >>> [(len(g["params"]), g.get("weight_decay")) for g in
    ...  split_no_decay([{"params": list(net.parameters()), "lr_scale": 0.5}])]
    [(1, None), (3, 0.0)]
    """
    out = []
    for group in groups:
        params = list(group["params"])
        decay = [p for p in params if p.ndim > 1]
        rest = [p for p in params if p.ndim <= 1]
        if decay:
            out.append({**group, "params": decay})
        if rest:
            out.append({**group, "params": rest, "weight_decay": 0.0})
    return out


def make_optimizer(cfg: OptimConfig, params: Iterable) -> torch.optim.Optimizer:
    """Build the optimiser. ``params`` may be parameters or param-group dicts; a group may carry
    ``lr_scale`` (its LR = schedule LR × scale), e.g. for per-layer transfer-learning rates.
    ``optim.no_decay_norm_bias`` splits every group (:func:`split_no_decay`)."""
    groups = list(params)
    if groups and not isinstance(groups[0], dict):
        groups = [{"params": groups}]
    for group in groups:
        group.setdefault("lr_scale", 1.0)
    if cfg.no_decay_norm_bias:
        groups = split_no_decay(groups)
    return OPTIMIZERS.get(cfg.name)(groups, cfg)
