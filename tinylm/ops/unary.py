"""Elementwise functions of one tensor: exp, log, sqrt, abs, tanh, sigmoid, relu,
erf and gelu. Each backward is the local derivative times ``dy``, written with
Tensor ops so that it can itself be differentiated.
"""

from __future__ import annotations

import math

from .. import kernels
from ..autograd import Function
from ..backend import xp_of
from ..tensor import Tensor, is_grad_enabled
from ._util import const


def _float_only(op: str, x: Tensor) -> None:
    if x.data.dtype.kind not in "fc":
        raise TypeError(f"{op}: expected a floating point tensor, got dtype {x.dtype}")


class Exp(Function):
    r"""Forward: y = e^x.   Backward: dx = dy y.   Saves: y."""

    @staticmethod
    def forward(ctx, x):
        y = xp_of(x).exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved_tensors
        return dy * y


class Log(Function):
    r"""Forward: y = \ln x.   Backward: dx = dy / x.   Saves: x.

    ``log(0) = -inf`` and ``log(x < 0) = nan``, as in NumPy and PyTorch.
    """

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return xp_of(x).log(x)

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        return dy / x


class Sqrt(Function):
    r"""Forward: y = \sqrt{x}.   Backward: dx = dy / (2 y).   Saves: y."""

    @staticmethod
    def forward(ctx, x):
        y = xp_of(x).sqrt(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved_tensors
        return dy / (y * 2.0)


class Abs(Function):
    r"""Forward: y = |x|.   Backward: dx = dy sign(x)  (0 at x = 0, as PyTorch).   Saves: x."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return xp_of(x).abs(x)

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        return dy * const(xp_of(x.data).sign(x.data))  # sign is piecewise constant


class Tanh(Function):
    r"""Forward: y = \tanh x.   Backward: dx = dy (1 - y^2).   Saves: y."""

    @staticmethod
    def forward(ctx, x):
        y = xp_of(x).tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved_tensors
        return dy * (1.0 - y * y)


class Sigmoid(Function):
    r"""Logistic function, computed without overflow for any x.

    Forward:  y = 1 / (1 + e^{-x});  with e = e^{-|x|}: y = 1/(1+e) for x >= 0,
              e/(1+e) for x < 0, so exp never sees a large positive argument
    Backward: dx = dy y (1 - y)
    Saves:    y
    """

    @staticmethod
    def forward(ctx, x):
        xp = xp_of(x)
        e = xp.exp(-xp.abs(x))
        y = xp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved_tensors
        return dy * (y * (1.0 - y))


class Relu(Function):
    r"""Forward: y = max(x, 0).   Backward: dx = dy [x > 0]  (0 at x = 0, as PyTorch).

    Saves: x (the mask is piecewise constant, so second derivatives are 0).
    """

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return xp_of(x).maximum(x, 0)

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        return dy * const((x.data > 0).astype(x.data.dtype))


_erf_cpu = None


def _erf_array(x):
    """erf elementwise: a Numba ufunc over ``math.erf`` on the CPU, CuPy's on the GPU."""
    global _erf_cpu
    xp = xp_of(x)
    if xp.__name__ == "cupy":
        from cupyx.scipy.special import erf

        return erf(x)
    if _erf_cpu is None:
        import numba

        @numba.vectorize(["float32(float32)", "float64(float64)"], cache=True)
        def erf_ufunc(v):
            return math.erf(v)

        _erf_cpu = erf_ufunc
    return _erf_cpu(x)


_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


class Erf(Function):
    r"""The error function.

    Forward:  y = erf(x) = \frac{2}{\sqrt\pi} \int_0^x e^{-t^2} dt
    Backward: dx = dy \frac{2}{\sqrt\pi} e^{-x^2}
    Saves:    x
    """

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _erf_array(x)

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        return dy * (exp(-(x * x)) * _TWO_OVER_SQRT_PI)


_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_TANH_C = math.sqrt(2.0 / math.pi)
_TANH_K = 0.044715


class Gelu(Function):
    r"""Gaussian error linear unit, exact or with PyTorch's tanh approximation.

    Forward (none): y = x \Phi(x),  \Phi(x) = (1 + erf(x/\sqrt2)) / 2
    Backward:       dx = dy (\Phi(x) + x \phi(x)),  \phi(x) = e^{-x^2/2} / \sqrt{2\pi}
    Forward (tanh): y = x (1 + \tanh u) / 2,  u = \sqrt{2/\pi} (x + 0.044715 x^3)
    Backward:       dx = dy ((1 + t)/2 + x (1 - t^2) \sqrt{2/\pi} (1 + 3 \cdot 0.044715 x^2) / 2)
    Saves:          x
    Kernel:         one pass each way on NumPy float32/float64 (tinylm/kernels/gelu.py)
    """

    @staticmethod
    def forward(ctx, x, approximate):
        ctx.approximate = approximate
        ctx.save_for_backward(x)
        if kernels.numba_applies(x):
            from ..kernels.gelu import gelu_forward

            return gelu_forward(x, approximate)
        xp = xp_of(x)
        if approximate == "tanh":
            u = _TANH_C * (x + _TANH_K * x * x * x)
            return (0.5 * x * (1.0 + xp.tanh(u))).astype(x.dtype, copy=False)
        return (0.5 * x * (1.0 + _erf_array(x * x.dtype.type(_INV_SQRT2)))).astype(
            x.dtype, copy=False
        )

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        # the kernel only when no graph is recorded (not under create_graph)
        if not is_grad_enabled() and kernels.numba_applies(x.data, dy.data):
            from ..kernels.gelu import gelu_backward

            return gelu_backward(x.data, dy.data, ctx.approximate)
        if ctx.approximate == "tanh":
            t = tanh((x + x * x * x * _TANH_K) * _TANH_C)
            du = (x * x * (3.0 * _TANH_K) + 1.0) * _TANH_C
            return dy * ((t + 1.0) * 0.5 + x * (1.0 - t * t) * du * 0.5)
        cdf = (erf(x * _INV_SQRT2) + 1.0) * 0.5  # term 1: Phi(x)
        pdf = exp(x * x * -0.5) * _INV_SQRT_2PI  # term 2: phi(x)
        return dy * (cdf + x * pdf)


# ----------------------------------------------------------------------------- wrappers


def exp(x: Tensor) -> Tensor:
    _float_only("exp", x)
    return Exp.apply(x)


def log(x: Tensor) -> Tensor:
    _float_only("log", x)
    return Log.apply(x)


def sqrt(x: Tensor) -> Tensor:
    _float_only("sqrt", x)
    return Sqrt.apply(x)


def abs(x: Tensor) -> Tensor:  # noqa: A001 - PyTorch's name
    return Abs.apply(x)


def tanh(x: Tensor) -> Tensor:
    _float_only("tanh", x)
    return Tanh.apply(x)


def sigmoid(x: Tensor) -> Tensor:
    _float_only("sigmoid", x)
    return Sigmoid.apply(x)


def relu(x: Tensor) -> Tensor:
    return Relu.apply(x)


def erf(x: Tensor) -> Tensor:
    _float_only("erf", x)
    return Erf.apply(x)


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    _float_only("gelu", x)
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return Gelu.apply(x, approximate=approximate)
