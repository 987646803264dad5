"""Shape ops: reshape, transpose, permute, (un)squeeze, expand, flatten, and the
broadcast pair ``expand`` / ``sum_to`` whose gradients are each other.

None of these change a value, so each backward only moves the gradient back into
the input's shape: see lessons/02_tensors_and_gradcheck.py for why a broadcast's
gradient is a sum.
"""

from __future__ import annotations

import math

import numpy as np

from ..autograd import Function
from ..tensor import Tensor, _check_dim
from ._util import const


class SumTo(Function):
    r"""Sum a broadcast gradient back down to ``shape`` (undoing a broadcast).

    Forward:  y = \sum over the leading dims, and over dims where shape has 1 (kept)
    Backward: dx = expand(dy, x.shape)   (each summed element received the same dy)
    Shapes:   x (broadcast of shape) -> y shape
    Saves:    x.shape
    """

    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        lead = x.ndim - len(shape)
        if lead:
            x = x.sum(axis=tuple(range(lead)))
        ones = tuple(i for i, s in enumerate(shape) if s == 1 and x.shape[i] != 1)
        if ones:
            # BEGIN SOLUTION lesson02 sum x over the dims `ones` (size 1 in shape), keeping them
            x = x.sum(axis=ones, keepdims=True)
            # END SOLUTION
        return x

    @staticmethod
    def backward(ctx, dy):
        return Expand.apply(dy, shape=ctx.in_shape)


def sum_to(x: Tensor, shape: tuple) -> Tensor:
    """Reduce ``x`` to ``shape`` by summing over broadcast dims (no-op when equal)."""
    if x.shape == tuple(shape):
        return x
    return SumTo.apply(x, shape=tuple(shape))


unbroadcast = sum_to


class Expand(Function):
    r"""Broadcast ``x`` to ``shape`` without copying (a read-only view).

    Forward:  y[..., i, ...] = x[..., 0, ...] along every expanded dim
    Backward: dx = sum_to(dy, x.shape)   (one x element fed many y elements)
    Shapes:   x -> shape
    Saves:    x.shape
    """

    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        return _xp(x).broadcast_to(x, shape)

    @staticmethod
    def backward(ctx, dy):
        return sum_to(dy, ctx.in_shape)


def _xp(a):
    from ..backend import xp_of

    return xp_of(a)


def _sizes(args) -> tuple:
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = tuple(args[0])
    if all(type(s) is int for s in args):
        return args
    for s in args:
        if not isinstance(s, (int, np.integer)) or isinstance(s, bool):
            raise TypeError(f"sizes must be ints, got {args!r}")
    return tuple(int(s) for s in args)


def expand(x: Tensor, *sizes) -> Tensor:
    """Broadcast to ``sizes``; -1 keeps a dim, new dims may be added in front."""
    sizes = _sizes(sizes)
    if len(sizes) < x.ndim:
        raise ValueError(
            f"expand: the number of sizes ({len(sizes)}) must be at least the number of "
            f"dims ({x.ndim}) of shape {tuple(x.shape)}"
        )
    lead = len(sizes) - x.ndim
    shape = []
    for i, s in enumerate(sizes):
        old = x.shape[i - lead] if i >= lead else None
        if s == -1:
            if old is None:
                raise ValueError(f"expand: -1 is not allowed for a new leading dim {i}")
            s = old
        elif old is not None and old != 1 and old != s:
            raise ValueError(
                f"expand: dim {i - lead} of shape {tuple(x.shape)} has size {old}, which can "
                f"only expand to itself (or 1 to anything), not {s}"
            )
        elif s < 0:
            raise ValueError(f"expand: invalid size {s} at dim {i}")
        shape.append(s)
    shape = tuple(shape)
    if shape == x.shape:
        return x
    return Expand.apply(x, shape=shape)


def broadcast_to(x: Tensor, shape) -> Tensor:
    return expand(x, *shape)


class Reshape(Function):
    r"""Same elements, new shape (a view when the layout allows).

    Forward:  y = x viewed as ``shape``
    Backward: dx = reshape(dy, x.shape)
    Saves:    x.shape
    """

    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        return x.reshape(shape)

    @staticmethod
    def backward(ctx, dy):
        return Reshape.apply(dy, shape=ctx.in_shape)


def reshape(x: Tensor, *shape) -> Tensor:
    shape = _sizes(shape)
    n = math.prod(x.data.shape)
    if -1 in shape:
        if shape.count(-1) > 1:
            raise ValueError(f"reshape: only one dimension can be -1, got {shape}")
        known = math.prod(s for s in shape if s != -1)
        ok = known > 0 and n % known == 0 and min(shape) == -1
        shape = tuple(n // known if s == -1 else s for s in shape) if ok else shape
    else:
        ok = math.prod(shape) == n and (not shape or min(shape) >= 0)
    if not ok:
        raise ValueError(
            f"reshape: shape {shape} is invalid for a tensor of shape {tuple(x.shape)} "
            f"({n} elements)"
        )
    if shape == x.data.shape:
        return x
    return Reshape.apply(x, shape=shape)


view = reshape


class Permute(Function):
    r"""Reorder dims: y = x.transpose(dims).

    Forward:  y[i_{p_0}, ..., i_{p_n}] = x[i_0, ..., i_n]
    Backward: dx = permute(dy, argsort(dims))   (the inverse permutation)
    Saves:    dims
    """

    @staticmethod
    def forward(ctx, x, dims):
        ctx.dims = dims
        return x.transpose(dims)

    @staticmethod
    def backward(ctx, dy):
        inv = tuple(int(i) for i in np.argsort(ctx.dims))
        return Permute.apply(dy, dims=inv)


def permute(x: Tensor, *dims) -> Tensor:
    dims = _sizes(dims)
    if len(dims) != x.ndim:
        raise ValueError(
            f"permute: got {len(dims)} dims {dims} for a {x.ndim}-d tensor of shape "
            f"{tuple(x.shape)}"
        )
    norm = tuple(_check_dim("permute", d, x.ndim) for d in dims)
    if sorted(norm) != list(range(x.ndim)):
        raise ValueError(f"permute: dims {dims} are not a permutation of 0..{x.ndim - 1}")
    if norm == tuple(range(x.ndim)):
        return x
    return Permute.apply(x, dims=norm)


def transpose(x: Tensor, dim0: int, dim1: int) -> Tensor:
    """Swap two dims (a Permute with two entries exchanged)."""
    d0, d1 = _check_dim("transpose", dim0, x.ndim), _check_dim("transpose", dim1, x.ndim)
    if x.ndim < 2 or d0 == d1:
        return x
    dims = list(range(x.ndim))
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return Permute.apply(x, dims=tuple(dims))


def unsqueeze(x: Tensor, dim: int) -> Tensor:
    """Insert a dim of size 1 at ``dim`` (in [-ndim-1, ndim])."""
    d = _check_dim("unsqueeze", dim, x.ndim + 1)
    return Reshape.apply(x, shape=x.shape[:d] + (1,) + x.shape[d:])


def squeeze(x: Tensor, dim=None) -> Tensor:
    """Remove size-1 dims (all of them, or only ``dim`` when it has size 1)."""
    if dim is None:
        shape = tuple(s for s in x.shape if s != 1)
    else:
        dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
        ds = {_check_dim("squeeze", d, x.ndim) for d in dims}
        shape = tuple(s for i, s in enumerate(x.shape) if not (i in ds and s == 1))
    return x if shape == x.shape else Reshape.apply(x, shape=shape)


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dims ``start_dim..end_dim`` (inclusive) into one."""
    if x.ndim == 0:
        return Reshape.apply(x, shape=(1,))
    s = _check_dim("flatten", start_dim, x.ndim)
    e = _check_dim("flatten", end_dim, x.ndim)
    if s > e:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    merged = math.prod(x.shape[s : e + 1])
    shape = x.shape[:s] + (merged,) + x.shape[e + 1 :]
    return x if shape == x.shape else Reshape.apply(x, shape=shape)


class Contiguous(Function):
    r"""A C-contiguous copy (or the same array when it already is one).

    Forward:  y = x
    Backward: dx = dy
    """

    @staticmethod
    def forward(ctx, x):
        return x.copy(order="C")  # (ascontiguousarray would turn 0-d into 1-d)

    @staticmethod
    def backward(ctx, dy):
        return dy


def contiguous(x: Tensor) -> Tensor:
    if x.data.flags.c_contiguous:
        return x
    return Contiguous.apply(x)


__all__ = [
    "SumTo", "Expand", "Reshape", "Permute", "Contiguous", "sum_to", "unbroadcast", "expand",
    "broadcast_to", "reshape", "view", "permute", "transpose", "unsqueeze", "squeeze",
    "flatten", "contiguous", "const",
]
