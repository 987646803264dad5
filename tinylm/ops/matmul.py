"""Matrix product with NumPy's rules: 1-D operands, batches and batch broadcasting."""

from __future__ import annotations

from ..autograd import Function
from ..tensor import Tensor
from ._util import binary_operands
from .shape import reshape, transpose, unbroadcast, unsqueeze


class MatMul(Function):
    r"""Matrix product over the last two dims, batch dims broadcast.

    Forward:  Y = A B,   Y_{ij} = \sum_k A_{ik} B_{kj}
    Backward: dA = dY B^T,  dB = A^T dY   (then summed over broadcast batch dims)
              A 1-D operand is treated as a row (A) or column (B) vector and the
              added dim removed again, exactly as the forward did.
    Shapes:   (..., n, k) @ (..., k, m) -> (..., n, m)
    Saves:    A, B
    """

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, dy):
        a, b = ctx.saved_tensors
        a2 = unsqueeze(a, 0) if a.ndim == 1 else a  # (k,) -> (1, k)
        b2 = unsqueeze(b, -1) if b.ndim == 1 else b  # (k,) -> (k, 1)
        if a.ndim == 1 and b.ndim == 1:
            dy2 = reshape(dy, 1, 1)  # () -> (1, 1)
        elif a.ndim == 1:
            dy2 = unsqueeze(dy, -2)  # (..., m) -> (..., 1, m)
        elif b.ndim == 1:
            dy2 = unsqueeze(dy, -1)  # (..., n) -> (..., n, 1)
        else:
            dy2 = dy
        da = db = None
        # BEGIN SOLUTION lesson02 dA = dY B^T and dB = A^T dY, summed over broadcast batch dims
        if ctx.needs_input_grad[0]:
            da = unbroadcast(matmul(dy2, transpose(b2, -1, -2)), a2.shape)
            da = reshape(da, *a.shape) if a.ndim == 1 else da
        if ctx.needs_input_grad[1]:
            db = unbroadcast(matmul(transpose(a2, -1, -2), dy2), b2.shape)
            db = reshape(db, *b.shape) if b.ndim == 1 else db
        # END SOLUTION
        return da, db


def matmul(a, b) -> Tensor:
    """``a @ b``. Refuses 0-d operands and names both shapes when they do not line up."""
    a, b = binary_operands("matmul", a, b)
    sa, sb = a.data.shape, b.data.shape
    if len(sa) == 2 and len(sb) == 2 and sa[1] == sb[0]:
        return MatMul.apply(a, b)  # the common case, already known to be valid
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(
            f"matmul: both operands must be at least 1-D, got shapes {tuple(a.shape)} and "
            f"{tuple(b.shape)} (use * for a scalar product)"
        )
    ka = a.shape[-1]
    kb = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if ka != kb:
        raise ValueError(
            f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} do not line up "
            f"(inner dims {ka} != {kb})"
        )
    ba, bb = a.shape[:-2], b.shape[:-2]
    for x, y in zip(reversed(ba), reversed(bb)):
        if x != y and x != 1 and y != 1:
            raise ValueError(
                f"matmul: batch dims of {tuple(a.shape)} and {tuple(b.shape)} do not broadcast"
            )
    return MatMul.apply(a, b)
