import pytest

# Tiny and deterministic: digits (8×8), 2-block nets with 4 or 8 base filters, one thread per
# run. With plain SGD (no momentum) at 1e-4..1e-2 the nets stay at chance in two epochs while
# Adam learns: screening must discard the SGD configurations as non-converging.
BASE = {"data": {"dataset": "digits"}, "optim": {"momentum": 0.0},
        "train": {"batch_size": 64, "threads": 1}, "measure": {"cost": False}}


@pytest.fixture
def space():
    def make(**sections):
        data = {"name": "t", "base": BASE,
                "params": {"model.name": ["B2FL4", "B2FL8"], "optim.name": ["adam", "sgd"],
                           "lr_range": [[1.0e-4, 1.0e-2]]},
                "search": {"strategy": "screen", "epochs": 3},
                "screen": {"epochs": 2, "seeds": [0, 1]}}
        for key, value in sections.items():
            data[key] = value if not isinstance(value, dict) else {**data.get(key, {}), **value}
        return data

    return make
