"""Checkpoints: tensor files in the safetensors format, written atomically, never pickled.

- :func:`save` / :func:`load`: a dict of tensors (plus str -> str metadata) to and from a
  ``.safetensors`` file that the ``safetensors`` library, PyTorch and others also read.
- :func:`save_checkpoint` / :func:`load_checkpoint`: a whole training state (weights,
  optimizer, RNG, step, config, tokenizer) in one such file, for exact resume.
- :class:`CheckpointError`: what a damaged, truncated or hostile file raises.

``format.py`` is the file format, ``atomic.py`` the crash-safe write, ``checkpoint.py``
the training-checkpoint layout.
"""

from .atomic import atomic_write, remove_orphans
from .checkpoint import (
    Checkpoint,
    decode_metadata,
    encode_metadata,
    load_checkpoint,
    save_checkpoint,
)
from .format import CheckpointError, load, load_metadata, save

__all__ = [
    "CheckpointError",
    "Checkpoint",
    "atomic_write",
    "decode_metadata",
    "encode_metadata",
    "load",
    "load_checkpoint",
    "load_metadata",
    "remove_orphans",
    "save",
    "save_checkpoint",
]
