"""Embedding: a learnable lookup table of token vectors (see lessons/03_embeddings.py)."""

from __future__ import annotations

from ..tensor import Tensor
from . import functional as F
from . import init
from .module import Module
from .parameter import new_parameter

__all__ = ["Embedding"]


class Embedding(Module):
    """A table of ``num_embeddings`` vectors of size ``embedding_dim``; ``forward(ids)``
    returns the rows for the integer ids: ``(...) -> (..., embedding_dim)``.

    Parameter: ``weight`` (num_embeddings, embedding_dim), initialised N(0, 1) as PyTorch.
    ``padding_idx`` (negative counts from the end): that row starts at zero and never gets
    a gradient, so it stays whatever it is. Ids are checked: a negative or too large id
    raises (see ``F.embedding``).
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 device=None, dtype=None):
        super().__init__()
        for name, v in (("num_embeddings", num_embeddings), ("embedding_dim", embedding_dim)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"Embedding: {name} must be a non-negative int, got {v!r}")
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx {padding_idx} out of range "
                                 f"[{-num_embeddings}, {num_embeddings}) for "
                                 f"num_embeddings={num_embeddings}")
            padding_idx = int(padding_idx) % num_embeddings
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.padding_idx = padding_idx
        self.weight = new_parameter((num_embeddings, embedding_dim), device, dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    def forward(self, input):
        return F.embedding(input, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        return s + (f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")

    @classmethod
    def from_pretrained(cls, embeddings, freeze: bool = True,
                        padding_idx: int | None = None) -> Embedding:
        """An Embedding whose weight is (a copy of) the 2-D ``embeddings`` tensor or array;
        ``freeze=True`` (the default, as PyTorch) keeps it out of training."""
        shape = tuple(embeddings.shape)
        if len(shape) != 2:
            raise ValueError(f"Embedding.from_pretrained: embeddings must be 2-D, got shape "
                             f"{shape}")
        device = embeddings.device if isinstance(embeddings, Tensor) else None
        m = cls(*shape, padding_idx=padding_idx, device=device, dtype=embeddings.dtype)
        m.load_state_dict({"weight": embeddings})
        m.weight.requires_grad_(not freeze)
        return m
