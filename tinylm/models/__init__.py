"""Language models and text generation: ``RNNLM`` / ``LSTMLM`` / ``GRULM``, ``GPT``, ``generate``.

    config = RNNLMConfig(vocab_size=tok.vocab_size, cell="gru")   # or GPTConfig(...)
    model = build_model(config)
    logits, state = model(idx, state)        # idx (B, T) ids -> logits (B, T, V)
    text = generate(model, tok, "Shall I", max_new_tokens=100, temperature=0.8, top_k=20)

- ``config.py``: the config dataclasses, ``to_dict()`` / ``config_from_dict``.
- ``base.py``: the forward contract every model follows, ``detach_state``.
- ``rnn_lm.py``: embedding -> LSTM / GRU / RNN -> head.
- ``gpt.py``: token + position embeddings -> TransformerBlocks -> LayerNorm -> head.
- ``generate.py``: temperature, top-k, top-p sampling and the generation loop.
"""

from __future__ import annotations

from .base import LanguageModel, detach_state
from .config import CELLS, MODELS, GPTConfig, RNNLMConfig, config_from_dict
from .generate import generate, generate_ids, next_token_probs, sample_next
from .gpt import GPT
from .rnn_lm import GRULM, LSTMLM, RNNLM

__all__ = [
    "CELLS", "MODELS", "RNNLMConfig", "GPTConfig", "config_from_dict", "build_model",
    "LanguageModel", "RNNLM", "LSTMLM", "GRULM", "GPT", "detach_state",
    "generate", "generate_ids", "next_token_probs", "sample_next",
]  # fmt: skip

_RNN_CLASSES = {"lstm": LSTMLM, "gru": GRULM, "rnn": RNNLM}


def build_model(config: RNNLMConfig | GPTConfig | dict, *, device=None,
                dtype=None) -> LanguageModel:
    """The model a config describes (a dict is read with ``config_from_dict``):
    ``LSTMLM``, ``GRULM`` or ``RNNLM`` (cell "rnn") for an ``RNNLMConfig``, ``GPT`` for a
    ``GPTConfig``. ``device`` and ``dtype`` go to every layer; weights come from tinylm's
    generator (``tinylm.manual_seed`` first for reproducible weights)."""
    if isinstance(config, dict):
        config = config_from_dict(config)
    if isinstance(config, GPTConfig):
        return GPT(config, device=device, dtype=dtype)
    if isinstance(config, RNNLMConfig):
        return _RNN_CLASSES[config.cell](config, device=device, dtype=dtype)
    raise TypeError(f"build_model: expected an RNNLMConfig, a GPTConfig or a dict, got "
                    f"{type(config).__name__}")
