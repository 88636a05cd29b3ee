import pytest

# Tiny and deterministic: digits (8×8), 2-block nets with 4 or 8 base filters, one thread per
# run. With plain SGD (no momentum) at 1e-4..1e-2 the nets stay at chance in two epochs while
# Adam learns: screening must discard the SGD configurations as non-converging.
BASE = {"data": {"dataset": "digits"}, "optim": {"momentum": 0.0},
        "train": {"batch_size": 64, "threads": 1}, "measure": {"cost": False}}


# The study's screen (every cheaper option off): the tests of the classic mechanism keep it;
# test_screen_early.py switches the options on one by one.
STUDY_SCREEN = {"stop_at_chance": None, "stop_diverged": None, "stop_hopeless": False,
                "adaptive_seeds": False, "survivors": "full"}


@pytest.fixture
def space():
    def make(**sections):
        data = {"name": "t", "base": BASE,
                "params": {"model.name": ["B2FL4", "B2FL8"], "optim.name": ["adam", "sgd"],
                           "lr_range": [[1.0e-4, 1.0e-2]]},
                "search": {"strategy": "screen", "epochs": 3},
                "screen": {"epochs": 2, "seeds": [0, 1], **STUDY_SCREEN}}
        for key, value in sections.items():
            data[key] = value if not isinstance(value, dict) else {**data.get(key, {}), **value}
        return data

    return make
