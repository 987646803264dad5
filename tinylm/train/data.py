r"""A run's data: the corpus as token ids, split in two, and the batches it trains on.

- :func:`prepare_corpus`: text -> tokenizer -> ``train_ids`` and ``val_ids`` (the last
  ``val_fraction`` of the text, contiguous and never trained on).
- :class:`StreamBatches`: for the recurrent models. B contiguous streams read T tokens at a
  time (``tinylm.data.stream_batches``), so the state the model carries out of one batch
  is the right state to start the next one with (truncated backpropagation through time).
  Its position (epoch, batch) is part of a checkpoint.
- :class:`RandomBatches`: for the GPT. B windows at random starts
  (``tinylm.data.random_batch``); its position is tinylm's RNG state, which a checkpoint
  already holds.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from itertools import islice

import numpy as np

from .. import data
from ..data import Tokenizer
from ..tensor import Tensor
from .config import TrainConfig

__all__ = ["Corpus", "prepare_corpus", "build_tokenizer", "StreamBatches", "RandomBatches"]


@dataclass
class Corpus:
    """A corpus ready to train on: ``train_ids`` and ``val_ids`` are 1-D int64 arrays."""

    name: str
    sha256: str  # of the text, so a resumed run can tell that its corpus changed
    tokenizer: Tokenizer
    train_ids: np.ndarray
    val_ids: np.ndarray


def build_tokenizer(cfg: TrainConfig, text: str, train_text: str) -> Tokenizer:
    """The tokenizer ``cfg.tokenizer`` names. A char vocabulary comes from the whole text
    (so validation has no unknown characters; it says nothing about their order); word
    and BPE vocabularies are learned from the training part only."""
    if cfg.tokenizer == "char":
        return data.CharTokenizer(text)
    if cfg.tokenizer == "word":
        return data.WordTokenizer(train_text, min_freq=cfg.word_min_freq)
    return data.BPETokenizer.train(train_text, cfg.bpe_vocab_size)


def prepare_corpus(cfg: TrainConfig, tokenizer: Tokenizer | None = None) -> Corpus:
    """Load ``cfg.corpus``, build (or reuse) the tokenizer, encode, split; check sizes.

    Raises ``ValueError`` / ``FileNotFoundError`` / ``IsADirectoryError`` with a message
    that says what to change when the text cannot feed one batch.
    """
    text = data.load_text(cfg.corpus)
    train_text, val_text = data.train_val_split(text, cfg.val_fraction)
    tok = tokenizer if tokenizer is not None else build_tokenizer(cfg, text, train_text)
    train_ids = np.asarray(tok.encode(train_text), dtype=np.int64)
    val_ids = np.asarray(tok.encode(val_text), dtype=np.int64)
    B, T = cfg.batch_size, cfg.seq_len
    need = B * T + 1 if cfg.recurrent else T + 1  # B streams of T steps, or one window
    if train_ids.size < need:
        how = f"{B} streams x {T} steps + 1" if cfg.recurrent else f"seq_len {T} + 1"
        raise ValueError(
            f"corpus {cfg.corpus!r} has {train_ids.size} training tokens; a batch needs "
            f"{how} = {need}: use a smaller --batch-size or --seq-len, or a longer text")
    if val_ids.size < T + 1:
        raise ValueError(
            f"corpus {cfg.corpus!r} has {val_ids.size} validation tokens (the last "
            f"{cfg.val_fraction:g} of the text); evaluation needs seq_len + 1 = {T + 1}: use "
            f"a smaller --seq-len or a longer text")
    sha = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return Corpus(cfg.corpus, sha, tok, train_ids, val_ids)


class StreamBatches:
    """Endless (B, T) batches from B contiguous streams, epoch after epoch.

    ``next()`` returns ``(x, y, fresh)``; ``fresh`` is True on the first batch of an epoch,
    when the streams start over and the carried state must be reset. ``position`` /
    ``seek`` save and restore where it is, for exact resume.
    """

    def __init__(self, ids: np.ndarray, batch_size: int, seq_len: int, device=None):
        self.ids, self.B, self.T, self.device = ids, batch_size, seq_len, device
        self.epoch, self.index = 0, 0  # the next batch is batch `index` of epoch `epoch`
        self._it = None

    def _start(self):
        return data.stream_batches(self.ids, self.B, self.T, device=self.device)

    def next(self) -> tuple[Tensor, Tensor, bool]:
        if self._it is None:
            self._it = islice(self._start(), self.index, None)
        batch = next(self._it, None)
        if batch is None:  # the epoch is over: start the streams again
            self.epoch, self.index = self.epoch + 1, 0
            self._it = self._start()
            batch = next(self._it)
        fresh = self.index == 0
        self.index += 1
        return batch[0], batch[1], fresh

    def position(self) -> dict:
        return {"epoch": self.epoch, "index": self.index}

    def seek(self, position: dict) -> None:
        self.epoch, self.index = int(position["epoch"]), int(position["index"])
        self._it = None


class RandomBatches:
    """Endless (B, T) batches of windows at random starts, drawn from tinylm's RNG."""

    def __init__(self, ids: np.ndarray, batch_size: int, seq_len: int, device=None):
        self.ids, self.B, self.T, self.device = ids, batch_size, seq_len, device

    def next(self) -> tuple[Tensor, Tensor, bool]:
        x, y = data.random_batch(self.ids, self.B, self.T, device=self.device)
        return x, y, False

    def position(self) -> dict:
        return {}  # the RNG state in the checkpoint is the position

    def seek(self, position: dict) -> None:
        pass
