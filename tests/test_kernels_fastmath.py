"""The kernels' float32 exp / tanh / sigmoid against NumPy over the whole float32 range.

Every 997th bit pattern of the 2^32 float32 values (4.3 million inputs: every exponent,
both signs, subnormals), plus the edges: +-inf, nan, +-0, the overflow and underflow
thresholds. The reference is NumPy in float64, rounded: an error is counted in units in
the last place (ulp) of the float32 result. Bound: 3 ulp. The polynomial's truncation
error is below 2e-10 relative (tinylm/kernels/fastmath.py), so what remains is float32
rounding in the range reduction, the polynomial's 8 multiply-adds and the final scaling
(exp measures under 1 ulp; tanh and sigmoid add a division, ~2.5 ulp).
"""

import numpy as np
import pytest

from tinylm.kernels import fastmath

pytestmark = pytest.mark.lesson11  # lesson 11 (kernels and backends) is graded by these

MAX_ULP = 3.0


def _inputs() -> np.ndarray:
    x = np.arange(0, 2**32, 997, dtype=np.uint64).astype(np.uint32).view(np.float32)
    edges = [np.inf, -np.inf, np.nan, 0.0, -0.0, 88.72, 88.73, -87.3, -103.9, -104.0,
             -88.8, 1e-5, -1e-5, 1e-30, 9.0, -9.0, 20.0, 1.4e-45]
    return np.concatenate([x, np.float32(edges)])


REFERENCES = {
    "exp": np.exp,
    "tanh": np.tanh,
    "sigmoid": lambda v: _sigmoid64(v),
}


def _sigmoid64(v):
    """1 / (1 + e^-v), written as e^v / (1 + e^v) for v < 0 so tiny results keep digits."""
    e = np.exp(-np.abs(v))
    return np.where(v >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_float32_function_within_3_ulp_everywhere(name):
    x = _inputs()
    with np.errstate(all="ignore"):
        got = getattr(fastmath, name)(x)
        exact = REFERENCES[name](x.astype(np.float64))
        want = exact.astype(np.float32)  # overflows to inf where float32 does
    assert got.dtype == np.float32
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan), "nan in, nan out; nothing else is nan"
    inf = np.isinf(want)
    assert np.array_equal(got[inf], want[inf]), "overflow gives inf of the right sign"
    fin = ~nan & ~inf
    ulp = np.spacing(np.abs(want[fin])).astype(np.float64)
    err = np.abs(got[fin].astype(np.float64) - exact[fin]) / ulp
    worst = int(np.argmax(err))
    assert err[worst] <= MAX_ULP, (
        f"{name}({x[fin][worst]!r}) = {got[fin][worst]!r}, exact {exact[fin][worst]!r}: "
        f"{err[worst]:.2f} ulp"
    )


def test_tanh_keeps_relative_accuracy_near_zero():
    x = np.float32([1e-5, -3e-8, 1e-20, 2e-3])
    assert np.allclose(fastmath.tanh(x), np.tanh(x.astype(np.float64)), rtol=3e-7, atol=0)


def test_tiny_sigmoid_is_not_flushed_to_zero():
    # 1 / (1 + e^{-x}) would give 0 from x = -88.8; the kernels keep e^x / (1 + e^x)
    x = np.float32([-90.0, -100.0])
    assert np.all(fastmath.sigmoid(x) > 0)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_float64_uses_the_exact_library_functions(name):
    x = np.linspace(-30, 30, 1001)
    with np.errstate(all="ignore"):
        np.testing.assert_allclose(getattr(fastmath, name)(x), REFERENCES[name](x),
                                   rtol=1e-14, atol=1e-300)
