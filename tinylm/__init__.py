"""tinylm: a from-scratch deep-learning package for learning how language models work.

>>> import tinylm
>>> x = tinylm.tensor([1.0, 2.0, 3.0], requires_grad=True)
>>> (x * x).sum().backward()
>>> x.grad
tensor([2., 4., 6.])
"""

from . import autograd, cuda, data, kernels, models, nn, ops, optim
from .backend import Device
from .creation import (
    arange,
    as_tensor,
    bool_,
    float16,
    float32,
    float64,
    full,
    full_like,
    get_default_dtype,
    int32,
    int64,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    set_default_dtype,
    tensor,
    zeros,
    zeros_like,
)
from .gradcheck import GradcheckError, gradcheck, gradgradcheck
from .io import CheckpointError, load, save
from .ops import (
    abs,
    amax,
    amin,
    cat,
    chunk,
    clamp,
    erf,
    exp,
    expand,
    flatten,
    gelu,
    log,
    log_softmax,
    logsumexp,
    masked_fill,
    matmul,
    maximum,
    mean,
    minimum,
    permute,
    relu,
    reshape,
    sigmoid,
    softmax,
    split,
    sqrt,
    squeeze,
    stack,
    sum,
    tanh,
    transpose,
    unsqueeze,
    unstack,
    var,
    where,
)
from .random import get_rng_state, manual_seed, set_rng_state
from .tensor import Tensor, enable_grad, is_grad_enabled, no_grad, set_grad_enabled

bool = bool_  # noqa: A001 - tinylm.bool, as torch.bool
long = int64
float = float32  # noqa: A001
double = float64

__version__ = "0.1.0"
