"""The LayerNorm kernels (tinylm/kernels/layernorm.py) against the reference, through
F.layer_norm / nn.LayerNorm and ``.backward()``: y, dx, dw, db.

Tolerances, relative to the scale max(max|value|, 1) (the inputs are O(1)). float64: kernel
and reference sum the rows in different orders; each is within about (D/8 + 10) u of the
exact value relative to the row's scale (u = 1.1e-16, D <= 1000 here, and (1 + |mean|/std)
<= 50 for the offset inputs), so atol = 1e-12 x scale leaves a margin of 10x. float32:
measured against the float64 reference on the same inputs, in units u = 2^-24 of the
scale; the kernel must be no worse than the float32 reference's own
error times 2, plus 8 u. (Measured: both 1.5 - 5 u; 25 - 40 u for rows with mean 100 std 2,
where rounding x itself to float32 costs that much: the same for both.)
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

import tinylm
import tinylm.nn as nn
import tinylm.nn.functional as F
from tinylm import kernels
from tinylm.kernels import layernorm as kln

pytestmark = pytest.mark.lesson11  # lesson 11 (kernels and backends) is graded by these


def run(x, w, b, dy, k, eps=1e-5, layer=False):
    """y and the gradients of sum(y * dy) w.r.t. x, w, b (those that exist)."""
    X = tinylm.Tensor(x, requires_grad=True)
    shape = x.shape[x.ndim - k:]
    if layer:
        m = nn.LayerNorm(shape, eps=eps, elementwise_affine=w is not None,
                         dtype=x.dtype)
        if w is not None:
            m.weight.data[...] = w
            m.bias.data[...] = b
        W, B = m.weight, m.bias
        y = m(X)
    else:
        W = None if w is None else tinylm.Tensor(w, requires_grad=True)
        B = None if b is None else tinylm.Tensor(b, requires_grad=True)
        y = F.layer_norm(X, shape, W, B, eps=eps)
    (y * tinylm.Tensor(dy)).sum().backward()
    return [y.data, X.grad.data] + [t.grad.data for t in (W, B) if t is not None]


def both(fn):
    got = fn()
    with kernels.reference():
        want = fn()
    return got, want


@pytest.fixture
def count_kernel_calls(spy_kernels):
    return spy_kernels(kln, "layer_norm_forward", "layer_norm_backward")


def inputs(shape, k, dtype, affine="wb", offset=0.0, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 2 + offset).astype(dtype)
    S = shape[len(shape) - k:]
    w = rng.standard_normal(S).astype(dtype) if "w" in affine else None
    b = rng.standard_normal(S).astype(dtype) if "b" in affine else None
    dy = rng.standard_normal(shape).astype(dtype)
    return x, w, b, dy


CASES = [  # shape, k (normalized dims), offset of the rows
    ((6, 16), 1, 0.0),
    ((5, 13), 1, 0.0),  # D not a multiple of 8
    ((3, 130), 1, 3.0),  # D > 128
    ((2, 3, 4, 5), 2, 0.0),  # two normalized dims
    ((7, 1), 1, 0.0),  # D = 1: x-hat = 0
    ((4, 24), 1, 100.0),  # mean 50 std away from 0
    ((16,), 1, 0.0),  # no batch dims
    ((3, 1000), 1, 0.0),
]


@pytest.mark.parametrize(("shape", "k", "offset"), CASES, ids=lambda v: str(v))
@pytest.mark.parametrize("affine", ["wb", "", "w", "b"])
def test_float64_matches_reference(shape, k, offset, affine, count_kernel_calls):
    x, w, b, dy = inputs(shape, k, np.float64, affine, offset)
    got, want = both(lambda: run(x, w, b, dy, k))
    assert count_kernel_calls == ["layer_norm_forward", "layer_norm_backward"]
    for g, r in zip(got, want):
        assert g.dtype == np.float64 and g.shape == r.shape
        np.testing.assert_allclose(g, r, rtol=0, atol=1e-12 * scale(r))


def scale(a):
    """The size errors are measured against: max |a|, at least 1 (the inputs are O(1); where
    the exact result is 0, as dx for D = 1, an O(u) rounding residue is still fine)."""
    return max(float(np.abs(a).max(initial=0)), 1.0)


def _error_in_u(got, exact):
    return np.abs(got.astype(np.float64) - exact).max(initial=0) / scale(exact) / 2.0**-24


@pytest.mark.parametrize(("shape", "k", "offset"), CASES, ids=lambda v: str(v))
@pytest.mark.parametrize("affine", ["wb", ""])
@pytest.mark.parametrize("layer", [False, True], ids=["F", "nn"])
def test_float32_is_as_accurate_as_the_reference(shape, k, offset, affine, layer):
    x, w, b, dy = inputs(shape, k, np.float32, affine, offset)
    got, ref32 = both(lambda: run(x, w, b, dy, k, layer=layer))
    up = [None if a is None else a.astype(np.float64) for a in (x, w, b, dy)]
    with kernels.reference():
        exact = run(*up, k, layer=layer)
    for name, g, r, e in zip(["y", "dx", "dw", "db"], got, ref32, exact):
        assert g.dtype == np.float32
        kern, ref = _error_in_u(g, e), _error_in_u(r, e)
        assert kern <= 2 * ref + 8, f"{name}: kernel {kern:.1f} u, reference {ref:.1f} u"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_strided_inputs_and_broadcast_upstream_gradient(dtype):
    rng = np.random.default_rng(5)
    base = rng.standard_normal((12, 10)).astype(dtype)
    wb = rng.standard_normal(12).astype(dtype)

    def grads():
        X = tinylm.Tensor(base, requires_grad=True)
        W = tinylm.Tensor(wb, requires_grad=True)
        x = X.transpose(0, 1)[:, ::2]  # (10, 6), strides of a transposed slice
        w = W[::2]  # strided weight
        y = F.layer_norm(x, 6, w, None)
        y.sum().backward()  # dy: broadcast ones of sum()
        X2 = tinylm.Tensor(base, requires_grad=True)
        y2 = F.layer_norm(X2, 10).transpose(0, 1)  # the gradient arrives transposed
        (y2 * tinylm.Tensor(np.arange(120.0).reshape(10, 12).astype(dtype))).sum().backward()
        return [y.data, X.grad.data, W.grad.data, y2.data, X2.grad.data]

    got, want = both(grads)
    for g, r in zip(got, want):
        np.testing.assert_allclose(g, r, rtol=0, atol=(3e-6 if dtype == np.float32 else 1e-12)
                                   * scale(r))


@pytest.mark.filterwarnings("ignore:Mean of empty slice", "ignore:invalid value encountered")
@pytest.mark.parametrize(("shape", "k"), [((0, 8), 1), ((2, 0, 8), 1), ((3, 0), 1),
                                          ((2, 3, 0), 2), ((0, 2, 3), 2)])
def test_zero_size(shape, k):
    x, w, b, dy = inputs(shape, k, np.float32)
    got, want = both(lambda: run(x, w, b, dy, k))
    for g, r in zip(got, want):
        assert g.shape == r.shape and g.dtype == r.dtype
        np.testing.assert_array_equal(g, r)


def test_inf_and_nan_spoil_only_their_row():
    x, w, b, dy = inputs((4, 8), 1, np.float64)
    x[1, 3], x[2, 0] = np.inf, np.nan
    with np.errstate(invalid="ignore"):
        got, want = both(lambda: run(x, w, b, dy, 1))
    for g, r in zip(got[:2], want[:2]):
        np.testing.assert_array_equal(np.isnan(g), np.isnan(r))
        ok = ~np.isnan(r)
        np.testing.assert_allclose(g[ok], r[ok], rtol=0, atol=1e-12 * scale(r[ok]))


def test_kernels_switched_off_between_forward_and_backward():
    x, w, b, dy = inputs((5, 12), 1, np.float64)
    X, W, B = (tinylm.Tensor(a, requires_grad=True) for a in (x, w, b))
    y = F.layer_norm(X, 12, W, B)  # kernel forward: saves mean and rstd, not x-hat
    with kernels.reference():
        y.backward(tinylm.Tensor(dy))  # the reference backward rebuilds x-hat
    _, want = both(lambda: run(x, w, b, dy, 1))
    for g, r in zip([X.grad.data, W.grad.data, B.grad.data], want[1:]):
        np.testing.assert_allclose(g, r, rtol=0, atol=1e-12 * scale(r))


def test_same_bits_with_one_and_two_numba_threads():
    x, w, b, dy = inputs((64, 40), 1, np.float32, seed=3)
    results = []
    old = numba.get_num_threads()
    try:
        for n in (1, 2, 1):
            numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
            results.append(run(x, w, b, dy, 1))
    finally:
        numba.set_num_threads(old)
    for r in results[1:]:
        assert all(np.array_equal(a, c) for a, c in zip(results[0], r))


@pytest.mark.parametrize("affine", ["wb", ""])
def test_gradcheck_and_gradgradcheck_with_the_kernel(affine, count_kernel_calls):
    """First order: kernel forward and backward. Second order: kernel forward, then the
    differentiable reference backward (it recomputes x-hat from x under create_graph)."""
    x, w, b, _ = inputs((3, 5), 1, np.float64, affine)
    ts = [tinylm.Tensor(a, requires_grad=True) for a in (x, w, b) if a is not None]

    def fn(*ts):
        return F.layer_norm(ts[0], 5, *ts[1:]) ** 2

    assert tinylm.gradcheck(fn, ts)
    assert "layer_norm_backward" in count_kernel_calls
    assert tinylm.gradgradcheck(fn, ts)


def test_double_backward_matches_reference():
    x, w, b, _ = inputs((4, 6), 1, np.float64)

    def second():
        X, W, B = (tinylm.Tensor(a, requires_grad=True) for a in (x, w, b))
        gx, gw = tinylm.autograd.grad((F.layer_norm(X, 6, W, B) ** 3).sum(), (X, W),
                                      create_graph=True)
        ((gx * gx).sum() + (gw * gw).sum()).backward()
        return [gx.data, gw.data, X.grad.data, W.grad.data]

    got, want = both(second)
    for g, r in zip(got, want):
        np.testing.assert_allclose(g, r, rtol=0, atol=1e-12 * scale(r))


def test_bench_cases_run():
    for case in kln.bench_cases(quick=True):
        case.kernel()
        case.numpy()
