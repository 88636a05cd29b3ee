"""The playground form's server side: a form's values → the config ``convbench train`` would
build from the same ``--set`` items, its messages, and live figures of the model.

The form sends only the fields it changed, as the text typed (``{"model.blocks": "3"}``).
They become ``--set`` items through :func:`convbench.config.build_config`, the builder of
every command, so a bad value gets the very message ``convbench train --set …`` prints, and
"Copy command" gives exactly that command.

>>> check({"train.epochs": "0"})["errors"][0]["field"]
'train.epochs'
"""

from __future__ import annotations

import functools
import json
import re
import shlex
from typing import Any

import yaml

from .. import config as cfgmod
from ..errors import ConvbenchError

MAX_FIELDS = 200  # more than RunConfig has: a bigger body is not a form


def set_items(values: dict[str, Any]) -> list[str]:
    """The ``--set`` items of the form values (empty ones are left to their defaults).

    >>> set_items({"train.epochs": "2", "name": "", "model.name": "B2FL8"})
    ['train.epochs=2', 'model.name=B2FL8']
    """
    if not isinstance(values, dict) or len(values) > MAX_FIELDS:
        raise cfgmod.ConfigError("The form must send a mapping of config fields to values.")
    items = []
    for key, value in values.items():
        text = value if isinstance(value, str) else json.dumps(value)
        if str(key) and text.strip() != "":
            items.append(f"{key}={text.strip()}")
    return items


def command(items: list[str]) -> str:
    """The ``convbench train`` command of these items (shell-quoted).

    >>> command(["model.name=B2FL8", "name=my run"])
    "convbench train --set model.name=B2FL8 --set 'name=my run'"
    """
    return " ".join(["convbench train", *(f"--set {shlex.quote(i)}" for i in items)])


def yaml_text(items: list[str]) -> str:
    """The same settings as a YAML config file (only the fields the form set).

    >>> print(yaml_text(["model.name=B2FL8", "train.epochs=2"]), end="")
    model:
      name: B2FL8
    train:
      epochs: 2
    """
    data: dict[str, Any] = {}
    for key, value in cfgmod.parse_sets(items).items():
        cfgmod.set_path(data, key, value)
    return yaml.safe_dump(data, sort_keys=False) if data else "{}\n"


FIELDS = [path for path, *_ in cfgmod.config_fields(cfgmod.RunConfig)]


def field_of(message: str, items: list[str]) -> str | None:
    """The config field a message is about, so the page can show it next to that field.

    >>> field_of("--set: optim.lr = -1 is invalid: …", [])
    'optim.lr'
    >>> field_of("Unknown dataset 'x'. Run `convbench datasets` to list them.", [])
    'data.dataset'
    """
    for path in sorted(FIELDS, key=len, reverse=True):
        if re.search(rf"(?<![\w.]){re.escape(path)}(?![\w])", message):
            return path
    lowered = message.lower()
    for word, path in (("dataset", "data.dataset"), ("data set", "data.dataset"),
                       ("model", "model.name"), ("optimi", "optim.name"),
                       ("schedule", "schedule.name")):
        if word in lowered:
            return path
    return None


def resolved(items: list[str]) -> cfgmod.RunConfig:
    """The config ``convbench train`` would train, after the same checks it makes before
    anything starts (names of model, optimiser and schedule; the data set's files)."""
    from ..data.info import check_available
    from ..training.engine import prepare_config

    cfg = prepare_config(cfgmod.build_config(None, {}, items))
    check_available(cfg.data)
    return cfg


def check(values: dict[str, Any]) -> dict[str, Any]:
    """Everything the form shows about its values: ``errors`` (``{field, message}``), the
    ``command`` and ``yaml`` of the run, and ``estimate`` (parameters, FLOPs, input shape)."""
    items = set_items(values)
    out: dict[str, Any] = {"command": command(items), "errors": [], "estimate": None}
    try:
        out["yaml"] = yaml_text(items)
        cfg = resolved(items)
    except ConvbenchError as err:
        out["errors"] = [{"field": field_of(str(err), items), "message": str(err)}]
        return out
    try:
        out["estimate"] = estimate(json.dumps(cfg.model_dump(mode="json"), sort_keys=True))
    except ConvbenchError as err:
        out["errors"] = [{"field": field_of(str(err), items), "message": str(err)}]
    return out


@functools.lru_cache(maxsize=256)
def estimate(config_json: str) -> dict[str, Any]:
    """Parameters, FLOPs/MACs per image, the input shape and the note on ignored model
    fields of a (resolved) config, by building the model as the trainer would.

    >>> cfg = cfgmod.build({"data": {"dataset": "digits"}, "model": {"name": "B2FL8"}})
    >>> estimate(json.dumps(cfg.model_dump(mode="json")))["input_shape"]
    [1, 8, 8]
    """
    import torch

    from ..data.info import dataset_info
    from ..measure.efficiency import count_flops, count_parameters
    from ..models import create_model, ignored_fields_note, input_requirements

    cfg = cfgmod.build(json.loads(config_json))
    info = next((d for d in dataset_info(cfg.data.data_dir) if d["name"] == cfg.data.dataset),
                None)
    if info is None or not info.get("image_shape") or not info.get("classes"):
        return {"input_shape": None, "note": "The size of this data set is known once it "
                "is loaded; parameters and FLOPs show after a run."}
    channels, height, _ = info["image_shape"]
    channels = cfg.data.channels or channels
    side = cfg.data.image_size or height
    channels, side = input_requirements(cfg.model, side, channels)
    classes = info["classes"] if isinstance(info["classes"], int) else len(info["classes"])
    torch.manual_seed(0)
    with torch.device("cpu"):
        model = create_model(cfg.model, classes, channels, side)
    shape = (channels, side, side)
    return {"input_shape": list(shape), "classes": classes, **count_parameters(model),
            **count_flops(model, shape), "note": ignored_fields_note(cfg.model)}

