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


def make_optimizer(cfg: OptimConfig, params: Iterable) -> torch.optim.Optimizer:
    """Build the optimiser. ``params`` may be parameters or param-group dicts; a group may carry
    ``lr_scale`` (its LR = schedule LR × scale), e.g. for per-layer transfer-learning rates."""
    groups = list(params)
    if groups and not isinstance(groups[0], dict):
        groups = [{"params": groups}]
    for group in groups:
        group.setdefault("lr_scale", 1.0)
    return OPTIMIZERS.get(cfg.name)(groups, cfg)
