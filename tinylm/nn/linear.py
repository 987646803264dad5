"""Linear: ``y = x W^T + b`` with PyTorch's parameter names, shapes and initialisation."""

from __future__ import annotations

import math

from . import functional as F
from . import init
from .module import Module
from .parameter import new_parameter

__all__ = ["Linear"]


class Linear(Module):
    r"""``y = x W^T + b`` over the last dim: ``(..., in_features) -> (..., out_features)``.

    Parameters: ``weight`` (out_features, in_features), ``bias`` (out_features,).
    Initialisation (PyTorch's default): ``kaiming_uniform_(weight, a=sqrt(5))``, which is
    U(-1/\sqrt{in_features}, 1/\sqrt{in_features}), and the bias from the same interval.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 device=None, dtype=None):
        super().__init__()
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"Linear: {name} must be a non-negative int, got {v!r}")
        self.in_features = in_features
        self.out_features = out_features
        self.weight = new_parameter((out_features, in_features), device, dtype)
        if bias:
            self.bias = new_parameter((out_features,), device, dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input):
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")
