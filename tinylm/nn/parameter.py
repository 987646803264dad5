"""Parameter: a Tensor that a Module registers as learnable (``torch.nn.Parameter``)."""

from __future__ import annotations

import numpy as np

from .. import creation
from ..tensor import Tensor

__all__ = ["Parameter", "new_parameter"]


class Parameter(Tensor):
    """A Tensor that a Module registers as learnable (``requires_grad=True`` by default).

    ``Parameter(t)`` shares ``t``'s array, as ``torch.nn.Parameter`` shares storage.
    """

    __slots__ = ()

    def __init__(self, data=None, requires_grad: bool = True):
        if data is None:
            data = np.zeros(0, dtype=np.float32)
        elif isinstance(data, Tensor):
            data = data.data
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


def new_parameter(shape: tuple, device=None, dtype=None) -> Parameter:
    """A zero-filled Parameter for a layer to initialise (``dtype=None``: the default float)."""
    return Parameter(creation.zeros(*shape, dtype=dtype, device=device))
