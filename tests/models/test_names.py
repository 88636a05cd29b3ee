"""Name resolution (shorthands, case, timm), error messages and the catalog listing."""

import pytest

from convbench.config import ModelConfig
from convbench.errors import ConfigError, UnknownNameError
from convbench.models import MODELS, create_model, list_models, resolve


@pytest.mark.parametrize("name,blocks,filters", [("B2FL32", 2, 32), ("b3fl8adam", 3, 8),
                                                 ("B4FL16SGD", 4, 16)])
def test_shorthand_expands_to_blocks(name, blocks, filters):
    cfg = resolve(ModelConfig(name=name, dropout=0.2, kernel_size=5))
    assert (cfg.name, cfg.blocks, cfg.base_filters) == ("blocks", blocks, filters)
    assert (cfg.dropout, cfg.kernel_size) == (0.2, 5)  # other fields kept


def test_resolve_returns_a_copy_and_accepts_any_case():
    original = ModelConfig(name="B2FL32")
    resolve(original)
    assert original.name == "B2FL32"
    assert resolve(ModelConfig(name="VGG16_BN")).name == "vgg16_bn"
    assert resolve(ModelConfig(name="timm/rexnet_100")).name == "timm/rexnet_100"


def test_shorthand_out_of_range_is_a_config_error():
    with pytest.raises(ConfigError, match="blocks"):
        resolve(ModelConfig(name="B9FL32"))
    with pytest.raises(ConfigError, match="base_filters"):
        resolve(ModelConfig(name="B2FL0"))


def test_unknown_name_suggests_closest():
    with pytest.raises(UnknownNameError, match="resnet20") as err:
        create_model(ModelConfig(name="resnet21"), 10, 3, 32)
    assert "convbench models" in str(err.value)
    with pytest.raises(UnknownNameError, match="custom-cnn"):
        resolve(ModelConfig(name="custom_cnn"))


def test_unknown_timm_name_suggests_timm_names():
    with pytest.raises(UnknownNameError, match="timm/rexnet_100"):
        resolve(ModelConfig(name="timm/rexnet_10"))


def test_list_models_covers_the_registry():
    rows = list_models()
    names = [r["name"] for r in rows]
    assert set(MODELS.names()) <= set(names) and "timm/<any timm name>" in names
    assert names[0] == "blocks"  # the study's own constructor first
    by_name = {r["name"]: r for r in rows}
    assert by_name["resnet20"]["family"] == "resnet"
    assert by_name["custom-cnn"]["params"] == 286_250
    assert all(r["description"] for r in rows)
    assert all(isinstance(r["params"], int) and r["params"] > 0
               for r in rows if r["family"] != "timm")
