"""The fused cross-entropy (tinylm/kernels/loss.py) against the reference, through
F.cross_entropy and ``.backward()``: loss and dlogits.

Tolerances, relative to the scale max(max|value|, 1). float64: kernel and reference compute
the same formula (max, sum of e^{z - m}, ln s - (z_t - m), the smoothing sum) and differ
only in summation order (8 lanes vs NumPy's pairwise sum) and in exp (the C library's vs
NumPy's, both within 1 ulp): each within about (C/8 + 10) u of the exact value relative to
the scale (u = 1.1e-16, C <= 1000 here), so atol = 1e-12 x scale leaves 10x of margin.
float32: both measured against the float64 reference on the same inputs, in units
u = 2^-24 of the scale; the kernel (a polynomial exp within 3 ulp, float32 lane sums) must
be no worse than the float32 reference's own error times 2, plus 8 u.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

import tinylm
import tinylm.nn.functional as F
from tinylm import kernels
from tinylm.kernels import loss as kl

pytestmark = pytest.mark.lesson11  # lesson 11 (kernels and backends) is graded by these


def scale(a):
    return max(float(np.abs(a[np.isfinite(a)]).max(initial=0)), 1.0)


def close64(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * scale(want))


def run(x, t, w=None, dy=None, **kw):
    """[loss, dlogits] of cross_entropy(x, t, ...) backpropagated with upstream dy (for
    reduction='none', a random per-target gradient; else 1)."""
    X = tinylm.Tensor(x, requires_grad=True)
    W = None if w is None else tinylm.Tensor(w)
    T = tinylm.Tensor(t)
    loss = F.cross_entropy(X, T, weight=W, **kw)
    if dy is None or loss.ndim == 0:
        loss.backward()
    else:
        (loss * tinylm.Tensor(dy.astype(x.dtype))).sum().backward()
    return [loss.data, X.grad.data]


def both(fn):
    got = fn()
    with kernels.reference(), np.errstate(all="ignore"):
        want = fn()
    return got, want


@pytest.fixture
def count_kernel_calls(spy_kernels):
    return spy_kernels(kl, "cross_entropy_forward", "cross_entropy_backward")


def inputs(shape, dtype, ignore=(), seed=0, spread=3.0):
    """Logits of ``shape`` (class dim 1, or 0 for (C,)), ids, weights, an upstream gradient."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * spread).astype(dtype)
    cdim = 0 if len(shape) == 1 else 1
    C = shape[cdim]
    tshape = shape[:cdim] + shape[cdim + 1:]
    t = rng.integers(0, C, tshape).astype(np.int64)
    if ignore and t.size:
        flat = t.reshape(-1)
        flat[rng.permutation(flat.size)[: max(1, flat.size // 3)]] = ignore[0]
    w = rng.uniform(0.2, 2.0, C).astype(dtype)
    dy = rng.standard_normal(tshape)
    return x, t, w, dy


SHAPES = [(6, 5), (7, 8), (9, 17), (64, 65), (3, 1000), (12,), (3, 4, 5), (2, 6, 3, 2), (5, 1)]
OPTIONS = [  # (ignore_index or None, label_smoothing, weighted)
    (None, 0.0, False),
    (-100, 0.0, False),
    (-100, 0.1, False),  # the LM case with smoothing
    (2, 0.0, True),  # ignore_index naming a real class
    (-100, 0.3, True),
    (None, 1.0, False),
]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize(("ignore", "eps", "weighted"), OPTIONS, ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_float64_matches_reference(shape, ignore, eps, weighted, reduction, count_kernel_calls):
    x, t, w, dy = inputs(shape, np.float64, ignore=() if ignore is None else (ignore,))
    kw = {"reduction": reduction, "label_smoothing": eps}
    if ignore is not None:
        kw["ignore_index"] = ignore
    got, want = both(lambda: run(x, t, w if weighted else None, dy, **kw))
    assert count_kernel_calls == ["cross_entropy_forward", "cross_entropy_backward"]
    for g, r in zip(got, want):
        close64(g, r)


PATHS = {  # (KEEP_EXP_MAX, PARALLEL_MIN): which kernels run
    "serial, exp kept": (1 << 62, 1 << 62),
    "serial, exp recomputed": (0, 1 << 62),
    "threads, exp kept": (1 << 62, 0),
    "threads, exp recomputed": (0, 0),
}


@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize("shape", [(9, 17), (3, 1000), (2, 6, 3, 2)], ids=str)
@pytest.mark.parametrize(("ignore", "eps", "weighted"), OPTIONS, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_kernel_path_matches_reference(path, shape, ignore, eps, weighted, dtype,
                                             monkeypatch):
    """The forward keeps e^{z - m} for the backward up to KEEP_EXP_MAX logits (else the
    backward recomputes them), and runs threaded from PARALLEL_MIN: all four agree."""
    keep_max, par_min = PATHS[path]
    monkeypatch.setattr(kl, "KEEP_EXP_MAX", keep_max)
    monkeypatch.setattr(kl, "PARALLEL_MIN", par_min)
    x, t, w, dy = inputs(shape, dtype, ignore=() if ignore is None else (ignore,))
    kw = {"reduction": "none", "label_smoothing": eps}
    if ignore is not None:
        kw["ignore_index"] = ignore
    got, want = both(lambda: run(x, t, w if weighted else None, dy, **kw))
    tol = 1e-12 if dtype == np.float64 else 3e-6
    for g, r in zip(got, want):
        np.testing.assert_allclose(g, r, rtol=0, atol=tol * scale(r))


def _error_in_u(got, exact):
    return np.abs(got.astype(np.float64) - exact).max(initial=0) / scale(exact) / 2.0**-24


@pytest.mark.parametrize("shape", [(6, 5), (64, 65), (3, 1000), (2, 6, 3, 2)], ids=str)
@pytest.mark.parametrize(("ignore", "eps", "weighted"), OPTIONS, ids=str)
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_float32_is_as_accurate_as_the_reference(shape, ignore, eps, weighted, reduction):
    x, t, w, dy = inputs(shape, np.float32, ignore=() if ignore is None else (ignore,))
    kw = {"reduction": reduction, "label_smoothing": eps}
    if ignore is not None:
        kw["ignore_index"] = ignore
    wk = w if weighted else None
    got, ref32 = both(lambda: run(x, t, wk, dy, **kw))
    with kernels.reference():
        exact = run(x.astype(np.float64), t, None if wk is None else wk.astype(np.float64),
                    dy, **kw)
    for name, g, r, e in zip(["loss", "dx"], got, ref32, exact):
        assert g.dtype == np.float32
        kern, ref = _error_in_u(g, e), _error_in_u(r, e)
        assert kern <= 2 * ref + 8, f"{name}: kernel {kern:.1f} u, reference {ref:.1f} u"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_strided_logits_and_targets(dtype):
    rng = np.random.default_rng(4)
    base = (rng.standard_normal((11, 16)) * 2).astype(dtype)
    ids = rng.integers(0, 8, 22)

    def grads():
        X = tinylm.Tensor(base, requires_grad=True)
        z = X[:, ::2]  # (11, 8), every other class
        t = tinylm.Tensor(ids[::2])  # strided ids
        F.cross_entropy(z, t, label_smoothing=0.1).backward()
        X2 = tinylm.Tensor(base, requires_grad=True)
        z2 = X2.transpose(0, 1)  # (16, 11): class dim strided
        F.cross_entropy(z2, tinylm.Tensor(ids[:16] % 11), reduction="sum").backward()
        return [X.grad.data, X2.grad.data]

    got, want = both(grads)
    tol = 1e-12 if dtype == np.float64 else 3e-6
    for g, r in zip(got, want):
        np.testing.assert_allclose(g, r, rtol=0, atol=tol * scale(r))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", [(0, 4), (0, 3, 2), (2, 3, 0)], ids=str)
def test_zero_size_batch(shape, reduction):
    x, t, _, dy = inputs(shape, np.float32)
    got, want = both(lambda: run(x, t, reduction=reduction, dy=dy))
    for g, r in zip(got, want):
        assert g.shape == r.shape and g.dtype == r.dtype
        np.testing.assert_array_equal(g, r)  # 'mean' is nan in both


@pytest.mark.parametrize("eps", [0.0, 0.2])
@pytest.mark.parametrize("weighted", [False, True])
def test_every_target_ignored(eps, weighted):
    x, _, w, _ = inputs((4, 3), np.float64)
    t = np.full(4, -100)
    got, want = both(lambda: run(x, t, w if weighted else None, label_smoothing=eps))
    assert np.isnan(got[0]) and np.isnan(want[0])
    np.testing.assert_array_equal(got[1], np.zeros((4, 3)))


def test_zero_total_weight_gives_nan_gradient_on_counted_rows_only():
    x, _, _, _ = inputs((3, 2), np.float64)
    t, w = np.array([0, -100, 0]), np.array([0.0, 1.0])
    got, want = both(lambda: run(x, t, w))
    assert np.isnan(got[0])
    np.testing.assert_array_equal(np.isnan(got[1]), np.isnan(want[1]))
    assert np.isnan(got[1][[0, 2]]).all() and (got[1][1] == 0).all()


EXTREME = {
    "+-1e30": [[1e30, -1e30, 0.0, 1.0], [1e30, 1e30, -1e30, 5.0], [-1e30] * 4],
    "-inf entries": [[-np.inf, 0.0, 1.0, 2.0], [3.0, -np.inf, -np.inf, 0.0], [0.0, 1, 2, 3]],
    "all equal": [[7.0] * 4, [-3.0] * 4, [0.0] * 4],
    "+inf and nan": [[np.inf, 0.0, 1.0, 2.0], [np.nan, 0.0, 1.0, 2.0], [0.0, 1, 2, 3]],
}


@pytest.mark.parametrize("case", sorted(EXTREME))
@pytest.mark.parametrize("eps", [0.0, 0.25])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("t", [[0, 2, 3], [1, 1, -100]], ids=str)
def test_extreme_logits_as_the_reference(case, eps, dtype, t):
    """Rows of huge, infinite, equal or NaN logits: the same values, the same inf and NaN
    places (a -inf logit at the target gives loss inf, as in the reference)."""
    x = np.array(EXTREME[case], dtype=dtype)
    t = np.array(t)
    with np.errstate(all="ignore"):
        got, want = both(lambda: run(x, t, reduction="none", label_smoothing=eps,
                                     dy=np.ones(3)))
    for g, r in zip(got, want):
        np.testing.assert_array_equal(np.isnan(g), np.isnan(r))
        np.testing.assert_array_equal(np.isinf(g), np.isinf(r))
        ok = np.isfinite(r)
        tol = 1e-12 if dtype == np.float64 else 1e-6
        np.testing.assert_allclose(g[ok], r[ok], rtol=tol, atol=tol)


def test_huge_vocabulary_row_stays_exact():
    """A row of 50,000 logits, one much larger: p is nearly one-hot, ln s nearly 0."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 50_000))
    x[0, 123] = 40.0
    t = np.array([123, 7])
    got, want = both(lambda: run(x, t, label_smoothing=0.1))
    for g, r in zip(got, want):
        close64(g, r)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_bits_with_one_and_two_numba_threads(dtype, monkeypatch):
    """The threaded kernels (forced here on a small input) give the bits of the serial ones,
    with 1 or 2 threads: rows are split over threads, the sum runs in row order."""
    x, t, w, dy = inputs((100, 37), dtype, ignore=(-100,), seed=3)
    results = [run(x, t, w, label_smoothing=0.1), run(x, t, reduction="none", dy=dy)]
    monkeypatch.setattr(kl, "PARALLEL_MIN", 0)
    old = numba.get_num_threads()
    try:
        for n in (1, 2, 1):
            numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
            again = [run(x, t, w, label_smoothing=0.1), run(x, t, reduction="none", dy=dy)]
            for a, b in zip(results, again):
                assert all(np.array_equal(p, q) for p, q in zip(a, b))
    finally:
        numba.set_num_threads(old)


@pytest.mark.parametrize(("eps", "weighted", "reduction"),
                         [(0.0, False, "mean"), (0.1, True, "mean"), (0.2, False, "none"),
                          (0.3, True, "sum")])
def test_gradcheck_and_gradgradcheck_with_the_kernel(eps, weighted, reduction,
                                                     count_kernel_calls):
    """First order: kernel forward and backward. Second order: kernel forward, then the
    backward formula written in Tensor ops (create_graph)."""
    x, _, w, _ = inputs((4, 3, 2), np.float64)
    t = tinylm.Tensor(np.array([[0, -100], [2, 2], [1, 0], [-100, 1]]))
    W = tinylm.Tensor(w) if weighted else None
    X = tinylm.Tensor(x, requires_grad=True)

    def fn(z):
        return F.cross_entropy(z, t, weight=W, label_smoothing=eps, reduction=reduction)

    assert tinylm.gradcheck(fn, (X,))
    assert "cross_entropy_backward" in count_kernel_calls
    assert tinylm.gradgradcheck(fn, (X,))


def test_double_backward_matches_reference():
    x, _, w, _ = inputs((5, 4), np.float64)
    t = np.array([0, 3, -100, 1, 1])

    def second():
        X = tinylm.Tensor(x, requires_grad=True)
        loss = F.cross_entropy(X, tinylm.Tensor(t), weight=tinylm.Tensor(w),
                               label_smoothing=0.2)
        (gx,) = tinylm.autograd.grad(loss, (X,), create_graph=True)
        (gx * gx).sum().backward()
        return [gx.data, X.grad.data]

    got, want = both(second)
    for g, r in zip(got, want):
        close64(g, r)


def test_kernels_switched_off_between_forward_and_backward():
    x, t, w, _ = inputs((6, 5), np.float64, ignore=(-100,))
    X = tinylm.Tensor(x, requires_grad=True)
    loss = F.cross_entropy(X, tinylm.Tensor(t), weight=tinylm.Tensor(w), label_smoothing=0.1)
    with kernels.reference():
        loss.backward()  # the saved stats are the kernel's; the Tensor-op formula runs
    _, want = both(lambda: run(x, t, w, label_smoothing=0.1))
    close64(X.grad.data, want[1])


def test_probability_targets_take_the_reference(count_kernel_calls):
    x, _, _, _ = inputs((4, 3), np.float64)
    q = np.full((4, 3), 1 / 3)
    F.cross_entropy(tinylm.Tensor(x), tinylm.Tensor(q))
    assert count_kernel_calls == []


def test_bench_cases_run():
    for case in kl.bench_cases(quick=True):
        loss, dx = case.kernel()
        ref_loss, ref_dx = case.numpy()
        np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
        np.testing.assert_allclose(dx, ref_dx, rtol=0, atol=1e-6 * np.abs(ref_dx).max())
