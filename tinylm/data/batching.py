r"""Language-model batches: inputs and the targets one step ahead.

A window of ``T + 1`` consecutive tokens ``t_s .. t_{s+T}`` gives one row:

    x = t_s     .. t_{s+T-1}        (the model reads these)
    y = t_{s+1} .. t_{s+T}          (and predicts these: y[j] is the token after x[j])

Three ways to pick windows, each returning tinylm int64 tensors ``x, y`` of shape (B, T):

- ``random_batch``: B windows at random starts, for training (tinylm's RNG, so
  ``tinylm.manual_seed`` makes the batches reproducible).
- ``sequential_batches``: the text cut into consecutive non-overlapping windows, in order,
  B per batch, for evaluation: every target appears exactly once.
- ``stream_batches``: B contiguous streams read side by side, so row b of one batch
  continues row b of the batch before; a recurrent model can carry its state across
  batches (truncated backpropagation through time).

``tokens`` is a 1-D sequence of non-negative integer ids: a list, a NumPy array or a
tinylm tensor. Convert a long list once (``np.asarray(ids, dtype=np.int64)``) rather
than on every call.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .. import random
from ..creation import tensor
from ..tensor import Tensor


def _tokens(op: str, tokens, batch_size: int, seq_len: int) -> np.ndarray:
    """``tokens`` as a 1-D int64 array, checked, with B and T checked too."""
    for name, v in [("batch_size", batch_size), ("seq_len", seq_len)]:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{op}: {name} must be a positive int, got {v!r}")
    if isinstance(tokens, Tensor):
        tokens = tokens.numpy()
    a = np.asarray(tokens)
    if a.ndim != 1:
        raise ValueError(f"{op}: tokens must be 1-D, got shape {a.shape}")
    if a.size and a.dtype.kind not in "iu":
        raise TypeError(f"{op}: tokens must be integer ids, got dtype {a.dtype}")
    if a.size < seq_len + 1:
        raise ValueError(
            f"{op}: need at least seq_len + 1 = {seq_len + 1} tokens for one (input, target) "
            f"window, got {a.size}; use a shorter seq_len or a longer text"
        )
    if a.dtype == np.uint64 and a.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{op}: token id {int(a.max())} does not fit in int64")
    if a.min() < 0:
        raise ValueError(
            f"{op}: token ids must be >= 0, got {int(a.min())} at index {int(a.argmin())}"
        )
    return a.astype(np.int64, copy=False)


def random_batch(tokens, batch_size: int, seq_len: int, device=None) -> tuple[Tensor, Tensor]:
    """B windows at uniformly random starts in ``[0, N - T - 1]`` (with replacement).

    Starts come from ``tinylm.random.generator()`` (the CPU generator, whatever the
    device), so a seed gives the same batches on every device.
    """
    a = _tokens("random_batch", tokens, batch_size, seq_len)
    starts = random.generator().integers(0, a.size - seq_len, size=batch_size)  # (B,)
    idx = starts[:, None] + np.arange(seq_len)  # (B, T)
    return tensor(a[idx], device=device), tensor(a[idx + 1], device=device)


def sequential_batches(
    tokens, batch_size: int, seq_len: int, device=None
) -> Iterator[tuple[Tensor, Tensor]]:
    """Consecutive windows starting at 0, T, 2T, ..., B per batch, in text order.

    Window k covers inputs ``tokens[kT : kT+T]`` and targets ``tokens[kT+1 : kT+T+1]``,
    so the targets ``tokens[1 : 1 + K*T]`` (K = (N - 1) // T windows) each appear once.
    The last batch may have fewer than B rows; the last ``(N - 1) % T`` targets, too few
    for a whole window, are left out.
    """
    a = _tokens("sequential_batches", tokens, batch_size, seq_len)
    n_windows = (a.size - 1) // seq_len
    for first in range(0, n_windows, batch_size):
        starts = np.arange(first, min(first + batch_size, n_windows)) * seq_len  # (b,)
        idx = starts[:, None] + np.arange(seq_len)  # (b, T)
        yield tensor(a[idx], device=device), tensor(a[idx + 1], device=device)


def stream_batches(
    tokens, batch_size: int, seq_len: int, device=None
) -> Iterator[tuple[Tensor, Tensor]]:
    """B contiguous streams of L = (N - 1) // B targets each, read T steps at a time.

    Stream b is ``tokens[b*L : (b+1)*L + 1]``; batch k holds steps ``kT .. kT+T-1`` of
    every stream, so row b of batch k+1 continues row b of batch k exactly. All batches
    are (B, T); the last ``L % T`` steps of each stream (and ``(N - 1) % B`` tokens at the
    end) are left out. Needs ``N >= B*T + 1`` tokens.
    """
    a = _tokens("stream_batches", tokens, batch_size, seq_len)
    stream_len = (a.size - 1) // batch_size
    if stream_len < seq_len:
        raise ValueError(
            f"stream_batches: need at least batch_size * seq_len + 1 = "
            f"{batch_size * seq_len + 1} tokens for B streams of T steps, got {a.size}"
        )
    starts = np.arange(batch_size) * stream_len  # (B,)
    for step in range(0, stream_len - seq_len + 1, seq_len):
        idx = starts[:, None] + step + np.arange(seq_len)  # (B, T)
        yield tensor(a[idx], device=device), tensor(a[idx + 1], device=device)
