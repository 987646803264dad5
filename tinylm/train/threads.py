"""How many threads NumPy's BLAS (OpenBLAS) uses, set from inside a running process.

``OPENBLAS_NUM_THREADS`` only counts before NumPy is imported; ``tinylm train`` runs after
that, so it asks the OpenBLAS library NumPy loaded, through its
``openblas_set_num_threads`` (as the ``threadpoolctl`` package does). The matrices of the
presets are small (32 x 256 by 256 x 1024 for the LSTM): a second BLAS thread gains about
25% on an idle 2-core machine, but when anything else runs, spinning BLAS threads make a
step 2-5x slower (measured in benchmarks/README.md). So ``tinylm train`` uses one thread
unless told otherwise (``--threads``).
"""

from __future__ import annotations

import ctypes
import os

__all__ = ["set_blas_threads", "get_blas_threads"]

# the entry points of OpenBLAS builds: NumPy's wheels (scipy-openblas, 64-bit ints), plain
_PREFIXES = ("scipy_openblas", "openblas")
_SUFFIXES = ("64_", "")


def _openblas():
    """(set, get) functions of the OpenBLAS that NumPy loaded, or None."""
    import numpy  # noqa: F401 - make sure it is loaded

    try:
        with open("/proc/self/maps", encoding="utf-8") as f:  # the libraries loaded
            rows = [line.split() for line in f]
    except OSError:  # not Linux: leave the BLAS alone
        return None
    paths = {r[-1] for r in rows if len(r) >= 6 and "openblas" in os.path.basename(r[-1]).lower()}
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in _PREFIXES:
            for suffix in _SUFFIXES:
                setter = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                if setter is not None and getter is not None:
                    setter.argtypes, setter.restype = [ctypes.c_int], None
                    getter.argtypes, getter.restype = [], ctypes.c_int
                    return setter, getter
    return None


def set_blas_threads(n: int) -> bool:
    """Use ``n`` BLAS threads from now on; False if NumPy's BLAS is not one we can reach
    (then nothing changes)."""
    fns = _openblas()
    if fns is None:
        return False
    fns[0](int(n))
    return True


def get_blas_threads() -> int | None:
    """The BLAS thread count now, or None if it cannot be told."""
    fns = _openblas()
    return None if fns is None else int(fns[1]())
