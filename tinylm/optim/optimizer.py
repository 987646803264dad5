r"""Optimizer: the base class of SGD, Adam and AdamW (PyTorch's ``torch.optim.Optimizer``).

An optimizer holds *parameter groups*: lists of leaf Tensors that share hyperparameters
(``lr``, ``weight_decay``, ...). ``step()`` walks every parameter that has a gradient and
applies the update rule in place on ``param.data``; the rule itself is each subclass's
``_update``. Per-parameter buffers (momentum, Adam's moments) live in ``self.state[param]``.

Checkpoints use PyTorch's layout, with parameters replaced by their position::

    {"state": {0: {"step": 3, "exp_avg": Tensor, ...}, ...},
     "param_groups": [{"lr": 0.001, ..., "params": [0, 1]}, ...]}

See lessons/05_optimizers.py for the update rules derived.
"""

from __future__ import annotations

import contextlib
import copy
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .. import backend
from ..tensor import Tensor, enable_grad, no_grad

__all__ = ["Optimizer"]


def device_scope(a):
    """Make ``a``'s GPU the current one while its state is allocated (a no-op on the CPU)."""
    return a.device if backend.is_cupy_array(a) else contextlib.nullcontext()


class Optimizer:
    """Base class: parameter groups, ``zero_grad``, ``step``, ``state_dict``.

    Subclasses call ``super().__init__(params, defaults)`` and implement
    ``_update(p, g, state, group)`` on backend arrays: ``p`` the parameter's data (updated
    in place), ``g`` its gradient (read only), ``state`` this parameter's dict of buffers.
    ``_check_group(group)`` validates hyperparameters and runs for every group added.
    """

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], defaults: dict[str, Any]):
        self.defaults = dict(defaults)
        self.state: defaultdict[Tensor, dict] = defaultdict(dict)
        self.param_groups: list[dict] = []
        if isinstance(params, Tensor):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors or "
                f"dicts, but got {type(params).__name__}"
            )
        groups = list(params)
        if len(groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # ------------------------------------------------------------------ groups
    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters (``{"params": [...], "lr": ...}``); unset keys take the
        optimizer's defaults. A parameter may belong to one group only, once."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        params = group.get("params")
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but the "
                "ordering of tensors in sets will change between runs; use a list instead"
            )
        elif params is None:
            raise ValueError("a parameter group needs a 'params' entry")
        params = list(params)
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(
                    f"optimizer can only optimize Tensors, but params[{i}] is a {type(p).__name__}"
                )
            if not p.is_leaf:
                raise ValueError(f"can't optimize a non-leaf Tensor (params[{i}])")
        if len({id(p) for p in params}) != len(params):
            raise ValueError("optimizer contains a parameter group with duplicate parameters")
        if len(params) == 0:
            raise ValueError("optimizer got an empty parameter list")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        group["params"] = params
        for key, default in self.defaults.items():
            group.setdefault(key, default)
        self._check_group(group)
        self.param_groups.append(group)

    def _check_group(self, group: dict) -> None:
        """Raise ``ValueError`` for an invalid hyperparameter (overridden by subclasses)."""
        if not 0.0 <= group["lr"]:
            raise ValueError(f"Invalid learning rate: {group['lr']}")

    # ------------------------------------------------------------------ the step
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients: ``grad = None`` (default, frees memory) or zero them in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    if p.grad._ctx is not None:  # a gradient built with create_graph=True
                        p.grad = p.grad.detach()
                    p.grad.data[...] = 0

    def step(self, closure: Callable[[], Any] | None = None):
        """Update every parameter that has a gradient; returns ``closure()``'s loss if given.

        The loop is in Python, one parameter at a time; each ``_update`` is a few whole-array
        in-place expressions, or, for NumPy float32/float64 parameters with the kernels on,
        one Numba pass over the parameter that gives the same bits (tinylm/kernels/optim.py).
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():  # updates write param.data directly: nothing may be recorded
            for group in self.param_groups:
                for param in group["params"]:
                    if param.grad is None:
                        continue
                    p, g = param.data, param.grad.data
                    if g.shape != p.shape or g.dtype != p.dtype:
                        raise RuntimeError(
                            f"{type(self).__name__}.step: gradient of shape {tuple(g.shape)} "
                            f"and dtype {g.dtype} does not match its parameter of shape "
                            f"{tuple(p.shape)} and dtype {p.dtype}"
                        )
                    with device_scope(p):
                        self._update(p, g, self.state[param], group)
        return loss

    def _update(self, p, g, state: dict, group: dict) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not implement _update")

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """``{"state": {index: {...}}, "param_groups": [{..., "params": [indices]}]}``.

        Parameters are numbered in group order. Buffers are returned as copies (PyTorch
        returns references), so a saved dict does not change as training goes on.
        """
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
            packed["params"] = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                packed["params"].append(index[id(p)])
            groups.append(packed)
        state = {}
        for p, s in self.state.items():
            if id(p) in index and s:
                state[index[id(p)]] = {k: _export(v) for k, v in s.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Load a dict made by ``state_dict()`` (also a PyTorch one, converted to arrays).

        Groups must match in number and size. Hyperparameters come from the dict. Buffers
        are copied onto each parameter's device and, as PyTorch does, cast to its dtype;
        ``step`` is kept as an int.
        """
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"loaded state dict has {len(saved_groups)} parameter groups, but the "
                f"optimizer has {len(self.param_groups)}"
            )
        by_index: dict[int, Tensor] = {}
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if len(group["params"]) != len(saved["params"]):
                raise ValueError(
                    f"loaded state dict contains a parameter group ({i}) of "
                    f"{len(saved['params'])} parameters that doesn't match the size of "
                    f"optimizer's group ({len(group['params'])} parameters)"
                )
            for idx, p in zip(saved["params"], group["params"]):
                by_index[int(idx)] = p
        new_groups = []
        for group, saved in zip(self.param_groups, saved_groups):
            new = {k: copy.deepcopy(v) for k, v in saved.items() if k != "params"}
            for key, default in self.defaults.items():
                new.setdefault(key, default)
            new["params"] = group["params"]
            self._check_group(new)
            new_groups.append(new)
        state: defaultdict[Tensor, dict] = defaultdict(dict)
        for idx, saved in state_dict["state"].items():
            p = by_index.get(int(idx))
            if p is None:
                raise KeyError(f"loaded state dict has state for parameter {idx}, in no group")
            state[p] = {k: _import(k, v, p) for k, v in saved.items()}
        self.param_groups = new_groups
        self.state = state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {group[k]}" for k in sorted(group) if k != "params"]
        return "\n".join(lines) + "\n)"


def _export(value):
    """A buffer for ``state_dict``: arrays become Tensors holding a copy."""
    if hasattr(value, "shape") and hasattr(value, "dtype") and not np.isscalar(value):
        return Tensor._wrap(value.copy())
    return copy.deepcopy(value)


def _import(key: str, value, param: Tensor):
    """A buffer from ``load_state_dict``: a fresh array on ``param``'s device and dtype."""
    if key == "step":
        step = float(value.item() if hasattr(value, "item") else value)
        if not step.is_integer() or step < 0:
            raise ValueError(f"load_state_dict: 'step' must be a non-negative integer, got {step}")
        return int(step)
    if isinstance(value, Tensor):
        value = value.data
    if not hasattr(value, "shape"):
        return copy.deepcopy(value)
    if not backend.is_cupy_array(value):
        value = np.asarray(value)  # also takes a CPU torch tensor
    if tuple(value.shape) != tuple(param.shape):
        raise ValueError(
            f"load_state_dict: buffer '{key}' has shape {tuple(value.shape)}, but its parameter "
            f"has shape {tuple(param.shape)}"
        )
    arr = backend.to_device(value, param.device)
    with device_scope(param.data):
        return arr.astype(param.dtype, copy=True)
