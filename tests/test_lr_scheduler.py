"""Learning-rate schedules against their closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tinylm
from tinylm.optim import SGD, Adam
from tinylm.optim.lr_scheduler import (
    CosineAnnealingLR,
    LambdaLR,
    LRScheduler,
    StepLR,
    WarmupCosineLR,
)

pytestmark = pytest.mark.lesson05

BASE = [0.1, 0.03]  # two groups, two initial learning rates


def _optimizer(lrs=BASE):
    groups = [{"params": [tinylm.tensor([1.0], requires_grad=True)], "lr": lr} for lr in lrs]
    return SGD(groups, lr=1.0, momentum=0.9)


def _sequence(scheduler, n):
    """lr of every group at steps 0 .. n-1 (step 0 is set by the constructor)."""
    lrs = []
    for _ in range(n):
        lrs.append(scheduler.get_last_lr())
        assert lrs[-1] == [g["lr"] for g in scheduler.optimizer.param_groups]
        scheduler.step()
    return np.array(lrs)


def _closed(fn, n, bases=BASE):
    return np.array([[fn(base, t) for base in bases] for t in range(n)])


def test_step_lr():
    sched = StepLR(_optimizer(), step_size=3, gamma=0.5)
    np.testing.assert_allclose(
        _sequence(sched, 13), _closed(lambda b, t: b * 0.5 ** (t // 3), 13), rtol=1e-15
    )
    assert sched.last_epoch == 13


def test_lambda_lr_one_function_or_one_per_group():
    sched = LambdaLR(_optimizer(), lambda t: 0.95**t)
    np.testing.assert_allclose(_sequence(sched, 10), _closed(lambda b, t: b * 0.95**t, 10))
    sched = LambdaLR(_optimizer(), [lambda t: 1.0 / (t + 1), lambda t: t])
    want = np.array([[BASE[0] / (t + 1), BASE[1] * t] for t in range(6)])
    np.testing.assert_allclose(_sequence(sched, 6), want, rtol=1e-15)
    with pytest.raises(ValueError, match="Expected 2 lr_lambdas, but got 1"):
        LambdaLR(_optimizer(), [lambda t: 1.0])


@pytest.mark.parametrize("eta_min", [0.0, 0.001])
def test_cosine_annealing_lr(eta_min):
    sched = CosineAnnealingLR(_optimizer(), T_max=10, eta_min=eta_min)
    got = _sequence(sched, 25)  # past T_max the cosine rises again, as in PyTorch

    def closed(base, t):
        return eta_min + (base - eta_min) * (1 + math.cos(math.pi * t / 10)) / 2

    np.testing.assert_allclose(got, _closed(closed, 25), rtol=1e-14, atol=1e-17)
    np.testing.assert_allclose(got[10], [eta_min, eta_min], atol=1e-17)
    np.testing.assert_allclose(got[20], BASE, rtol=1e-14)


def _warmup_cosine(base, t, w, total, min_lr):
    if t < w:
        return base * (t + 1) / w
    if t > total:
        return min_lr
    return min_lr + (base - min_lr) * (1 + math.cos(math.pi * (t - w) / (total - w))) / 2


@pytest.mark.parametrize(
    "w, total, min_lr", [(5, 20, 0.0), (4, 12, 1e-3), (0, 10, 0.0), (1, 3, 0.0)]
)
def test_warmup_cosine_lr(w, total, min_lr):
    sched = WarmupCosineLR(_optimizer(), warmup_steps=w, total_steps=total, min_lr=min_lr)
    got = _sequence(sched, total + 6)
    want = _closed(lambda b, t: _warmup_cosine(b, t, w, total, min_lr), total + 6)
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-17)
    # the landmarks the docstring promises
    if w:
        np.testing.assert_allclose(got[0], [b / w for b in BASE], rtol=1e-15)
        np.testing.assert_allclose(got[w - 1], BASE, rtol=1e-15)
    np.testing.assert_allclose(got[w], BASE, rtol=1e-15)
    np.testing.assert_allclose(got[total:], min_lr, atol=1e-17)
    assert np.all(np.diff(got[w:, 0]) <= 0) and np.all(got > 0 if min_lr else got >= 0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(warmup_steps=-1, total_steps=10), "warmup_steps must be a non-negative int"),
        (dict(warmup_steps=10, total_steps=10), r"total_steps must be an int greater than"),
        (dict(warmup_steps=2, total_steps=10, min_lr=-1.0), "Invalid min_lr: -1.0"),
    ],
)
def test_warmup_cosine_lr_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WarmupCosineLR(_optimizer(), **kwargs)


def test_argument_errors():
    with pytest.raises(ValueError, match="StepLR: step_size must be a positive int, got 0"):
        StepLR(_optimizer(), step_size=0)
    with pytest.raises(ValueError, match="T_max must be a positive int"):
        CosineAnnealingLR(_optimizer(), T_max=0)
    with pytest.raises(TypeError, match="list is not an Optimizer"):
        StepLR([], step_size=1)
    with pytest.raises(KeyError, match=r"'initial_lr' is not specified in param_groups\[0\]"):
        StepLR(_optimizer(), step_size=2, last_epoch=4)
    with pytest.raises(NotImplementedError, match="LRScheduler does not implement get_lr"):
        LRScheduler(_optimizer())


def test_initial_lr_and_resume_with_last_epoch():
    opt = _optimizer()
    StepLR(opt, step_size=2, gamma=0.5)
    assert [g["initial_lr"] for g in opt.param_groups] == BASE
    opt.param_groups[0]["lr"] = 123.0  # a new scheduler starts from initial_lr, not lr
    resumed = StepLR(opt, step_size=2, gamma=0.5, last_epoch=4)
    assert resumed.base_lrs == BASE and resumed.last_epoch == 5
    assert resumed.get_last_lr() == [b * 0.25 for b in BASE]


def test_state_dict_round_trip():
    def make():
        opt = _optimizer()
        return LambdaLR(opt, lambda t: 0.9**t), opt

    sched, _ = make()
    for _ in range(7):
        sched.step()
    saved = sched.state_dict()
    assert "optimizer" not in saved and "lr_lambdas" not in saved
    assert saved["last_epoch"] == 7 and saved["base_lrs"] == BASE
    want = _sequence(sched, 5)

    sched2, opt2 = make()
    sched2.load_state_dict(saved)
    assert sched2.get_last_lr() == want[0].tolist()
    sched2.step()  # the optimizer's lrs follow at the next step
    np.testing.assert_array_equal(_sequence(sched2, 4), want[1:])
    assert callable(sched2.lr_lambdas[0])


def test_scheduled_lr_drives_the_update():
    p = tinylm.tensor(np.zeros(1), requires_grad=True)
    opt = SGD([p], lr=1.0)
    sched = StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(4):
        p.grad = tinylm.tensor(np.ones(1))
        opt.step()
        sched.step()
    np.testing.assert_array_equal(p.data, [-(1 + 0.5 + 0.25 + 0.125)])
    # the lr survives an optimizer checkpoint, and so does initial_lr
    saved = opt.state_dict()["param_groups"][0]
    assert saved["lr"] == 0.0625 and saved["initial_lr"] == 1.0
    adam = Adam([p], lr=0.5)
    WarmupCosineLR(adam, warmup_steps=4, total_steps=8)
    assert adam.param_groups[0]["lr"] == 0.125
