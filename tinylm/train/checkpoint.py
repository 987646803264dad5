"""A run's folder: where its checkpoint lives, and loading a trained model back from it.

A run folder (``tinylm train --out DIR``) holds::

    checkpoint.safetensors   the latest checkpoint (replaced atomically at each save)
    loss.png                 train and validation loss curves

The checkpoint is a ``tinylm.io`` training checkpoint: the model's weights, the AdamW
state, tinylm's RNG state, the step, the model config and the tokenizer; its ``extra``
holds the ``TrainConfig``, the LR schedule, the loss history, the data position and, for
a recurrent model, the state it carries into the next batch (see :func:`encode_state`).
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..creation import tensor
from ..data import Tokenizer
from ..io import Checkpoint, CheckpointError, load_checkpoint
from ..tensor import Tensor
from .config import TrainConfig

__all__ = ["CHECKPOINT", "LOSS_PLOT", "find_checkpoint", "load_trained", "Trained",
           "encode_state", "decode_state"]

CHECKPOINT = "checkpoint.safetensors"
LOSS_PLOT = "loss.png"


def find_checkpoint(path: str | os.PathLike) -> Path:
    """The checkpoint file of a run folder (or ``path`` itself if it is a file).

    Raises ``FileNotFoundError`` with a one-line message naming what is missing.
    """
    p = Path(path)
    if p.is_file():
        return p
    if not p.exists():
        raise FileNotFoundError(f"no such run folder or checkpoint: '{p}'")
    ckpt = p / CHECKPOINT
    if not ckpt.is_file():
        raise FileNotFoundError(f"no checkpoint in '{p}' (expected '{ckpt}'; "
                                f"train one with: tinylm train --out {p})")
    return ckpt


# --- the recurrent state, as JSON -------------------------------------------------------
# The checkpoint format keeps tensors under "model." and "optim.state." only, so the
# carried state (a few (L, B, H) arrays) goes into the JSON metadata as base64 bytes:
# exact, unlike decimal text, and still small (64 KB for an LSTM with B=32, H=256).


def encode_state(state) -> Any:
    """A recurrent state (None, a Tensor, or a tuple/list of them) as JSON-able data."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        a = np.ascontiguousarray(state.detach().numpy())
        return {"dtype": a.dtype.str, "shape": list(a.shape),
                "data": base64.b64encode(a.tobytes()).decode("ascii")}
    if isinstance(state, (tuple, list)):
        return {"tuple": [encode_state(s) for s in state]}
    raise TypeError(f"encode_state: cannot store a {type(state).__name__} as a model state")


def decode_state(obj: Any, device=None):
    """The inverse of :func:`encode_state` (tuples come back as tuples)."""
    if obj is None:
        return None
    if "tuple" in obj:
        return tuple(decode_state(s, device) for s in obj["tuple"])
    a = np.frombuffer(base64.b64decode(obj["data"]), dtype=np.dtype(obj["dtype"]))
    return tensor(a.reshape(obj["shape"]).copy(), device=device)


# --- loading a trained model -----------------------------------------------------------


@dataclass
class Trained:
    """What :func:`load_trained` gives back."""

    model: Any  # a tinylm.models model, in eval mode
    tokenizer: Tokenizer
    config: TrainConfig | None  # None for a checkpoint not written by the trainer
    checkpoint: Checkpoint
    path: Path


def load_trained(path: str | os.PathLike, device: str = "cpu") -> Trained:
    """Rebuild the model of a run folder (or checkpoint file): config, tokenizer, weights.

    Raises ``FileNotFoundError`` (no folder, no checkpoint) or ``tinylm.CheckpointError``
    (a damaged file, or one that holds no model config or tokenizer).
    """
    from ..models import build_model, config_from_dict

    ckpt_path = find_checkpoint(path)
    ckpt = load_checkpoint(ckpt_path)
    where = f"cannot load '{ckpt_path}'"
    if not isinstance(ckpt.config, dict) or not isinstance(ckpt.tokenizer, dict):
        raise CheckpointError(f"{where}: it holds no model config or no tokenizer (was it "
                              "written by tinylm train?)")
    try:
        model_config = config_from_dict(ckpt.config)
        tokenizer = Tokenizer.from_dict(ckpt.tokenizer)
    except (ValueError, TypeError, KeyError) as e:
        raise CheckpointError(f"{where}: bad model config or tokenizer: {e}") from None
    train_config = None
    if isinstance(ckpt.extra, dict) and isinstance(ckpt.extra.get("train_config"), dict):
        try:
            train_config = TrainConfig.from_dict(ckpt.extra["train_config"])
        except (ValueError, TypeError) as e:
            raise CheckpointError(f"{where}: bad train config: {e}") from None
    model = build_model(model_config, device=device)
    try:
        model.load_state_dict(ckpt.model_state)
    except (KeyError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{where}: the weights do not fit the model config: {e}") from None
    model.eval()
    return Trained(model, tokenizer, train_config, ckpt, ckpt_path)
