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


def device_of(a) -> Device:
    if is_cupy_array(a):
        return Device(f"cuda:{a.device.id}")
    return CPU


def to_device(a, device: Device):
    """Move array ``a`` to ``device`` (a no-op when it is already there)."""
    if device.type == "cpu":
        return a.get() if is_cupy_array(a) else a
    cp = cupy()
    with cp.cuda.Device(device.index):
        return cp.asarray(a)


def to_numpy(a) -> np.ndarray:
    """A NumPy array, copied from the GPU when needed."""
    return a.get() if is_cupy_array(a) else np.asarray(a)


def cuda_is_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    try:
        cp = cupy()
        return cp.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no CuPy, no driver, no device: all mean "not available"
        return False
