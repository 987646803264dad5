"""The softmax kernels (tinylm/kernels/softmax.py) against the reference, through
tinylm.softmax / log_softmax, F.scaled_dot_product_attention, nn.MultiheadAttention and
``.backward()``.

Tolerances, relative to the scale max(max|value|, 1). float64: kernel and reference differ
only in summation order (8 lanes vs NumPy's pairwise sum) and in exp (the C library's vs
NumPy's, both within 1 ulp), each within about (S/8 + 10) u of the exact value (u = 1.1e-16,
S <= 300 here), so atol = 1e-12 x scale leaves a wide margin. float32: kernel and float32
reference both measured against the float64 reference on the same inputs, in units
u = 2^-24 of the scale; the kernel (a polynomial exp within 3 ulp, float32 lane sums) must be
no worse than the reference's own error times 2, plus 8 u.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest

import tinylm
import tinylm.nn as nn
import tinylm.nn.functional as F
from tinylm import kernels
from tinylm.kernels import softmax as ksm

pytestmark = pytest.mark.lesson11  # lesson 11 (kernels and backends) is graded by these


def scale(a):
    return max(float(np.abs(a[np.isfinite(a)]).max(initial=0)), 1.0)


def both(fn):
    got = fn()
    with kernels.reference(), np.errstate(all="ignore"):
        want = fn()
    return got, want


def close(got, want, dtype=np.float64):
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    tol = 1e-12 if dtype == np.float64 else 3e-6
    np.testing.assert_allclose(got, want, rtol=0, atol=tol * scale(want))


@pytest.fixture
def count_kernel_calls(spy_kernels):
    return spy_kernels(ksm, "softmax", "log_softmax", "softmax_backward",
                       "log_softmax_backward", "masked_softmax")


def run(op, x, dy, dim=-1):
    """[y, dx] of op(x, dim) backpropagated with upstream dy."""
    X = tinylm.Tensor(x, requires_grad=True)
    y = getattr(tinylm, op)(X, dim=dim)
    (y * tinylm.Tensor(dy)).sum().backward()
    return [y.data, X.grad.data]


def inputs(shape, dtype, seed=0, spread=3.0):
    rng = np.random.default_rng(seed)
    return ((rng.standard_normal(shape) * spread).astype(dtype),
            rng.standard_normal(shape).astype(dtype))


SHAPES = [(4, 4), (7,), (3, 5, 9), (2, 3, 8, 17), (6, 300), (5, 1)]
OPS = ["softmax", "log_softmax"]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("op", OPS)
def test_float64_matches_reference(op, shape, count_kernel_calls):
    x, dy = inputs(shape, np.float64)
    got, want = both(lambda: run(op, x, dy))
    assert count_kernel_calls == [op, op + "_backward"]
    for g, r in zip(got, want):
        close(g, r)


def _error_in_u(got, exact):
    return np.abs(got.astype(np.float64) - exact).max(initial=0) / scale(exact) / 2.0**-24


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("op", OPS)
def test_float32_is_as_accurate_as_the_reference(op, shape):
    x, dy = inputs(shape, np.float32)
    got, ref32 = both(lambda: run(op, x, dy))
    with kernels.reference():
        exact = run(op, x.astype(np.float64), dy.astype(np.float64))
    for name, g, r, e in zip(["y", "dx"], got, ref32, exact):
        assert g.dtype == np.float32
        kern, ref = _error_in_u(g, e), _error_in_u(r, e)
        assert kern <= 2 * ref + 8, f"{name}: kernel {kern:.1f} u, reference {ref:.1f} u"


@pytest.mark.parametrize("op", OPS)
def test_other_dims_take_the_reference(op, count_kernel_calls):
    x, dy = inputs((3, 4, 5), np.float64)
    got, want = both(lambda: run(op, x, dy, dim=1))
    assert count_kernel_calls == []
    for g, r in zip(got, want):
        np.testing.assert_array_equal(g, r)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", OPS)
def test_strided_input_and_broadcast_upstream_gradient(op, dtype):
    base, _ = inputs((12, 10), dtype, seed=5)

    def grads():
        X = tinylm.Tensor(base, requires_grad=True)
        y = getattr(tinylm, op)(X.transpose(0, 1)[:, ::2], dim=-1)  # (10, 6), strided
        y.sum().backward()  # dy: the broadcast ones of sum()
        X2 = tinylm.Tensor(base, requires_grad=True)
        y2 = getattr(tinylm, op)(X2, dim=1).transpose(0, 1)  # gradient arrives transposed
        w = np.arange(120.0).reshape(10, 12).astype(dtype) / 100
        (y2 * tinylm.Tensor(w)).sum().backward()
        return [y.data, X.grad.data, y2.data, X2.grad.data]

    got, want = both(grads)
    for g, r in zip(got, want):
        close(g, r, dtype)


@pytest.mark.parametrize("shape", [(0, 4), (3, 0), (2, 0, 5)], ids=str)
@pytest.mark.parametrize("op", OPS)
def test_zero_size(op, shape):
    x, dy = inputs(shape, np.float32)
    got, want = both(lambda: run(op, x, dy))
    for g, r in zip(got, want):
        assert g.shape == r.shape and g.dtype == r.dtype


EXTREME = [[1e30, -1e30, 0.0, 1.0], [1e30, 1e30, -1e30, 5.0], [-1e30] * 4,
           [-np.inf, 0.0, 1.0, 2.0], [3.0, -np.inf, -np.inf, 0.0], [7.0] * 4,
           [-np.inf] * 4, [np.inf, 0.0, 1.0, 2.0], [np.nan, 0.0, 1.0, 2.0]]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", OPS)
def test_extreme_rows_as_the_reference(op, dtype):
    """Huge, infinite, equal or NaN logits: the same values and the same inf and NaN
    places (a row of -inf, or with +inf or NaN, is all NaN in both)."""
    x = np.array(EXTREME, dtype=dtype)
    dy = np.linspace(-1, 1, x.size).reshape(x.shape).astype(dtype)
    with np.errstate(all="ignore"):
        got, want = both(lambda: run(op, x, dy))
    for g, r in zip(got, want):
        np.testing.assert_array_equal(np.isnan(g), np.isnan(r))
        np.testing.assert_array_equal(np.isinf(g), np.isinf(r))
        ok = np.isfinite(r)
        tol = 1e-12 if dtype == np.float64 else 1e-6
        np.testing.assert_allclose(g[ok], r[ok], rtol=tol, atol=tol)


@pytest.mark.parametrize("op", OPS)
def test_gradcheck_and_gradgradcheck_with_the_kernel(op, count_kernel_calls):
    """First order: kernel forward and backward. Second order: kernel forward, then the
    reference backward in Tensor ops (create_graph records a graph, so no kernel)."""
    x, _ = inputs((3, 5), np.float64)
    X = tinylm.Tensor(x, requires_grad=True)

    def fn(z):
        return getattr(tinylm, op)(z, dim=-1) ** 2

    assert tinylm.gradcheck(fn, (X,))
    assert op + "_backward" in count_kernel_calls
    assert tinylm.gradgradcheck(fn, (X,))


def test_same_bits_with_one_and_two_numba_threads():
    x, dy = inputs((16, 4, 33), np.float32, seed=3)
    results = []
    old = numba.get_num_threads()
    try:
        for n in (1, 2, 1):
            numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
            results.append(run("softmax", x, dy) + run("log_softmax", x, dy))
    finally:
        numba.set_num_threads(old)
    for r in results[1:]:
        assert all(np.array_equal(a, c) for a, c in zip(results[0], r))


# ----------------------------------------------------------------------------- attention


def sdpa(q, k, v, mask=None, bias_grad=False, **kw):
    """[y, dq, dk, dv (, dmask)] of F.scaled_dot_product_attention, upstream a fixed ramp."""
    Q, K, V = (tinylm.Tensor(a, requires_grad=True) for a in (q, k, v))
    M = None if mask is None else tinylm.Tensor(mask, requires_grad=bias_grad)
    y = F.scaled_dot_product_attention(Q, K, V, attn_mask=M, **kw)
    g = np.cos(np.arange(y.data.size)).reshape(y.shape).astype(q.dtype)
    (y * tinylm.Tensor(g)).sum().backward()
    out = [y.data, Q.grad.data, K.grad.data, V.grad.data]
    return out + ([M.grad.data] if bias_grad else [])


def qkv(qb, kb, L, S, E, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(qb + (L, E)).astype(dtype),
            rng.standard_normal(kb + (S, E)).astype(dtype),
            rng.standard_normal(kb + (S, E)).astype(dtype))


ATTN = {  # name: (query batch, key batch, L, S, E, mask maker or "causal")
    "causal (B, H, L, L)": ((2, 3), (2, 3), 9, 9, 4, "causal"),
    "causal L < S": ((2,), (2,), 5, 8, 3, "causal"),
    "no mask": ((2, 2), (2, 2), 6, 7, 5, None),
    "bool (L, S)": ((2, 3), (2, 3), 6, 7, 4, lambda r, L, S: r.random((L, S)) < 0.7),
    "bool (B, 1, 1, S) padding": ((2, 3), (2, 3), 6, 7, 4,
                                  lambda r, L, S: r.random((2, 1, 1, S)) < 0.7),
    "bool (1, S) with fully masked rows": ((3,), (3,), 4, 5, 4,
                                           lambda r, L, S: np.array([[False] * S])),
    "float bias (L, S) with -inf": ((2, 3), (2, 3), 6, 7, 4,
                                    lambda r, L, S: np.where(r.random((L, S)) < 0.8,
                                                             r.standard_normal((L, S)),
                                                             -np.inf)),
    "float bias (B, 1, L, 1)": ((2, 3), (2, 3), 6, 7, 4,
                                lambda r, L, S: r.standard_normal((2, 1, L, 1))),
    "broadcast batch q (1, H) k (B, 1)": ((1, 3), (2, 1), 5, 6, 4, "causal"),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", sorted(ATTN))
def test_scaled_dot_product_attention_matches_reference(case, dtype, count_kernel_calls):
    qb, kb, L, S, E, mk = ATTN[case]
    q, k, v = qkv(qb, kb, L, S, E, dtype)
    rng = np.random.default_rng(1)
    kw, mask = {}, None
    if mk == "causal":
        kw["is_causal"] = True
    elif mk is not None:
        mask = mk(rng, L, S)
        mask = mask if mask.dtype == bool else mask.astype(dtype)
    bias_grad = mask is not None and mask.dtype != bool and np.isfinite(mask).all()
    got, want = both(lambda: sdpa(q, k, v, mask, bias_grad, scale=0.7, **kw))
    assert count_kernel_calls == ["masked_softmax", "softmax_backward"]
    for g, r in zip(got, want):
        close(g, r, dtype)


def test_fully_masked_rows_are_zero_with_zero_gradient():
    q, k, v = qkv((2,), (2,), 3, 4, 2, np.float64)
    mask = np.ones((3, 4), bool)
    mask[1] = False
    got, want = both(lambda: sdpa(q, k, v, mask))
    assert (got[0][:, 1] == 0).all() and (got[1][:, 1] == 0).all()
    for g, r in zip(got, want):
        close(g, r)


def test_attention_extreme_scores():
    q, k, v = qkv((2,), (2,), 4, 5, 3, np.float64)
    q[0, 0] *= 1e20  # one query row of huge scores: a one-hot softmax row
    got, want = both(lambda: sdpa(q, k, v, is_causal=True))
    for g, r in zip(got, want):
        close(g, r)


@pytest.mark.parametrize("kind", ["bool", "float", "padding"])
def test_multihead_attention_weights_path_matches_reference(kind):
    tinylm.manual_seed(0)
    mha = nn.MultiheadAttention(8, 2, batch_first=True, dtype=np.float64)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5, 8))
    L = 5
    kw = {}
    if kind == "bool":
        kw["attn_mask"] = tinylm.Tensor(np.triu(np.ones((L, L), bool), 1))
    elif kind == "float":
        kw["attn_mask"] = tinylm.Tensor(rng.standard_normal((L, L)))
    else:
        kw["key_padding_mask"] = tinylm.Tensor(np.array([[0, 0, 0, 1, 1], [0] * 5], bool))

    def go():
        mha.zero_grad()
        X = tinylm.Tensor(x, requires_grad=True)
        y, w = mha(X, X, X, need_weights=True, average_attn_weights=False, **kw)
        (y.sum() + (w * w).sum()).backward()
        return [y.data, w.data, X.grad.data, mha.in_proj_weight.grad.data.copy()]

    got, want = both(go)
    for g, r in zip(got, want):
        close(g, r)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_masked_softmax_broadcasts_scores_bias_and_keep(dtype, count_kernel_calls):
    """The output takes the broadcast shape: here the bias has more batch dims than the
    scores, and keep (L, 1) is broadcast along the keys."""
    rng = np.random.default_rng(6)
    s0 = rng.standard_normal((3, 4, 6)).astype(dtype)
    b0 = rng.standard_normal((2, 1, 4, 6)).astype(dtype)
    keep = np.array([[True], [False], [True], [True]])

    def go():
        s = tinylm.Tensor(s0, requires_grad=True)
        b = tinylm.Tensor(b0, requires_grad=True)
        a = nn.attention.masked_softmax(s, keep, b, scale=1.5)
        assert a.shape == (2, 3, 4, 6)
        g = np.sin(np.arange(a.data.size)).reshape(a.shape).astype(dtype)
        (a * tinylm.Tensor(g)).sum().backward()
        return [a.data, s.grad.data, b.grad.data]

    got, want = both(go)
    assert count_kernel_calls == ["masked_softmax", "softmax_backward"]
    for g, r in zip(got, want):
        close(g, r, dtype)


def test_masked_softmax_gradgradcheck_with_the_kernel_forward():
    rng = np.random.default_rng(0)
    s = tinylm.Tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    b = tinylm.Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    keep = np.tril(np.ones((3, 4), bool))

    def fn(s, b):
        return nn.attention.masked_softmax(s, keep, b, scale=0.5) ** 2

    assert tinylm.gradcheck(fn, (s, b)) and tinylm.gradgradcheck(fn, (s, b))


def test_bench_cases_run():
    for case in ksm.bench_cases(quick=True):
        np.testing.assert_allclose(case.kernel(), case.numpy(), rtol=0, atol=1e-6)


def test_row_reductions_cover_every_lane_and_the_tail():
    x = np.arange(1.0, 20.0)
    for n in range(len(x) + 1):
        assert ksm.row_sum(x[:n]) == math.fsum(x[:n])
        assert ksm.row_max(x[:n]) == (x[:n].max() if n else -np.inf)
        assert ksm.row_dot(x[:n], x[:n]) == math.fsum(x[:n] ** 2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_max_by_integer_keys_is_exact(dtype):
    """row_max compares the floats' bits as order-preserving integers: exactly np.max on
    any values, signed zeros, subnormals and infinities included; a (positive) NaN wins."""
    rng = np.random.default_rng(0)
    tiny = np.finfo(dtype).smallest_subnormal
    specials = np.array([0.0, -0.0, tiny, -tiny, np.inf, -np.inf, np.finfo(dtype).max,
                         -np.finfo(dtype).max, 1.0, -1.0], dtype)
    pool = np.concatenate([specials, rng.standard_normal(20).astype(dtype) * 1e3])
    for _ in range(200):
        x = rng.choice(pool, int(rng.integers(1, 40)))
        assert ksm.row_max(x) == x.max(), x  # (+0 and -0 compare equal)
    assert ksm.row_max(np.array([-np.inf] * 3, dtype)) == -np.inf
    assert np.isnan(ksm.row_max(np.array([1.0, np.nan, 2.0], dtype)))
    assert ksm.row_max(np.array([], dtype)) == -np.inf
