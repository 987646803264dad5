"""TrainConfig: everything that decides what a training run computes, in one dataclass.

A run is reproducible from its ``TrainConfig`` alone (the seed included), and the config
travels inside every checkpoint, so ``tinylm train --resume`` and ``tinylm eval`` know
what the run was. Named starting points live in ``presets.py``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TrainConfig", "MODELS", "TOKENIZERS", "RESUME_OVERRIDABLE"]

MODELS = ("lstm", "gru", "rnn", "gpt")  # lstm/gru/rnn: RNNLMConfig(cell=...); gpt: GPTConfig
TOKENIZERS = ("char", "word", "bpe")

# fields that may change when a run is resumed: they do not change what the next
# optimizer step computes (``steps`` re-stretches the cosine schedule to the new end)
RESUME_OVERRIDABLE = frozenset({
    "steps", "eval_every", "save_every", "device", "eval_tokens", "eval_batch_size",
    "sample_prompt", "sample_tokens", "num_samples", "temperature",
})


@dataclass
class TrainConfig:
    """One training run. The defaults are a plain starting point (an LSTM with
    ``RNNLMConfig``'s sizes on the sonnets); the presets in ``presets.py`` are tuned.

    Data: ``corpus`` is a shipped name (``"sonnets"``, ``"names"``, ``"plays"``) or a path
    to a UTF-8 text file; its last ``val_fraction`` is validation (never trained on).
    ``tokenizer``: ``"char"`` (built from the whole text, so validation has no unknown
    characters), ``"word"`` (built from the training part, words seen fewer than
    ``word_min_freq`` times become ``<unk>``) or ``"bpe"`` (trained on the training part
    to ``bpe_vocab_size`` ids).

    Model: ``model`` is ``"lstm"``, ``"gru"``, ``"rnn"`` (an ``RNNLMConfig`` with that
    cell) or ``"gpt"`` (a ``GPTConfig``, context ``seq_len`` unless ``model_args`` says
    otherwise); ``model_args`` are passed on to the model config (``hidden_size``,
    ``d_model``, ...).

    Optimisation: ``steps`` AdamW steps on batches of ``batch_size`` x ``seq_len`` tokens,
    learning rate warmed up linearly over ``warmup_steps`` (at most a tenth of the steps)
    to ``lr`` and decayed along a
    cosine to ``lr * min_lr_ratio`` at the last step; gradients clipped to a total norm of
    ``grad_clip`` (0 turns clipping off).

    Logging: every ``eval_every`` steps (and at the end) the validation loss on a fixed
    slice, the first ``eval_tokens`` tokens of the validation part, so every evaluation
    reads the same text and the numbers are comparable; a checkpoint every ``save_every``
    steps and at the end. Samples: ``num_samples`` texts of ``sample_tokens`` tokens
    after ``sample_prompt`` at ``temperature``.
    """

    # what to learn from
    corpus: str = "sonnets"
    tokenizer: str = "char"
    bpe_vocab_size: int = 512
    word_min_freq: int = 2
    val_fraction: float = 0.1
    # the model
    model: str = "lstm"
    model_args: dict[str, Any] = field(default_factory=dict)
    # optimisation
    steps: int = 1000
    batch_size: int = 32
    seq_len: int = 64
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 50
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "cpu"
    # evaluation, checkpoints, samples
    eval_every: int = 100
    eval_tokens: int = 32768
    eval_batch_size: int = 16
    save_every: int = 500
    sample_prompt: str = "\n"
    sample_tokens: int = 300
    num_samples: int = 2
    temperature: float = 0.8

    # --- checks ---------------------------------------------------------------------

    def validate(self) -> TrainConfig:
        """Raise ``ValueError`` naming the first field that is out of range; return self."""
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; choose one of {', '.join(MODELS)}")
        if self.tokenizer not in TOKENIZERS:
            raise ValueError(f"unknown tokenizer {self.tokenizer!r}; choose one of "
                             f"{', '.join(TOKENIZERS)}")
        if not isinstance(self.corpus, str) or not self.corpus:
            raise ValueError(f"corpus must be a corpus name or a path, got {self.corpus!r}")
        if not isinstance(self.model_args, dict):
            raise ValueError(f"model_args must be a dict, got {self.model_args!r}")
        for name in ("steps", "batch_size", "seq_len", "eval_every", "eval_tokens",
                     "eval_batch_size", "save_every", "word_min_freq"):
            _check_int(name, getattr(self, name), low=1)
        for name in ("warmup_steps", "seed", "sample_tokens", "num_samples"):
            _check_int(name, getattr(self, name), low=0)
        _check_int("bpe_vocab_size", self.bpe_vocab_size, low=256)
        _check_float("lr", self.lr, low=0.0, low_open=True)
        _check_float("min_lr_ratio", self.min_lr_ratio, low=0.0, high=1.0)
        _check_float("weight_decay", self.weight_decay, low=0.0)
        _check_float("grad_clip", self.grad_clip, low=0.0)
        _check_float("temperature", self.temperature, low=0.0)
        _check_float("val_fraction", self.val_fraction, low=0.0, high=1.0, low_open=True,
                     high_open=True)
        if not isinstance(self.sample_prompt, str):
            raise ValueError(f"sample_prompt must be a str, got {self.sample_prompt!r}")
        if not isinstance(self.device, str):
            raise ValueError(f"device must be a str such as 'cpu' or 'cuda', got {self.device!r}")
        return self

    @property
    def recurrent(self) -> bool:
        """True for the RNN family (trained on contiguous streams, carrying state)."""
        return self.model != "gpt"

    @property
    def warmup(self) -> int:
        """Warmup steps actually used: ``warmup_steps``, but at most a tenth of ``steps``
        (a short run spends most of its steps at a useful learning rate)."""
        return min(self.warmup_steps, self.steps // 10)

    # --- the model config -----------------------------------------------------------

    def model_config(self, vocab_size: int):
        """The ``RNNLMConfig`` or ``GPTConfig`` this run trains (from ``tinylm.models``)."""
        from ..models import GPTConfig, RNNLMConfig

        args = dict(self.model_args)
        if self.model == "gpt":
            cls = GPTConfig
            args.setdefault("context_length", self.seq_len)
            if args["context_length"] < self.seq_len:
                raise ValueError(f"model_args context_length={args['context_length']} is "
                                 f"shorter than seq_len={self.seq_len}")
        else:
            cls = RNNLMConfig
            args["cell"] = self.model
        known = {f.name for f in dataclasses.fields(cls)} - {"vocab_size"}
        unknown = sorted(set(args) - known)
        if unknown:
            raise ValueError(f"model_args {unknown} are not fields of {cls.__name__} "
                             f"(its fields: {', '.join(sorted(known))})")
        return cls(vocab_size=vocab_size, **args)

    # --- (de)serialisation ----------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Rebuild a config from ``to_dict()``; unknown keys raise ``ValueError``."""
        if not isinstance(d, dict):
            raise ValueError(f"a train config must be a dict, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown train config field(s) {unknown}")
        return cls(**d)

    def replace(self, **changes) -> TrainConfig:
        """A copy with ``changes`` applied (unknown names raise ``ValueError``)."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"unknown train config field(s) {unknown}")
        out = dataclasses.replace(self, **changes)
        out.model_args = dict(out.model_args)  # never share the dict with a preset
        return out


def _check_int(name: str, v, low: int) -> None:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low:
        raise ValueError(f"{name} must be an int >= {low}, got {v!r}")


def _check_float(name: str, v, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False) -> None:
    ok = not isinstance(v, bool) and isinstance(v, numbers.Real) and math.isfinite(v)
    if ok and low is not None:
        ok = v > low if low_open else v >= low
    if ok and high is not None:
        ok = v < high if high_open else v <= high
    if not ok:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        rng = f"{lo}{low if low is not None else '-inf'}, {high if high is not None else 'inf'}{hi}"
        raise ValueError(f"{name} must be a number in {rng}, got {v!r}")
