"""Reductions over ``dim`` (None, an int or a tuple) with ``keepdim``:
sum, mean, var, amax, amin, logsumexp.

Every backward first puts ``dy`` back into the keepdim shape, then broadcasts it
over the reduced dims: each input element contributed to one output element.
"""

from __future__ import annotations

import math

import numpy as np

from ..autograd import Function
from ..backend import xp_of
from ..tensor import Tensor
from ._util import const, kept_shape, normalize_dims
from .shape import Expand, Reshape


def _spread(dy: Tensor, in_shape: tuple, dims: tuple) -> Tensor:
    """dy of the reduced shape -> broadcast over the input shape."""
    ks = kept_shape(in_shape, dims)
    if dy.shape != ks:
        dy = Reshape.apply(dy, shape=ks)
    if ks != tuple(in_shape):
        dy = Expand.apply(dy, shape=tuple(in_shape))
    return dy


def _count(shape, dims) -> int:
    return math.prod(shape[d] for d in dims)


class Sum(Function):
    r"""Forward: y = \sum_{dims} x.   Backward: dx = expand(dy).   Saves: shape, dims."""

    @staticmethod
    def forward(ctx, x, dims, keepdim):
        ctx.in_shape, ctx.dims = x.shape, dims
        return x.sum(axis=dims, keepdims=keepdim)

    @staticmethod
    def backward(ctx, dy):
        return _spread(dy, ctx.in_shape, ctx.dims)


class Mean(Function):
    r"""Forward: y = \frac1n \sum_{dims} x.   Backward: dx = expand(dy) / n.

    The mean over zero elements is nan, as in NumPy and PyTorch.
    Saves: shape, dims.
    """

    @staticmethod
    def forward(ctx, x, dims, keepdim):
        ctx.in_shape, ctx.dims = x.shape, dims
        n = _count(x.shape, dims)
        if n == 0:
            shape = kept_shape(x.shape, dims) if keepdim else tuple(
                s for i, s in enumerate(x.shape) if i not in dims
            )
            return xp_of(x).full(shape, np.nan, dtype=x.dtype)
        return x.mean(axis=dims, keepdims=keepdim)

    @staticmethod
    def backward(ctx, dy):
        n = _count(ctx.in_shape, ctx.dims)
        return _spread(dy, ctx.in_shape, ctx.dims) * (1.0 / max(n, 1))


class Var(Function):
    r"""Variance with ``correction`` (1: unbiased, Bessel's correction; 0: population).

    Forward:  y = \frac{1}{n - c} \sum_{dims} (x - \bar x)^2
    Backward: dx = dy \frac{2 (x - \bar x)}{n - c}
              (the \bar x term cancels, since \sum (x - \bar x) = 0)
    Saves:    x
    """

    @staticmethod
    def forward(ctx, x, dims, correction, keepdim):
        ctx.dims, ctx.correction = dims, correction
        ctx.save_for_backward(x)
        return x.var(axis=dims, ddof=correction, keepdims=keepdim)

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        dims = ctx.dims
        n = _count(x.shape, dims)
        centered = x - mean(x, dim=dims, keepdim=True)
        return _spread(dy, x.shape, dims) * centered * (2.0 / (n - ctx.correction))


class _Extreme(Function):
    r"""Shared backward of amax and amin.

    Backward: dx = dy [x = y] / count   (ties share the gradient evenly, as PyTorch's amax)
    Saves:    x, y
    """

    @staticmethod
    def backward(ctx, dy):
        x, y = ctx.saved_tensors
        dims = ctx.dims
        yk = y.data.reshape(kept_shape(x.shape, dims))
        hit = (x.data == yk).astype(x.data.dtype)
        share = hit / hit.sum(axis=dims, keepdims=True)
        return _spread(dy, x.shape, dims) * const(share)


class Amax(_Extreme):
    r"""Forward: y = \max_{dims} x.   Backward: see ``_Extreme``."""

    @staticmethod
    def forward(ctx, x, dims, keepdim):
        ctx.dims = dims
        y = x.max(axis=dims, keepdims=keepdim)
        ctx.save_for_backward(x, y)
        return y


class Amin(_Extreme):
    r"""Forward: y = \min_{dims} x.   Backward: see ``_Extreme``."""

    @staticmethod
    def forward(ctx, x, dims, keepdim):
        ctx.dims = dims
        y = x.min(axis=dims, keepdims=keepdim)
        ctx.save_for_backward(x, y)
        return y


class LogSumExp(Function):
    r"""Stable log of a sum of exponentials.

    Forward:  y = m + \ln \sum_{dims} e^{x - m},  m = \max_{dims} x  (no overflow; an all
              -inf slice gives -inf, an inf gives inf)
    Backward: dx = dy e^{x - y} = dy softmax(x), computed as e^{x - m} / \sum e^{x - m}:
              at |x| ~ 1e30 (float64) or 1e4 (float32) y has absorbed the log of the
              sum, so x - y would lose it; the shifted form stays exact
    Saves:    x
    """

    @staticmethod
    def forward(ctx, x, dims, keepdim):
        ctx.dims = dims
        xp = xp_of(x)
        m = x.max(axis=dims, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0).astype(x.dtype, copy=False)
        yk = m + xp.log(xp.exp(x - m).sum(axis=dims, keepdims=True))
        y = yk if keepdim else yk.reshape(tuple(s for i, s in enumerate(yk.shape) if i not in dims))
        ctx.save_for_backward(x)
        ctx.shift = m  # a constant: softmax does not change when every logit moves by m
        return y

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        dims = ctx.dims
        e = (x - const(ctx.shift)).exp()
        p = e / Sum.apply(e, dims=dims, keepdim=True)  # softmax of x over dims
        return _spread(dy, x.shape, dims) * p


# ----------------------------------------------------------------------------- wrappers


def _reduce_checks(op: str, x: Tensor, dim, allow_empty: bool) -> tuple:
    dims = normalize_dims(op, dim, x.ndim)
    if not allow_empty and _count(x.shape, dims) == 0:
        raise ValueError(
            f"{op}: cannot reduce over zero elements (shape {tuple(x.shape)}, dim {dim}); "
            "there is no identity for this reduction"
        )
    return dims


def sum(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:  # noqa: A001
    return Sum.apply(x, dims=_reduce_checks("sum", x, dim, True), keepdim=keepdim)


def mean(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    if x.dtype.kind not in "fc":
        raise TypeError(f"mean: expected a floating point tensor, got dtype {x.dtype}")
    return Mean.apply(x, dims=_reduce_checks("mean", x, dim, True), keepdim=keepdim)


def var(x: Tensor, dim=None, correction: int = 1, keepdim: bool = False) -> Tensor:
    if x.dtype.kind not in "fc":
        raise TypeError(f"var: expected a floating point tensor, got dtype {x.dtype}")
    dims = _reduce_checks("var", x, dim, True)
    n = _count(x.shape, dims)
    if correction < 0 or n - correction <= 0:
        raise ValueError(
            f"var: {n} element(s) per slice with correction={correction} leaves "
            f"{n - correction} degrees of freedom; need n - correction > 0"
        )
    return Var.apply(x, dims=dims, correction=correction, keepdim=keepdim)


def amax(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    return Amax.apply(x, dims=_reduce_checks("amax", x, dim, False), keepdim=keepdim)


def amin(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    return Amin.apply(x, dims=_reduce_checks("amin", x, dim, False), keepdim=keepdim)


def logsumexp(x: Tensor, dim, keepdim: bool = False) -> Tensor:
    if x.dtype.kind not in "fc":
        raise TypeError(f"logsumexp: expected a floating point tensor, got dtype {x.dtype}")
    return LogSumExp.apply(x, dims=_reduce_checks("logsumexp", x, dim, False), keepdim=keepdim)
