"""softmax and log_softmax along one dim, both stable for any finite logits.

Along the last dim of a NumPy float array, forward and (when no graph is recorded)
backward run as fused kernels (``tinylm.kernels.softmax``, the same math in fewer passes);
the code below is the reference they are tested against.
"""

from __future__ import annotations

import numpy as np

from .. import kernels
from ..autograd import Function
from ..backend import xp_of
from ..tensor import Tensor, _check_dim, _grad_mode

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _kernel(z, dim: int) -> bool:
    """The fused kernels apply: kernels on, a NumPy float32/float64 array, the last dim."""
    return (kernels._enabled and type(z) is np.ndarray and dim == z.ndim - 1
            and z.dtype in _FLOATS)


class Softmax(Function):
    r"""Normalised exponentials along ``dim``.

    Forward:  y_i = e^{z_i - m} / \sum_k e^{z_k - m},  m = \max_k z_k  (no overflow)
    Backward: dz_i = y_i (g_i - \sum_k g_k y_k)   (the Jacobian diag(y) - y y^T applied to g)
    Shapes:   z (..., V) -> y (..., V)
    Saves:    y
    """

    @staticmethod
    def forward(ctx, z, dim):
        ctx.dim = dim
        xp = xp_of(z)
        if _kernel(z, dim):
            y = kernels.softmax.softmax(z)
        elif z.size == 0:
            y = z.copy()
        else:
            e = xp.exp(z - z.max(axis=dim, keepdims=True))
            y = e / e.sum(axis=dim, keepdims=True)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved_tensors
        if not _grad_mode.enabled and _kernel(y.data, ctx.dim) and dy.data.dtype == y.data.dtype:
            return kernels.softmax.softmax_backward(y.data, dy.data)
        return y * (dy - (dy * y).sum(dim=ctx.dim, keepdim=True))


class LogSoftmax(Function):
    r"""Log of softmax along ``dim``.

    Forward:  y_i = z_i - m - \ln \sum_k e^{z_k - m},  m = \max_k z_k
    Backward: dz_i = g_i - e^{y_i} \sum_k g_k
    Shapes:   z (..., V) -> y (..., V)
    Saves:    y
    """

    @staticmethod
    def forward(ctx, z, dim):
        ctx.dim = dim
        xp = xp_of(z)
        if _kernel(z, dim):
            y = kernels.softmax.log_softmax(z)
        elif z.size == 0:
            y = z.copy()
        else:
            shifted = z - z.max(axis=dim, keepdims=True)
            y = shifted - xp.log(xp.exp(shifted).sum(axis=dim, keepdims=True))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved_tensors
        if not _grad_mode.enabled and _kernel(y.data, ctx.dim) and dy.data.dtype == y.data.dtype:
            return kernels.softmax.log_softmax_backward(y.data, dy.data)
        return dy - y.exp() * dy.sum(dim=ctx.dim, keepdim=True)


def _check(op: str, x: Tensor, dim) -> int:
    if dim is None:
        raise TypeError(f"{op}: dim is required (softmax over all elements is ambiguous)")
    if x.dtype.kind not in "fc":
        raise TypeError(f"{op}: expected a floating point tensor, got dtype {x.dtype}")
    return _check_dim(op, dim, x.ndim)


def softmax(x: Tensor, dim: int) -> Tensor:
    return Softmax.apply(x, dim=_check("softmax", x, dim))


def log_softmax(x: Tensor, dim: int) -> Tensor:
    return LogSoftmax.apply(x, dim=_check("log_softmax", x, dim))
