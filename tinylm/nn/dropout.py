"""Dropout: zero random elements while training, identity in eval mode."""

from __future__ import annotations

import numbers

from . import functional as F
from .module import Module

__all__ = ["Dropout"]


class Dropout(Module):
    """Inverted dropout (see ``F.dropout``): while ``self.training``, each element is
    zeroed with probability ``p`` and the others scaled by ``1/(1-p)``, so the expected
    output equals the input; after ``eval()`` it is the identity. The mask comes from
    tinylm's generator, so ``tinylm.manual_seed`` makes it reproducible."""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: probability has to be between 0 and 1, but got {p}")
        if inplace:
            raise ValueError("Dropout: inplace=True is not supported (tinylm never updates a "
                             "tensor in place)")
        self.p = p
        self.inplace = inplace

    def forward(self, input):
        return F.dropout(input, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
