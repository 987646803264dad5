"""``Tensor.to``: move between devices and cast between float dtypes, differentiably."""

from __future__ import annotations

import numpy as np

from .. import backend
from ..autograd import Function
from ..tensor import Tensor


class To(Function):
    r"""Copy to another device and/or float dtype.

    Forward:  y = x (on ``device``, as ``dtype``)
    Backward: dx = dy moved back to x's device and dtype
    """

    @staticmethod
    def forward(ctx, x, device, dtype):
        ctx.back = backend.device_of(x), x.dtype
        y = backend.to_device(x, device)
        return y.astype(dtype, copy=False) if y.dtype != dtype else y

    @staticmethod
    def backward(ctx, dy):
        device, dtype = ctx.back
        return To.apply(dy, device=device, dtype=dtype)


def to(x: Tensor, device=None, dtype=None) -> Tensor:
    device = x.device if device is None else backend.Device(device)
    dtype = x.dtype if dtype is None else np.dtype(dtype)
    if device == x.device and dtype == x.dtype:
        return x
    if dtype.kind not in "fc":
        # an integer or bool copy carries no gradient: it is a new constant
        y = backend.to_device(x.data, device)
        if dtype.kind in "iub" and x.dtype.kind in "fc":
            xp = backend.xp_of(y)
            if not bool(xp.all(xp.isfinite(y))):
                raise ValueError(f"to: cannot convert non-finite values to {dtype}")
        return Tensor._wrap(y.astype(dtype))
    if x.dtype.kind not in "fc":
        return Tensor._wrap(backend.to_device(x.data, device).astype(dtype))
    return To.apply(x, device=device, dtype=dtype)
