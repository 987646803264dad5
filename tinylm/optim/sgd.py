r"""SGD: stochastic gradient descent with momentum, as PyTorch's ``torch.optim.SGD``.

See lessons/05_optimizers.py for why momentum helps on a long, narrow valley.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .. import backend, kernels
from ..tensor import Tensor
from .optimizer import Optimizer

__all__ = ["SGD"]


class SGD(Optimizer):
    r"""Stochastic gradient descent, optionally with momentum, dampening, Nesterov and L2 decay.

    For a parameter :math:`\theta` with gradient :math:`g_t` at step :math:`t = 1, 2, \dots`
    (lr :math:`\gamma`, momentum :math:`\mu`, dampening :math:`\tau`, weight_decay
    :math:`\lambda`)::

        g_t  \leftarrow g_t + \lambda \theta_{t-1}              (if \lambda \ne 0: L2 penalty)
        b_1  = g_1                                             (if \mu \ne 0: first step, undamped)
        b_t  = \mu b_{t-1} + (1 - \tau) g_t                    (t > 1)
        g_t  \leftarrow g_t + \mu b_t     if nesterov,   else   g_t \leftarrow b_t
        \theta_t = \theta_{t-1} - \gamma g_t

    With ``momentum=0`` this is plain :math:`\theta_t = \theta_{t-1} - \gamma g_t`.
    Nesterov needs :math:`\mu > 0` and :math:`\tau = 0`.

    State per parameter: ``momentum_buffer`` (:math:`b_t`), only when momentum is used.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
    ):
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
        )
        self._check_group(defaults)  # bad hyperparameters fail before the params are looked at
        super().__init__(params, defaults)

    def _check_group(self, group: dict) -> None:
        if not 0.0 <= group["lr"]:
            raise ValueError(f"Invalid learning rate: {group['lr']}")
        if not 0.0 <= group["momentum"]:
            raise ValueError(f"Invalid momentum value: {group['momentum']}")
        if not 0.0 <= group["weight_decay"]:
            raise ValueError(f"Invalid weight_decay value: {group['weight_decay']}")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")

    def _update(self, p, g, state: dict, group: dict) -> None:
        lr, mu, tau = group["lr"], group["momentum"], group["dampening"]
        wd, nesterov = group["weight_decay"], group["nesterov"]
        xp = backend.xp_of(p)
        if kernels.enabled() and _kernel_step(p, g, state, group):
            return  # done in one pass over memory, the same bits as the code below
        # BEGIN SOLUTION lesson05
        d, scratch = g, False  # the step direction; `scratch`: d is ours to overwrite
        if wd != 0:
            d = xp.multiply(p, wd)  # lambda theta: a new array, p.grad itself never changes
            d += g  # g + lambda theta
            scratch = True
        if mu != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = d.copy()  # b_1 = g_1
            else:
                buf *= mu  # mu b_{t-1}
                buf += d if tau == 0 else (1 - tau) * d  # + (1 - tau) g_t
            if nesterov:
                d_new = xp.multiply(buf, mu)  # mu b_t
                d_new += d  # g_t + mu b_t
                d, scratch = d_new, True
            else:
                d, scratch = buf, False
        if scratch:
            d *= lr
            p -= d  # theta - lr d
        else:
            p -= lr * d  # d is the gradient or the buffer: they must not be scaled in place
        # END SOLUTION


def _kernel_step(p, g, state: dict, group: dict) -> bool:
    """SGD's update as one Numba pass per parameter (tinylm/kernels/optim.py), bit for bit
    the NumPy code of ``SGD._update``. False, changing nothing, where the kernel does not
    apply (a GPU or float16 array, a strided buffer, ...): then the NumPy code runs."""
    if type(p) is not np.ndarray:  # a CuPy array: do not import Numba for it
        return False
    from ..kernels.optim import fits, sgd_update

    buf, first = state.get("momentum_buffer"), False
    if group["momentum"] != 0 and buf is None:
        if not fits(p):
            return False
        buf, first = np.empty_like(p), True  # filled with b_1 = g_1 by the kernel
    done = sgd_update(p, g, buf, group, first)
    if done and first:
        state["momentum_buffer"] = buf
    return done
