r"""Learning-rate schedules, as PyTorch's ``torch.optim.lr_scheduler``.

A scheduler sets ``group["lr"]`` of every parameter group of its optimizer. Call
``scheduler.step()`` once per epoch (or per batch, for warmup schedules), *after*
``optimizer.step()``. Construction already applies the value for step 0.

Every schedule here is written in closed form: the learning rate at step :math:`t`
(``last_epoch``) is a function of the group's initial lr :math:`\eta_0` and :math:`t` only.
PyTorch computes the same values recursively from the previous lr, which lets several
schedulers be chained on one optimizer; tinylm's closed forms do not chain (the last one
to step wins). Values agree with PyTorch's to rounding.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

from .optimizer import Optimizer

__all__ = ["LRScheduler", "StepLR", "LambdaLR", "CosineAnnealingLR", "WarmupCosineLR"]


class LRScheduler:
    """Base class: subclasses give ``get_lr()``, the lr of each group at ``self.last_epoch``.

    ``base_lrs`` are the groups' ``initial_lr`` (set from ``lr`` when the first scheduler is
    made, as PyTorch does). ``last_epoch`` counts the ``step()`` calls; pass a value other
    than -1 to resume, which needs ``initial_lr`` in every group.
    """

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(
                        f"param 'initial_lr' is not specified in param_groups[{i}] when "
                        "resuming an optimizer"
                    )
        self.base_lrs: list[float] = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()  # apply the lr of step last_epoch + 1 (step 0 for a fresh schedule)

    def get_lr(self) -> list[float]:
        """The learning rate of each group at step ``self.last_epoch``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement get_lr")

    def step(self) -> None:
        """Advance one step and write the new learning rates into the optimizer."""
        self.last_epoch += 1
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        """The learning rates the last ``step()`` set, one per parameter group."""
        return list(self._last_lr)

    def state_dict(self) -> dict:
        """Everything but the optimizer (and, for LambdaLR, the functions)."""
        return {
            k: copy.deepcopy(v)
            for k, v in self.__dict__.items()
            if k not in ("optimizer", "lr_lambdas")
        }

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a ``state_dict()``; the optimizer's lrs change at the next ``step()``."""
        self.__dict__.update(
            {
                k: copy.deepcopy(v)
                for k, v in state_dict.items()
                if k not in ("optimizer", "lr_lambdas")
            }
        )


def _positive_int(who: str, name: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{who}: {name} must be a positive int, got {value!r}")
    return value


class StepLR(LRScheduler):
    r"""Multiply the lr by ``gamma`` every ``step_size`` steps.

    .. math:: \eta_t = \eta_0 \, \gamma^{\lfloor t / \text{step\_size} \rfloor}
    """

    def __init__(
        self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1
    ):
        self.step_size = _positive_int("StepLR", "step_size", step_size)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [base * self.gamma ** (self.last_epoch // self.step_size) for base in self.base_lrs]


class LambdaLR(LRScheduler):
    r"""The initial lr times a function of the step: :math:`\eta_t = \eta_0 \, f(t)`.

    ``lr_lambda`` is one function for all groups or a list with one per group. The
    functions are not part of ``state_dict()``: rebuild the scheduler with them, then load.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        lr_lambda: Callable[[int], float] | Sequence[Callable[[int], float]],
        last_epoch: int = -1,
    ):
        n = len(optimizer.param_groups)
        if callable(lr_lambda):
            self.lr_lambdas = [lr_lambda] * n
        else:
            if len(lr_lambda) != n:
                raise ValueError(f"Expected {n} lr_lambdas, but got {len(lr_lambda)}")
            self.lr_lambdas = list(lr_lambda)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [base * f(self.last_epoch) for base, f in zip(self.base_lrs, self.lr_lambdas)]


class CosineAnnealingLR(LRScheduler):
    r"""Cosine from the initial lr down to ``eta_min`` over ``T_max`` steps (SGDR without
    restarts).

    .. math:: \eta_t = \eta_{min} + \tfrac12 (\eta_0 - \eta_{min})
              \left(1 + \cos\left(\pi \, t / T_{max}\right)\right)

    Past ``T_max`` the cosine carries on and the lr rises again, as in PyTorch; use
    :class:`WarmupCosineLR` to hold at the minimum instead.
    """

    def __init__(
        self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1
    ):
        self.T_max = _positive_int("CosineAnnealingLR", "T_max", T_max)
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        c = (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
        return [self.eta_min + (base - self.eta_min) * c for base in self.base_lrs]


class WarmupCosineLR(LRScheduler):
    r"""Linear warmup to the initial lr, then cosine decay to ``min_lr``, then hold.

    With :math:`W` = ``warmup_steps``, :math:`T` = ``total_steps``, :math:`\eta_0` the
    group's initial lr and :math:`\eta_{min}` = ``min_lr``:

    .. math::

        \eta_t = \begin{cases}
            \eta_0 \, (t + 1) / W
                & 0 \le t < W \\
            \eta_{min} + \tfrac12 (\eta_0 - \eta_{min})
                \left(1 + \cos\left(\pi \, \frac{t - W}{T - W}\right)\right)
                & W \le t \le T \\
            \eta_{min} & t > T
        \end{cases}

    The warmup never uses lr 0 (the first step already moves) and reaches :math:`\eta_0` at
    its last step, :math:`t = W - 1`; the cosine starts from :math:`\eta_0` at :math:`t = W`
    and reaches :math:`\eta_{min}` at :math:`t = T`. ``warmup_steps=0`` is plain cosine.
    This equals PyTorch's ``SequentialLR([LinearLR(start_factor=1/W, total_iters=W-1),
    CosineAnnealingLR(T_max=T-W, eta_min)], milestones=[W])`` up to :math:`t = T`.
    Call ``step()`` once per optimizer step (per batch).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        warmup_steps: int,
        total_steps: int,
        min_lr: float = 0.0,
        last_epoch: int = -1,
    ):
        if not isinstance(warmup_steps, int) or isinstance(warmup_steps, bool) or warmup_steps < 0:
            raise ValueError(
                f"WarmupCosineLR: warmup_steps must be a non-negative int, got {warmup_steps!r}"
            )
        if (
            not isinstance(total_steps, int)
            or isinstance(total_steps, bool)
            or (total_steps <= warmup_steps)
        ):
            raise ValueError(
                f"WarmupCosineLR: total_steps must be an int greater than warmup_steps "
                f"({warmup_steps}), got {total_steps!r}"
            )
        if not 0.0 <= min_lr:
            raise ValueError(f"WarmupCosineLR: Invalid min_lr: {min_lr}")
        self.warmup_steps, self.total_steps, self.min_lr = warmup_steps, total_steps, min_lr
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        t, w, total = self.last_epoch, self.warmup_steps, self.total_steps
        if t < w:
            return [base * (t + 1) / w for base in self.base_lrs]
        if t > total:
            return [self.min_lr for _ in self.base_lrs]
        c = (1 + math.cos(math.pi * (t - w) / (total - w))) / 2
        return [self.min_lr + (base - self.min_lr) * c for base in self.base_lrs]
