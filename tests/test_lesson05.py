"""Grades lesson 05 (lessons/05_optimizers.py): gradient descent and momentum on a quadratic,
Adam's bias correction, AdamW vs an L2 penalty, the warmup-cosine schedule, clipping, and
the first model on the names corpus. Run with ``pytest -m lesson05``."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tinylm
import tinylm.nn as nn
import tinylm.nn.functional as F
from tinylm import optim
from tinylm.data import load_names
from tinylm.nn.utils import clip_grad_norm_
from tinylm.optim.lr_scheduler import WarmupCosineLR

pytestmark = pytest.mark.lesson05

A, B = 1.0, 25.0  # the lesson's quadratic: f = (A x^2 + B y^2) / 2


def param(*values) -> tinylm.Tensor:
    return tinylm.tensor(list(values), dtype=tinylm.float64, requires_grad=True)


def quadratic(p):
    return 0.5 * (A * p[0] ** 2 + B * p[1] ** 2)


def run(opt, loss_fn, p, steps: int) -> float:
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(p)
        loss.backward()
        opt.step()
    return loss_fn(p).item()


@pytest.mark.parametrize("lr", [0.01, 0.05, 0.07, 0.079])
def test_gradient_descent_on_quadratic_matches_closed_form(lr):
    p = param(-4.0, 1.5)
    run(optim.SGD([p], lr=lr), quadratic, p, 30)
    expected = [(1 - lr * A) ** 30 * -4.0, (1 - lr * B) ** 30 * 1.5]
    np.testing.assert_allclose(p.detach().numpy(), expected, rtol=1e-11)


def test_gradient_descent_diverges_above_two_over_curvature():
    below, above = param(-4.0, 1.5), param(-4.0, 1.5)
    run(optim.SGD([below], lr=0.99 * 2 / B), quadratic, below, 200)
    run(optim.SGD([above], lr=1.01 * 2 / B), quadratic, above, 200)
    assert abs(below.detach().numpy()[1]) < 1.5 * 0.5  # shrinking (slowly)
    assert abs(above.detach().numpy()[1]) > 1.5 * 2  # growing: the steep direction diverges


def test_momentum_matches_heavy_ball_recurrence():
    mu, lr = 0.9, 0.01
    p = param(-4.0, 1.5)
    opt = optim.SGD([p], lr=lr, momentum=mu)
    theta, velocity = np.array([-4.0, 1.5]), None
    for _ in range(25):
        run(opt, quadratic, p, 1)
        g = np.array([A, B]) * theta
        velocity = g if velocity is None else mu * velocity + g  # b_1 = g_1
        theta = theta - lr * velocity
        np.testing.assert_allclose(p.detach().numpy(), theta, rtol=1e-12)


def test_momentum_beats_sgd_on_elongated_quadratic():
    plain, heavy = param(-4.0, 1.5), param(-4.0, 1.5)
    loss_sgd = run(optim.SGD([plain], lr=0.07), quadratic, plain, 50)
    loss_mom = run(optim.SGD([heavy], lr=0.07, momentum=0.6), quadratic, heavy, 50)
    assert loss_mom < 1e-4 * loss_sgd


@pytest.mark.parametrize("betas", [(0.9, 0.999), (0.5, 0.9), (0.0, 0.99)])
def test_adam_first_step_moves_each_parameter_by_lr(betas):
    lr = 0.01
    scales = tinylm.tensor([-1e3, -1.0, 1e-2, 1.0, 1e4], dtype=tinylm.float64)
    p = param(0.0, 0.0, 0.0, 0.0, 0.0)
    run(optim.Adam([p], lr=lr, betas=betas), lambda p: (p * scales).sum(), p, 1)
    np.testing.assert_allclose(p.detach().numpy(), -lr * np.sign(scales.numpy()), rtol=1e-5)


def test_adam_bias_correction_gives_unbiased_moments():
    beta1, beta2, g = 0.9, 0.999, 3.0
    p = param(0.0)
    opt = optim.Adam([p], lr=1e-3, betas=(beta1, beta2))
    for t in range(1, 51):
        run(opt, lambda p: (p * g).sum(), p, 1)
        m, v = opt.state[p]["exp_avg"][0], opt.state[p]["exp_avg_sq"][0]
        assert m == pytest.approx((1 - beta1**t) * g, rel=1e-12)  # biased toward 0
        assert v == pytest.approx((1 - beta2**t) * g * g, rel=1e-12)
        assert m / (1 - beta1**t) == pytest.approx(g, rel=1e-12)  # corrected: exact
        assert v / (1 - beta2**t) == pytest.approx(g * g, rel=1e-12)
    # a constant gradient moves the parameter by lr every step
    assert p.item() == pytest.approx(-50 * 1e-3, rel=1e-6)


def test_adam_update_is_invariant_to_gradient_scale():
    rng = np.random.default_rng(0)
    pushes = rng.standard_normal((30, 4))
    finals = []
    for scale in (1e-2, 1.0, 1e3):
        p = param(0.5, -0.5, 1.0, 2.0)
        opt = optim.Adam([p], lr=0.01, eps=0.0)
        for push in pushes:
            g = tinylm.tensor(scale * push)
            run(opt, lambda p, g=g: (p * g).sum(), p, 1)
        finals.append(p.detach().numpy())
    np.testing.assert_allclose(finals[0], finals[1], rtol=1e-10)
    np.testing.assert_allclose(finals[2], finals[1], rtol=1e-10)


def test_sgd_l2_equals_decoupled_weight_decay():
    lr, wd = 0.01, 0.1
    l2, decoupled = param(1.0, -2.0), param(1.0, -2.0)
    opt_l2 = optim.SGD([l2], lr=lr, weight_decay=wd)
    opt_plain = optim.SGD([decoupled], lr=lr)
    for _ in range(40):
        run(opt_l2, quadratic, l2, 1)
        opt_plain.zero_grad()
        quadratic(decoupled).backward()
        with tinylm.no_grad():
            decoupled.data *= 1 - lr * wd
        opt_plain.step()
    np.testing.assert_allclose(l2.detach().numpy(), decoupled.detach().numpy(), rtol=1e-12)


def decay_experiment(make_optimizer, steps: int = 300) -> np.ndarray:
    """The lesson's experiment: weight A gets no loss gradient, B gets +-100 alternating."""
    p = param(1.0, 1.0)
    opt = make_optimizer([p])
    for t in range(steps):
        push = tinylm.tensor([0.0, 100.0 * (-1) ** t], dtype=tinylm.float64)
        run(opt, lambda p, push=push: (p * push).sum(), p, 1)
    return p.detach().numpy()


def test_adamw_differs_from_adam_with_l2():
    lr, wd = 0.01, 0.1
    adam_l2 = decay_experiment(lambda ps: optim.Adam(ps, lr=lr, weight_decay=wd))
    adamw = decay_experiment(lambda ps: optim.AdamW(ps, lr=lr, weight_decay=wd))
    assert adamw[0] == pytest.approx((1 - lr * wd) ** 300, rel=1e-9)  # exactly the decay
    assert adamw[1] == pytest.approx((1 - lr * wd) ** 300, abs=0.05)
    assert abs(adam_l2[0]) < 0.02  # driven to zero
    assert adam_l2[1] > 0.95  # hardly decayed


def test_adam_l2_ignores_lambda_for_zero_gradient_weights():
    # with no loss gradient, Adam normalises lambda*theta to a step of ~lr: lambda drops out
    moved = []
    for wd in (1e-4, 1e-2, 1.0):
        p = param(5.0)
        run(optim.Adam([p], lr=0.01, weight_decay=wd), lambda p: (p * 0.0).sum(), p, 100)
        moved.append(5.0 - p.item())
    np.testing.assert_allclose(moved, moved[-1], rtol=1e-4)  # the same for every lambda
    assert 0.9 < moved[-1] <= 1.0  # about lr per step: 100 steps of 0.01
    p = param(5.0)  # AdamW: the decay is (1 - lr wd)^t, as lambda says
    run(optim.AdamW([p], lr=0.01, weight_decay=1e-2), lambda p: (p * 0.0).sum(), p, 100)
    assert p.item() == pytest.approx(5.0 * (1 - 1e-4) ** 100, rel=1e-12)


def test_warmup_cosine_schedule_values():
    opt = optim.AdamW([param(0.0)], lr=1e-2)
    schedule = WarmupCosineLR(opt, warmup_steps=100, total_steps=1000, min_lr=1e-3)
    rates = []
    for _ in range(1200):
        rates.append(opt.param_groups[0]["lr"])
        schedule.step()
    rates = np.array(rates)
    np.testing.assert_allclose(rates[:100], 1e-2 * np.arange(1, 101) / 100, rtol=1e-12)
    t = np.arange(100, 1001)
    cosine = 1e-3 + 0.5 * (1e-2 - 1e-3) * (1 + np.cos(np.pi * (t - 100) / 900))
    np.testing.assert_allclose(rates[100:1001], cosine, rtol=1e-12)
    np.testing.assert_allclose(rates[1001:], 1e-3)
    assert np.all(np.diff(rates[100:1001]) <= 0)


def test_clip_grad_norm_caps_norm_and_keeps_direction():
    w1, w2 = param(3.0, 0.0), param(0.0, 4.0)
    (w1 * 100.0).sum().backward()
    (w2 * tinylm.tensor([0.0, 200.0], dtype=tinylm.float64)).sum().backward()
    before = np.concatenate([w1.grad.numpy(), w2.grad.numpy()])
    norm = clip_grad_norm_([w1, w2], max_norm=1.0)
    after = np.concatenate([w1.grad.numpy(), w2.grad.numpy()])
    assert norm.item() == pytest.approx(np.linalg.norm(before), rel=1e-12)
    assert np.linalg.norm(after) == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(after / np.linalg.norm(after), before / np.linalg.norm(before))
    norm = clip_grad_norm_([w1, w2], max_norm=10.0)  # already short: unchanged
    np.testing.assert_allclose(np.concatenate([w1.grad.numpy(), w2.grad.numpy()]), after)


# ----------------------------------------------------------------------------- names


@pytest.fixture(scope="module")
def names_data():
    """The lesson's split: a seeded shuffle, 90% train / 10% validation, context 3."""
    tinylm.manual_seed(0)
    names = load_names()
    order = tinylm.rand(len(names)).numpy().argsort()
    names = [names[i] for i in order]
    stoi = {c: i + 1 for i, c in enumerate(sorted(set("".join(names))))}
    stoi["."] = 0

    def examples(words, context=3):
        X, Y = [], []
        for w in words:
            window = [0] * context
            for ch in w + ".":
                X.append(window)
                Y.append(stoi[ch])
                window = window[1:] + [stoi[ch]]
        return tinylm.tensor(X), tinylm.tensor(Y)

    n_train = int(0.9 * len(names))
    return len(stoi), examples(names[:n_train]), examples(names[n_train:])


@pytest.fixture(scope="module")
def bigram(names_data):
    """The lesson's bigram: a (V, V) logits table from zeros, 100 full-batch Adam steps."""
    V, (Xtr, Ytr), _ = names_data
    W = tinylm.zeros(V, V, requires_grad=True)
    opt = optim.Adam([W], lr=0.3)
    run(opt, lambda W: F.cross_entropy(F.embedding(Xtr[:, -1], W), Ytr), W, 100)
    return W.detach()


def test_bigram_learns_counted_frequencies(names_data, bigram):
    V, train, _ = names_data
    W = bigram
    prev, nxt = train[0][:, -1].numpy(), train[1].numpy()
    counts = np.zeros((V, V))
    np.add.at(counts, (prev, nxt), 1)
    frequencies = counts / counts.sum(axis=1, keepdims=True)
    learned = tinylm.softmax(W, dim=1).detach().numpy()
    assert np.abs(learned - frequencies).max() < 0.01
    with tinylm.no_grad():
        loss = F.cross_entropy(F.embedding(train[0][:, -1], W), train[1]).item()
    best = -np.log(frequencies[prev, nxt]).mean()  # the counted optimum
    assert best <= loss < best + 0.005


class NameMLP(nn.Module):
    """The lesson's model: 3 characters -> Embedding(V, 10) -> Linear(30, 200) -> tanh ->
    Linear(200, V)."""

    def __init__(self, V: int):
        super().__init__()
        self.embed = nn.Embedding(V, 10)
        self.hidden = nn.Linear(30, 200)
        self.out = nn.Linear(200, V)

    def forward(self, ids):  # (B, 3) -> (B, V)
        return self.out(self.hidden(self.embed(ids).reshape(ids.shape[0], -1)).tanh())


def test_mlp_beats_bigram_on_held_out_names(names_data, bigram):
    V, (Xtr, Ytr), (Xva, Yva) = names_data
    bigram_val = F.cross_entropy(F.embedding(Xva[:, -1], bigram), Yva).item()
    assert bigram_val < math.log(V) - 0.8

    tinylm.manual_seed(2)
    model = NameMLP(V)
    steps = 600
    opt = optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-3)
    schedule = WarmupCosineLR(opt, warmup_steps=50, total_steps=steps, min_lr=1e-3)
    for _ in range(steps):
        batch = tinylm.randint(0, len(Ytr), (256,))
        loss = F.cross_entropy(model(Xtr[batch]), Ytr[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
    with tinylm.no_grad():
        mlp_val = F.cross_entropy(model(Xva), Yva).item()
    print(f"validation loss: bigram {bigram_val:.4f}, MLP {mlp_val:.4f}")
    assert mlp_val < bigram_val - 0.15, (mlp_val, bigram_val)
