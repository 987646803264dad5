r"""exp, expm1, tanh and sigmoid for the kernels: float32 versions that vectorize.

Numba compiles ``math.exp`` to a call of the C library's scalar ``expf``; without Intel's
SVML (not a tinylm dependency) LLVM cannot turn a loop of such calls into SIMD code, so a
fused kernel calling ``math.exp`` is *slower* than ``np.exp``. The float32 versions here are
plain arithmetic that LLVM vectorizes (PERFORMANCE.md: 2.5x faster than ``np.exp``).

exp, by range reduction. Write x = k ln2 + r with k = round(x / ln2), |r| <= ln2 / 2; then
e^x = 2^k e^r. ``k ln2`` is subtracted in two parts (Cody and Waite): ``LN2_HI`` has few
significant bits, so ``k * LN2_HI`` is exact for every k reached, and ``LN2_LO`` carries the
rest. e^r - 1 = r + r^2/2! + ... + r^8/8! (Taylor; the next term, r^9/9!, is below 2e-10
relative for |r| <= 0.35, far under float32's 6e-8), and 2^k is built from its bits, in
two factors so that results below 2^-126 come out as the subnormals NumPy gives.

tanh(x) = -expm1(-2|x|) / (2 + expm1(-2|x|)) with the sign of x: through expm1, not
(1 - e^{-2|x|}) / (1 + e^{-2|x|}), so small x keep their relative accuracy (tanh(1e-5)
would otherwise lose every digit to cancellation). sigmoid(x) = 1 / (1 + e^{-x}) for
x >= 0 and e^x / (1 + e^x) below, which keeps the tiny values of very negative x that
1 / (1 + e^{-x}) rounds to zero.

float64 inputs use ``math.exp``/``math.tanh``: the float64 path is the one gradient checks
use, and there accuracy beats speed. Tested against NumPy over every float32 exponent
(``tests/test_kernels_fastmath.py``): exp and sigmoid within 3 ulp, tanh within 3 ulp.
"""

from __future__ import annotations

import math

import numpy as np
from numba import types
from numba.extending import overload

from ._common import jit

__all__ = ["exp", "tanh", "sigmoid", "exp_", "tanh_", "sigmoid_"]

_f32 = np.float32
LOG2E = _f32(1.4426950408889634)
LN2_HI = _f32(0.693359375)  # 355 / 512: 9 significant bits, so k * LN2_HI is exact
LN2_LO = _f32(-2.12194440e-4)  # ln 2 - LN2_HI
_X_MAX = _f32(89.0)  # e^89 > float32 max: the result is inf from here
_X_MIN = _f32(-104.0)  # e^-104 < half the smallest subnormal: the result is 0 from here
_C = tuple(_f32(1.0 / math.factorial(n)) for n in range(2, 9))  # 1/2!, ..., 1/8!


@jit
def _expm1_parts_f32(x):
    """(k, e^r - 1) for clamped float32 x = k ln2 + r."""
    x = min(max(x, _X_MIN), _X_MAX)
    k = np.floor(x * LOG2E + _f32(0.5))
    r = (x - k * LN2_HI) - k * LN2_LO
    p = _C[6]
    p = p * r + _C[5]
    p = p * r + _C[4]
    p = p * r + _C[3]
    p = p * r + _C[2]
    p = p * r + _C[1]
    p = p * r + _C[0]
    return np.int32(k), (p * r) * r + r  # r + r^2/2! + ... + r^8/8!


@jit
def _pow2_f32(k):
    """2^k as float32 from its exponent bits (k in [-126, 127])."""
    return np.int32((k + np.int32(127)) << np.int32(23)).view(np.float32)


@jit
def _exp_f32(x):
    k, em1 = _expm1_parts_f32(x)
    k1 = k >> np.int32(1)  # 2^k = 2^k1 * 2^(k - k1): both factors normal for k in [-150, 128]
    y = ((em1 + _f32(1.0)) * _pow2_f32(k1)) * _pow2_f32(k - k1)
    return x if x != x else y  # nan stays nan


@jit
def _expm1_f32(x):
    k, em1 = _expm1_parts_f32(x)
    k1 = k >> np.int32(1)
    y = ((em1 + _f32(1.0)) * _pow2_f32(k1)) * _pow2_f32(k - k1) - _f32(1.0)
    return x if x != x else (em1 if k == 0 else y)  # k = 0: e^r - 1 itself, no cancellation


@jit
def _tanh_f32(x):
    a = min(abs(x), _f32(20.0))  # tanh(20) rounds to 1 in float32
    m = _expm1_f32(_f32(-2.0) * a)
    t = -m / (_f32(2.0) + m)
    return x if x != x else (t if x >= _f32(0.0) else -t)


@jit
def _sigmoid_f32(x):
    e = _exp_f32(-abs(x))  # e^{-|x|} <= 1: no overflow, and tiny sigmoids keep their digits
    s = _f32(1.0) / (_f32(1.0) + e)
    return s if x >= _f32(0.0) else e * s  # sigmoid(-|x|) = e^{-|x|} / (1 + e^{-|x|})


@jit
def _sigmoid_f64(x):
    e = math.exp(-abs(x))
    s = 1.0 / (1.0 + e)
    return s if x >= 0.0 else e * s


# The scalar functions kernels call: float32 -> the vectorizing versions, float64 -> math.
# In pure Python (NUMBA_DISABLE_JIT=1) they are NumPy's own.


def exp_(x):
    return np.exp(x)


def tanh_(x):
    return np.tanh(x)


def sigmoid_(x):
    return 1.0 / (1.0 + np.exp(-x))


def by_dtype(f32_impl, f64_impl):
    """An ``overload`` typer: ``f32_impl`` for a float32 argument, ``f64_impl`` for float64."""

    def typer(x):
        if x == types.float32:
            return f32_impl
        if x == types.float64:
            return f64_impl
        return None

    return typer


for _stub, _f32_fn, _f64_fn in (
    (exp_, lambda x: _exp_f32(x), lambda x: math.exp(x)),
    (tanh_, lambda x: _tanh_f32(x), lambda x: math.tanh(x)),
    (sigmoid_, lambda x: _sigmoid_f32(x), lambda x: _sigmoid_f64(x)),
):
    overload(_stub, inline="always")(by_dtype(_f32_fn, _f64_fn))


# Array versions (for the tests and the kernel benchmark): any shape, float32 or float64.


@jit
def _exp_flat(x, out):
    for i in range(x.size):
        out[i] = exp_(x[i])


@jit
def _tanh_flat(x, out):
    for i in range(x.size):
        out[i] = tanh_(x[i])


@jit
def _sigmoid_flat(x, out):
    for i in range(x.size):
        out[i] = sigmoid_(x[i])


def _elementwise(kernel, x):
    x = np.ascontiguousarray(x)
    out = np.empty_like(x)
    kernel(x.reshape(-1), out.reshape(-1))
    return out


def exp(x: np.ndarray) -> np.ndarray:
    """e^x elementwise with the kernels' exp."""
    return _elementwise(_exp_flat, x)


def tanh(x: np.ndarray) -> np.ndarray:
    """tanh elementwise with the kernels' tanh."""
    return _elementwise(_tanh_flat, x)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x) elementwise with the kernels' exp."""
    return _elementwise(_sigmoid_flat, x)


def bench_cases(quick: bool = False) -> list:
    """exp and tanh over a million float32 values (quick: 64k) against NumPy's own, which
    has hand-written SIMD code for float32: the kernels' versions pay inside fused kernels,
    where NumPy would need a separate pass over memory."""
    from ._common import BenchCase

    n = 1 << (16 if quick else 20)
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32) * 4
    out = np.empty_like(x)
    size = f"{n:,} float32"
    cases = [
        BenchCase("exp (float32)", size, lambda: _exp_flat(x, out),
                  lambda: np.exp(x, out=out), "np.exp(x, out=out)"),
        BenchCase("tanh (float32)", size, lambda: _tanh_flat(x, out),
                  lambda: np.tanh(x, out=out), "np.tanh(x, out=out)"),
    ]
    try:
        import torch
    except ImportError:
        return cases
    tx, tout = torch.from_numpy(x), torch.from_numpy(out)
    cases[0].torch = lambda: torch.exp(tx, out=tout)
    cases[1].torch = lambda: torch.tanh(tx, out=tout)
    return cases
