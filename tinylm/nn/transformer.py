r"""TransformerBlock: the GPT block (pre-LayerNorm, causal self-attention, GELU MLP).

    x = x + Dropout(Attention(LN_1(x)))      every position reads the positions <= itself
    x = x + MLP(LN_2(x))                     MLP = Linear(d, r d), GELU, Linear(r d, d), Dropout

The residual stream ``x`` is only ever added to, so the gradient reaches every block
by the identity path; normalising the branch inputs (pre-LN, as GPT-2) rather than
the sum keeps that path clean. See lessons/09_attention_transformer.py.
"""

from __future__ import annotations

import functools
import numbers

from .. import backend
from ..tensor import Tensor
from .activation import GELU
from .attention import MultiheadAttention, _causal_keep
from .containers import Sequential
from .dropout import Dropout
from .linear import Linear
from .module import Module
from .normalization import LayerNorm

__all__ = ["TransformerBlock"]


@functools.lru_cache(maxsize=16)
def _causal_attn_mask(T: int, device: backend.Device):
    """The causal mask in MultiheadAttention's convention (True = may NOT attend: j > i)."""
    mask = ~_causal_keep(T, T, device)
    if not backend.is_cupy_array(mask):
        mask.flags.writeable = False
    return mask


class TransformerBlock(Module):
    """One decoder block of a GPT: ``(B, T, d_model) -> (B, T, d_model)`` (or (T, d_model)).

    Children (a state dict with the same names loads into the equivalent PyTorch
    composition): ``ln_1`` LayerNorm; ``attn`` MultiheadAttention(d_model, n_heads,
    dropout, bias, batch_first=True), causal; ``resid_dropout`` on the attention branch;
    ``ln_2`` LayerNorm; ``mlp`` Sequential(Linear(d_model, mlp_ratio d_model), GELU(),
    Linear(mlp_ratio d_model, d_model), Dropout). ``dropout`` applies to the attention
    weights and to both branch outputs; ``bias=False`` drops every bias (LayerNorms too).
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, mlp_ratio: float = 4,
                 bias: bool = True, device=None, dtype=None):
        super().__init__()
        if isinstance(mlp_ratio, bool) or not isinstance(mlp_ratio, numbers.Real) or (
                mlp_ratio <= 0):
            raise ValueError(f"TransformerBlock: mlp_ratio must be a positive number, got "
                             f"{mlp_ratio!r}")
        if isinstance(d_model, bool) or not isinstance(d_model, int) or d_model <= 0:
            raise ValueError(f"TransformerBlock: d_model must be a positive int, got {d_model!r}")
        hidden = int(mlp_ratio * d_model)
        kw = {"device": device, "dtype": dtype}
        self.d_model, self.n_heads, self.mlp_ratio = d_model, n_heads, mlp_ratio
        self.ln_1 = LayerNorm(d_model, bias=bias, **kw)
        self.attn = MultiheadAttention(d_model, n_heads, dropout=dropout, bias=bias,
                                       batch_first=True, **kw)
        self.resid_dropout = Dropout(dropout)
        self.ln_2 = LayerNorm(d_model, bias=bias, **kw)
        self.mlp = Sequential(Linear(d_model, hidden, bias=bias, **kw), GELU(),
                              Linear(hidden, d_model, bias=bias, **kw), Dropout(dropout))

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or x.ndim not in (2, 3) or x.shape[-1] != self.d_model:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"TransformerBlock: input {shape} must be (B, T, d_model) or "
                             f"(T, d_model) with d_model={self.d_model}")
        T = x.shape[-2]
        mask = Tensor._wrap(_causal_attn_mask(T, x.device))  # (T, T), built once per T
        h = self.ln_1(x)  # (B, T, C)
        a, _ = self.attn(h, h, h, attn_mask=mask, need_weights=False, is_causal=True)
        x = x + self.resid_dropout(a)  # (B, T, C)
        return x + self.mlp(self.ln_2(x))  # (B, T, C)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, n_heads={self.n_heads}, mlp_ratio={self.mlp_ratio}"
