"""Testing tools: the op registry (OpInfo-style sample and error inputs) and its sweep,
``check_layer`` for NumPy forward/backward pairs, and a pytest plugin
(``tinylm.testing.pytest_plugin``) that runs the registry's samples on your own code.

>>> from tinylm.testing import op_db, sweep_op
>>> all(sweep_op(info).passed for info in op_db)  # doctest: +SKIP
"""

from .check_layer import check_layer
from .opinfo import ErrorInput, OpInfo, SampleInput
from .registry import get_op, op_db
from .sweep import OpResult, sweep_op

__all__ = ["ErrorInput", "OpInfo", "SampleInput", "OpResult", "check_layer", "get_op", "op_db",
           "sweep_op"]
