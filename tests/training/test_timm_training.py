import pytest

import convbench


@pytest.mark.slow
@pytest.mark.parametrize("name", ["timm/rexnet_100", "timm/coatnet_0_rw_224"])
def test_timm_models_train_an_epoch_on_a_subset(name, store_url):
    run = convbench.train({
        "data": {"dataset": "synthetic", "synthetic_size": 128, "test_limit": 64},
        "model": {"name": name}, "train": {"epochs": 1, "batch_size": 32},
        "measure": {"latency_repeats": 2, "throughput_batch": 8}}, store=store_url)
    assert run.status == "completed"
    assert run.metrics["params_total"] > 1_000_000
    assert run.epochs[0]["train_loss"] > 0 and run.metrics["test_accuracy"] is not None
