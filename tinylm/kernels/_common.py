"""What every kernel module shares: when a kernel applies, and how it is compiled."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np

from .. import kernels
from ..backend import is_cupy_array

__all__ = ["jit", "pjit", "use_numba", "use_cupy", "FASTMATH", "BenchCase"]

# error_model="numpy": x / 0 gives inf or nan as in NumPy, without the Python-style
# ZeroDivisionError check that stops LLVM from vectorizing a loop with a division.
# LLVM flags the kernels may use. 'contract' lets a*b+c become one fused multiply-add;
# 'arcp' lets x/y become x*(1/y). Deliberately *not* 'nnan'/'ninf' (the kernels must pass
# inf and nan through as NumPy does) nor 'reassoc' (it would let LLVM reorder a sum).
FASTMATH = {"contract", "arcp", "nsz"}

# Numba's OpenMP threads spin after a parallel region and fight OpenBLAS for the cores
# (PERFORMANCE.md: a 20x slower LSTM step). The workqueue layer's threads sleep instead.
# Only when the user has not chosen a layer, and before any parallel kernel is compiled.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"


def jit(fn=None, **kw):
    """``numba.njit`` as the kernels use it: cached, serial, with :data:`FASTMATH`."""
    opts = dict(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
    opts.update(kw)
    return numba.njit(**opts) if fn is None else numba.njit(**opts)(fn)


def pjit(fn):
    """A parallel kernel (``prange``): only for work split by rows or by elements, never a
    scatter-add or a sum across threads, so 1 and 2 threads give the same bits."""
    return jit(fn, parallel=True)


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def use_numba(*arrays) -> bool:
    """True when the Numba kernels apply: kernels on, and every array a NumPy float32 or
    float64 array (integer arrays such as ids are checked by the caller)."""
    return kernels._enabled and all(
        type(a) is np.ndarray and a.dtype in _FLOATS for a in arrays
    )


def use_cupy(*arrays) -> bool:
    """True when the CuPy kernels apply: kernels on, and every array on the GPU."""
    return kernels._enabled and all(is_cupy_array(a) for a in arrays)


@dataclass
class BenchCase:
    """One row of the kernel table (``tinylm bench``, benchmarks/kernels.py).

    Every kernel module has ``bench_cases(quick: bool) -> list[BenchCase]``; each case's
    callables run the whole operation once on inputs the module built beforehand (same
    inputs for all three), so the table compares like with like. ``target`` is the goal
    for ``numpy time / kernel time`` (or ``torch time / kernel time`` when
    ``target_vs == "torch"``), from the fast-paths issue; None when there is none.
    """

    name: str  # "embedding backward"
    size: str  # "50k x 128, 2048 ids"
    kernel: Callable[[], object]
    numpy: Callable[[], object]  # the plain NumPy expression the kernel replaces
    numpy_label: str  # how that expression is written, e.g. "np.add.at"
    torch: Callable[[], object] | None = None  # PyTorch CPU doing the same, when installed
    target: float | None = None
    target_vs: str = "numpy"
