"""Optional oracle: the losses against torch.nn.functional, values and input gradients in
float64 to 1e-10, over a grid of shapes, weights, ignore_index, label smoothing,
probability targets and reductions. Skipped where PyTorch is not installed."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import tinylm
from tinylm.nn.losses import cross_entropy, mse_loss, nll_loss

torch = pytest.importorskip("torch")
TF = torch.nn.functional

pytestmark = pytest.mark.lesson04

TOL = {"rtol": 1e-10, "atol": 1e-10, "equal_nan": True}
SHAPES = [(5, 4), (3, 4, 2), (4,), (2, 4, 3, 2)]  # input shapes; C = 4 at dim 1 (dim 0 if 1-d)
REDUCTIONS = ["mean", "sum", "none"]


def _target_shape(shape):
    return () if len(shape) == 1 else (shape[0],) + shape[2:]


def _ids(rng, shape, ignore_index):
    t = rng.integers(0, 4, size=_target_shape(shape))
    if t.ndim:  # plant ignored targets and a repeated class
        t.flat[0] = ignore_index
        t.flat[-1] = t.flat[len(t.flat) // 2]
    return t


def _run(fn_tl, fn_torch, arrays, grad_of, rng, **kw):
    """Call both libraries on the same float64 arrays; backprop the same random upstream
    gradient; return (tinylm value, torch value, [(tinylm grad, torch grad), ...])."""
    tl_args = [tinylm.tensor(a, requires_grad=i in grad_of) if a.dtype.kind == "f"
               else tinylm.tensor(a) for i, a in enumerate(arrays)]
    th_args = [torch.tensor(a, requires_grad=i in grad_of) for i, a in enumerate(arrays)]
    y_tl, y_th = fn_tl(*tl_args, **kw), fn_torch(*th_args, **kw)
    g = rng.standard_normal(tuple(y_th.shape))
    y_tl.backward(tinylm.tensor(g))
    y_th.backward(torch.tensor(g))
    grads = [(tl_args[i].grad.numpy(), th_args[i].grad.numpy()) for i in grad_of]
    return y_tl.detach().numpy(), y_th.detach().numpy(), grads


def _check(got, want, grads):
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, **TOL)
    for a, b in grads:
        np.testing.assert_allclose(a, b, **TOL)


def _ce(input, target, weight=None, **kw):
    return cross_entropy(input, target, weight, **kw)


def _ce_torch(input, target, weight=None, **kw):
    return TF.cross_entropy(input, target, weight, **kw)


CE_GRID = list(itertools.product(SHAPES, [None, "w"], [-100, 1], REDUCTIONS, [0.0, 0.15, 1.0]))


@pytest.mark.parametrize(("shape", "weight", "ignore_index", "reduction", "smoothing"), CE_GRID)
def test_cross_entropy_with_class_ids(shape, weight, ignore_index, reduction, smoothing):
    rng = np.random.default_rng(CE_GRID.index((shape, weight, ignore_index, reduction, smoothing)))
    arrays = [rng.standard_normal(shape) * 3, _ids(rng, shape, ignore_index)]
    if weight:
        arrays.append(rng.uniform(0.2, 2.0, size=4))
    _check(*_run(_ce, _ce_torch, arrays, [0], rng, ignore_index=ignore_index,
                 reduction=reduction, label_smoothing=smoothing))


@pytest.mark.parametrize(("shape", "weight", "reduction", "smoothing"),
                         list(itertools.product(SHAPES, [None, "w"], REDUCTIONS, [0.0, 0.2])))
def test_cross_entropy_with_probabilities(shape, weight, reduction, smoothing):
    rng = np.random.default_rng(len(shape) * 7 + len(reduction))
    cdim = 0 if len(shape) == 1 else 1
    q = np.exp(rng.standard_normal(shape))
    q /= q.sum(axis=cdim, keepdims=True)
    arrays = [rng.standard_normal(shape) * 3, q]
    if weight:
        arrays.append(rng.uniform(0.2, 2.0, size=4))
    # the target is differentiable too: both gradients are compared
    _check(*_run(_ce, _ce_torch, arrays, [0, 1], rng, reduction=reduction,
                 label_smoothing=smoothing))


@pytest.mark.parametrize(("shape", "weight", "ignore_index", "reduction"),
                         list(itertools.product(SHAPES, [None, "w"], [-100, 2], REDUCTIONS)))
def test_nll_loss(shape, weight, ignore_index, reduction):
    rng = np.random.default_rng(len(shape) * 11 + ignore_index % 7)
    cdim = 0 if len(shape) == 1 else 1
    z = rng.standard_normal(shape)
    logp = z - np.log(np.exp(z).sum(axis=cdim, keepdims=True))
    arrays = [logp, _ids(rng, shape, ignore_index)]
    if weight:
        arrays.append(rng.uniform(0.2, 2.0, size=4))
    _check(*_run(nll_loss, TF.nll_loss, arrays, [0], rng, ignore_index=ignore_index,
                 reduction=reduction))


@pytest.mark.parametrize(("shape", "reduction"),
                         list(itertools.product([(3, 4), (2, 3, 2), (5,), ()], REDUCTIONS)))
def test_mse_loss(shape, reduction):
    rng = np.random.default_rng(len(shape))
    arrays = [rng.standard_normal(shape), rng.standard_normal(shape)]
    _check(*_run(mse_loss, TF.mse_loss, arrays, [0, 1], rng, reduction=reduction))


# ----------------------------------------------------------------------------- edge cases


@pytest.mark.parametrize(("weight", "smoothing", "reduction"),
                         list(itertools.product([None, "w"], [0.0, 0.3], REDUCTIONS)))
def test_every_target_ignored_as_pytorch(weight, smoothing, reduction):
    """'mean' is nan (0/0) with a zero gradient; 'sum' is 0; 'none' is all zeros."""
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal((3, 4)), np.full(3, -100)]
    if weight:
        arrays.append(rng.uniform(0.2, 2.0, size=4))
    got, want, grads = _run(_ce, _ce_torch, arrays, [0], rng, reduction=reduction,
                            label_smoothing=smoothing)
    _check(got, want, grads)
    assert np.isnan(want).all() == (reduction == "mean")
    np.testing.assert_array_equal(grads[0][0], 0.0)


@pytest.mark.parametrize("case", ["empty batch", "zero total weight", "unbatched ignored"])
def test_nan_cases_as_pytorch(case):
    rng = np.random.default_rng(4)
    if case == "empty batch":
        arrays = [np.zeros((0, 4)), np.zeros(0, np.int64)]
    elif case == "zero total weight":  # counted targets of weight 0: nan gradient, as torch
        arrays = [rng.standard_normal((3, 4)), np.array([0, -100, 0]), np.array([0, 1, 1, 1.0])]
    else:
        arrays = [rng.standard_normal(4), np.array(-100)]
    got, want, grads = _run(_ce, _ce_torch, arrays, [0], rng)
    assert np.isnan(want)
    _check(got, want, grads)


def test_in_range_ignore_index_and_large_logits():
    rng = np.random.default_rng(5)
    z = rng.standard_normal((6, 4)) * 1e3  # saturated softmax rows
    arrays = [z, np.array([0, 3, 3, 1, 2, 3]), rng.uniform(0.2, 2.0, size=4)]
    _check(*_run(_ce, _ce_torch, arrays, [0], rng, ignore_index=3, label_smoothing=0.1))
