"""``tinylm.cuda``: whether ``device="cuda"`` can work here, and what a GPU timer needs.

::

    tinylm.cuda.is_available()        # CuPy installed and a GPU visible; never raises
    tinylm.cuda.synchronize()         # wait for queued GPU work (before reading a clock)

Nothing here imports CuPy until a GPU is asked about, so ``import tinylm`` works on any
machine (``tinylm.backend`` imports it lazily).
"""

from __future__ import annotations

from .backend import Device, cuda_is_available
from .backend import synchronize as _synchronize

__all__ = ["is_available", "device_count", "synchronize", "get_device_name"]


def is_available() -> bool:
    """True when CuPy is installed and sees a CUDA GPU. Never raises."""
    return cuda_is_available()


def device_count() -> int:
    if not cuda_is_available():
        return 0
    from .backend import cupy

    return int(cupy().cuda.runtime.getDeviceCount())


def synchronize(device: str | Device | int | None = None) -> None:
    """Block until every kernel queued on the GPU ``device`` (default: the current one)
    has finished, as ``torch.cuda.synchronize``. CuPy launches kernels asynchronously,
    so a timing without it measures the launches, not the work. A no-op when no GPU
    work can have been queued (CuPy never imported)."""
    if isinstance(device, int) and not isinstance(device, bool):
        device = f"cuda:{device}"
    _synchronize(None if device is None else Device(device))


def get_device_name(device: str | Device | int | None = None) -> str:
    """The GPU's name, e.g. ``"NVIDIA H200"`` (raises RuntimeError without CuPy)."""
    from .backend import cupy

    cp = cupy()
    if isinstance(device, int) and not isinstance(device, bool):
        index = device
    else:
        index = 0 if device is None else Device(device).index
        if index is None:
            raise ValueError(f"get_device_name: {device!r} is not a GPU")
    name = cp.cuda.runtime.getDeviceProperties(index)["name"]
    return name.decode() if isinstance(name, bytes) else str(name)
