"""Named starting points for ``tinylm train``: each trains in about two minutes on 2 CPU
cores and writes recognisable text.

``tinylm train`` with no arguments runs ``DEFAULT_PRESET``, a small LSTM on the sonnets;
``--model gru|rnn|gpt`` picks that model's preset; ``--preset NAME`` any of them. Options
given on the command line change a preset's fields. What each preset reaches after its
steps (validation loss and a sample) is published in the README, measured by
``benchmarks/presets.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import TrainConfig

__all__ = ["Preset", "PRESETS", "DEFAULT_PRESET", "get_preset"]


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    config: TrainConfig


_SONNETS_CHAR = {"corpus": "sonnets", "tokenizer": "char", "seq_len": 64, "eval_every": 100,
                 "save_every": 250}
_RNN = {"embed_dim": 64, "hidden_size": 256}

# Tuned on the sonnets (86,156 training characters) for about two minutes on 2 cores
# (benchmarks/README.md has the runs): the recurrent models overfit such a small text
# within their budget, so they get dropout; the GPT is still improving when it stops.
PRESETS: dict[str, Preset] = {p.name: p for p in [
    Preset("lstm", "a small LSTM (1 layer, 256 units) on the sonnets, one id per character",
           TrainConfig(model="lstm", model_args={**_RNN, "dropout": 0.2}, steps=1200,
                       batch_size=32, lr=3e-3, warmup_steps=50, **_SONNETS_CHAR)),
    Preset("gru", "a small GRU (1 layer, 256 units) on the sonnets, one id per character",
           TrainConfig(model="gru", model_args={**_RNN, "dropout": 0.2}, steps=1000,
                       batch_size=32, lr=3e-3, warmup_steps=50, **_SONNETS_CHAR)),
    Preset("rnn", "a plain tanh RNN (1 layer, 256 units) on the sonnets, one id per character",
           TrainConfig(model="rnn", model_args={**_RNN, "dropout": 0.1}, steps=2400,
                       batch_size=32, lr=2e-3, warmup_steps=50, **_SONNETS_CHAR)),
    Preset("gpt", "a tiny GPT (2 blocks, 4 heads, d_model 128, context 64) on the sonnets, "
                  "one id per character",
           TrainConfig(model="gpt", model_args={"d_model": 128, "n_layers": 2, "n_heads": 4,
                                                "dropout": 0.1},
                       steps=1200, batch_size=16, lr=3e-3, warmup_steps=100, **_SONNETS_CHAR)),
]}

DEFAULT_PRESET = "lstm"


def get_preset(name: str) -> TrainConfig:
    """A fresh copy of the preset's config (change it freely)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    return PRESETS[name].config.replace()
