"""tinylm's ops: one module per family, each op a Function with a lowercase wrapper.

``DIFFERENTIABLE`` lists the public differentiable ops by name; the op registry
(``tinylm.testing``) must hold an entry for each (a meta-test checks).
"""

import sys as _sys

from .. import tensor as _tensor
from .arithmetic import add, div, eq, ge, gt, le, lt, mul, ne, neg, pow, pow_scalar, sub
from .convert import to
from .index import getitem
from .join import cat, chunk, split, stack, unstack
from .matmul import matmul
from .reduce import amax, amin, logsumexp, mean, sum, var
from .select import clamp, masked_fill, maximum, minimum, where
from .shape import (
    broadcast_to,
    contiguous,
    expand,
    flatten,
    permute,
    reshape,
    squeeze,
    sum_to,
    transpose,
    unsqueeze,
    view,
)
from .softmax import log_softmax, softmax
from .unary import abs, erf, exp, gelu, log, relu, sigmoid, sqrt, tanh

DIFFERENTIABLE = (
    "add", "sub", "mul", "div", "neg", "pow",
    "exp", "log", "sqrt", "abs", "tanh", "sigmoid", "relu", "erf", "gelu",
    "clamp", "maximum", "minimum", "where", "masked_fill",
    "sum", "mean", "var", "amax", "amin", "logsumexp",
    "matmul",
    "reshape", "transpose", "permute", "unsqueeze", "squeeze", "expand", "flatten",
    "contiguous", "sum_to", "getitem", "cat", "stack", "split", "chunk",
    "softmax", "log_softmax", "to",
)  # fmt: skip

__all__ = [
    *DIFFERENTIABLE,
    "pow_scalar", "view", "broadcast_to", "unstack", "eq", "ne", "lt", "le", "gt", "ge",
]  # fmt: skip

_tensor._ops = _sys.modules[__name__]  # Tensor's methods (x + y, x.sum()) call these ops
