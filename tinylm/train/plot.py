"""The loss-curve PNG a run writes beside its checkpoint: train loss per step (raw and
smoothed) and validation loss at each evaluation.

Drawn on a bare ``matplotlib.figure.Figure`` (the Agg renderer, no pyplot): nothing is
shown, no global state changes, and it works the same on a headless machine and inside a
notebook. Written atomically, like the checkpoint.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ..io import atomic_write

__all__ = ["save_loss_plot", "smooth"]


def smooth(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing moving average over ``window`` values (shorter at the start)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0 or window <= 1:
        return v
    c = np.cumsum(np.concatenate([[0.0], v]))
    n = np.arange(1, v.size + 1)
    lo = np.maximum(n - window, 0)
    return (c[n] - c[lo]) / (n - lo)


def save_loss_plot(path: str | os.PathLike, train_losses: Sequence[float],
                   val: Sequence[Sequence[float]], title: str = "") -> None:
    """Write the curves to ``path`` (PNG). ``train_losses[i]`` is the loss of step i + 1;
    ``val`` holds ``(step, loss)`` pairs."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    if len(train_losses):
        steps = np.arange(1, len(train_losses) + 1)
        ax.plot(steps, train_losses, color="C0", alpha=0.25, linewidth=0.8)
        window = max(1, len(train_losses) // 50)
        ax.plot(steps, smooth(train_losses, window), color="C0",
                label=f"train (mean of {window} steps)" if window > 1 else "train")
    if len(val):
        vs, vl = zip(*val)
        ax.plot(vs, vl, "o-", color="C1", markersize=3, label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats per token)")
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if len(train_losses) or len(val):
        ax.legend()
    with atomic_write(path) as f:
        fig.savefig(f, format="png")
