"""Activations and weight initialisations by name, shared by the in-house builders.

Small dicts instead of if-chains, so a new activation or init is one entry.

>>> import torch
>>> act = make_activation("relu")
>>> act(torch.tensor([-1.0, 2.0])).tolist()
[0.0, 2.0]
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import nn

# Inputs at least this large get ImageNet-style strided stems and heads (AlexNet, VGG,
# ResNet-18/34/50); smaller ones keep their resolution early, as CIFAR-style nets do.
LARGE_INPUT = 112

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": partial(nn.ReLU, inplace=True),
    "gelu": nn.GELU,
    "silu": partial(nn.SiLU, inplace=True),
    "elu": partial(nn.ELU, inplace=True),
    "leaky_relu": partial(nn.LeakyReLU, 0.01, inplace=True),
    "tanh": nn.Tanh,
}

# Each maps a weight tensor in place; ``None`` keeps PyTorch's own layer defaults.
INITS: dict[str, Callable | None] = {
    "glorot_uniform": nn.init.xavier_uniform_,
    "glorot_normal": nn.init.xavier_normal_,
    "kaiming_uniform": partial(nn.init.kaiming_uniform_, nonlinearity="relu"),
    "kaiming_normal": partial(nn.init.kaiming_normal_, nonlinearity="relu"),
    "default": None,
}


def make_activation(name: str) -> nn.Module:
    """A fresh activation module by config name.

    >>> make_activation("gelu")
    GELU(approximate='none')
    """
    return ACTIVATIONS[name]()


def init_weights(model: nn.Module, name: str) -> nn.Module:
    """Initialise every conv and linear weight of ``model`` by ``name``; biases become zero.

    Keras' ``glorot_uniform`` (the studies' default) is ``xavier_uniform_`` with zero bias.
    Normalisation layers keep their ones/zeros.

    >>> lin = init_weights(nn.Linear(4, 2), "glorot_uniform")
    >>> lin.bias.tolist()
    [0.0, 0.0]
    """
    fn = INITS[name]
    if fn is None:
        return model
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            fn(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model
