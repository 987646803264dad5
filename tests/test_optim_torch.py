"""Optional oracle: optimizers, schedules and clipping against torch.optim, float64, to 1e-10.

Skipped cleanly where PyTorch is not installed (it is never a required dependency). The
trajectories are those of tests/test_optim.py: 20 steps on a quadratic with fixed noise.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import tinylm
import tinylm.nn
from tinylm import optim

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.lesson05

STEPS = 20
SHAPES = [(3, 2), (4,)]
ATOL = 1e-10

CASES = {
    "sgd": ("SGD", dict(lr=0.1)),
    "sgd_momentum": ("SGD", dict(lr=0.1, momentum=0.9)),
    "sgd_dampening": ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3)),
    "sgd_nesterov": ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    "sgd_weight_decay": ("SGD", dict(lr=0.1, weight_decay=0.05)),
    "sgd_all": ("SGD", dict(lr=0.05, momentum=0.8, weight_decay=0.05, nesterov=True)),
    "adam": ("Adam", dict(lr=0.05)),
    "adam_betas_eps": ("Adam", dict(lr=0.05, betas=(0.8, 0.99), eps=1e-3)),
    "adam_weight_decay": ("Adam", dict(lr=0.05, weight_decay=0.1)),
    "adam_amsgrad": ("Adam", dict(lr=0.05, amsgrad=True)),
    "adam_amsgrad_weight_decay": ("Adam", dict(lr=0.05, weight_decay=0.1, amsgrad=True)),
    "adamw": ("AdamW", dict(lr=0.05)),
    "adamw_weight_decay": ("AdamW", dict(lr=0.05, weight_decay=0.3)),
    "adamw_amsgrad": ("AdamW", dict(lr=0.05, weight_decay=0.1, amsgrad=True)),
}


def _problem():
    rng = np.random.default_rng(0)
    theta0 = [rng.standard_normal(s) for s in SHAPES]
    scale = [rng.uniform(0.5, 2.0, s) for s in SHAPES]
    noise = [[rng.standard_normal(s) * 0.1 for s in SHAPES] for _ in range(STEPS)]
    return theta0, scale, noise


class _Run:
    """One library's parameters and optimizer on the test problem, stepped in lockstep."""

    def __init__(self, lib, name, groups=None, **hp):
        self.lib = lib
        self.theta0, self.scale, self.noise = _problem()
        if lib == "torch":
            self.params = [torch.tensor(t.copy(), requires_grad=True) for t in self.theta0]
            cls = getattr(torch.optim, name)
        else:
            self.params = [tinylm.tensor(t.copy(), requires_grad=True) for t in self.theta0]
            cls = getattr(optim, name)
        spec = (
            self.params
            if groups is None
            else [{**g, "params": [self.params[i] for i in g["params"]]} for g in groups]
        )
        self.opt = cls(spec, **hp)
        self.t = 0

    def values(self):
        if self.lib == "torch":
            return [p.detach().numpy().copy() for p in self.params]
        return [p.data.copy() for p in self.params]

    def step(self):
        for p, s, e in zip(self.params, self.scale, self.noise[self.t]):
            if self.lib == "torch":
                p.grad = torch.from_numpy(s * p.detach().numpy() + e)
            else:
                p.grad = tinylm.tensor(s * p.data + e)
        self.opt.step()
        self.t += 1
        return self.values()


def _assert_close(a, b, what):
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=0, atol=ATOL, err_msg=what)


@pytest.mark.parametrize("case", CASES)
def test_trajectory_matches_torch(case):
    name, hp = CASES[case]
    ours, theirs = _Run("tinylm", name, **hp), _Run("torch", name, **hp)
    for t in range(STEPS):
        _assert_close(ours.step(), theirs.step(), f"{case}, step {t + 1}")


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_param_groups_match_torch(name):
    groups = [{"params": [0]}, {"params": [1], "lr": 0.01, "weight_decay": 0.2}]
    hp = dict(lr=0.05, momentum=0.5) if name == "SGD" else dict(lr=0.05)
    ours, theirs = _Run("tinylm", name, groups, **hp), _Run("torch", name, groups, **hp)
    for t in range(STEPS):
        _assert_close(ours.step(), theirs.step(), f"{name} groups, step {t + 1}")


def _to_torch_state(sd):
    state = {
        k: {
            kk: torch.from_numpy(v.numpy()) if isinstance(v, tinylm.Tensor) else v
            for kk, v in s.items()
        }
        for k, s in sd["state"].items()
    }
    return {"state": state, "param_groups": sd["param_groups"]}


def _from_torch_state(sd):
    state = {
        k: {kk: v.numpy() if torch.is_tensor(v) else v for kk, v in s.items()}
        for k, s in sd["state"].items()
    }
    return {"state": state, "param_groups": sd["param_groups"]}


@pytest.mark.parametrize("case", ["sgd_momentum", "adam_amsgrad_weight_decay", "adamw"])
def test_state_dict_moves_between_tinylm_and_torch(case):
    """Half a run in one library, the state dict carried over, the rest in the other."""
    name, hp = CASES[case]
    reference = _Run("tinylm", name, **hp)
    want = [reference.step() for _ in range(STEPS)]
    for first, second in [("tinylm", "torch"), ("torch", "tinylm")]:
        a = _Run(first, name, **hp)
        for _ in range(STEPS // 2):
            a.step()
        b = _Run(second, name, **hp)
        for p, v in zip(b.params, a.values()):
            (p.data if second == "tinylm" else p.data.numpy())[...] = v
        sd = a.opt.state_dict()
        b.opt.load_state_dict(_to_torch_state(sd) if second == "torch" else _from_torch_state(sd))
        b.t = STEPS // 2
        for t in range(STEPS // 2, STEPS):
            _assert_close(b.step(), want[t], f"{case} {first} -> {second}, step {t + 1}")


# ---------------------------------------------------------------------- schedules
def _lr_sequences(make_ours, make_theirs, n):
    ours = _Run("tinylm", "SGD", [{"params": [0]}, {"params": [1], "lr": 0.03}], lr=0.1)
    theirs = _Run("torch", "SGD", [{"params": [0]}, {"params": [1], "lr": 0.03}], lr=0.1)
    s_ours, s_theirs = make_ours(ours.opt), make_theirs(theirs.opt)
    got, want = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's notes on step order are not under test
        for _ in range(n):
            got.append(s_ours.get_last_lr())
            want.append(s_theirs.get_last_lr())
            theirs.opt.step()
            s_ours.step()
            s_theirs.step()
    return np.array(got), np.array(want)


SCHEDULES = {
    "step": (
        lambda o: optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5),
        lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5),
        20,
    ),
    "lambda": (
        lambda o: optim.lr_scheduler.LambdaLR(o, lambda t: 1 / math.sqrt(t + 1)),
        lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda t: 1 / math.sqrt(t + 1)),
        20,
    ),
    "cosine": (
        lambda o: optim.lr_scheduler.CosineAnnealingLR(o, T_max=10, eta_min=1e-3),
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10, eta_min=1e-3),
        35,
    ),
    # linear warmup into cosine, as torch composes it (compared up to total_steps)
    "warmup_cosine": (
        lambda o: optim.lr_scheduler.WarmupCosineLR(o, warmup_steps=5, total_steps=20, min_lr=1e-3),
        lambda o: torch.optim.lr_scheduler.SequentialLR(
            o,
            [
                torch.optim.lr_scheduler.LinearLR(o, start_factor=1 / 5, total_iters=4),
                torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=15, eta_min=1e-3),
            ],
            milestones=[5],
        ),
        21,
    ),
}


@pytest.mark.parametrize("name", SCHEDULES)
def test_lr_schedule_matches_torch(name):
    make_ours, make_theirs, n = SCHEDULES[name]
    got, want = _lr_sequences(make_ours, make_theirs, n)
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)


# ---------------------------------------------------------------------- clipping
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf")])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    rng = np.random.default_rng(1)
    grads = [rng.standard_normal(s) for s in SHAPES]
    ours = [tinylm.tensor(np.zeros(s), requires_grad=True) for s in SHAPES]
    theirs = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in SHAPES]
    for a, b, g in zip(ours, theirs, grads):
        a.grad, b.grad = tinylm.tensor(g.copy()), torch.from_numpy(g.copy())
    n_ours = tinylm.nn.utils.clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    n_theirs = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    np.testing.assert_allclose(n_ours.item(), n_theirs.item(), rtol=0, atol=ATOL)
    _assert_close([a.grad.data for a in ours], [b.grad.numpy() for b in theirs], "clipped")


def test_clip_grad_value_matches_torch():
    g = np.random.default_rng(2).standard_normal((4, 5))
    a = tinylm.tensor(np.zeros((4, 5)), requires_grad=True)
    b = torch.zeros((4, 5), dtype=torch.float64, requires_grad=True)
    a.grad, b.grad = tinylm.tensor(g.copy()), torch.from_numpy(g.copy())
    tinylm.nn.utils.clip_grad_value_([a], 0.3)
    torch.nn.utils.clip_grad_value_([b], 0.3)
    np.testing.assert_array_equal(a.grad.data, b.grad.numpy())
