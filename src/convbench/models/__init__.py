"""Model catalog and builders: ``create_model(cfg, num_classes, in_channels, image_size)``.

Built-in names (``convbench models`` lists them): ``blocks`` (shorthand ``B2FL32``),
``simple-cnn``, ``custom-cnn``, ``alexnet``, ``vgg11…vgg19[_bn]``, ``resnet20/32/44/56``,
``resnet18/34/50``, and any timm architecture as ``timm/<name>``.

>>> import torch
>>> from convbench.config import ModelConfig
>>> net = create_model(ModelConfig(name="custom-cnn"), 10, in_channels=1, image_size=28)
>>> count_params(net)
285674
"""

from . import blocks, resnet, small, vgg  # noqa: F401  (importing registers the models)
from .api import (
    count_params,
    create_model,
    ignored_fields,
    ignored_fields_note,
    input_requirements,
    list_models,
    resolve,
)
from .catalog import MODELS, ModelEntry, register
from .layers import ACTIVATIONS, INITS

__all__ = [
    "ACTIVATIONS",
    "INITS",
    "MODELS",
    "ModelEntry",
    "count_params",
    "create_model",
    "ignored_fields",
    "ignored_fields_note",
    "input_requirements",
    "list_models",
    "register",
    "resolve",
]
