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

# Each op's sweep cases carry the marker of the lesson that introduces it, so that
# `pytest -m lesson07` grades the LSTM's registry cases, and a student copy with lesson 07
# stripped fails only lesson 07's (and later lessons') cases. The core ops are lesson 02's.
for _info in [*NN, *LAYERS]:
    _info.lesson = "lesson03"
for _info in LOSSES:
    _info.lesson = "lesson04"
for _info in RNNS:
    _info.lesson = ("lesson07" if "LSTM" in _info.name else
                    "lesson08" if "GRU" in _info.name else "lesson06")
for _info in ATTENTION:
    _info.lesson = "lesson09"


def get_op(name: str) -> OpInfo:
    for info in op_db:
        if info.name == name:
            return info
    names = ", ".join(sorted(i.name for i in op_db))
    raise KeyError(f"no op named {name!r} in the registry; registered ops: {names}")
