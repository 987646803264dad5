"""LayerNorm and RMSNorm over the trailing ``normalized_shape`` dims (PyTorch's API).

The math and its gradient are derived in ``F.layer_norm`` / ``F.rms_norm``
(``tinylm/nn/functional.py``); these modules hold the affine parameters.
"""

from __future__ import annotations

import numbers

from . import functional as F
from . import init
from .module import Module
from .parameter import new_parameter

__all__ = ["LayerNorm", "RMSNorm"]


def _shape(layer: str, normalized_shape) -> tuple:
    if isinstance(normalized_shape, numbers.Integral):
        normalized_shape = (normalized_shape,)
    shape = tuple(normalized_shape)
    if not shape or any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0
                        for s in shape):
        raise ValueError(f"{layer}: normalized_shape must be a non-empty tuple of non-negative "
                         f"ints, got {normalized_shape!r}")
    return tuple(int(s) for s in shape)


class LayerNorm(Module):
    """``(x - mean) / sqrt(var + eps) * weight + bias`` over the trailing dims.

    Parameters (when ``elementwise_affine``): ``weight`` (ones) and ``bias`` (zeros, unless
    ``bias=False``), both of shape ``normalized_shape``.
    """

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, device=None, dtype=None):
        super().__init__()
        self.normalized_shape = _shape("LayerNorm", normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = new_parameter(self.normalized_shape, device, dtype)
            if bias:
                self.bias = new_parameter(self.normalized_shape, device, dtype)
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, input):
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}")


class RMSNorm(Module):
    """``x / sqrt(mean(x^2) + eps) * weight`` over the trailing dims.

    ``eps=None`` uses ``finfo(input.dtype).eps`` (PyTorch 2.4+). Parameter (when
    ``elementwise_affine``): ``weight`` of shape ``normalized_shape``, ones.
    """

    def __init__(self, normalized_shape, eps: float | None = None,
                 elementwise_affine: bool = True, device=None, dtype=None):
        super().__init__()
        self.normalized_shape = _shape("RMSNorm", normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = new_parameter(self.normalized_shape, device, dtype)
        else:
            self.register_parameter("weight", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.weight is not None:
            init.ones_(self.weight)

    def forward(self, input):
        return F.rms_norm(input, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")
