r"""GPT: a decoder-only Transformer language model (GPT-2's layout, in miniature).

    idx (B, T) ids, T <= context_length
      -> tok_emb: Embedding(V, C)                   (B, T, C)
      -> pos_emb: + learned P[:T] (context_length, C)
      -> Dropout
      -> blocks: n_layers x TransformerBlock        (B, T, C)   pre-LN, causal attention
      -> ln_f: LayerNorm(C)                         (B, T, C)
      -> head: Linear(C, V, bias=False)             logits (B, T, V)

Causal attention lets position t read positions <= t only, so ``logits[:, t]`` predicts
``idx[:, t + 1]`` from the past, for all t at once (one forward trains T predictions).
Unlike an RNN there is no state to carry: to continue a sequence the model re-reads it,
at most its last ``context_length`` tokens (``generate`` crops it; ``forward`` refuses a
longer input, since position T has no learned vector). See lessons/09 and 10.

Initialisation is GPT-2's (as nanoGPT): every Linear and Embedding weight N(0, 0.02),
biases 0, LayerNorms their default 1 and 0; the two projections that write into the residual stream
(attention ``out_proj`` and the MLP's second Linear) N(0, 0.02 / \sqrt{2 n_layers}),
so the stream's variance does not grow with depth. With ``tie_weights`` the head's
weight is the token embedding's Parameter (N(0, 1), PyTorch's Embedding default, would
make the first logits ~\sqrt{C} large and the first loss far above \log V).
"""

from __future__ import annotations

import math

from .. import nn
from ..nn import init
from ..tensor import Tensor
from .base import LanguageModel, resolve_config
from .config import GPTConfig

__all__ = ["GPT"]

INIT_STD = 0.02


class GPT(LanguageModel):
    """``GPT(config)`` or ``GPT(vocab_size=65, n_layers=2, ...)``; ``device`` and ``dtype``
    go to every layer. ``forward(idx, state=None) -> (logits, None)``: idx (B, T) ids with
    T <= ``context_length``, logits (B, T, V). ``state`` must be None (nothing recurs).

    Children: ``tok_emb`` Embedding(V, C), ``pos_emb`` LearnedPositionalEmbedding
    (context_length, C), ``drop`` Dropout, ``blocks`` ModuleList of TransformerBlock(C,
    n_heads, dropout, mlp_ratio), ``ln_f`` LayerNorm(C), ``head`` Linear(C, V, bias=False).
    """

    def __init__(self, config: GPTConfig | None = None, *, device=None, dtype=None, **fields):
        super().__init__()
        cfg = resolve_config(type(self).__name__, config, fields, GPTConfig)
        self.config = cfg
        V, C = cfg.vocab_size, cfg.d_model
        kw = {"device": device, "dtype": dtype}
        self.tok_emb = nn.Embedding(V, C, **kw)
        self.pos_emb = nn.LearnedPositionalEmbedding(cfg.context_length, C, **kw)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList([
            nn.TransformerBlock(C, cfg.n_heads, cfg.dropout, cfg.mlp_ratio, **kw)
            for _ in range(cfg.n_layers)])
        self.ln_f = nn.LayerNorm(C, **kw)
        self.head = nn.Linear(C, V, bias=False, **kw)
        self.reset_parameters()
        if cfg.tie_weights:
            self.head.weight = self.tok_emb.weight  # one (V, C) Parameter, two uses

    @property
    def context_length(self) -> int:
        return self.config.context_length

    def reset_parameters(self) -> None:
        """GPT-2's initialisation (see the module docstring)."""
        residual_std = INIT_STD / math.sqrt(2 * self.config.n_layers)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding, nn.LearnedPositionalEmbedding)):
                init.normal_(m.weight, 0.0, INIT_STD)
                if getattr(m, "bias", None) is not None:
                    init.zeros_(m.bias)
            elif isinstance(m, nn.MultiheadAttention):
                init.normal_(m.in_proj_weight, 0.0, INIT_STD)  # W_q, W_k, W_v stacked
                if m.in_proj_bias is not None:
                    init.zeros_(m.in_proj_bias)
        for block in self.blocks:  # the projections that write into the residual stream
            init.normal_(block.attn.out_proj.weight, 0.0, residual_std)
            init.normal_(block.mlp[2].weight, 0.0, residual_std)

    def forward(self, idx: Tensor, state: None = None) -> tuple[Tensor, None]:
        if state is not None:
            raise ValueError("GPT: a Transformer has no recurrent state; pass state=None "
                             "and the whole (cropped) sequence instead")
        B, T = self._check_idx(idx)
        if T > self.config.context_length:
            raise ValueError(f"GPT: sequence length {T} exceeds context_length="
                             f"{self.config.context_length}; crop the input to its last "
                             f"{self.config.context_length} tokens (generate() does)")
        x = self.drop(self.pos_emb(self.tok_emb(idx)))  # (B, T, C): token + position
        for block in self.blocks:
            x = block(x)  # (B, T, C)
        logits = self.head(self.ln_f(x))  # (B, T, V)
        return logits, None

    def extra_repr(self) -> str:
        c = self.config
        return f"context_length={c.context_length}, tie_weights={c.tie_weights}"
