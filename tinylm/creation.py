"""Making tensors: tensor, zeros, ones, full, arange, randn, rand and the *_like forms.

Python floats become float32 (the default), Python ints int64, bools bool;
NumPy arrays keep their dtype. Nothing is cast unless ``dtype`` asks for it.
"""

from __future__ import annotations

import numpy as np

from . import backend, random
from .tensor import Tensor

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
float16 = np.dtype(np.float16)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
bool_ = np.dtype(np.bool_)

_default = {"dtype": float32}


def get_default_dtype():
    return _default["dtype"]


def set_default_dtype(dtype) -> None:
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"set_default_dtype: expected a float dtype, got {dtype}")
    _default["dtype"] = dtype


def _device(device) -> backend.Device:
    return backend.CPU if device is None else backend.Device(device)


def _finish(a, device, requires_grad) -> Tensor:
    a = backend.to_device(a, device)
    t = Tensor._wrap(a)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _infer_dtype(data):
    """float32 for Python floats, int64 for ints, bool for bools (as PyTorch)."""
    arr = np.asarray(data)
    if arr.dtype.kind == "f":
        return _default["dtype"]
    if arr.dtype.kind in "iu":
        return int64
    if arr.dtype.kind == "b":
        return bool_
    raise TypeError(f"tensor: cannot make a tensor from data of dtype {arr.dtype}")


def tensor(data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data`` (nested lists, a number, or an array)."""
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, np.generic):  # a NumPy scalar keeps its dtype, as an array does
        data = np.asarray(data)
    dev = _device(device)
    if backend.is_cupy_array(data) or isinstance(data, np.ndarray):
        if data.dtype == object:
            raise TypeError("tensor: object arrays are not supported")
        target = np.dtype(dtype) if dtype is not None else data.dtype
        with np.errstate(invalid="ignore"):  # nan/inf -> int: _check_exact raises instead
            a = data.astype(target, copy=True)
        _check_exact("tensor", data, a)
        if backend.is_cupy_array(a) and dev.type == "cpu":
            a = a.get()
        return _finish(a, dev, requires_grad)
    target = np.dtype(dtype) if dtype is not None else _infer_dtype(data)
    try:
        a = np.array(data, dtype=target)
    except OverflowError as e:
        raise ValueError(f"tensor: {e}") from None
    except (ValueError, TypeError) as e:
        raise TypeError(f"tensor: cannot convert data to a {target} array: {e}") from None
    if dtype is not None:
        _check_exact("tensor", np.asarray(data), a)
    return _finish(a, dev, requires_grad)


def _check_exact(op: str, src, a) -> None:
    """Refuse a cast to an integer dtype that changes a value: float data truncated
    (fractions, nan, inf), or integers wrapped around by a narrower dtype. A cast
    between floats, or of ints to bool, is an ordinary explicit conversion."""
    sk, tk = src.dtype.kind, a.dtype.kind
    if not ((tk in "iu" and sk in "fiu") or (tk == "b" and sk == "f")):
        return
    if bool(backend.xp_of(a).array_equal(src, a)):
        return
    what = "truncated" if sk == "f" else "wrapped around"
    valid = "" if tk == "b" else (
        f" (valid range [{np.iinfo(a.dtype).min}, {np.iinfo(a.dtype).max}], whole numbers)"
    )
    raise ValueError(
        f"{op}: {src.dtype} data would be {what} by dtype {a.dtype}{valid}; "
        "round or clip it first"
    )


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """Like ``tensor`` but shares memory with a NumPy array when possible."""
    if isinstance(data, Tensor) and dtype is None and device is None:
        return data
    if isinstance(data, np.ndarray) and (dtype is None or np.dtype(dtype) == data.dtype) and (
        device is None or _device(device).type == "cpu"
    ):
        return Tensor._wrap(data)
    return tensor(data, dtype=dtype, device=device)


def _shape(size) -> tuple:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    for s in size:
        if not isinstance(s, (int, np.integer)) or isinstance(s, bool) or s < 0:
            raise ValueError(f"invalid size {tuple(size)}: sizes must be non-negative ints")
    return tuple(int(s) for s in size)


def _dtype(dtype):
    return _default["dtype"] if dtype is None else np.dtype(dtype)


def zeros(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _finish(np.zeros(_shape(size), _dtype(dtype)), _device(device), requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _finish(np.ones(_shape(size), _dtype(dtype)), _device(device), requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    if dtype is None:
        dtype = _infer_dtype(fill_value)
    return _finish(np.full(_shape((size,)), fill_value, np.dtype(dtype)), _device(device),
                   requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False) -> Tensor:
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    if dtype is None:
        ints = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
        dtype = int64 if ints else _default["dtype"]
    return _finish(np.arange(start, end, step, dtype=np.dtype(dtype)), _device(device),
                   requires_grad)


def randn(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Standard normal samples from tinylm's generator (see ``manual_seed``)."""
    dt = _dtype(dtype)
    a = random.generator().standard_normal(_shape(size)).astype(dt, copy=False)
    return _finish(a, _device(device), requires_grad)


def rand(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Uniform samples in [0, 1) from tinylm's generator."""
    dt = _dtype(dtype)
    a = random.generator().random(_shape(size)).astype(dt, copy=False)
    return _finish(a, _device(device), requires_grad)


def randint(low, high=None, size=(), dtype=None, device=None) -> Tensor:
    if high is None:
        low, high = 0, low
    if high <= low:
        raise ValueError(f"randint: empty range [{low}, {high})")
    a = random.generator().integers(low, high, size=_shape((size,)), dtype=np.int64)
    return _finish(a.astype(int64 if dtype is None else np.dtype(dtype)), _device(device), False)


def _like(fn, t: Tensor, dtype, device, requires_grad, *extra):
    dtype = t.dtype if dtype is None else dtype
    device = t.device if device is None else device
    return fn(*extra, dtype=dtype, device=device, requires_grad=requires_grad)


def zeros_like(t, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _like(lambda **k: zeros(t.shape, **k), t, dtype, device, requires_grad)


def ones_like(t, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _like(lambda **k: ones(t.shape, **k), t, dtype, device, requires_grad)


def full_like(t, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _like(lambda **k: full(t.shape, fill_value, **k), t, dtype, device, requires_grad)


def randn_like(t, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _like(lambda **k: randn(t.shape, **k), t, dtype, device, requires_grad)


def rand_like(t, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _like(lambda **k: rand(t.shape, **k), t, dtype, device, requires_grad)
