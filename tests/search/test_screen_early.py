"""Cheaper screens: range tests stopped when decided, adaptive seeds, and a killed screen with
early stops resumed to the same verdicts. The rules are tested on constructed curves and
scores; the searches on digits use configurations far from any threshold (an LR of 1e-6 that
cannot learn), so no assertion rests on a borderline number."""



from convbench.search import search
from convbench.search.early import ScreenStop
from convbench.search.rules import more_seeds, verdict
from convbench.search.space import ScreenConfig
from convbench.store import Store
from convbench.training.lr_finder import LRCurve

CHANCE = {"chance_uniform": 0.1, "chance_majority": 0.1}
STUCK = [1.0e-6, 1.0e-5]  # plain SGD cannot move the weights at these LRs: chance throughout


def _curve(acc: list[float], loss: list[float] | None = None) -> LRCurve:
    loss = loss or [2.3] * len(acc)
    return LRCurve(lr=[0.01] * len(acc), loss=loss, accuracy=acc, loss_smooth=loss,
                   accuracy_smooth=acc)


# ----- the rules on constructed curves -------------------------------------------------------

def test_at_chance_waits_for_its_share_and_spares_a_test_that_learned():
    stop = ScreenStop(ScreenConfig(stop_at_chance=0.25), reference=None)
    assert stop(_curve([0.1] * 20), 100, CHANCE, False) is None  # before 25 % of the test
    rule, why = stop(_curve([0.1] * 25), 100, CHANCE, False)
    assert rule == "at chance" and "25 of 100 iterations" in why
    learned = [0.1] * 10 + [0.5] * 5 + [0.1] * 10  # rose above chance, then fell back
    assert stop(_curve(learned), 100, CHANCE, False) is None
    off = ScreenConfig(stop_at_chance=None, stop_diverged=None)
    assert ScreenStop(off, None)(_curve([0.1] * 90), 100, CHANCE, False) is None


def test_diverged_needs_the_loss_above_its_start_for_a_while():
    stop = ScreenStop(ScreenConfig(stop_diverged=0.1), reference=None)
    loss: list[float] = []
    # Called after every iteration, as a range test does: ten iterations in a row above the
    # start (10 % of 100) are needed; one back below it starts the count again.
    for value in [2.0] * 8 + [3.0] * 9 + [1.9] + [3.0] * 9:
        loss.append(value)
        assert stop(_curve([0.1] * len(loss), loss), 100, CHANCE, False) is None
    loss.append(3.0)
    rule, why = stop(_curve([0.1] * len(loss), loss), 100, CHANCE, False)
    assert rule == "diverged" and "above its start 2.000 for 10 iterations" in why


def test_hopeless_is_bounded_by_what_the_remaining_iterations_could_gain():
    rule = ScreenConfig(stop_hopeless=True, margin_best=0.1)
    curve = _curve([0.2] * 50)
    curve.epochs = [{"epoch": 1, "val_accuracy": 0.2, "iterations": 50}]
    # 0.1 gained in 50 iterations; 50 left: at most 0.3 < 0.9 − 0.1.
    found = ScreenStop(rule, reference=0.9)(curve, 100, CHANCE, True)
    assert found[0] == "hopeless" and "at most 0.300" in found[1]
    # 150 left: at most 0.5, still above 0.55 − 0.1 = 0.45: not hopeless.
    assert ScreenStop(rule, reference=0.55)(curve, 200, CHANCE, True) is None
    assert ScreenStop(rule, reference=None)(curve, 100, CHANCE, True) is None  # no group yet


def test_a_decisive_early_stop_decides_the_verdict_and_a_diverged_one_does_not():
    rule = ScreenConfig()
    stop = {"rule": "at chance", "why": "flat", "fraction": 0.25}
    assert verdict(0.9, 0.1, [0.9], rule, stop)[0] == "at chance"
    assert verdict(0.9, 0.1, [0.9], rule, {**stop, "rule": "diverged"}) is None


def test_adaptive_seeds_are_added_only_near_a_threshold():
    rule = ScreenConfig(seeds=[0, 1, 2, 3], near=0.03, spread_z=2.0, margin_best=0.1)
    group = [0.9, 0.6]
    one = {"n": 1, "std": 0.0}
    assert more_seeds({**one, "value": 0.81}, 0.1, group, rule) == [0, 1]  # 0.01 from 0.8
    assert more_seeds({**one, "value": 0.16}, 0.1, group, rule) == [0, 1]  # near chance + 0.05
    assert more_seeds({**one, "value": 0.60}, 0.1, group, rule) == []  # clearly discarded
    assert more_seeds({**one, "value": 0.90}, 0.1, group, rule) == []  # clearly kept
    # Two seeds: their spread decides whether the rest are needed.
    assert more_seeds({"n": 2, "std": 0.02, "value": 0.83}, 0.1, group, rule) == [0, 1, 2, 3]
    assert more_seeds({"n": 2, "std": 0.01, "value": 0.83}, 0.1, group, rule) == []
    assert more_seeds({"n": 4, "std": 0.5, "value": 0.8}, 0.1, group, rule) == []  # all run


# ----- searches on digits --------------------------------------------------------------------

def test_a_range_test_at_chance_stops_early_and_records_why(store_url, space, tmp_path):
    spec = space(params={"model.name": ["B2FL4"], "optim.name": ["sgd"],
                         "lr_range": [STUCK, [1.0e-5, 1.0e-4]]},
                 search={"strategy": "screen", "epochs": 1},
                 screen={"epochs": 2, "seeds": [0, 1], "stop_at_chance": 0.25})
    result = search(spec, store=store_url, report=tmp_path / "search.html")
    store = Store(store_url)
    for row in result["rows"]:
        assert row["status"].startswith("discarded: stopped early (at chance) at")
        assert len(row["screen_runs"]) == 1  # decided by its first seed: no second one
        run = store.get_run(row["screen_runs"][0])
        m = run["metrics"]
        total = m["early_stop"]["iterations"]
        assert m["stop_reason"] == "early" and m["early_stop"]["rule"] == "at chance"
        assert total // 4 <= m["iterations"] < total and m["epochs_run"] < 2
    stops = result["early_stops"]
    assert [s["rule"] for s in stops] == ["at chance", "at chance"]
    html = (tmp_path / "search.html").read_text()
    assert "Early stops" in html and "never above" in html


def test_adaptive_seeds_add_seeds_only_where_the_verdict_is_near(store_url, space):
    params = {"model.name": ["B2FL4", "B2FL8"], "optim.name": ["sgd"], "lr_range": [STUCK]}
    near_all = space(params=params, search={"strategy": "screen", "epochs": 1},
                     screen={"epochs": 1, "seeds": [0, 1], "adaptive_seeds": True, "near": 1.0,
                             "margin_chance": 0.0, "margin_best": None})
    result = search(near_all, store=store_url)
    # Within 1.0 of a threshold is everything: each configuration got its second seed, and
    # its first seed's range test was reused, not run again.
    assert all(r["seeds_run"] == [0, 1] and r["screen_round"] == 2 for r in result["rows"])
    runs = Store(store_url).list_runs(group_id=result["id"])
    assert sum(r["kind"] == "lr-find" for r in runs) == 4
    assert "a second for the 2" in result["seeding"]

    far = {**near_all, "screen": {**near_all["screen"], "near": 0.03, "margin_chance": 0.5}}
    clear = search(far, store=store_url)  # at chance, 0.5 below the line: clearly discarded
    assert all(r["seeds_run"] == [0] and r["status"].startswith("discarded: no convergence")
               for r in clear["rows"])
    stuck_with_stops = {**near_all, "screen": {**near_all["screen"], "margin_chance": 0.05,
                                               "stop_at_chance": 0.25}}
    decided = search(stuck_with_stops, store=store_url)  # decided early: no more seeds
    assert all(r["seeds_run"] == [0] for r in decided["rows"])


def _verdicts(result) -> dict:
    return {r["key"]: (r["status"].split(":")[0], r.get("discard_rule"),
                       [(s["rule"], s["iteration"]) for s in r.get("early_stops") or []])
            for r in result["rows"]}


def test_a_killed_screen_with_early_stops_resumes_to_the_same_verdicts(cli, tmp_path, space,
                                                                       killed_search):
    spec = space(params={"model.name": ["B2FL4", "B2FL8"], "optim.name": ["adam", "sgd"],
                         "lr_range": [[1.0e-3, 1.0e-2], STUCK]},
                 search={"strategy": "screen", "epochs": 1},
                 screen={"epochs": 2, "seeds": [0], "stop_at_chance": 0.25,
                         "stop_diverged": 0.2, "stop_hopeless": True})
    whole = search(spec, store=str(tmp_path / "whole.db"))
    assert any(r.get("early_stops") for r in whole["rows"])

    db = tmp_path / "runs.db"
    killed_search(spec, db, workers=1, screened=3)  # mid-screening
    store = Store(str(db))
    group = store.list_groups(kind="search")[0]
    assert group["status"] == "running"
    cli("search", "--resume", group["id"], "--store", str(db), check=True)
    group = store.get_group(group["id"])
    assert group["status"] == "completed"
    assert _verdicts(group["metrics"]["summary"]) == _verdicts(whole)
