"""``tinylm.cuda.is_available()``: whether ``device="cuda"`` can work here."""

from .backend import cuda_is_available


def is_available() -> bool:
    """True when CuPy is installed and sees a CUDA GPU. Never raises."""
    return cuda_is_available()


def device_count() -> int:
    if not cuda_is_available():
        return 0
    from .backend import cupy

    return int(cupy().cuda.runtime.getDeviceCount())
