"""The op registry: one OpInfo per public differentiable op (``ops.DIFFERENTIABLE``)."""

from __future__ import annotations

from .opinfo import OpInfo
from .registry_attention import ATTENTION
from .registry_elementwise import ELEMENTWISE
from .registry_layers import LAYERS
from .registry_losses import LOSSES
from .registry_nn import NN
from .registry_rnn import RNNS
from .registry_tensor import OTHERS, REDUCTIONS, SHAPES

op_db: list[OpInfo] = [*ELEMENTWISE, *REDUCTIONS, *SHAPES, *OTHERS, *LOSSES, *NN, *LAYERS, *RNNS,
                       *ATTENTION]


def get_op(name: str) -> OpInfo:
    for info in op_db:
        if info.name == name:
            return info
    names = ", ".join(sorted(i.name for i in op_db))
    raise KeyError(f"no op named {name!r} in the registry; registered ops: {names}")
