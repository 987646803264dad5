"""Array backends: NumPy on the CPU (default) and CuPy on a CUDA GPU.

Ops never import NumPy or CuPy by name to do their math; they ask for the
array module of their inputs with :func:`xp_of`, the way DeZero's
``get_array_module`` does. CuPy is imported lazily, only when a ``cuda`` device
is asked for, so ``import tinylm`` never fails on a machine without a GPU.
"""

from __future__ import annotations

import numpy as np

_cupy = None  # the cupy module once it has been imported successfully


class Device:
    """A device string parsed once: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``."""

    __slots__ = ("type", "index")

    def __init__(self, spec: str | Device = "cpu"):
        if isinstance(spec, Device):
            self.type, self.index = spec.type, spec.index
            return
        if not isinstance(spec, str):
            raise TypeError(f"device must be a string like 'cpu' or 'cuda:0', got {spec!r}")
        kind, _, idx = spec.partition(":")
        if kind not in ("cpu", "cuda"):
            raise ValueError(f"unknown device {spec!r}: expected 'cpu', 'cuda' or 'cuda:N'")
        if kind == "cpu" and idx:
            raise ValueError(f"unknown device {spec!r}: the CPU has no index")
        if idx and not idx.isdigit():
            raise ValueError(f"unknown device {spec!r}: the index must be a non-negative integer")
        self.type = kind
        self.index = int(idx) if kind == "cuda" and idx else (0 if kind == "cuda" else None)

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            try:
                other = Device(other)
            except (TypeError, ValueError):
                return False
        if not isinstance(other, Device):
            return NotImplemented
        return self.type == other.type and self.index == other.index

    def __hash__(self) -> int:
        return hash((self.type, self.index))

    def __str__(self) -> str:
        return "cpu" if self.type == "cpu" else f"cuda:{self.index}"

    def __repr__(self) -> str:
        return f"device(type='{self.type}'" + (
            ")" if self.index is None else f", index={self.index})"
        )


CPU = Device("cpu")


def cupy():
    """Import CuPy on first use, with an error that says what to install."""
    global _cupy
    if _cupy is None:
        try:
            import cupy as cp  # noqa: PLC0415 (lazy by design)
        except ImportError as e:  # pragma: no cover - depends on the machine
            raise RuntimeError(
                "device 'cuda' needs CuPy: install it with `pip install tinylm[gpu]` "
                "(or the cupy-cudaXXx wheel matching your CUDA version)"
            ) from e
        _cupy = cp
    return _cupy


def is_cupy_array(a) -> bool:
    """True for a ``cupy.ndarray`` without importing CuPy."""
    return _cupy is not None and isinstance(a, _cupy.ndarray)


def xp_of(a):
    """The array module (numpy or cupy) that owns array ``a``."""
    return _cupy if is_cupy_array(a) else np


def xp_for(device: Device):
    """The array module for a device."""
    return np if device.type == "cpu" else cupy()


_CUDA_DEVICES: dict[int, Device] = {}  # one Device per GPU index: device_of is on hot paths


def device_of(a) -> Device:
    if is_cupy_array(a):
        i = a.device.id
        d = _CUDA_DEVICES.get(i)
        if d is None:
            d = _CUDA_DEVICES[i] = Device(f"cuda:{i}")
        return d
    return CPU


def to_device(a, device: Device):
    """Move array ``a`` to ``device`` (a no-op when it is already there).

    Host to GPU and GPU to host copy; an array on another GPU is copied across (CuPy's
    ``asarray`` alone would hand back the array on its old GPU).
    """
    if device.type == "cpu":
        return a.get() if is_cupy_array(a) else a
    cp = cupy()
    if is_cupy_array(a):
        if a.device.id == device.index:
            return a
        with cp.cuda.Device(device.index):
            return cp.array(a, copy=True)
    with cp.cuda.Device(device.index):
        return cp.asarray(a)


def to_numpy(a) -> np.ndarray:
    """A NumPy array, copied from the GPU when needed."""
    return a.get() if is_cupy_array(a) else np.asarray(a)


def check_same_device(op: str, **arrays) -> None:
    """Raise naming each array's device when they are not all on one device.

    ``check_same_device("linear", input=x, weight=w, bias=b)`` with backend arrays (or
    None, skipped). NumPy and CuPy would otherwise fail with a TypeError about implicit
    conversion that names neither the op nor the devices.
    """
    first = None
    for name, a in arrays.items():
        if a is None:
            continue
        d = device_of(a)
        if first is None:
            first = (name, d)
        elif d != first[1]:
            raise RuntimeError(
                f"{op}: {first[0]} is on {first[1]}, {name} is on {d}; "
                "move one with .to(device)"
            )


def scatter_add(out, key, values) -> None:
    """``out[key] += values`` in place, where repeated indices in ``key`` all add
    (``np.add.at``); on the GPU ``cupy.add.at`` (CuPy >= 13), else ``cupyx.scatter_add``.

    On the GPU the additions are atomic and run in no fixed order, so a float sum over
    repeated indices may differ from the CPU's in the last bits from run to run.
    """
    if is_cupy_array(out):
        cp = cupy()
        add_at = getattr(cp.add, "at", None)
        if add_at is not None:
            add_at(out, key, values)
        else:  # pragma: no cover - older CuPy
            import cupyx  # noqa: PLC0415

            cupyx.scatter_add(out, key, values)
        return
    np.add.at(out, key, values)


def synchronize(device: Device | None = None) -> None:
    """Wait until the GPU has finished all queued work (a no-op for the CPU): the
    GPU runs kernels asynchronously, so a timer must synchronize before it reads."""
    if device is not None and device.type == "cpu":
        return
    if _cupy is None:
        return  # nothing can have been queued without CuPy
    if device is None:
        _cupy.cuda.Device().synchronize()
    else:
        _cupy.cuda.Device(device.index).synchronize()


def cuda_is_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    try:
        cp = cupy()
        return cp.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no CuPy, no driver, no device: all mean "not available"
        return False
