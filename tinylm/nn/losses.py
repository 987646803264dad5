"""Loss functions with PyTorch's names, arguments and values: cross_entropy, nll_loss, mse_loss.

Each loss is composed of differentiable tinylm ops (``log_softmax``, one advanced-index
gather, ``where``, ``sum``), so its gradient, and the gradient of that gradient, come from
their backward passes: gradcheck and gradgradcheck hold in float64. The derivation of the
cross-entropy gradient is in :func:`cross_entropy`; see lessons/04_softmax_cross_entropy.py.

With the kernels on (``tinylm.kernels``), ``cross_entropy`` of class ids on NumPy float arrays
runs as one fused op instead (``tinylm.kernels.loss``: the same values, two passes over the
logits); the composition here is the reference it is tested against.

Where tinylm is stricter than PyTorch it says so in the docstring: an input with zero
classes, a (C,) input with a (1,) target, float targets or weights of another float width
(PyTorch promotes), mse_loss on shapes that differ (PyTorch broadcasts with a warning).
"""

from __future__ import annotations

import numpy as np

from .. import kernels
from ..backend import device_of, to_numpy, xp_of
from ..ops import log_softmax, where
from ..tensor import Tensor

__all__ = ["cross_entropy", "nll_loss", "mse_loss"]

_REDUCTIONS = ("none", "mean", "sum")


# ----------------------------------------------------------------------------- checks


def _check_reduction(op: str, reduction) -> None:
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(
            f"{op}: reduction={reduction!r} is not valid; expected 'none', 'mean' or 'sum'")


def _check_tensor(op: str, name: str, x, like: Tensor | None = None) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: {name} must be a Tensor, got {type(x).__name__}")
    if like is not None and device_of(x.data) != like.device:
        raise ValueError(f"{op}: {name} is on {device_of(x.data)}, the input on {like.device}")
    return x


def _check_scores(op: str, input) -> int:
    """Check the (C,), (N, C) or (N, C, d1, ...) scores; return the class dim."""
    _check_tensor(op, "input", input)
    if input.dtype.kind != "f":
        raise TypeError(f"{op}: input must be a floating point tensor, got dtype {input.dtype}")
    if input.ndim == 0:
        raise ValueError(
            f"{op}: input must have a class dim: (C,), (N, C) or (N, C, d1, ...); got shape ()")
    cdim = 0 if input.ndim == 1 else 1
    if input.shape[cdim] == 0:  # stricter than PyTorch, which returns nan or raises
        raise ValueError(f"{op}: input of shape {tuple(input.shape)} has no classes (C = 0)")
    return cdim


def _check_weight(op: str, weight, input: Tensor, cdim: int):
    """The class weights as a constant backend array (PyTorch does not differentiate them)."""
    if weight is None:
        return None
    _check_tensor(op, "weight", weight, input)
    c = input.shape[cdim]
    if tuple(weight.shape) != (c,):
        raise ValueError(
            f"{op}: weight must have shape (C,) = ({c},) for input of shape "
            f"{tuple(input.shape)}, got {tuple(weight.shape)}")
    if weight.dtype != input.dtype:
        raise TypeError(f"{op}: weight dtype {weight.dtype} does not match input dtype "
                        f"{input.dtype}; convert one explicitly")
    if weight.requires_grad:
        raise RuntimeError(
            f"{op}: weight requires grad, but the loss is not differentiable with respect to "
            "the class weights (as in PyTorch); pass weight.detach()")
    return weight.data


def _check_ids(op: str, target: Tensor, input: Tensor, cdim: int, ignore_index: int):
    """Check integer class ids; return them as int64 and the mask of counted targets."""
    want = tuple(input.shape[:cdim] + input.shape[cdim + 1:])
    if target.dtype.kind not in "iu":
        extra = " (or, for cross_entropy, float class probabilities of the input's shape)"
        raise TypeError(f"{op}: target must be an integer tensor of class ids"
                        f"{extra if op == 'cross_entropy' else ''}, got dtype {target.dtype}")
    if tuple(target.shape) != want:
        raise ValueError(f"{op}: target of shape {tuple(target.shape)} does not match input of "
                         f"shape {tuple(input.shape)}; class ids need shape {want}")
    c = input.shape[cdim]
    t = target.data.astype(np.int64, copy=False)  # (N, d1, ...)
    mask = t != ignore_index  # True where the target counts
    bad = mask & ((t < 0) | (t >= c))
    if bad.any():
        pos = tuple(int(i) for i in to_numpy(xp_of(t).argwhere(bad)[0]))
        tid = int(t[pos])
        why = f" (negative ids are not wrapped; only ignore_index={ignore_index} is skipped)"
        raise IndexError(f"{op}: target id {tid} out of range [0, {c}) at index {pos}"
                         f"{why if tid < 0 else ''}")
    return t, mask


def _check_options(op: str, ignore_index, label_smoothing=0.0) -> float:
    if not isinstance(ignore_index, (int, np.integer)) or isinstance(ignore_index, bool):
        raise TypeError(f"{op}: ignore_index must be an int, got {type(ignore_index).__name__}")
    if not isinstance(label_smoothing, (int, float, np.floating)) or isinstance(
            label_smoothing, bool):
        raise TypeError(
            f"{op}: label_smoothing must be a float, got {type(label_smoothing).__name__}")
    if not 0.0 <= label_smoothing <= 1.0:  # nan fails too
        raise ValueError(f"{op}: label_smoothing must be in [0.0, 1.0], got {label_smoothing}")
    return float(label_smoothing)


# ----------------------------------------------------------------------------- pieces


def _pick(logp: Tensor, t, cdim: int) -> Tensor:
    """``logp[n, t[n, d..], d..]`` at every target position, with one advanced index.

    The other axes get ``arange`` indices shaped to broadcast against ``t``, so the result
    has t's shape; its backward is one scatter-add into zeros, never a one-hot matmul.
    """
    xp = xp_of(t)
    key = []
    for a, size in enumerate(logp.shape):
        if a == cdim:
            key.append(t)
            continue
        shape = [1] * t.ndim
        shape[a if a < cdim else a - 1] = size
        key.append(xp.arange(size).reshape(shape))
    return logp[tuple(key)]  # (N, d1, ...)


def _class_weights(w, ndim: int, cdim: int) -> Tensor:
    """The weights shaped (C, 1, ..) to broadcast along the class dim of an ndim-d input."""
    return Tensor._wrap(w.reshape((-1,) + (1,) * (ndim - 1 - cdim)))


def _nll_terms(op, logp, target, w, ignore_index, cdim):
    """Per-target ``-w[t] log p_t`` (ignored targets not yet zeroed), the counted mask,
    and the total weight of the counted targets (PyTorch's divisor for 'mean')."""
    t, mask = _check_ids(op, target, logp, cdim, ignore_index)
    counted_all = bool(mask.all())
    safe = t if counted_all else xp_of(t).where(mask, t, 0)  # any valid id where ignored
    picked = _pick(logp, safe, cdim)  # (N, d1, ...)  log p of the target class
    if w is None:
        return -picked, mask, counted_all, int(mask.sum())
    w_t = w[safe]  # (N, d1, ...)  the weight of each target's class
    return picked * Tensor._wrap(-w_t), mask, counted_all, float((w_t * mask).sum())


def _reduce(loss: Tensor, reduction: str, total) -> Tensor:
    """'none': as is; 'sum'; 'mean': the sum divided by ``total``. A total of 0 (every
    target ignored, or a zero-size batch) gives PyTorch's 0/0 = nan; multiplying by nan
    instead of dividing by zero raises no NumPy warning, and the gradient that reaches an
    ignored target is still exactly zero (``where`` cuts it off)."""
    if reduction == "none":
        return loss
    s = loss.sum()
    if reduction == "sum":
        return s
    return s / total if total != 0 else s * float("nan")


# ----------------------------------------------------------------------------- losses


def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,
                  ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    r"""Cross-entropy between the softmax of ``input`` scores and ``target``, as PyTorch's.

    Forward (class ids y_n, weights w, counted targets n with y_n != ignore_index):
        \ell_n = -w_{y_n} \log p_{n,y_n},   p_n = softmax(z_n)   (log-sum-exp: no overflow)
        with label smoothing \varepsilon:
        \ell_n = (1-\varepsilon)(-w_{y_n} \log p_{n,y_n})
                 + \frac{\varepsilon}{C} \sum_c (-w_c \log p_{n,c})
        'mean' = \sum_n \ell_n / \sum_n w_{y_n} (both over counted targets); 'sum'; 'none'.
        Class-probability targets q (a float tensor of the input's shape):
        \ell_n = -\sum_c w_c q'_{n,c} \log p_{n,c},   q' = (1-\varepsilon) q + \varepsilon/C,
        and 'mean' divides by the number of rows N d_1 ... (not by the weights).
    Backward: with \log p_c = z_c - \log \sum_k e^{z_k},  \partial \log p_c / \partial z_i
        = [i = c] - p_i, so for one row (w = 1) and any target distribution q (\sum_c q_c = 1):
        \partial \ell / \partial z_i = -\sum_c q_c ([i = c] - p_i) = p_i - q_i.
        One-hot q = e_y gives p - y; smoothing replaces q by (1-\varepsilon) y + \varepsilon/C,
        so the gradient is p - ((1-\varepsilon) y + \varepsilon/C). With weights the row's
        gradient is (\sum_c w_c q_c) p - w \odot q; 'mean' scales it by 1/\sum_n w_{y_n}.
        It is computed by the backward passes of log_softmax and the gather, not by hand.
    Shapes:   input (C,), (N, C) or (N, C, d1, ...); target () / (N,) / (N, d1, ...) ids,
              or float probabilities of the input's shape; weight (C,); 'none' gives the
              target's shape (ids) or the input's shape without dim C (probabilities).

    Edge cases, as PyTorch 2.13: ids equal to ``ignore_index`` contribute 0 and do not count
    towards the mean (``ignore_index`` may be any int, in range or not). If every target is
    ignored (or the batch is empty), 'mean' is 0/0 = nan, while the input gradient is all
    zeros; 'sum' is 0 and 'none' is all zeros. ``ignore_index`` with probability targets
    raises. ``weight`` must not require grad. Stricter than PyTorch: an id out of [0, C)
    raises IndexError naming the id and its position; float targets and weights must have the
    input's dtype; a (C,) input needs a 0-d target; C = 0 raises. Integer ids of any width
    are accepted (PyTorch takes int64 and uint8).
    """
    op = "cross_entropy"
    _check_reduction(op, reduction)
    eps = _check_options(op, ignore_index, label_smoothing)
    cdim = _check_scores(op, input)
    w = _check_weight(op, weight, input, cdim)
    _check_tensor(op, "target", target, input)
    c = input.shape[cdim]
    if target.dtype.kind == "f":
        return _soft_cross_entropy(input, target, w, ignore_index, reduction, eps, cdim)
    if kernels.enabled() and kernels.loss.applies(input.data, w):  # one fused op, same math
        t, _ = _check_ids(op, target, input, cdim, ignore_index)
        return kernels.loss.cross_entropy(input, t, w, ignore_index, reduction, eps, cdim)

    # BEGIN SOLUTION lesson04 cross-entropy of class ids: -log p_y, smoothing, ignore_index
    logp = log_softmax(input, dim=cdim)  # (N, C, d1, ...)
    loss, mask, counted_all, total = _nll_terms(op, logp, target, w, ignore_index, cdim)
    if eps > 0:  # mix in the uniform distribution: (eps / C) sum_c -w_c log p_c
        lw = logp if w is None else logp * _class_weights(w, logp.ndim, cdim)
        loss = loss * (1.0 - eps) + lw.sum(dim=cdim) * (-eps / c)  # (N, d1, ...)
    if not counted_all:
        loss = where(Tensor._wrap(mask), loss, 0.0)  # ignored targets: 0, with zero gradient
    return _reduce(loss, reduction, total)
    # END SOLUTION


def _soft_cross_entropy(input, target, w, ignore_index, reduction, eps, cdim) -> Tensor:
    """cross_entropy against class probabilities (a float target of the input's shape)."""
    op = "cross_entropy"
    if tuple(target.shape) != tuple(input.shape):
        want = tuple(input.shape[:cdim] + input.shape[cdim + 1:])
        raise ValueError(
            f"{op}: a floating point target holds class probabilities and must have the "
            f"input's shape {tuple(input.shape)}, got {tuple(target.shape)}; class ids need "
            f"an integer tensor of shape {want}")
    if target.dtype != input.dtype:
        raise TypeError(f"{op}: target dtype {target.dtype} does not match input dtype "
                        f"{input.dtype}; convert one explicitly")
    if ignore_index != -100:
        raise ValueError(f"{op}: ignore_index={ignore_index} is not supported for class-"
                         "probability (floating point) targets, as in PyTorch")
    c = input.shape[cdim]
    q = target if eps == 0 else target * (1.0 - eps) + eps / c  # smoothed distribution
    if w is not None:
        q = q * _class_weights(w, input.ndim, cdim)
    # BEGIN SOLUTION lesson04 cross-entropy against class probabilities q: -sum_c q_c log p_c
    logp = log_softmax(input, dim=cdim)
    loss = -(logp * q).sum(dim=cdim)  # (N, d1, ...)
    return _reduce(loss, reduction, loss.numel())  # mean over rows: N d1 ...
    # END SOLUTION


def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None,
             ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    r"""Negative log-likelihood of log-probabilities ``input`` at the target classes.

    Forward:  \ell_n = -w_{y_n} x_{n, y_n} for y_n != ignore_index, else 0;
              'mean' = \sum_n \ell_n / \sum_{counted n} w_{y_n}; 'sum'; 'none'.
    Backward: \partial \ell_n / \partial x_{n,c} = -w_{y_n} [c = y_n] (scaled by the mean's
              divisor): a scatter of the upstream gradient into zeros, via the gather's backward.
    Shapes:   input (C,), (N, C) or (N, C, d1, ...); target () / (N,) / (N, d1, ...).

    ``cross_entropy(z, y)`` equals ``nll_loss(log_softmax(z, dim=1), y)``. The all-ignored
    'mean' is nan with a zero gradient, as in PyTorch; the checks are cross_entropy's.
    """
    op = "nll_loss"
    _check_reduction(op, reduction)
    _check_options(op, ignore_index)
    cdim = _check_scores(op, input)
    w = _check_weight(op, weight, input, cdim)
    _check_tensor(op, "target", target, input)
    loss, mask, counted_all, total = _nll_terms(op, input, target, w, ignore_index, cdim)
    if not counted_all:
        loss = where(Tensor._wrap(mask), loss, 0.0)
    return _reduce(loss, reduction, total)


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    r"""Mean squared error.

    Forward:  \ell_i = (x_i - t_i)^2;  'mean' = \frac1n \sum_i \ell_i (nan when n = 0, as in
              PyTorch); 'sum'; 'none'.
    Backward: \partial \ell_i / \partial x_i = 2 (x_i - t_i) = -\partial \ell_i / \partial t_i
              (both input and target get gradients, as in PyTorch).
    Shapes:   input and target of one shape. Stricter than PyTorch, which broadcasts
              different shapes with a warning (a common silent bug: (N,) vs (N, 1)).
    """
    op = "mse_loss"
    _check_reduction(op, reduction)
    _check_tensor(op, "input", input)
    _check_tensor(op, "target", target, input)
    for name, x in (("input", input), ("target", target)):
        if x.dtype.kind != "f":
            raise TypeError(f"{op}: {name} must be a floating point tensor, got dtype {x.dtype}")
    if target.dtype != input.dtype:
        raise TypeError(f"{op}: target dtype {target.dtype} does not match input dtype "
                        f"{input.dtype}; convert one explicitly")
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"{op}: target of shape {tuple(target.shape)} does not match input of "
                         f"shape {tuple(input.shape)} (tinylm does not broadcast losses)")
    d = input - target
    loss = d * d
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()
