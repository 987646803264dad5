r"""Positional encodings: attention itself ignores order, so each position gets a vector added.

Attention is permutation-equivariant: shuffle the keys and values together and every
output is the same. A language model must know where each token is, so the input
embedding of position t gets a vector P_t added before the first block:

- ``SinusoidalPositionalEncoding``: fixed sines and cosines of geometrically spaced
  frequencies ("Attention is all you need", section 3.5); nothing to learn, and
  P_{t+k} is a linear function (a rotation) of P_t for each frequency.
- ``LearnedPositionalEmbedding``: a learned table of ``max_len`` vectors (GPT-2's
  ``wpe``), an Embedding of the positions 0..T-1.

Both take embeddings ``x`` of shape (..., T, d_model) (the sequence dim second to last,
batch first) and return ``x + P[:T]``. See lessons/09_attention_transformer.py.
"""

from __future__ import annotations

import math

import numpy as np

from .. import backend, creation
from ..tensor import Tensor
from . import init
from .module import Module
from .parameter import new_parameter

__all__ = ["SinusoidalPositionalEncoding", "LearnedPositionalEmbedding"]


def _check_sizes(layer: str, **sizes) -> None:
    for name, v in sizes.items():
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(f"{layer}: {name} must be a positive int, got {v!r}")


def _check_input(layer: str, x, max_len: int, d_model: int) -> int:
    if not isinstance(x, Tensor):
        raise TypeError(f"{layer}: expected a Tensor, got {type(x).__name__}")
    if x.ndim < 2 or x.shape[-1] != d_model:
        raise ValueError(f"{layer}: input of shape {tuple(x.shape)} must be (..., T, "
                         f"d_model={d_model})")
    T = x.shape[-2]
    if T > max_len:
        raise ValueError(f"{layer}: sequence length {T} exceeds max_len={max_len}")
    return T


def sinusoidal_table(max_len: int, d_model: int) -> np.ndarray:
    r"""The (max_len, d_model) float64 table P_{t, 2i} = \sin(t \omega_i),
    P_{t, 2i+1} = \cos(t \omega_i), \omega_i = 10000^{-2i/d_model}."""
    t = np.arange(max_len, dtype=np.float64)[:, None]  # (T, 1)
    omega = np.exp(-math.log(10000.0) * np.arange(0, d_model, 2) / d_model)  # (ceil(d/2),)
    angles = t * omega  # (T, ceil(d/2))
    pe = np.empty((max_len, d_model))
    pe[:, 0::2] = np.sin(angles)
    pe[:, 1::2] = np.cos(angles[:, : d_model // 2])  # an odd d_model has one cosine fewer
    return pe


class SinusoidalPositionalEncoding(Module):
    r"""Add the fixed sinusoidal encoding: ``x (..., T, d_model) -> x + P[:T]``.

    P_{t, 2i} = \sin(t / 10000^{2i/d}),  P_{t, 2i+1} = \cos(t / 10000^{2i/d}): wavelengths
    from 2\pi to 10000 \cdot 2\pi, so near positions differ in the fast dims and far ones in
    the slow dims. The table is a non-persistent buffer ``pe`` (max_len, d_model): it
    follows ``.to()`` / ``.double()`` but is not in the state dict (it is recomputed).
    The gradient passes to ``x`` unchanged; there are no parameters.
    """

    def __init__(self, d_model: int, max_len: int = 5000, device=None, dtype=None):
        super().__init__()
        _check_sizes("SinusoidalPositionalEncoding", d_model=d_model, max_len=max_len)
        self.d_model = d_model
        self.max_len = max_len
        dtype = creation.get_default_dtype() if dtype is None else np.dtype(dtype)
        pe = backend.to_device(sinusoidal_table(max_len, d_model).astype(dtype),
                               backend.Device("cpu" if device is None else device))
        self.register_buffer("pe", Tensor._wrap(pe), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        T = _check_input("SinusoidalPositionalEncoding", x, self.max_len, self.d_model)
        if x.dtype != self.pe.dtype:
            raise TypeError(f"SinusoidalPositionalEncoding: input dtype {x.dtype} differs from "
                            f"the table's {self.pe.dtype}; convert the module (e.g. .double())")
        return x + Tensor._wrap(self.pe.data[:T])  # (..., T, d_model) + (T, d_model)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, max_len={self.max_len}"


class LearnedPositionalEmbedding(Module):
    """Add a learned vector per position: ``x (..., T, d_model) -> x + weight[:T]``.

    Parameter: ``weight`` (max_len, d_model), initialised N(0, 1) as ``nn.Embedding`` (it
    is ``Embedding(max_len, d_model)`` looked up at positions 0..T-1, so its state dict
    is an Embedding's). Position t's row gets the gradient summed over the batch.
    """

    def __init__(self, max_len: int, d_model: int, device=None, dtype=None):
        super().__init__()
        _check_sizes("LearnedPositionalEmbedding", max_len=max_len, d_model=d_model)
        self.max_len = max_len
        self.d_model = d_model
        self.weight = new_parameter((max_len, d_model), device, dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.normal_(self.weight)

    def forward(self, x: Tensor) -> Tensor:
        T = _check_input("LearnedPositionalEmbedding", x, self.max_len, self.d_model)
        return x + self.weight[:T]  # (..., T, d_model) + (T, d_model)

    def extra_repr(self) -> str:
        return f"{self.max_len}, {self.d_model}"
