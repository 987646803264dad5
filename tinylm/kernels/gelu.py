r"""GELU, exact (erf) and tanh-approximate, forward and backward in one pass each.

Math (``tinylm.ops.unary.Gelu``), with \Phi(x) = (1 + erf(x/\sqrt2))/2 and
\phi(x) = e^{-x^2/2}/\sqrt{2\pi}:

    exact:  y = x \Phi(x),                      dx = dy (\Phi(x) + x \phi(x))
    tanh:   y = x (1 + t)/2,  t = \tanh u,  u = \sqrt{2/\pi} (x + 0.044715 x^3),
            dx = dy ((1 + t)/2 + x (1 - t^2) \sqrt{2/\pi} (1 + 3 \cdot 0.044715 x^2) / 2)

The NumPy reference builds every operator's temporary (about 7 passes over memory forward,
12 backward, and erf through a scalar ufunc); a kernel reads x (and dy) once and writes once,
with the same formulas in the same order, so inf and nan come out as in the reference.

float32 uses functions that vectorize: ``tanh_`` and ``exp_`` of ``fastmath`` and ``erf_``
below (``math.erf`` is a scalar libm call that LLVM cannot vectorize). float64 uses
``math.erf`` / ``math.exp`` / ``math.tanh``: exact, for gradient checks.

erf in float32 (own fit, this module). Two pieces, both computed and one selected, so the
loop has no branch:

* |x| < 0.921875: erf(x) = x + x R(x^2), R of degree 5, fitted to erf(x)/x - 1 (minimax of
  the relative error of erf, Lawson's iteration; fit error 1.6e-8). Writing it as x + x R
  keeps the leading term exact: it is what makes tiny and subnormal x come out right.
* 0.921875 <= |x|: erf(|x|) = 1 - e^{Q(|x|)}, Q of degree 6 fitted to ln erfc on
  [0.921875, 3.925] weighted by erfc/erf (fit error 1.5e-9 relative in erf); |x| is clamped
  to 3.925, where 1 - erfc rounds to 1 in float32 (erfc(3.925) = 1.6e-8 < half an ulp of 1).
  An error \delta in Q moves erf by erfc \cdot \delta: the float32 rounding of Q and exp
  costs little because erfc <= 0.19 here.

Bound, tested over every 997th float32 bit pattern (``tests/test_kernels_gelu.py``) against
float64 ``math.erf``: 3 ulp (measured: 1.03 ulp).
"""

from __future__ import annotations

import math

import numpy as np
from numba.extending import overload

from ._common import BenchCase, jit
from .fastmath import by_dtype, exp_, tanh_

__all__ = ["erf", "erf_", "gelu_forward", "gelu_backward", "bench_cases"]

_f32 = np.float32
_ERF_T1 = _f32(0.921875)  # 59/64: the switch between the two pieces
_ERF_T2 = _f32(3.925)  # erf rounds to 1 in float32 from here
# R(s) = erf(x)/x - 1, s = x^2, on [0, 0.921875^2]; R(0) = 2/sqrt(pi) - 1
_R = (_f32(0.12837915), _f32(-0.37612495), _f32(0.11281817), _f32(-0.02676662),
      _f32(0.004993185), _f32(-0.00059908733))
# Q(t) = ln erfc(t) on [0.921875, 3.925]
_Q = (_f32(-0.00019855301), _f32(-1.1276637), _f32(-0.63720226), _f32(-0.10391404),
      _f32(0.022218456), _f32(-0.0030410946), _f32(0.00019572084))


@jit
def _erf_f32(x):
    a = abs(x)
    # piece 1: x + x R(x^2)
    s = x * x
    r = _R[5]
    r = r * s + _R[4]
    r = r * s + _R[3]
    r = r * s + _R[2]
    r = r * s + _R[1]
    r = r * s + _R[0]
    small = r * x + x
    # piece 2: 1 - e^{Q(|x|)}, |x| clamped so that Q stays in its fitted range
    t = min(a, _ERF_T2)
    q = _Q[6]
    q = q * t + _Q[5]
    q = q * t + _Q[4]
    q = q * t + _Q[3]
    q = q * t + _Q[2]
    q = q * t + _Q[1]
    q = q * t + _Q[0]
    big = _f32(1.0) - exp_(q)
    big = big if x >= _f32(0.0) else -big
    y = small if a < _ERF_T1 else big
    return x if x != x else y  # nan stays nan


def erf_(x):
    """erf of a scalar inside a kernel: float32 -> the fit above, float64 -> ``math.erf``."""
    return math.erf(x)


overload(erf_, inline="always")(by_dtype(lambda x: _erf_f32(x), lambda x: math.erf(x)))


# ----------------------------------------------------------------------------- kernels
# x, y, dy, dx: 1-D C-contiguous views of same-shape arrays. Constants are made in x's
# dtype (x.dtype.type), so float32 stays float32 throughout.


@jit
def _erf_flat(x, y):
    for i in range(x.size):
        y[i] = erf_(x[i])


@jit
def _forward(x, y, approx_tanh):
    t = x.dtype.type
    half, one = t(0.5), t(1.0)
    k_erf = t(1.0 / math.sqrt(2.0))
    c, k = t(math.sqrt(2.0 / math.pi)), t(0.044715)
    if approx_tanh:
        for i in range(x.size):
            v = x[i]
            y[i] = half * v * (one + tanh_(c * (v + k * v * v * v)))
    else:
        for i in range(x.size):
            v = x[i]
            y[i] = half * v * (one + erf_(v * k_erf))


@jit
def _backward(x, dy, dx, approx_tanh):
    t = x.dtype.type
    half, one = t(0.5), t(1.0)
    k_erf, k_pdf = t(1.0 / math.sqrt(2.0)), t(1.0 / math.sqrt(2.0 * math.pi))
    c, k, k3 = t(math.sqrt(2.0 / math.pi)), t(0.044715), t(3.0 * 0.044715)
    if approx_tanh:
        for i in range(x.size):
            v = x[i]
            th = tanh_((v + v * v * v * k) * c)
            du = (v * v * k3 + one) * c  # du/dx
            dx[i] = dy[i] * ((th + one) * half + v * (one - th * th) * du * half)
    else:
        for i in range(x.size):
            v = x[i]
            cdf = (erf_(v * k_erf) + one) * half  # term 1: Phi(x)
            pdf = exp_(v * v * -half) * k_pdf  # term 2: phi(x)
            dx[i] = dy[i] * (cdf + v * pdf)


def _flat(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).reshape(-1)


def erf(x: np.ndarray) -> np.ndarray:
    """erf elementwise with the kernels' erf (float32: the fit; float64: ``math.erf``)."""
    y = np.empty(x.shape, dtype=x.dtype)
    _erf_flat(_flat(x), y.reshape(-1))
    return y


def gelu_forward(x: np.ndarray, approximate: str) -> np.ndarray:
    """GELU of a float32/float64 array of any shape and strides; ``approximate`` is
    'none' (erf) or 'tanh'."""
    y = np.empty(x.shape, dtype=x.dtype)
    _forward(_flat(x), y.reshape(-1), approximate == "tanh")
    return y


def gelu_backward(x: np.ndarray, dy: np.ndarray, approximate: str) -> np.ndarray:
    """dx = dy GELU'(x); x and dy of one shape (any strides)."""
    dx = np.empty(x.shape, dtype=x.dtype)
    _backward(_flat(x), _flat(dy), dx.reshape(-1), approximate == "tanh")
    return dx


def _numpy_gelu(x, dy, approximate):
    """The reference's arithmetic in NumPy, forward then backward (erf: the Numba ufunc
    over ``math.erf`` that the reference uses)."""
    from ..ops.unary import _erf_array

    f = x.dtype.type
    if approximate == "tanh":
        c, k = f(math.sqrt(2.0 / math.pi)), f(0.044715)
        y = 0.5 * x * (1.0 + np.tanh(c * (x + k * x * x * x)))
        t = np.tanh((x + x * x * x * k) * c)
        du = (x * x * f(3 * 0.044715) + 1.0) * c
        return y, dy * ((t + 1.0) * 0.5 + x * (1.0 - t * t) * du * 0.5)
    y = 0.5 * x * (1.0 + _erf_array(x * f(1 / math.sqrt(2.0))))
    cdf = (_erf_array(x * f(1 / math.sqrt(2.0))) + 1.0) * 0.5
    pdf = np.exp(x * x * -0.5) * f(1 / math.sqrt(2 * math.pi))
    return y, dy * (cdf + x * pdf)


def bench_cases(quick: bool = False) -> list[BenchCase]:
    """GELU forward + backward of a (N, 4C) float32 activation, both approximations."""
    n, d = (256, 512) if quick else (2048, 512)
    rng = np.random.default_rng(0)
    x, dy = (rng.standard_normal((n, d)).astype(np.float32) for _ in range(2))
    cases = []
    for approximate in ("none", "tanh"):
        torch_fn = None
        try:
            import torch

            xt, dyt = torch.from_numpy(x).requires_grad_(), torch.from_numpy(dy)

            def torch_fn(xt=xt, dyt=dyt, a=approximate):
                y = torch.nn.functional.gelu(xt, approximate=a)
                return torch.autograd.grad(y, xt, dyt)
        except ImportError:
            pass

        def kernel(a=approximate):
            return gelu_forward(x, a), gelu_backward(x, dy, a)

        cases.append(BenchCase(
            f"gelu fwd+bwd ({approximate})", f"{n} x {d}", kernel=kernel,
            numpy=lambda a=approximate: _numpy_gelu(x, dy, a),
            numpy_label="NumPy expression (the reference)", torch=torch_fn))
    return cases
