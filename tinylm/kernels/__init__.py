"""Fused kernels for the hot ops, each beside the plain-array reference it must agree with.

The plain NumPy/CuPy code in ``tinylm.ops`` and ``tinylm.nn`` is the reference: readable,
step by step, what the lessons show. The kernels here do the same math in fewer passes
over memory (see lessons/11_kernels_and_backends.py):

====================  ==========================================================
module                kernels
====================  ==========================================================
``fastmath``          float32 exp / tanh / sigmoid that vectorize (Numba has no SVML)
``rnn``               the LSTM, GRU and RNN recurrences, one kernel per step each way
``loss``              log-softmax + cross-entropy (ignore_index, smoothing, weights)
``softmax``           softmax, log_softmax and attention's masked softmax (last dim)
``layernorm``         LayerNorm forward and backward
``gelu``              GELU (exact and tanh) forward and backward
``embedding``         the embedding backward: a serial scatter-add of the used rows
``optim``             Adam/AdamW and SGD(-momentum) updates, in place
====================  ==========================================================

Switches. ``TINYLM_KERNELS=reference`` in the environment (read at import) turns every
kernel off, and so does :func:`set_enabled` or the :func:`reference` context manager at
run time; ``NUMBA_DISABLE_JIT=1`` runs the Numba kernels as plain Python, for stepping
through them in a debugger. Kernels are used only where they apply (CPU arrays of
float32/float64 for Numba; CuPy arrays take the reference), and a backward kernel only
when no graph is being recorded: under ``create_graph=True`` the differentiable reference
backward runs, so second derivatives still work. Tests marked with lessons 01-10 run with
the kernels off (tinylm's pytest plugin): they grade the reference code those lessons teach.

Rules every kernel keeps (``shared/PERFORMANCE.md``): ``cache=True``; deterministic (no
parallel scatter-adds; a reduction always runs in the same order, so 1 and 2 threads give
the same bits); checked against its reference on every op-registry sample
(``tests/test_kernels*.py``). Submodules import Numba, so they load on first use, not with
``import tinylm``.
"""

from __future__ import annotations

import contextlib
import importlib
import os

__all__ = ["enabled", "set_enabled", "reference", "numba_applies", "MODULES"]

MODULES = ("fastmath", "rnn", "loss", "softmax", "layernorm", "gelu", "embedding", "optim")

_VALUES = ("reference", "off", "0", "numba", "on", "1", "")


def _from_env() -> bool:
    value = os.environ.get("TINYLM_KERNELS", "").strip().lower()
    if value not in _VALUES:
        raise ValueError(
            f"TINYLM_KERNELS={os.environ['TINYLM_KERNELS']!r}: expected 'reference' (kernels "
            f"off) or 'numba' (kernels on, the default)"
        )
    return value not in ("reference", "off", "0")


_enabled = _from_env()


def enabled() -> bool:
    """True when the fused kernels are used (the default)."""
    return _enabled


def set_enabled(on: bool) -> bool:
    """Turn the fused kernels on or off for the whole process; returns the old setting."""
    global _enabled
    if not isinstance(on, bool):
        raise TypeError(f"kernels.set_enabled: expected True or False, got {on!r}")
    old, _enabled = _enabled, on
    return old


@contextlib.contextmanager
def reference():
    """Run the block with the kernels off (the plain reference code), then restore."""
    old = set_enabled(False)
    try:
        yield
    finally:
        set_enabled(old)


def numba_applies(*arrays) -> bool:
    """True when the Numba kernels apply to these arrays: kernels on, and every array a
    NumPy float32/float64 array. Numba is imported here, on the first call with the
    kernels on, not with ``import tinylm``."""
    if not _enabled:
        return False
    from ._common import use_numba

    return use_numba(*arrays)


def __getattr__(name: str):
    """Import a kernel module on first use (it imports Numba and defines its kernels)."""
    if name in MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
