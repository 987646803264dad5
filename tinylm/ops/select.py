"""Ops that pick between values: clamp, maximum, minimum, where, masked_fill.

Their gradients route ``dy`` to whichever input was picked; the masks that do the
routing are piecewise constant, so they enter backward as constants.
"""

from __future__ import annotations

from .. import backend
from ..autograd import Function
from ..backend import xp_of
from ..tensor import Tensor
from ._util import as_tensor_like, broadcast_operands, check_broadcast, const
from .shape import unbroadcast


class Clamp(Function):
    r"""Clip into [min, max] (either bound may be None).

    Forward:  y = min(max(x, lo), hi)
    Backward: dx = dy [lo <= x <= hi]   (the bounds themselves pass the gradient, as PyTorch)
    Saves:    x
    """

    @staticmethod
    def forward(ctx, x, min, max):  # noqa: A002
        ctx.bounds = min, max
        ctx.save_for_backward(x)
        return xp_of(x).clip(x, min, max)

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        lo, hi = ctx.bounds
        inside = x.data == x.data  # all True, NaN excluded
        if lo is not None:
            inside = inside & (x.data >= lo)
        if hi is not None:
            inside = inside & (x.data <= hi)
        return dy * const(inside.astype(x.data.dtype))


def clamp(x: Tensor, min=None, max=None) -> Tensor:  # noqa: A002 - PyTorch's names
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    for name, v in (("min", min), ("max", max)):
        if v is not None and not isinstance(v, (int, float)):
            raise TypeError(f"clamp: {name} must be a number or None, got {type(v).__name__}")
    if min is not None and max is not None and min > max:
        raise ValueError(f"clamp: min ({min}) is greater than max ({max})")
    return Clamp.apply(x, min=min, max=max)


class Maximum(Function):
    r"""Elementwise maximum of two tensors.

    Forward:  y = max(a, b)
    Backward: da = unbroadcast(dy m),  db = unbroadcast(dy (1 - m)),
              m = [a > b] + \tfrac12 [a = b]   (a tie splits the gradient evenly, as PyTorch)
    Saves:    a, b
    """

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return xp_of(a).maximum(a, b)

    @staticmethod
    def backward(ctx, dy):
        a, b = ctx.saved_tensors
        return _split_by_mask(dy, a, b, a.data > b.data)


class Minimum(Function):
    r"""Elementwise minimum of two tensors.

    Forward:  y = min(a, b)
    Backward: da = unbroadcast(dy m),  db = unbroadcast(dy (1 - m)),
              m = [a < b] + \tfrac12 [a = b]   (a tie splits the gradient evenly)
    Saves:    a, b
    """

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return xp_of(a).minimum(a, b)

    @staticmethod
    def backward(ctx, dy):
        a, b = ctx.saved_tensors
        return _split_by_mask(dy, a, b, a.data < b.data)


def _split_by_mask(dy, a, b, a_wins):
    dt = dy.data.dtype
    m = a_wins.astype(dt) + 0.5 * (a.data == b.data).astype(dt)
    m = const(m.astype(dt, copy=False))
    return unbroadcast(dy * m, a.shape), unbroadcast(dy * (1.0 - m), b.shape)


def maximum(a, b) -> Tensor:
    a, b = broadcast_operands("maximum", a, b)
    return Maximum.apply(a, b)


def minimum(a, b) -> Tensor:
    a, b = broadcast_operands("minimum", a, b)
    return Minimum.apply(a, b)


class Where(Function):
    r"""Pick from ``a`` where ``cond`` is True, else from ``b``.

    Forward:  y = cond ? a : b
    Backward: dcond = None,  da = unbroadcast(cond ? dy : 0),  db = unbroadcast(cond ? 0 : dy)
    Saves:    cond
    """

    @staticmethod
    def forward(ctx, cond, a, b):
        ctx.save_for_backward(cond)
        ctx.shapes = a.shape, b.shape
        return xp_of(a).where(cond, a, b)

    @staticmethod
    def backward(ctx, dy):
        (cond,) = ctx.saved_tensors
        sa, sb = ctx.shapes
        zero = const(xp_of(dy.data).zeros((), dtype=dy.data.dtype))
        da = unbroadcast(Where.apply(cond, dy, zero), sa) if ctx.needs_input_grad[1] else None
        db = unbroadcast(Where.apply(cond, zero, dy), sb) if ctx.needs_input_grad[2] else None
        return None, da, db


def where(condition, input, other) -> Tensor:  # noqa: A002 - PyTorch's names
    if not isinstance(condition, Tensor):
        raise TypeError(f"where: condition must be a bool Tensor, got {type(condition).__name__}")
    if condition.dtype.kind != "b":
        raise TypeError(f"where: condition must have dtype bool, got {condition.dtype}")
    if not isinstance(input, Tensor) and not isinstance(other, Tensor):
        raise TypeError("where: at least one of input and other must be a Tensor")
    a, b = broadcast_operands("where", input, other)
    backend.check_same_device("where", condition=condition.data, input=a.data)
    check_broadcast("where", condition.shape, a.shape)
    check_broadcast("where", condition.shape, b.shape)
    return Where.apply(condition, a, b)


class MaskedFill(Function):
    r"""Replace elements where ``mask`` is True by a constant ``value``.

    Forward:  y = mask ? value : x
    Backward: dx = mask ? 0 : dy   (the filled places no longer depend on x)
    Saves:    mask
    """

    @staticmethod
    def forward(ctx, x, mask, value):
        ctx.save_for_backward(mask)
        xp = xp_of(x)
        return xp.where(mask, xp.asarray(value, dtype=x.dtype), x)

    @staticmethod
    def backward(ctx, dy):
        (mask,) = ctx.saved_tensors
        return MaskedFill.apply(dy, mask, value=0), None


def masked_fill(x: Tensor, mask, value) -> Tensor:
    if not isinstance(mask, Tensor):
        mask = as_tensor_like(mask, x)
    if mask.dtype.kind != "b":
        raise TypeError(f"masked_fill: mask must have dtype bool, got {mask.dtype}")
    backend.check_same_device("masked_fill", input=x.data, mask=mask.data)
    check_broadcast("masked_fill", mask.shape, x.shape)
    if len(mask.shape) > x.ndim or any(
        m != 1 and m != s for m, s in zip(reversed(mask.shape), reversed(x.shape))
    ):
        raise ValueError(
            f"masked_fill: mask of shape {tuple(mask.shape)} must broadcast to the input's "
            f"shape {tuple(x.shape)}"
        )
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(f"masked_fill: value must be a number, got shape {value.shape}")
        value = value.item()
    if x.dtype.kind in "iub" and isinstance(value, float) and not float(value).is_integer():
        raise TypeError(f"masked_fill: value {value} does not fit the integer dtype {x.dtype}")
    return MaskedFill.apply(x, mask, value=value)
