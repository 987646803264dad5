r"""Weight initialisers with PyTorch's names, formulas and defaults (``torch.nn.init``).

Each fills a tensor *in place* and returns it. Every draw comes from tinylm's one
CPU generator (``tinylm.manual_seed``) and is then moved to the tensor's device,
so a seed gives the same weights on the CPU and on a GPU.

Fans of a weight of shape ``(out, in, *kernel)``: ``fan_in = in * prod(kernel)``,
``fan_out = out * prod(kernel)``.

- ``kaiming_uniform_(w, a, mode="fan_in", nonlinearity="leaky_relu")``: U(-b, b) with
  b = gain \sqrt{3 / fan} and gain = \sqrt{2 / (1 + a^2)}. With ``a = sqrt(5)`` (Linear's
  default) gain = \sqrt{1/3}, so b = 1 / \sqrt{fan_in}.
- ``xavier_uniform_(w, gain)``: U(-b, b) with b = gain \sqrt{6 / (fan_in + fan_out)}.
"""

from __future__ import annotations

import math

import numpy as np

from .. import backend, random
from ..tensor import Tensor

__all__ = [
    "calculate_gain", "uniform_", "normal_", "constant_", "ones_", "zeros_",
    "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_",
]  # fmt: skip


def _fill(tensor: Tensor, values: np.ndarray) -> Tensor:
    """Write float64 ``values`` into ``tensor``'s array (cast to its dtype), in place."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"init: expected a tinylm Tensor, got {type(tensor).__name__}")
    a = backend.to_device(values.astype(tensor.dtype), tensor.device)
    if getattr(tensor.data.flags, "writeable", True):
        tensor.data[...] = a
    else:
        tensor.data = a
    return tensor


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity (PyTorch's table)."""
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
              "conv_transpose2d", "conv_transpose3d", "sigmoid")
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        if isinstance(slope, bool) or not isinstance(slope, (int, float)):
            raise ValueError(f"calculate_gain: negative_slope {slope!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    if tensor.ndim < 2:
        raise ValueError(
            "Fan in and fan out can not be computed for tensor with fewer than 2 dimensions "
            f"(got shape {tuple(tensor.shape)})"
        )
    receptive = int(np.prod(tensor.shape[2:], dtype=np.int64))
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _fan(tensor: Tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """Fill with draws from U(a, b)."""
    if a > b:
        raise ValueError(f"uniform_: a ({a}) must not exceed b ({b})")
    u = random.generator().random(tensor.shape)  # [0, 1)
    return _fill(tensor, a + (b - a) * u)


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """Fill with draws from N(mean, std^2)."""
    if std < 0:
        raise ValueError(f"normal_: std must be non-negative, got {std}")
    return _fill(tensor, mean + std * random.generator().standard_normal(tensor.shape))


def constant_(tensor: Tensor, val: float) -> Tensor:
    return _fill(tensor, np.full(tensor.shape, val, dtype=np.float64))


def ones_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 1.0)


def zeros_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 0.0)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    r"""Glorot: U(-b, b), b = gain \sqrt{6 / (fan_in + fan_out)}."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out)) if fan_in + fan_out else 0.0
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    r"""Glorot: N(0, s^2), s = gain \sqrt{2 / (fan_in + fan_out)}."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out)) if fan_in + fan_out else 0.0
    return normal_(tensor, 0.0, std)


def kaiming_uniform_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu") -> Tensor:
    r"""He: U(-b, b), b = gain \sqrt{3 / fan} (see the module docstring)."""
    if tensor.numel() == 0:  # nothing to fill (and the fan may be 0)
        return tensor
    gain = calculate_gain(nonlinearity, a)
    bound = gain * math.sqrt(3.0 / _fan(tensor, mode))
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu") -> Tensor:
    r"""He: N(0, s^2), s = gain / \sqrt{fan}."""
    if tensor.numel() == 0:
        return tensor
    gain = calculate_gain(nonlinearity, a)
    return normal_(tensor, 0.0, gain / math.sqrt(_fan(tensor, mode)))
