r"""Adam and AdamW, as PyTorch's ``torch.optim.Adam`` and ``torch.optim.AdamW``.

See lessons/05_optimizers.py for the bias correction derived, and for why AdamW's
decoupled decay is not the same as an L2 penalty once gradients are rescaled.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from .. import backend, kernels
from ..tensor import Tensor
from .optimizer import Optimizer

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    r"""Adam: momentum on the gradient, scaled per element by a running RMS of the gradient.

    For a parameter :math:`\theta` with gradient :math:`g_t` at step :math:`t = 1, 2, \dots`
    (lr :math:`\gamma`, betas :math:`(\beta_1, \beta_2)`, eps :math:`\epsilon`, weight_decay
    :math:`\lambda`), with :math:`m_0 = v_0 = 0`::

        g_t  \leftarrow g_t + \lambda \theta_{t-1}          (Adam, if \lambda \ne 0: L2 penalty)
        m_t  = \beta_1 m_{t-1} + (1 - \beta_1) g_t           first moment
        v_t  = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2         second moment
        \hat v_t = \max(\hat v_{t-1}, v_t)  if amsgrad, else  \hat v_t = v_t
        \theta_t = \theta_{t-1} - \frac{\gamma}{1 - \beta_1^t}
                   \frac{m_t}{\sqrt{\hat v_t} / \sqrt{1 - \beta_2^t} + \epsilon}

    Dividing by :math:`1 - \beta^t` undoes the pull toward the zero start: the bias
    correction. Note :math:`\epsilon` is added *after* correcting :math:`\sqrt{\hat v_t}`,
    as PyTorch does.

    State per parameter: ``step`` (int t), ``exp_avg`` (m), ``exp_avg_sq`` (v) and, with
    amsgrad, ``max_exp_avg_sq`` (the running max of v). Buffers have the parameter's dtype
    and device.
    """

    _decoupled = False  # AdamW sets it: decay theta directly instead of adding to g

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
    ):
        defaults = dict(
            lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad
        )
        self._check_group(defaults)  # bad hyperparameters fail before the params are looked at
        super().__init__(params, defaults)

    def _check_group(self, group: dict) -> None:
        if not 0.0 <= group["lr"]:
            raise ValueError(f"Invalid learning rate: {group['lr']}")
        if not 0.0 <= group["eps"]:
            raise ValueError(f"Invalid epsilon value: {group['eps']}")
        betas = group["betas"]
        if len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas}")
        for i, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {beta}")
        if not 0.0 <= group["weight_decay"]:
            raise ValueError(f"Invalid weight_decay value: {group['weight_decay']}")

    def _update(self, p, g, state: dict, group: dict) -> None:
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        wd, amsgrad = group["weight_decay"], group["amsgrad"]
        xp = backend.xp_of(p)
        if not state:  # first step: zero moments, in p's dtype and on p's device
            state["step"] = 0
            state["exp_avg"] = xp.zeros_like(p)
            state["exp_avg_sq"] = xp.zeros_like(p)
        if amsgrad and "max_exp_avg_sq" not in state:
            state["max_exp_avg_sq"] = xp.zeros_like(p)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        if kernels.enabled() and _kernel_step(p, g, state, group, self._decoupled):
            return  # done in one pass over memory, the same bits as the code below
        # BEGIN SOLUTION lesson05
        state["step"] += 1
        t = state["step"]
        if wd != 0:
            if self._decoupled:
                p *= 1 - lr * wd  # AdamW: theta <- theta - lr lambda theta
            else:
                g_wd = xp.multiply(p, wd)  # Adam: L2 penalty in the gradient (a new array,
                g_wd += g  # so p.grad itself never changes): g + lambda theta
                g = g_wd
        tmp = xp.multiply(g, 1 - beta1)  # the one scratch array of this step
        m *= beta1
        m += tmp  # m_t = beta1 m + (1 - beta1) g
        xp.multiply(g, g, out=tmp)
        tmp *= 1 - beta2
        v *= beta2
        v += tmp  # v_t = beta2 v + (1 - beta2) g^2
        if amsgrad:
            vmax = state["max_exp_avg_sq"]
            xp.maximum(vmax, v, out=vmax)  # v_hat = max(v_hat, v_t)
            v = vmax
        step_size = lr / (1 - beta1**t)  # lr / bias correction 1
        xp.sqrt(v, out=tmp)
        tmp /= math.sqrt(1 - beta2**t)  # sqrt(v_hat) / sqrt(bias correction 2)
        tmp += eps  # the denominator
        xp.divide(m, tmp, out=tmp)
        tmp *= step_size
        p -= tmp  # theta - step_size m / denom
        # END SOLUTION


def _kernel_step(p, g, state: dict, group: dict, decoupled: bool) -> bool:
    """Adam's update as one Numba pass per parameter (tinylm/kernels/optim.py), bit for bit
    the NumPy code of ``Adam._update``. False, changing nothing, where the kernel does not
    apply (a GPU or float16 array, a strided buffer, ...): then the NumPy code runs."""
    if type(p) is not np.ndarray:  # a CuPy array: do not import Numba for it
        return False
    from ..kernels.optim import adam_update

    t = state["step"] + 1
    vh = state["max_exp_avg_sq"] if group["amsgrad"] else None
    done = adam_update(p, g, state["exp_avg"], state["exp_avg_sq"], vh, group, t, decoupled)
    if done:
        state["step"] = t
    return done


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter), as ``torch.optim.AdamW``.

    The same update as :class:`Adam` except the decay: instead of adding
    :math:`\lambda \theta` to the gradient (where Adam's per-element scaling would shrink
    it for parameters with large gradients), each step first shrinks the weights directly::

        \theta_{t-1} \leftarrow \theta_{t-1} (1 - \gamma \lambda)

    then applies Adam's moment updates to the raw gradient :math:`g_t`. Default
    ``weight_decay=1e-2``.
    """

    _decoupled = True

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
    ):
        super().__init__(
            params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad
        )
