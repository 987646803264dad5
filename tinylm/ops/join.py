"""Joining and splitting: cat, stack, split, chunk."""

from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..backend import xp_of
from ..tensor import Tensor, _check_dim
from .index import GetItem
from .shape import unsqueeze


class Cat(Function):
    r"""Concatenate along ``dim``.

    Forward:  y = [x_1; x_2; ...] along dim
    Backward: dx_i = dy[..., offset_i : offset_i + n_i, ...]   (each input gets its slice back)
    Saves:    sizes along dim
    """

    @staticmethod
    def forward(ctx, *xs, dim):
        ctx.dim, ctx.sizes = dim, [x.shape[dim] for x in xs]
        return xp_of(xs[0]).concatenate(xs, axis=dim)

    @staticmethod
    def backward(ctx, dy):
        out, start = [], 0
        lead = (slice(None),) * ctx.dim
        for n in ctx.sizes:
            out.append(GetItem.apply(dy, key=lead + (slice(start, start + n),), advanced=False))
            start += n
        return tuple(out)


class Stack(Function):
    r"""Stack along a new ``dim``.

    Forward:  y[..., i, ...] = x_i
    Backward: dx_i = dy[..., i, ...]
    """

    @staticmethod
    def forward(ctx, *xs, dim):
        ctx.dim, ctx.n = dim, len(xs)
        return xp_of(xs[0]).stack(xs, axis=dim)

    @staticmethod
    def backward(ctx, dy):
        lead = (slice(None),) * ctx.dim
        return tuple(GetItem.apply(dy, key=lead + (i,), advanced=False) for i in range(ctx.n))


def _check_seq(op: str, tensors) -> list:
    if isinstance(tensors, Tensor) or not hasattr(tensors, "__len__"):
        raise TypeError(f"{op}: expected a list or tuple of Tensors")
    tensors = list(tensors)
    if not tensors:
        raise ValueError(f"{op}: expected a non-empty list of Tensors")
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: item {i} is a {type(t).__name__}, not a Tensor")
    dt = tensors[0].dtype
    for i, t in enumerate(tensors):
        if t.dtype != dt:
            raise TypeError(f"{op}: item {i} has dtype {t.dtype}, item 0 has {dt}")
        if type(t.data) is not type(tensors[0].data):
            raise RuntimeError(f"{op}: item {i} is on {t.device}, item 0 on {tensors[0].device}")
    return tensors


def cat(tensors, dim: int = 0) -> Tensor:
    tensors = _check_seq("cat", tensors)
    ref = tensors[0]
    d = _check_dim("cat", dim, ref.ndim)
    if ref.ndim == 0:
        raise ValueError("cat: zero-dimensional tensors cannot be concatenated (use stack)")
    for i, t in enumerate(tensors):
        if t.ndim != ref.ndim or any(
            a != b for j, (a, b) in enumerate(zip(t.shape, ref.shape)) if j != d
        ):
            raise ValueError(
                f"cat: item {i} has shape {tuple(t.shape)}, item 0 has {tuple(ref.shape)}; "
                f"all dims except dim {dim} must match"
            )
    return Cat.apply(*tensors, dim=d)


def stack(tensors, dim: int = 0) -> Tensor:
    tensors = _check_seq("stack", tensors)
    ref = tensors[0]
    d = _check_dim("stack", dim, ref.ndim + 1)
    for i, t in enumerate(tensors):
        if t.shape != ref.shape:
            raise ValueError(
                f"stack: item {i} has shape {tuple(t.shape)}, item 0 has {tuple(ref.shape)}; "
                "all must be equal"
            )
    return Stack.apply(*tensors, dim=d)


def split(x: Tensor, split_size_or_sections, dim: int = 0) -> tuple:
    """Split into pieces of ``split_size`` (the last may be smaller), or of the given sizes."""
    d = _check_dim("split", dim, x.ndim)
    n = x.shape[d]
    if isinstance(split_size_or_sections, (int, np.integer)):
        size = int(split_size_or_sections)
        if size <= 0:
            raise ValueError(f"split: split_size must be positive, got {size}")
        sizes = [min(size, n - s) for s in range(0, n, size)] or [0]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if any(s < 0 for s in sizes) or np.sum(sizes) != n:
            raise ValueError(
                f"split: sections {sizes} must be non-negative and sum to the size {n} of dim "
                f"{dim} (shape {tuple(x.shape)})"
            )
    lead = (slice(None),) * d
    out, start = [], 0
    for s in sizes:
        out.append(x[lead + (slice(start, start + s),)])
        start += s
    return tuple(out)


def chunk(x: Tensor, chunks: int, dim: int = 0) -> tuple:
    """Split into ``chunks`` pieces of ceil(n / chunks) (fewer when n is small), as PyTorch."""
    if not isinstance(chunks, (int, np.integer)) or chunks <= 0:
        raise ValueError(f"chunk: chunks must be a positive int, got {chunks!r}")
    d = _check_dim("chunk", dim, x.ndim)
    n = x.shape[d]
    size = max(-(-n // int(chunks)), 1)
    return split(x, size, d)


def unstack(x: Tensor, dim: int = 0) -> tuple:
    """The inverse of stack: the slices along ``dim``."""
    d = _check_dim("unstack", dim, x.ndim)
    lead = (slice(None),) * d
    return tuple(x[lead + (i,)] for i in range(x.shape[d]))


__all__ = ["Cat", "Stack", "cat", "stack", "split", "chunk", "unstack", "unsqueeze"]
