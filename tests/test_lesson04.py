"""Grades lesson 04 (lessons/04_softmax_cross_entropy.py): the softmax Jacobian, the
cross-entropy gradient p - y (and p - q with label smoothing, zero rows with ignore_index),
log-sum-exp stability, and gradcheck. Run with ``pytest -m lesson04``."""

from __future__ import annotations

import numpy as np
import pytest

import tinylm
import tinylm.nn.functional as F
from tinylm.gradcheck import jacobians

pytestmark = pytest.mark.lesson04

N, C = 5, 6
PAD = -100


def logits(*shape, seed: int = 0, scale: float = 1.0) -> tinylm.Tensor:
    rng = np.random.default_rng(seed)
    return tinylm.tensor(scale * rng.standard_normal(shape), requires_grad=True)


def probs(z: tinylm.Tensor, dim: int = -1) -> np.ndarray:
    return tinylm.softmax(z, dim=dim).detach().numpy()


@pytest.mark.parametrize("scale", [0.1, 1.0, 5.0])
def test_softmax_jacobian_is_diag_p_minus_outer_p(scale):
    z = logits(C, seed=1, scale=scale)
    p = probs(z)
    formula = np.diag(p) - np.outer(p, p)
    [(_, numerical, analytic)] = jacobians(lambda z: tinylm.softmax(z, dim=0), (z,))
    np.testing.assert_allclose(numerical, formula, atol=1e-9)
    np.testing.assert_allclose(analytic, formula, atol=1e-14)


def test_softmax_jacobian_rows_sum_to_zero_and_shift_invariance():
    z = logits(C, seed=2)
    [(_, _, J)] = jacobians(lambda z: tinylm.softmax(z, dim=0), (z,))
    np.testing.assert_allclose(J, J.T, atol=1e-15)
    np.testing.assert_allclose(J.sum(axis=1), 0.0, atol=1e-15)
    shifted = tinylm.softmax(z.detach() + 123.0, dim=0).numpy()
    np.testing.assert_allclose(shifted, probs(z), rtol=1e-12)


def test_softmax_backward_is_the_vjp_formula():
    z = logits(N, C, seed=3)
    g = np.random.default_rng(4).standard_normal((N, C))
    tinylm.softmax(z, dim=1).backward(tinylm.tensor(g))
    p = probs(z)
    expected = p * (g - (g * p).sum(axis=1, keepdims=True))  # p (g - g.p), row by row
    np.testing.assert_allclose(z.grad.numpy(), expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("reduction, scale", [("mean", 1.0 / N), ("sum", 1.0)])
def test_cross_entropy_gradient_is_softmax_minus_one_hot(reduction, scale):
    z = logits(N, C, seed=5)
    y = np.array([2, 0, 5, 2, 2])  # repeated classes
    F.cross_entropy(z, tinylm.tensor(y), reduction=reduction).backward()
    expected = (probs(z) - np.eye(C)[y]) * scale
    np.testing.assert_allclose(z.grad.numpy(), expected, rtol=1e-12, atol=1e-15)


def test_soft_target_gradient_is_p_minus_q():
    z = logits(N, C, seed=6)
    q = np.random.default_rng(7).dirichlet(np.ones(C), size=N)  # rows sum to 1
    loss = F.cross_entropy(z, tinylm.tensor(q))
    loss.backward()
    logp = tinylm.log_softmax(z, dim=1).detach().numpy()
    np.testing.assert_allclose(loss.item(), -(q * logp).sum(axis=1).mean(), rtol=1e-12)
    np.testing.assert_allclose(z.grad.numpy(), (probs(z) - q) / N, rtol=1e-12, atol=1e-15)


def test_naive_softmax_overflows_where_tinylm_is_exact():
    big = np.array([1000.0, 999.0, 998.0])
    with np.errstate(over="ignore", invalid="ignore"):
        naive = np.exp(big) / np.exp(big).sum()
    assert np.isnan(naive).all()
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        stable = tinylm.softmax(tinylm.tensor(big), dim=0).numpy()
        small = tinylm.softmax(tinylm.tensor(big - 998.0), dim=0).numpy()
        lse = tinylm.tensor(big).logsumexp(dim=0).item()
    np.testing.assert_allclose(stable, small, rtol=1e-15)
    np.testing.assert_allclose(lse, 1000.0 + np.log1p(np.exp(-1.0) + np.exp(-2.0)), rtol=1e-15)
    for dtype in (tinylm.float32, tinylm.float64):  # float32 overflows already above 88.7
        z = tinylm.tensor([[1000.0, 0.0]], dtype=dtype, requires_grad=True)
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            loss = F.cross_entropy(z, tinylm.tensor([1]))
            loss.backward()
        assert loss.item() == 1000.0
        np.testing.assert_array_equal(z.grad.numpy(), [[1.0, -1.0]])


def test_log_softmax_is_finite_where_log_of_softmax_is_not():
    z = tinylm.tensor([[0.0, -1000.0]])
    with np.errstate(divide="ignore"):
        naive = np.log(tinylm.softmax(z, dim=-1).numpy())
    assert naive[0, 1] == -np.inf
    np.testing.assert_array_equal(tinylm.log_softmax(z, dim=-1).numpy(), [[0.0, -1000.0]])


@pytest.mark.parametrize("eps", [0.05, 0.1, 0.5, 1.0])
def test_label_smoothing_loss_and_gradient_match_formulas(eps):
    z = logits(N, C, seed=8)
    y = np.array([1, 1, 4, 0, 5])
    loss = F.cross_entropy(z, tinylm.tensor(y), label_smoothing=eps)
    loss.backward()
    logp = tinylm.log_softmax(z, dim=1).detach().numpy()
    by_hand = (1 - eps) * -logp[np.arange(N), y] + eps / C * -logp.sum(axis=1)
    np.testing.assert_allclose(loss.item(), by_hand.mean(), rtol=1e-12)
    q = (1 - eps) * np.eye(C)[y] + eps / C
    np.testing.assert_allclose(z.grad.numpy(), (probs(z) - q) / N, rtol=1e-12, atol=1e-15)


def test_label_smoothing_optimum_is_log_q_with_loss_entropy():
    eps, y = 0.1, 2
    q = np.full(C, eps / C)
    q[y] += 1 - eps
    z = tinylm.tensor(np.log(q)[None, :], requires_grad=True)
    loss = F.cross_entropy(z, tinylm.tensor([y]), label_smoothing=eps)
    loss.backward()
    np.testing.assert_allclose(loss.item(), -(q * np.log(q)).sum(), rtol=1e-12)
    np.testing.assert_allclose(z.grad.numpy(), 0.0, atol=1e-15)
    # any other logits do worse
    other = tinylm.tensor(np.log(q)[None, :] + np.random.default_rng(9).normal(0, 0.1, C))
    assert F.cross_entropy(other, tinylm.tensor([y]), label_smoothing=eps).item() > loss.item()


def test_ignore_index_mean_divides_by_counted_targets():
    z = logits(N, C, seed=10)
    y = np.array([2, PAD, 4, PAD, 0])
    loss = F.cross_entropy(z, tinylm.tensor(y))
    loss.backward()
    counted = y != PAD
    per_row = -tinylm.log_softmax(z, dim=1).detach().numpy()[np.arange(N), np.where(counted, y, 0)]
    np.testing.assert_allclose(loss.item(), per_row[counted].sum() / counted.sum(), rtol=1e-12)
    expected = np.zeros((N, C))
    expected[counted] = (probs(z)[counted] - np.eye(C)[y[counted]]) / counted.sum()
    np.testing.assert_allclose(z.grad.numpy(), expected, rtol=1e-12, atol=1e-15)
    # more padding does not change the mean
    z_more = tinylm.cat([z.detach(), tinylm.randn(3, C, dtype=tinylm.float64)])
    y_more = tinylm.tensor(np.concatenate([y, [PAD] * 3]))
    np.testing.assert_allclose(F.cross_entropy(z_more, y_more).item(), loss.item(), rtol=1e-14)


@pytest.mark.parametrize("ignore_index", [PAD, 3])
def test_ignore_index_with_smoothing_gradient(ignore_index):
    eps = 0.2
    z = logits(N, C, seed=11)
    y = np.array([ignore_index, 1, 3, ignore_index, 5])
    F.cross_entropy(z, tinylm.tensor(y), ignore_index=ignore_index, label_smoothing=eps).backward()
    counted = y != ignore_index
    q = (1 - eps) * np.eye(C)[y[counted]] + eps / C
    expected = np.zeros((N, C))
    expected[counted] = (probs(z)[counted] - q) / counted.sum()
    np.testing.assert_allclose(z.grad.numpy(), expected, rtol=1e-12, atol=1e-15)


def test_all_ignored_mean_is_nan_with_zero_gradient():
    z = logits(2, C, seed=12)
    loss = F.cross_entropy(z, tinylm.tensor([PAD, PAD]))
    loss.backward()
    assert np.isnan(loss.item())
    np.testing.assert_array_equal(z.grad.numpy(), 0.0)
    assert F.cross_entropy(z, tinylm.tensor([PAD, PAD]), reduction="sum").item() == 0.0


@pytest.mark.parametrize(
    "target, kwargs, shape",
    [
        ([2, 0, 5, 2, 2], {}, (N, C)),
        ([2, 0, 5, 2, 2], {"label_smoothing": 0.1}, (N, C)),
        ([2, PAD, 5, PAD, 2], {}, (N, C)),
        ([2, PAD, 5, PAD, 2], {"label_smoothing": 0.2, "reduction": "sum"}, (N, C)),
        ([[1, 3, PAD], [3, 3, 0]], {"label_smoothing": 0.1}, (2, C, 3)),
    ],
    ids=["plain", "smoothing", "ignore_index", "both-sum", "NCT"],
)
def test_cross_entropy_passes_gradcheck(target, kwargs, shape):
    y = tinylm.tensor(target)
    z = logits(*shape, seed=13)
    assert tinylm.gradcheck(lambda z: F.cross_entropy(z, y, **kwargs), (z,))
    assert tinylm.gradgradcheck(lambda z: F.cross_entropy(z, y, **kwargs), (z,))
