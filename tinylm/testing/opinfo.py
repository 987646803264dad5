"""The op registry's vocabulary: OpInfo, SampleInput, ErrorInput, and sample makers.

An ``OpInfo`` describes one public differentiable op: how to call it, which inputs
to try (``samples``), which bad inputs must raise and with what message
(``errors``), and optionally a NumPy reference for the forward value. The sweep
(``tinylm.testing.sweep``) runs gradcheck, gradgradcheck, the error inputs and a
contiguous-vs-strided comparison over every sample of every entry.

Samples are described with NumPy arrays, so the same registry can drive another
implementation through an adapter: float arrays become leaves that require grad
(unless listed in ``nondiff``); integer and bool arrays become constant tensors;
anything else (numbers, slices, tuples) is passed through unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..tensor import Tensor


@dataclass
class SampleInput:
    """One way to call an op: ``op(*args, **kwargs)``."""

    args: tuple
    kwargs: dict = field(default_factory=dict)
    name: str = ""
    nondiff: tuple = ()  # positions of float arrays that must not require grad
    gradgrad: bool = True  # False where the second derivative is not defined here
    gradcheck: bool = True  # False where float64 central differences cannot apply (a cast)

    def tensors(self, requires_grad: bool = True, copy: bool = False) -> tuple:
        """The args with arrays wrapped as tinylm Tensors (views kept unless ``copy``)."""
        out = []
        for i, a in enumerate(self.args):
            if isinstance(a, np.ndarray):
                data = a.copy() if copy else a
                t = Tensor(data)
                if requires_grad and a.dtype.kind == "f" and i not in self.nondiff:
                    t.requires_grad_(True)
                out.append(t)
            else:
                out.append(a)
        return tuple(out)

    def describe(self) -> str:
        if self.name:
            return self.name
        parts = []
        for a in self.args:
            parts.append(f"{a.dtype}{list(a.shape)}" if isinstance(a, np.ndarray) else repr(a))
        kw = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return ", ".join(parts) + (f"; {kw}" if kw else "")


@dataclass
class ErrorInput:
    """A bad call and the exception it must raise (``match`` is a regex on the message)."""

    sample: SampleInput
    exc: type
    match: str


@dataclass
class OpInfo:
    """Everything the sweep needs to know about one op."""

    name: str
    op: Callable
    samples: Callable[[np.random.Generator], list]
    errors: Callable[[], list] = lambda: []
    ref: Callable | None = None  # NumPy reference for the forward value
    gradgrad: bool = True
    notes: str = ""  # e.g. the tie rule, documented where it matters
    lesson: str = "lesson02"  # the lesson that introduces the op: its sweep cases grade it

    def sample_inputs(self, seed: int = 0) -> list:
        return self.samples(np.random.default_rng(seed))


# ----------------------------------------------------------------------------- makers


def away_from(rng, shape, points=(0.0,), low=-2.0, high=2.0, margin=0.1):
    """Uniform values in [low, high] at least ``margin`` from each kink in ``points``,
    so central differences never straddle a point where the op is not smooth."""
    x = rng.uniform(low, high, size=shape)
    for p in points:
        near = np.abs(x - p) < margin
        x = np.where(near, p + np.where(x >= p, margin, -margin) * 2, x)
    return x


def distinct(rng, shape, low=-2.0, high=2.0):
    """Values no two of which are closer than (high - low) / (4 n): no ties for max/min."""
    n = int(np.prod(shape, dtype=np.int64))
    grid = np.linspace(low, high, max(n, 1) * 4)
    vals = rng.choice(grid, size=n, replace=False) if n else np.zeros(0)
    return vals.reshape(shape)


def strided(a: np.ndarray) -> np.ndarray:
    """A non-contiguous view holding the same values as ``a`` (every other column)."""
    if a.ndim == 0:
        return a.copy()
    buf = np.zeros(a.shape[:-1] + (a.shape[-1] * 2,), dtype=a.dtype)
    buf[..., ::2] = a
    v = buf[..., ::2]
    assert a.size < 2 or a.shape[-1] < 2 or not v.flags.c_contiguous
    return v


def transposed(a: np.ndarray) -> np.ndarray:
    """A transposed (Fortran-ordered) view holding the same values as ``a``."""
    return np.ascontiguousarray(a.T).T
