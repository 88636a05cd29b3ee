"""`convbench runs show RUN --card`: the Markdown model card, from the store only."""

from __future__ import annotations

from convbench.inference.trained import load_trained


def test_the_model_card_has_data_metrics_cost_environment_and_config(shared):
    load_trained(shared.store, shared.run_id)  # as predict/evaluate/export: records split sizes
    proc = shared.cli("runs", "show", shared.run_id, "--card")
    assert proc.returncode == 0, proc.stderr
    card = proc.stdout
    assert card.startswith(f"# Model card: custom-cnn (run {shared.run_id})")
    for heading in ("## Data", "## Test metrics", "## Cost", "## Environment", "## Full config"):
        assert heading in card
    assert "| data set | fashion-mnist |" in card
    assert "| train images | 900 |" in card and "| test images | 1,000 |" in card
    assert "| T-shirt/top | 100 |" in card  # per class: 100 test images each
    assert "| parameters |" in card and "| torch |" in card and "| seed | 0 |" in card
    assert "name: custom-cnn" in card and "train_limit: 1000" in card
