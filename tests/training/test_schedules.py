import math

import pytest

from convbench.config import ScheduleConfig
from convbench.errors import ConfigError, UnknownNameError
from convbench.training.schedules import make_schedule


def sched(ipe=10, total=100, base=0.1, **kw):
    return make_schedule(ScheduleConfig(**kw), base_lr=base, iters_per_epoch=ipe, total_iters=total)


def test_step_decays_at_fractions_of_training():
    s = sched(name="step", milestones=[0.667, 0.889], gamma=0.1)
    assert s.lr_at(66) == pytest.approx(0.1)
    assert s.lr_at(67) == pytest.approx(0.01)
    assert s.lr_at(89) == pytest.approx(0.001)


def test_warmup_step_warms_up_linearly_then_steps_at_rounded_fractions():
    # Detection's schedule: lr × warmup_factor at 0, linear to lr at warmup_iters, then
    # ×gamma from round(fraction × total) on.
    s = sched(name="warmup-step", base=0.02, total=100, warmup_iters=10, warmup_factor=0.001,
              milestones=[0.5, 0.755], gamma=0.1)
    assert s.lr_at(0) == pytest.approx(0.02 * 0.001)
    assert s.lr_at(5) == pytest.approx(0.02 * (0.001 * 0.5 + 0.5))
    assert s.lr_at(10) == 0.02 and s.lr_at(49) == 0.02
    assert s.lr_at(50) == pytest.approx(0.002)
    assert s.lr_at(75) == pytest.approx(0.002)  # the second step is at round(75.5) = 76
    assert s.lr_at(76) == pytest.approx(0.0002)
    lrs = [s.lr_at(i) for i in range(10)]
    assert lrs == sorted(lrs) and len(set(lrs)) == 10  # strictly rising warm-up


def test_warmup_step_without_warmup_starts_at_the_base_lr():
    s = sched(name="warmup-step", base=0.1, total=10, warmup_iters=0, milestones=[])
    assert [s.lr_at(i) for i in (0, 5, 9)] == [0.1, 0.1, 0.1]


def test_cosine_ends_at_floor():
    s = sched(name="cosine", min_lr=0.001)
    assert s.lr_at(0) == pytest.approx(0.1)
    assert s.lr_at(50) == pytest.approx((0.1 + 0.001) / 2)
    assert s.lr_at(100) == pytest.approx(0.001)


def test_one_cycle_peaks_then_anneals():
    s = sched(name="one-cycle", max_lr=1.0)
    lrs = [s.lr_at(i) for i in range(100)]
    assert lrs[0] == pytest.approx(1.0 / 25)
    assert max(lrs) == pytest.approx(1.0, rel=0.05)
    assert lrs.index(max(lrs)) == 30
    assert lrs[-1] < 0.01


def test_triangular2_halves_amplitude_each_cycle():
    s = sched(name="triangular2", base=0.001, max_lr=0.011, cycle_iters=10)
    assert s.lr_at(0) == pytest.approx(0.001)
    assert s.lr_at(10) == pytest.approx(0.011)       # first peak
    assert s.lr_at(20) == pytest.approx(0.001)       # back to the floor
    assert s.lr_at(30) == pytest.approx(0.006)       # second peak: half the amplitude
    assert s.lr_at(50) == pytest.approx(0.0035)


def test_triangular_cycle_in_epochs_and_exp_range_decays():
    tri = sched(name="triangular", base=0.0, max_lr=1.0, cycle_epochs=2, ipe=5)
    assert tri.lr_at(10) == pytest.approx(1.0) and tri.lr_at(30) == pytest.approx(1.0)
    exp = sched(name="exp_range", base=0.0, max_lr=1.0, cycle_iters=10, exp_gamma=0.9)
    assert exp.lr_at(10) == pytest.approx(0.9**10)


def test_cyclical_without_upper_bound_says_how_to_fix():
    with pytest.raises(ConfigError, match="schedule.max_lr"):
        sched(name="triangular")


def test_warmup_ramps_linearly():
    s = sched(name="constant", warmup_epochs=1, ipe=10)
    assert s.lr_at(0) == pytest.approx(0.01)
    assert s.lr_at(4) == pytest.approx(0.05)
    assert s.lr_at(10) == pytest.approx(0.1)


def test_plateau_reduces_after_patience_and_survives_checkpoint():
    s = sched(name="plateau", plateau_patience=1, plateau_factor=0.5)
    for loss in (1.0, 1.0, 1.0):
        s.on_epoch_end(loss)
    assert s.lr_at(0) == pytest.approx(0.05)
    t = sched(name="plateau", plateau_patience=1, plateau_factor=0.5)
    t.load_state_dict(s.state_dict())
    assert t.lr_at(0) == pytest.approx(0.05)


def test_unknown_schedule_suggests_names():
    with pytest.raises(UnknownNameError, match="cosine"):
        sched(name="cosin")


def test_all_lrs_finite_and_positive():
    for name in ("constant", "step", "cosine", "one-cycle", "plateau", "warmup-step"):
        s = sched(name=name)
        assert all(math.isfinite(s.lr_at(i)) and s.lr_at(i) >= 0 for i in range(101))
