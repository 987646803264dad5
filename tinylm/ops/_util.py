"""Helpers shared by the ops: lifting Python scalars, dtype rules, dim checks."""

from __future__ import annotations

import numpy as np

from .. import backend
from ..tensor import Tensor, _check_dim

_SCALARS = (bool, int, float, np.number, np.bool_)


def is_float(dtype) -> bool:
    return dtype.kind in "fc"


def _result_dtype(op: str, da, db):
    """The dtype of a binary op. Floats of different widths are refused (no silent cast);
    an integer or bool operand joins the float one."""
    if da == db:
        return da
    fa, fb = is_float(da), is_float(db)
    if fa and fb:
        raise TypeError(
            f"{op}: dtype mismatch {da} vs {db}; convert one side explicitly "
            "with .float() or .double()"
        )
    if fa:
        return da
    if fb:
        return db
    return np.result_type(da, db)


def _scalar_dtype(v, other_dtype):
    if isinstance(v, (bool, np.bool_)):
        return other_dtype
    if isinstance(v, (int, np.integer)):
        return other_dtype if other_dtype.kind != "b" else np.dtype(np.int64)
    # a float (or complex) scalar: it takes a float tensor's dtype, else the default float32
    return other_dtype if is_float(other_dtype) else np.dtype(np.float32)


def as_tensor_like(v, ref: Tensor, dtype=None) -> Tensor:
    """A constant Tensor for ``v`` (a Python scalar or an array) beside ``ref``."""
    if isinstance(v, Tensor):
        return v
    xp = backend.xp_of(ref.data)
    if isinstance(v, _SCALARS):
        return Tensor._wrap(xp.asarray(v, dtype=dtype or _scalar_dtype(v, ref.data.dtype)))
    if hasattr(v, "dtype") and hasattr(v, "shape"):
        return Tensor._wrap(backend.to_device(v, backend.device_of(ref.data)))
    raise TypeError(f"expected a Tensor, an array or a number, got {type(v).__name__}")


def binary_operands(op: str, a, b) -> tuple[Tensor, Tensor]:
    """Lift scalars, check devices, and bring both operands to one dtype.

    Only a non-float operand is ever converted (it carries no gradient); two floats
    of different widths raise instead of promoting silently.
    """
    if type(a) is Tensor:
        if type(b) is Tensor:
            if a.data.dtype is b.data.dtype and type(a.data) is type(b.data):
                return a, b  # the common case: same dtype, same device
        elif type(b) is float and a.data.dtype.kind == "f" and type(a.data) is np.ndarray:
            return a, Tensor._wrap(np.array(b, dtype=a.data.dtype))  # x * 0.5
    elif type(a) is float and type(b) is Tensor and b.data.dtype.kind == "f" and (
        type(b.data) is np.ndarray
    ):
        return Tensor._wrap(np.array(a, dtype=b.data.dtype)), b  # 1.0 - x
    if not isinstance(a, Tensor):
        if not isinstance(b, Tensor):
            raise TypeError(f"{op}: expected at least one Tensor operand")
        a = as_tensor_like(a, b)
    elif not isinstance(b, Tensor):
        b = as_tensor_like(b, a)
    da, db = a.data.dtype, b.data.dtype
    if type(a.data) is not type(b.data) and (
        backend.is_cupy_array(a.data) or backend.is_cupy_array(b.data)
    ):
        raise RuntimeError(
            f"{op}: operands are on different devices ({a.device} and {b.device}); "
            "move one with .to(device)"
        )
    if da != db:
        dt = _result_dtype(op, da, db)
        if da != dt:
            a = Tensor._wrap(a.data.astype(dt))
        if db != dt:
            b = Tensor._wrap(b.data.astype(dt))
    return a, b


def broadcast_operands(op: str, a, b) -> tuple[Tensor, Tensor]:
    """``binary_operands``, then a check that the two shapes broadcast."""
    a, b = binary_operands(op, a, b)
    if a.data.shape != b.data.shape:
        check_broadcast(op, a.data.shape, b.data.shape)
    return a, b


def check_broadcast(op: str, sa: tuple, sb: tuple) -> None:
    """Raise naming both shapes when they do not broadcast."""
    for x, y in zip(reversed(sa), reversed(sb)):
        if x != y and x != 1 and y != 1:
            raise ValueError(f"{op}: shapes {tuple(sa)} and {tuple(sb)} do not broadcast")


def normalize_dims(op: str, dim, ndim: int) -> tuple[int, ...]:
    """``dim`` (None, an int or a tuple of ints) as a sorted tuple of non-negative axes."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
    out = tuple(sorted(_check_dim(op, d, ndim) for d in dims))
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: dim {dim} names a dimension twice")
    return out


def kept_shape(shape: tuple, dims: tuple) -> tuple:
    """``shape`` with the reduced ``dims`` set to 1 (the keepdim=True shape)."""
    return tuple(1 if i in dims else s for i, s in enumerate(shape))


def const(a) -> Tensor:
    """A constant Tensor (no grad) for an array computed inside a backward."""
    if isinstance(a, np.generic):
        a = np.asarray(a)
    return Tensor._wrap(a)
