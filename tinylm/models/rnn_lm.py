r"""Recurrent language models: embedding -> LSTM / GRU / RNN layers -> linear head.

    idx (B, T) ids
      -> Embedding(V, E), Dropout        x (B, T, E)
      -> LSTM | GRU | RNN, num_layers    h (B, T, H)   and the final state
      -> Dropout, Linear(H, V)           logits (B, T, V)

At step t the recurrent layers have read ``idx[:, : t + 1]`` and nothing after it, so
``logits[:, t]`` predicts ``idx[:, t + 1]`` from the past alone. The final state
summarises everything read so far: pass it back in (``model(next_idx, state)``) to
continue the sequence without re-reading it, which is how ``generate`` samples and how
truncated BPTT trains (``detach_state`` between windows). See lessons/10_language_model.py.

Initialisation follows PyTorch's word-language-model example: embedding and head weights
U(-0.1, 0.1), head bias 0, the recurrent layers their own default U(-1/\sqrt{H}, 1/\sqrt{H});
small embeddings and head keep the first loss near \log V. With ``tie_weights`` the head's
weight *is* the embedding's Parameter (one matrix, two uses, its gradient the sum of both).
"""

from __future__ import annotations

from typing import Any

from .. import nn
from ..nn import init
from ..tensor import Tensor
from .base import LanguageModel, resolve_config
from .config import RNNLMConfig

__all__ = ["RNNLM", "LSTMLM", "GRULM"]

_LAYERS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
INIT_RANGE = 0.1


class RNNLM(LanguageModel):
    """A recurrent language model; ``config.cell`` picks LSTM, GRU or RNN (Elman, tanh).

    ``RNNLM(config)`` or ``RNNLM(vocab_size=65, cell="gru", ...)``; ``device`` and
    ``dtype`` (e.g. ``np.float64`` for gradient checks) go to every layer.
    ``forward(idx, state=None) -> (logits, state)``: idx (B, T) ids, logits (B, T, V);
    state is h (num_layers, B, H), or (h, c) for an LSTM, zeros when None.

    Children: ``embedding`` Embedding(V, E), ``drop`` Dropout, ``rnn`` LSTM/GRU/RNN(E, H,
    num_layers, batch_first=True), ``head`` Linear(H, V).
    """

    _fixed: dict = {}

    def __init__(self, config: RNNLMConfig | None = None, *, device=None, dtype=None,
                 **fields):
        super().__init__()
        cfg = resolve_config(type(self).__name__, config, fields, RNNLMConfig, self._fixed)
        self.config = cfg
        V, E, H = cfg.vocab_size, cfg.embed_dim, cfg.hidden_size
        kw = {"device": device, "dtype": dtype}
        self.embedding = nn.Embedding(V, E, **kw)
        self.drop = nn.Dropout(cfg.dropout)
        # the layer's own dropout acts between layers only (it warns for one layer)
        between = cfg.dropout if cfg.num_layers > 1 else 0.0
        self.rnn = _LAYERS[cfg.cell](E, H, cfg.num_layers, batch_first=True, dropout=between,
                                     **kw)
        self.head = nn.Linear(H, V, **kw)
        self.reset_parameters()
        if cfg.tie_weights:
            self.head.weight = self.embedding.weight  # one Parameter: (V, E) with E == H

    def reset_parameters(self) -> None:
        init.uniform_(self.embedding.weight, -INIT_RANGE, INIT_RANGE)
        init.uniform_(self.head.weight, -INIT_RANGE, INIT_RANGE)
        init.zeros_(self.head.bias)

    def forward(self, idx: Tensor, state=None) -> tuple[Tensor, Any]:
        self._check_idx(idx)
        x = self.drop(self.embedding(idx))  # (B, T, E)
        h, state = self.rnn(x, state)  # (B, T, H); state (L, B, H) or a pair of them
        logits = self.head(self.drop(h))  # (B, T, V)
        return logits, state

    def extra_repr(self) -> str:
        c = self.config
        return f"cell={c.cell!r}, tie_weights={c.tie_weights}"


class LSTMLM(RNNLM):
    """``RNNLM`` with ``cell="lstm"``: ``LSTMLM(vocab_size=65)`` or ``LSTMLM(config)``."""

    _fixed = {"cell": "lstm"}


class GRULM(RNNLM):
    """``RNNLM`` with ``cell="gru"``: ``GRULM(vocab_size=65)`` or ``GRULM(config)``."""

    _fixed = {"cell": "gru"}
