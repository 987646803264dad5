r"""Gradient clipping, as PyTorch's ``torch.nn.utils.clip_grad_norm_`` / ``clip_grad_value_``.

Both work in place on ``p.grad`` of the given parameters (a Tensor or an iterable of them)
and skip parameters whose ``grad`` is None. Call them between ``loss.backward()`` and
``optimizer.step()``. See lessons/05_optimizers.py for why an RNN needs clipping.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .. import backend
from ..creation import get_default_dtype
from ..tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def _grads(parameters: Tensor | Iterable[Tensor]) -> list[Tensor]:
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def _vector_norm(xp, a, p: float):
    r""":math:`\|a\|_p` over all elements (0 for an empty array)."""
    if a.size == 0:
        return xp.zeros((), dtype=a.dtype)
    return xp.asarray(xp.linalg.norm(a.ravel(), ord=p))


def clip_grad_norm_(
    parameters: Tensor | Iterable[Tensor],
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> Tensor:
    r"""Rescale all gradients together so their joint norm is at most ``max_norm``.

    The joint norm treats every gradient :math:`g_1, \dots, g_k` as one long vector::

        N = \| (\|g_1\|_p, \dots, \|g_k\|_p) \|_p = \Big(\sum_i \sum_j |g_{ij}|^p\Big)^{1/p}
        N = \max_{i,j} |g_{ij}|                                   (p = inf)
        c = \min\big(1, \ \text{max\_norm} / (N + 10^{-6})\big)
        g_i \leftarrow c \, g_i

    The direction of the update is kept; only its length is capped. As in PyTorch every
    gradient is multiplied by :math:`c` (by 1 when no clipping is needed), and a
    non-finite :math:`N` is not caught unless ``error_if_nonfinite=True`` (which raises):
    :math:`N = \infty` gives :math:`c = 0` (and NaN where a gradient was infinite),
    :math:`N = \text{NaN}` makes every gradient NaN.

    Returns :math:`N` before clipping, a 0-d Tensor (0 when no parameter has a gradient).
    """
    grads = _grads(parameters)
    max_norm, norm_type = float(max_norm), float(norm_type)
    if not grads:
        return Tensor._wrap(np.zeros((), dtype=get_default_dtype()))
    first = grads[0].data
    xp, device = backend.xp_of(first), backend.device_of(first)
    dtype = np.result_type(*[g.dtype for g in grads])
    # BEGIN SOLUTION lesson05
    norms = [  # one norm per gradient, gathered on the first gradient's device
        backend.to_device(_vector_norm(backend.xp_of(g.data), g.data, norm_type), device)
        for g in grads
    ]
    total = _vector_norm(xp, xp.stack([n.astype(dtype) for n in norms]), norm_type)
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is "
            f"non-finite ({float(total)}), so it cannot be clipped. To disable this error and "
            "scale the gradients by the non-finite norm anyway, set `error_if_nonfinite=False`"
        )
    coef = xp.minimum(max_norm / (total + 1e-6), 1.0)  # c = min(1, max_norm / (N + 1e-6))
    with np.errstate(invalid="ignore"):  # N = inf: c = 0 and inf * 0 = NaN, as documented
        for g in grads:
            g.data *= backend.to_device(coef, g.device).astype(g.dtype)  # in place: g <- c g
    # END SOLUTION
    return Tensor._wrap(total)


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float) -> None:
    r"""Clamp every gradient element into :math:`[-c, c]` in place: :math:`g \leftarrow
    \min(\max(g, -c), c)`. Unlike norm clipping this can change the update's direction.
    NaN stays NaN."""
    clip_value = float(clip_value)
    if not clip_value >= 0:
        raise ValueError(f"clip_grad_value_: clip_value must be >= 0, got {clip_value}")
    for g in _grads(parameters):
        xp = backend.xp_of(g.data)
        xp.clip(g.data, -clip_value, clip_value, out=g.data)
