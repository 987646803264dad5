"""Arithmetic: + - * / ** (with their reversed forms), negation, comparisons.

Binary ops broadcast like NumPy; each backward sums its gradient back to the
input's shape with ``unbroadcast`` (see lessons/02_tensors_and_gradcheck.py).
"""

from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..backend import xp_of
from ..tensor import Tensor
from ._util import _SCALARS, broadcast_operands, const
from .shape import unbroadcast


class Add(Function):
    r"""Elementwise sum.

    Forward:  y = a + b
    Backward: da = unbroadcast(dy),  db = unbroadcast(dy)
    Shapes:   a, b broadcast -> y
    Saves:    shapes only
    """

    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = a.shape, b.shape
        return a + b

    @staticmethod
    def backward(ctx, dy):
        sa, sb = ctx.shapes
        need_a, need_b = ctx.needs_input_grad
        return (unbroadcast(dy, sa) if need_a else None), (unbroadcast(dy, sb) if need_b else None)


class Sub(Function):
    r"""Elementwise difference.

    Forward:  y = a - b
    Backward: da = unbroadcast(dy),  db = -unbroadcast(dy)
    Saves:    shapes only
    """

    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = a.shape, b.shape
        return a - b

    @staticmethod
    def backward(ctx, dy):
        sa, sb = ctx.shapes
        need_a, need_b = ctx.needs_input_grad
        return (unbroadcast(dy, sa) if need_a else None), (
            unbroadcast(neg(dy), sb) if need_b else None)


class Mul(Function):
    r"""Elementwise product.

    Forward:  y = a b
    Backward: da = unbroadcast(dy b),  db = unbroadcast(dy a)
    Saves:    a, b
    """

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, dy):
        a, b = ctx.saved_tensors
        da = unbroadcast(dy * b, a.shape) if ctx.needs_input_grad[0] else None
        db = unbroadcast(dy * a, b.shape) if ctx.needs_input_grad[1] else None
        return da, db


class Div(Function):
    r"""Elementwise quotient.

    Forward:  y = a / b
    Backward: da = unbroadcast(dy / b),  db = unbroadcast(-dy a / b^2) = unbroadcast(-dy y / b)
              (the second form never squares b, so it cannot overflow where y is finite)
    Saves:    b, y
    """

    @staticmethod
    def forward(ctx, a, b):
        y = a / b
        ctx.shapes = a.shape, b.shape
        ctx.save_for_backward(b, y)
        return y

    @staticmethod
    def backward(ctx, dy):
        b, y = ctx.saved_tensors
        sa = ctx.shapes[0]
        da = unbroadcast(dy / b, sa) if ctx.needs_input_grad[0] else None
        db = unbroadcast(-(dy * y) / b, b.shape) if ctx.needs_input_grad[1] else None
        return da, db


class Neg(Function):
    r"""Forward: y = -x.   Backward: dx = -dy."""

    @staticmethod
    def forward(ctx, x):
        return -x

    @staticmethod
    def backward(ctx, dy):
        return neg(dy)


class PowScalar(Function):
    r"""Power with a constant (Python number) exponent p.

    Forward:  y = x^p
    Backward: dx = dy p x^{p-1}   (zero when p = 0, so 0^{-1} never appears)
    Saves:    x
    """

    @staticmethod
    def forward(ctx, x, p):
        ctx.p = p
        ctx.save_for_backward(x)
        if p == 2:
            return x * x  # exact, and cheaper than the general power
        return x ** x.dtype.type(p) if x.dtype.kind == "f" else x ** p

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        p = ctx.p
        if p == 0:
            return dy * 0.0
        if p == 1:
            return dy
        if p == 2:
            return dy * (x * 2.0)
        return dy * (pow_scalar(x, p - 1) * float(p))


class Pow(Function):
    r"""Power with a tensor exponent.

    Forward:  y = a^b
    Backward: da = unbroadcast(dy b a^{b-1}),  db = unbroadcast(dy y \ln a)
              (db is taken as 0 where a = 0 and b >= 0, the limit PyTorch uses too)
    Saves:    a, b, y
    """

    @staticmethod
    def forward(ctx, a, b):
        y = a**b
        ctx.save_for_backward(a, b, y)
        return y

    @staticmethod
    def backward(ctx, dy):
        a, b, y = ctx.saved_tensors
        da = db = None
        if ctx.needs_input_grad[0]:
            da = unbroadcast(dy * b * a ** (b - 1.0), a.shape)
        if ctx.needs_input_grad[1]:
            from .select import where

            xp = xp_of(a.data)
            zero = (a.data == 0) & (b.data >= 0)
            safe_a = where(const(xp.asarray(zero)), 1.0, a)  # ln(1) = 0 where a = 0
            db = unbroadcast(dy * y * safe_a.log(), b.shape)
        return da, db


# ----------------------------------------------------------------------------- wrappers


def add(a, b) -> Tensor:
    a, b = broadcast_operands("add", a, b)
    return Add.apply(a, b)


def sub(a, b) -> Tensor:
    a, b = broadcast_operands("sub", a, b)
    return Sub.apply(a, b)


def mul(a, b) -> Tensor:
    a, b = broadcast_operands("mul", a, b)
    return Mul.apply(a, b)


def div(a, b) -> Tensor:
    a, b = broadcast_operands("div", a, b)
    if a.data.dtype.kind in "iub" and b.data.dtype.kind in "iub":
        raise TypeError(
            "div: both operands are integers; true division would silently change the dtype, "
            "so convert one with .float() first"
        )
    return Div.apply(a, b)


def neg(x: Tensor) -> Tensor:
    return Neg.apply(x)


def pow_scalar(x: Tensor, p) -> Tensor:
    return PowScalar.apply(x, p=p)


def pow(a, b) -> Tensor:  # noqa: A001 - PyTorch's name
    """``a ** b``: a number exponent uses PowScalar, a tensor exponent Pow."""
    if isinstance(a, Tensor) and isinstance(b, _SCALARS) and not isinstance(b, (bool, np.bool_)):
        if a.dtype.kind in "iub" and (isinstance(b, (float, np.floating)) or b < 0):
            raise TypeError(
                f"pow: integer tensor to the power {b} would need a float result; "
                "convert with .float() first"
            )
        return PowScalar.apply(a, p=b)
    a, b = broadcast_operands("pow", a, b)
    return Pow.apply(a, b)


# comparisons: bool tensors that never carry a gradient


def _compare(name, fn):
    def compare(a, b) -> Tensor:
        a, b = broadcast_operands(name, a, b)
        y = fn(a.data, b.data)
        return const(y)

    compare.__name__ = name
    compare.__doc__ = f"Elementwise ``{name}`` comparison: a bool tensor, never part of the graph."
    return compare


eq = _compare("eq", lambda a, b: a == b)
ne = _compare("ne", lambda a, b: a != b)
lt = _compare("lt", lambda a, b: a < b)
le = _compare("le", lambda a, b: a <= b)
gt = _compare("gt", lambda a, b: a > b)
ge = _compare("ge", lambda a, b: a >= b)
