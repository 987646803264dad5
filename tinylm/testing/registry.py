"""The op registry: one OpInfo per public differentiable op (``ops.DIFFERENTIABLE``)."""

from __future__ import annotations

from .opinfo import OpInfo
from .registry_elementwise import ELEMENTWISE
from .registry_tensor import OTHERS, REDUCTIONS, SHAPES

op_db: list[OpInfo] = [*ELEMENTWISE, *REDUCTIONS, *SHAPES, *OTHERS]


def get_op(name: str) -> OpInfo:
    for info in op_db:
        if info.name == name:
            return info
    names = ", ".join(sorted(i.name for i in op_db))
    raise KeyError(f"no op named {name!r} in the registry; registered ops: {names}")
