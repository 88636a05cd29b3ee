"""timm architectures as `timm/<name>`: small inputs, any channels, options passed through."""

import pytest
import torch

from convbench.config import ModelConfig
from convbench.errors import ConfigError
from convbench.models import create_model, input_requirements

# (name, side needed for 28-px data): ese_vovnet's last pool and CoAtNet's attention windows
# need 32 px; the others run at 28.
CASES = [("timm/rexnet_100", 28), ("timm/efficientnet_lite0", 28),
         ("timm/ese_vovnet19b_dw", 32), ("timm/coatnet_0_rw_224", 32)]


@pytest.mark.parametrize("name,side", CASES)
def test_timm_models_run_on_small_grey_images(name, side):
    cfg = ModelConfig(name=name)
    assert input_requirements(cfg, 28, 1) == (1, side)
    torch.manual_seed(0)
    net = create_model(cfg, 10, 1, side).eval()
    with torch.inference_mode():
        out = net(torch.randn(2, 1, side, side))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_fixed_size_model_built_for_the_requested_side():
    cfg = ModelConfig(name="timm/coatnet_0_rw_224")
    assert input_requirements(cfg, 64, 3) == (3, 64)
    with pytest.raises(ConfigError, match="data.image_size=32"):
        create_model(cfg, 10, 3, 28)


def test_options_reach_timm():
    net = create_model(ModelConfig(name="timm/efficientnet_lite0", options={"drop_rate": 0.3}),
                       5, 3, 32)
    assert net.drop_rate == 0.3 and net.get_classifier().out_features == 5
    with pytest.raises(ConfigError, match="not_an_option"):
        create_model(ModelConfig(name="timm/efficientnet_lite0",
                                 options={"not_an_option": 1}), 5, 3, 32)
