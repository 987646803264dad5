"""Indexing: ``x[key]`` with ints, slices (negative steps too), None, Ellipsis,
integer arrays and bool masks, and its gradient, a scatter-add.

Basic indexing picks each input element at most once, so its backward writes
``dy`` into a zero array. Integer-array indexing may pick an element several
times (``x[[0, 0, 1]]``): the backward must *add* every copy's gradient
(``np.add.at``), never let the last write win.
"""

from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..backend import scatter_add, to_device, xp_of
from ..tensor import Tensor

_BASIC = (int, slice, type(None), type(Ellipsis), np.integer)


class GetItem(Function):
    r"""Forward:  y = x[key]
    Backward: dx = scatter_add(zeros_like(x), key, dy)
    Saves:    x.shape, key
    """

    @staticmethod
    def forward(ctx, x, key, advanced):
        ctx.in_shape, ctx.key, ctx.advanced = x.shape, key, advanced
        return x[key]

    @staticmethod
    def backward(ctx, dy):
        return IndexAdd.apply(dy, shape=ctx.in_shape, key=ctx.key, advanced=ctx.advanced)


def _rows_kernel(y, key, dy) -> bool:
    """``y[ids] += dy`` for a key that is one integer array (``x[ids]``: whole rows, as an
    embedding lookup) with the embedding backward's serial scatter kernel, which adds in
    the same order as ``np.add.at`` (the same bits) at a fraction of its cost. False,
    touching nothing, when the key has another form or the kernels do not apply."""
    if len(key) != 1 or y.ndim == 0 or y.shape[0] == 0:
        return False
    from .. import kernels

    ids = key[0]
    if not (type(ids) is np.ndarray and ids.dtype.kind in "iu" and kernels.numba_applies(y, dy)):
        return False
    n = y.shape[0]
    width = int(np.prod(y.shape[1:], dtype=np.int64))
    # y is a fresh C-contiguous zeros array: scatter straight into a (n, width) view of it
    kernels.embedding.scatter_add_rows_into(y.reshape(n, width), ids.reshape(-1) % n,
                                            dy.reshape(ids.size, width))
    return True


class IndexAdd(Function):
    r"""Scatter ``dy`` into zeros of ``shape`` at ``key``, adding repeated positions.

    Forward:  y = zeros(shape);  y[key] += dy   (accumulating, via add.at)
    Backward: ddy = ddx[key]
    """

    @staticmethod
    def forward(ctx, dy, shape, key, advanced):
        ctx.key, ctx.advanced = key, advanced
        xp = xp_of(dy)
        y = xp.zeros(shape, dtype=dy.dtype)
        if advanced:
            if not _rows_kernel(y, key, dy):
                scatter_add(y, key, dy)  # np.add.at; cupy.add.at on the GPU
        else:
            y[key] = dy
        return y

    @staticmethod
    def backward(ctx, ddx):
        return GetItem.apply(ddx, key=ctx.key, advanced=ctx.advanced)


def _normalize_key(x: Tensor, key):
    """Turn Tensors in ``key`` into arrays on x's device; bool masks into int indices."""
    if type(key) is slice or type(key) is int:
        return (key,), False  # the common case: x[i], x[a:b]
    if not isinstance(key, tuple):
        key = (key,)
    xp = xp_of(x.data)
    out, advanced, pos = [], False, 0
    for k in key:
        if isinstance(k, Tensor):
            k = k.data
        elif isinstance(k, (list, np.ndarray)) or (hasattr(k, "dtype") and hasattr(k, "shape")):
            k = to_device(np.asarray(k) if isinstance(k, list) else k, x.device)
        if isinstance(k, bool):
            raise IndexError("getitem: a bare bool index is not supported; use a bool tensor")
        if isinstance(k, _BASIC):
            out.append(k)
            pos += 0 if k is None or k is Ellipsis else 1
            continue
        if not hasattr(k, "dtype"):
            raise IndexError(
                f"getitem: index of type {type(k).__name__} is not supported (ints, slices, "
                "None, ..., integer arrays and bool masks are)"
            )
        if k.dtype.kind == "b":
            if k.shape != x.shape[pos : pos + k.ndim]:
                raise IndexError(
                    f"getitem: bool mask of shape {tuple(k.shape)} does not match the indexed "
                    f"dims {tuple(x.shape[pos : pos + k.ndim])} of shape {tuple(x.shape)}"
                )
            nz = xp.nonzero(k)
            out.extend(nz)
            pos += k.ndim
        elif k.dtype.kind in "iu":
            out.append(k.astype(np.int64, copy=False))
            pos += 1
        else:
            raise IndexError(f"getitem: index arrays must be integer or bool, got dtype {k.dtype}")
        advanced = True
    return tuple(out), advanced


def getitem(x: Tensor, key) -> Tensor:
    key, advanced = _normalize_key(x, key)
    try:
        return GetItem.apply(x, key=key, advanced=advanced)
    except IndexError as e:
        raise IndexError(f"getitem: {e} (tensor of shape {tuple(x.shape)})") from None
