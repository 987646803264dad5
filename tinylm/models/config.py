"""Model configs: one dataclass per architecture, checked on construction, saved as a dict.

    RNNLMConfig(vocab_size, embed_dim=64, hidden_size=256, num_layers=1, cell="lstm",
                dropout=0.0, tie_weights=False)
    GPTConfig(vocab_size, context_length=64, d_model=128, n_layers=2, n_heads=4,
              dropout=0.0, mlp_ratio=4, tie_weights=True)

``config.to_dict()`` is a JSON-friendly dict with a ``"model"`` key (``"lstm"``, ``"gru"``,
``"rnn"`` or ``"gpt"``) beside the fields; ``config_from_dict(d)`` turns it back into the
same config, and ``build_model(config)`` (in ``tinylm/models/__init__.py``) makes the model.
A checkpoint stores the dict in its metadata, so a saved model can be rebuilt from the file.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any

__all__ = ["RNNLMConfig", "GPTConfig", "CELLS", "MODELS", "config_from_dict"]

CELLS = ("lstm", "gru", "rnn")  # RNNLMConfig.cell
MODELS = (*CELLS, "gpt")  # the "model" key of to_dict()


def _positive_int(cls: str, name: str, v) -> None:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v <= 0:
        raise ValueError(f"{cls}: {name} must be a positive int, got {v!r}")


def _probability(cls: str, name: str, v) -> float:
    if (isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v)
            or not 0.0 <= v < 1.0):
        raise ValueError(f"{cls}: {name} must be a number in [0, 1), got {v!r}")
    return float(v)


def _flag(cls: str, name: str, v) -> None:
    if not isinstance(v, bool):
        raise TypeError(f"{cls}: {name} must be True or False, got {v!r}")


@dataclass
class RNNLMConfig:
    """An embedding -> ``num_layers`` recurrent layers -> linear head language model.

    - ``vocab_size`` V: number of token ids (the tokenizer's ``vocab_size``).
    - ``embed_dim`` E: size of each token's embedding vector (the RNN's input size).
    - ``hidden_size`` H: size of the recurrent state of every layer.
    - ``num_layers``: stacked recurrent layers (layer k reads layer k-1's outputs).
    - ``cell``: ``"lstm"``, ``"gru"`` or ``"rnn"`` (Elman, tanh).
    - ``dropout``: on the embeddings, between recurrent layers and before the head.
    - ``tie_weights``: the head reuses the embedding matrix (Press & Wolf, 2017), which
      needs ``embed_dim == hidden_size``.
    """

    vocab_size: int
    embed_dim: int = 64
    hidden_size: int = 256
    num_layers: int = 1
    cell: str = "lstm"
    dropout: float = 0.0
    tie_weights: bool = False

    def __post_init__(self) -> None:
        c = "RNNLMConfig"
        for name in ("vocab_size", "embed_dim", "hidden_size", "num_layers"):
            _positive_int(c, name, getattr(self, name))
        if self.cell not in CELLS:
            raise ValueError(f"{c}: cell must be one of {list(CELLS)}, got {self.cell!r}")
        self.dropout = _probability(c, "dropout", self.dropout)
        _flag(c, "tie_weights", self.tie_weights)
        if self.tie_weights and self.embed_dim != self.hidden_size:
            raise ValueError(
                f"{c}: tie_weights=True needs embed_dim == hidden_size (the head's weight "
                f"(V, hidden_size) is the embedding's (V, embed_dim)), got embed_dim="
                f"{self.embed_dim} and hidden_size={self.hidden_size}")

    @property
    def model(self) -> str:
        """The ``"model"`` key of ``to_dict()``: the cell name."""
        return self.cell

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, **dataclasses.asdict(self)}


@dataclass
class GPTConfig:
    """A decoder-only Transformer: token + learned position embeddings -> ``n_layers``
    TransformerBlocks -> LayerNorm -> head.

    - ``vocab_size`` V: number of token ids.
    - ``context_length``: the longest sequence it reads (the position table's size).
    - ``d_model`` C: width of the residual stream.
    - ``n_layers``: TransformerBlocks; ``n_heads``: attention heads per block (must divide
      ``d_model``; each head works in C / n_heads dims).
    - ``dropout``: on the embeddings, the attention weights and each block's branch outputs.
    - ``mlp_ratio``: the MLP's hidden width is ``int(mlp_ratio * d_model)``.
    - ``tie_weights``: the head reuses the token embedding matrix (as GPT-2).
    """

    vocab_size: int
    context_length: int = 64
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    dropout: float = 0.0
    mlp_ratio: float = 4
    tie_weights: bool = True

    def __post_init__(self) -> None:
        c = "GPTConfig"
        for name in ("vocab_size", "context_length", "d_model", "n_layers", "n_heads"):
            _positive_int(c, name, getattr(self, name))
        if self.d_model % self.n_heads:
            raise ValueError(f"{c}: n_heads must divide d_model, got d_model={self.d_model} "
                             f"and n_heads={self.n_heads}")
        self.dropout = _probability(c, "dropout", self.dropout)
        r = self.mlp_ratio
        if (isinstance(r, bool) or not isinstance(r, numbers.Real) or not math.isfinite(r)
                or int(r * self.d_model) < 1):
            raise ValueError(f"{c}: mlp_ratio must be a positive number with "
                             f"int(mlp_ratio * d_model) >= 1, got {r!r}")
        _flag(c, "tie_weights", self.tie_weights)

    @property
    def model(self) -> str:
        return "gpt"

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, **dataclasses.asdict(self)}


def config_from_dict(d: dict[str, Any]) -> RNNLMConfig | GPTConfig:
    """The config that ``to_dict()`` described: ``{"model": "lstm" | "gru" | "rnn" | "gpt",
    ...fields}``. Fields left out take their defaults (``{"model": "gru", "vocab_size": 65}``
    is a whole config); an unknown field raises. A dict without ``"model"`` (e.g.
    ``dataclasses.asdict(config)``) is read as an RNN config if it has a ``"cell"`` and as a
    GPT config if it has GPT-only fields."""
    if not isinstance(d, dict):
        raise TypeError(f"config_from_dict: expected a dict, got {type(d).__name__}")
    fields = dict(d)
    model = fields.pop("model", None)
    if model is None:
        gpt_only = {f.name for f in dataclasses.fields(GPTConfig)} - {
            f.name for f in dataclasses.fields(RNNLMConfig)}
        if "cell" in fields:
            model = fields["cell"]
        elif gpt_only & fields.keys():
            model = "gpt"
        else:
            raise ValueError(f"config_from_dict: the dict has no 'model' key (one of "
                             f"{list(MODELS)}) and its fields {sorted(fields)} do not tell")
    if model not in MODELS:
        raise ValueError(f"config_from_dict: unknown model {model!r}; known: {list(MODELS)}")
    cls = GPTConfig if model == "gpt" else RNNLMConfig
    if cls is RNNLMConfig:
        cell = fields.setdefault("cell", model)
        if cell != model:
            raise ValueError(f"config_from_dict: 'model' is {model!r} but 'cell' is {cell!r}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"config_from_dict: unknown field(s) {unknown} for {cls.__name__}; "
                         f"its fields: {sorted(known)}")
    if "vocab_size" not in fields:
        raise ValueError(f"config_from_dict: {cls.__name__} needs 'vocab_size'")
    return cls(**fields)
