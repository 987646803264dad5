"""Testing tools: the op registry (OpInfo-style sample and error inputs) and its sweep.

>>> from tinylm.testing import op_db, sweep_op
>>> all(sweep_op(info).passed for info in op_db)  # doctest: +SKIP
"""

from .opinfo import ErrorInput, OpInfo, SampleInput
from .registry import get_op, op_db
from .sweep import OpResult, sweep_op

__all__ = ["ErrorInput", "OpInfo", "SampleInput", "OpResult", "get_op", "op_db", "sweep_op"]
