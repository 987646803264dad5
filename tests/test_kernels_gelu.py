"""The GELU kernels (tinylm/kernels/gelu.py) and their float32 erf.

erf: every 997th float32 bit pattern (4.3 million inputs: every exponent, both signs,
subnormals) plus the edges, against float64 ``math.erf``: within 3 ulp of the float32 result
(measured: 1.03 ulp; the fits are 1.6e-8 and 1.5e-9 relative, the rest is float32 rounding
of a degree-5 / degree-6 polynomial and of exp).

GELU through the public API (F.gelu, nn.GELU, ``.backward()``), over every 1999th float32
bit pattern (2.1 million inputs; nn.GELU every 9973th) and the edges, against float64 on the
same inputs, with u = 2^-24 (float32) or 2^-53 (float64), the unit roundoff:

* y: |error| <= 4u |x| + 4u |y|. The error of (1 + erf(x/sqrt2)) or (1 + tanh u) is below 5u
  absolute (erf or tanh within 3 ulp <= 3u, since both are below 1; the rounded argument
  moves them by at most 0.5u; the sum is rounded once more), and the products round 2u |y|.
* dx, exact: |error| <= u |dy| (8 + |x| phi(x) (x^2 + 8)) + 4u |dx|: Phi(x) as above, and
  x phi(x) = x e^{-x^2/2} / sqrt(2 pi) with exp within 3 ulp and the argument -x^2/2 rounded
  (relative error x^2 u of the exponential).
* dx, tanh: |error| <= u |dy| (8 + 4 |x| (1 + 0.134 x^2)) + 4u |dx|: the error of 1 - t^2 is
  about 10u absolute (t within 4.5u), times x du/2 = |x| sqrt(2/pi)(1 + 3 0.044715 x^2)/2.

Measured over the float32 sample: at most 0.4 of these bounds. nan and inf come out where
the float32 reference gives them (for tanh, dx is nan beyond |x| = 1.8e19, where x^2
overflows in the reference too).
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
from tinylm.kernels import gelu as kgelu
from tinylm.ops.unary import _erf_array

pytestmark = pytest.mark.lesson11  # lesson 11 (kernels and backends) is graded by these

APPROX = ["none", "tanh"]


def float32_sample(step: int = 997) -> np.ndarray:
    """Every step-th float32 bit pattern and the edges."""
    x = np.arange(0, 2**32, step, dtype=np.uint64).astype(np.uint32).view(np.float32)
    edges = [np.inf, -np.inf, np.nan, 0.0, -0.0, 0.921875, -0.921875, 0.9218749, 3.925,
             3.9249, -3.93, 1e-38, -1.4e-45, 5.0, -5.0, 10.0, -10.0, 1e-4]
    return np.concatenate([x, np.float32(edges)])


# ----------------------------------------------------------------------------- erf


def test_float32_erf_within_3_ulp_everywhere():
    x = float32_sample()
    got = kgelu.erf(x)
    assert got.dtype == np.float32
    with np.errstate(invalid="ignore"):
        exact = _erf_array(x.astype(np.float64))
        want = exact.astype(np.float32)
    assert np.array_equal(np.isnan(got), np.isnan(want)), "nan in, nan out; nothing else"
    fin = ~np.isnan(want)
    ulp = np.spacing(np.abs(want[fin])).astype(np.float64)
    err = np.abs(got[fin].astype(np.float64) - exact[fin]) / ulp
    worst = int(np.argmax(err))
    assert err[worst] <= 3.0, f"erf({x[fin][worst]!r}): {err[worst]:.2f} ulp"
    assert np.array_equal(kgelu.erf(np.float32([np.inf, -np.inf])), [1.0, -1.0])


def test_float32_erf_is_odd_and_keeps_the_sign_of_zero():
    x = float32_sample()
    x = x[~np.isnan(x)]
    assert np.array_equal(kgelu.erf(-x), -kgelu.erf(x))
    assert np.signbit(kgelu.erf(np.float32([-0.0])))[0]


def test_float64_erf_is_math_erf():
    x = np.linspace(-7, 7, 2001)
    np.testing.assert_array_equal(kgelu.erf(x), [math.erf(v) for v in x])


# ----------------------------------------------------------------------------- gelu


def run(x, approximate, dy=None, layer=False):
    """y and dx of gelu through the public API; dy=None: backward of y.sum()."""
    X = tinylm.Tensor(x, requires_grad=True)
    y = nn.GELU(approximate=approximate)(X) if layer else F.gelu(X, approximate=approximate)
    if dy is None:
        y.sum().backward()  # dy: the broadcast ones of sum's backward
    else:
        y.backward(tinylm.Tensor(dy))
    return y.data, X.grad.data


def bounds(x, y, dy, dx, approximate, u):
    """The error bounds of the module docstring, from float64 values."""
    ax = np.abs(x)
    ty = 4 * u * ax + 4 * u * np.abs(y) + 1e-45  # + half the smallest float32 subnormal
    if approximate == "none":
        xphi = ax * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        tdx = u * np.abs(dy) * (8 + xphi * (x * x + 8)) + 4 * u * np.abs(dx)
    else:
        tdx = u * np.abs(dy) * (8 + 4 * ax * (1 + 0.134 * x * x)) + 4 * u * np.abs(dx)
    return ty, tdx + 1e-45


@pytest.fixture
def count_kernel_calls(spy_kernels):
    return spy_kernels(kgelu, "gelu_forward", "gelu_backward")


@pytest.mark.parametrize("approximate", APPROX)
@pytest.mark.parametrize("layer", [False, True], ids=["F", "nn"])
def test_float32_within_the_error_bounds_over_the_float32_range(approximate, layer,
                                                                 count_kernel_calls):
    x = float32_sample(9973 if layer else 1999)
    dy = np.random.default_rng(0).standard_normal(x.shape).astype(np.float32)
    with np.errstate(all="ignore"):
        y, dx = run(x, approximate, dy, layer)
        assert count_kernel_calls == ["gelu_forward", "gelu_backward"]
        with kernels.reference():
            y32, dx32 = run(x, approximate, dy, layer)
            y64, dx64 = run(x.astype(np.float64), approximate, dy.astype(np.float64), layer)
    assert y.dtype == dx.dtype == np.float32
    for got, ref in ((y, y32), (dx, dx32)):
        assert np.array_equal(np.isnan(got), np.isnan(ref)), "nan where the reference has nan"
        inf = np.isinf(ref)
        assert np.array_equal(got[inf], ref[inf])
    ok = np.isfinite(y32) & np.isfinite(dx32)
    ty, tdx = bounds(x[ok].astype(np.float64), y64[ok], dy[ok], dx64[ok], approximate, 2.0**-24)
    for name, got, want, tol in (("y", y[ok], y64[ok], ty), ("dx", dx[ok], dx64[ok], tdx)):
        ratio = np.abs(got - want) / tol
        worst = int(np.argmax(ratio))
        assert ratio[worst] <= 1.0, f"{name} at x = {x[ok][worst]!r}: {ratio[worst]:.2f} x bound"


@pytest.mark.parametrize("approximate", APPROX)
def test_float64_matches_reference(approximate):
    x = np.concatenate([np.linspace(-12, 12, 2401), [0.0, -0.0, 1e-300, -40.0, 40.0, 1e10]])
    dy = np.random.default_rng(1).standard_normal(x.shape)
    with np.errstate(all="ignore"):
        y, dx = run(x, approximate, dy)
        with kernels.reference():
            yr, dxr = run(x, approximate, dy)
    ty, tdx = bounds(x, yr, dy, dxr, approximate, 2.0**-53)
    assert np.all(np.abs(y - yr) <= 2 * ty)  # both within the bound of the exact value
    assert np.all(np.abs(dx - dxr) <= 2 * tdx)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("approximate", APPROX)
def test_strided_zero_size_and_0d_inputs(dtype, approximate):
    base = np.random.default_rng(2).standard_normal((6, 10)).astype(dtype) * 3
    arrays = [base.T, base[::2, 1::3], base[:, ::-1], np.zeros((0, 5), dtype),
              np.zeros((3, 0, 2), dtype), dtype(0.7) * np.ones((), dtype)]
    for a in arrays:
        got = run(a, approximate)
        with kernels.reference():
            want = run(a, approximate)
        for g, w in zip(got, want):
            assert g.shape == w.shape == a.shape and g.dtype == dtype
        ty, tdx = bounds(a, want[0], 1.0, want[1], approximate, np.finfo(dtype).eps / 2)
        assert np.all(np.abs(got[0] - want[0]) <= 2 * ty)  # both within the bound
        assert np.all(np.abs(got[1] - want[1]) <= 2 * tdx)


def test_same_bits_with_one_and_two_numba_threads():
    x = np.random.default_rng(3).standard_normal((64, 100)).astype(np.float32) * 4
    dy = np.ones_like(x)
    old = numba.get_num_threads()
    results = []
    try:
        for n in (1, 2, 1):
            numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
            results.append([a for ap in APPROX for a in run(x, ap, dy)])
    finally:
        numba.set_num_threads(old)
    for r in results[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(results[0], r))


@pytest.mark.parametrize("approximate", APPROX)
def test_gradcheck_and_gradgradcheck_with_the_kernel(approximate, count_kernel_calls):
    """First order: both kernels. Under create_graph the reference backward (Tensor ops)
    runs, so second derivatives work."""
    x = tinylm.Tensor(np.linspace(-3, 3, 13).reshape(13) + 0.01, requires_grad=True)
    assert tinylm.gradcheck(lambda x: F.gelu(x, approximate=approximate), (x,))
    assert "gelu_backward" in count_kernel_calls
    assert tinylm.gradgradcheck(lambda x: F.gelu(x, approximate=approximate), (x,))


@pytest.mark.parametrize("approximate", APPROX)
def test_double_backward_matches_reference(approximate):
    x0 = np.linspace(-4, 4, 9)

    def second():
        x = tinylm.Tensor(x0, requires_grad=True)
        (g,) = tinylm.autograd.grad(F.gelu(x, approximate=approximate).sum(), x,
                                    create_graph=True)
        (g * g).sum().backward()
        return g.data, x.grad.data

    got = second()
    with kernels.reference():
        want = second()
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-15, atol=1e-15)


def test_bench_cases_run():
    for case in kgelu.bench_cases(quick=True):
        case.kernel()
        case.numpy()
