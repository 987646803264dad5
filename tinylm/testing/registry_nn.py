"""Registry entries for the functions of ``tinylm.nn.functional``: ``F.linear``, ...

Their samples, error inputs and NumPy references serve the layer entries too
(``registry_layers.py``). Two things gradcheck cannot judge by central differences, and
how they are handled:

- ``padding_idx``: its row gets a zero gradient by definition, not by calculus. The
  entries mask the padding positions of the output, so the numerical derivative
  agrees; that the row's gradient is zero is unit-tested (tests/test_nn_layers.py).
- dropout: a random mask. Samples use p=0, p=1, ``training=False``, or a fixed seed
  (``seed=``, an argument of the entry's op only) so that every call draws the same
  mask; the mask's statistics are unit-tested.
"""

from __future__ import annotations

import numpy as np

from ..nn import functional as F
from ..random import get_rng_state, manual_seed, set_rng_state
from ..tensor import Tensor
from .opinfo import ErrorInput, OpInfo, SampleInput, strided, transposed

f64 = np.float64


def normal(rng, s):
    return rng.standard_normal(s)


class KeepRng:
    """Restore tinylm's RNG state on exit (optionally seeding it on entry)."""

    def __init__(self, seed=None):
        self.seed = seed

    def __enter__(self):
        self.state = get_rng_state()
        if self.seed is not None:
            manual_seed(self.seed)

    def __exit__(self, *exc):
        set_rng_state(self.state)


def padding_mask(y: Tensor, ids, padding_idx, num_embeddings):
    """Zero the output rows at padding positions (see the module docstring)."""
    if padding_idx is None:
        return y
    ids = ids.data if isinstance(ids, Tensor) else ids
    keep = (ids != padding_idx % num_embeddings)[..., None].astype(y.dtype)
    return y * Tensor._wrap(keep)


# ----------------------------------------------------------------------------- references


def np_linear(x, w, b=None):
    return x @ w.T + (0.0 if b is None else b)


def np_embedding(ids, w, padding_idx=None):
    y = w[ids]
    if padding_idx is not None:
        y = y * (ids != padding_idx % w.shape[0])[..., None]
    return y


def np_layer_norm(x, normalized_shape, w=None, b=None, eps=1e-5):
    k = 1 if isinstance(normalized_shape, int) else len(normalized_shape)
    axes = tuple(range(x.ndim - k, x.ndim))
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mu) / np.sqrt(var + eps)
    return y * (1.0 if w is None else w) + (0.0 if b is None else b)


def np_rms_norm(x, normalized_shape, w=None, eps=None):
    k = 1 if isinstance(normalized_shape, int) else len(normalized_shape)
    axes = tuple(range(x.ndim - k, x.ndim))
    eps = np.finfo(x.dtype).eps if eps is None else eps
    y = x / np.sqrt((x * x).mean(axis=axes, keepdims=True) + eps)
    return y * (1.0 if w is None else w)


def np_dropout(x, p=0.5, training=True, seed=None):
    if not training or p == 0:
        return x
    if p == 1:
        return np.zeros_like(x)
    keep = np.random.default_rng(seed).random(x.shape) >= p  # tinylm's generator: PCG64
    return x * keep / (1 - p)


def np_softmax(x, dim):
    if x.size == 0:
        return x
    e = np.exp(x - x.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


# ----------------------------------------------------------------------------- F ops


def f_embedding(input, weight, padding_idx=None):
    """F.embedding, padding positions masked (see the module docstring)."""
    y = F.embedding(input, weight, padding_idx)
    return padding_mask(y, input, padding_idx, weight.shape[0])


def f_dropout(input, p=0.5, training=True, seed=None):
    """F.dropout; with ``seed``, the RNG is seeded for the call and restored after."""
    if seed is None:
        return F.dropout(input, p, training)
    with KeepRng(seed):
        return F.dropout(input, p, training)


# ----------------------------------------------------------------------------- samples


def linear_samples(rng):
    n = lambda *s: normal(rng, s)  # noqa: E731
    return [
        SampleInput((n(2, 3), n(4, 3), n(4))),
        SampleInput((n(3), n(4, 3), n(4)), name="1-D input (3,)"),
        SampleInput((n(2, 5, 3), n(4, 3), n(4)), name="batched (2, 5, 3)"),
        SampleInput((n(2, 3), n(4, 3), None), name="no bias"),
        SampleInput((n(0, 3), n(4, 3), n(4)), name="zero-size batch"),
        SampleInput((n(2, 0), n(4, 0), n(4)), name="in_features=0"),
        SampleInput((n(2, 3), n(0, 3), n(0)), name="out_features=0"),
        SampleInput((strided(n(2, 3)), transposed(n(4, 3)), strided(n(4))),
                    name="strided x, transposed W"),
    ]


def linear_errors(layer=False):
    out = [
        ErrorInput(SampleInput((np.ones((2, 3)), np.ones((4, 5)), np.ones(4))), ValueError,
                   r"linear: input of shape \(2, 3\) does not end in in_features=5 "
                   r"\(weight of shape \(4, 5\)\)"),
        ErrorInput(SampleInput((np.ones((2, 3)), np.ones((4, 3)), np.ones(3))), ValueError,
                   r"linear: bias of shape \(3,\) does not match out_features=4"),
        ErrorInput(SampleInput((np.ones((2, 3), np.float32), np.ones((4, 3)), None)), TypeError,
                   r"linear: dtype mismatch: input is float32, weight is float64"),
        ErrorInput(SampleInput((np.ones((2, 3), np.int64), np.ones((4, 3)), None)), TypeError,
                   r"linear: expected a floating point input, got dtype int64"),
    ]
    if not layer:  # a Linear layer's weight is 2-D by construction
        out.append(ErrorInput(SampleInput((np.ones((2, 3)), np.ones(3), None)), ValueError,
                              r"linear: weight must be 2-D \(out_features, in_features\), "
                              r"got shape \(3,\)"))
    return out


def embedding_samples(rng):
    W = lambda V, C: normal(rng, (V, C))  # noqa: E731
    ids = np.array([[0, 2, 2], [4, 0, 1]])
    return [
        SampleInput((ids, W(5, 3)), name="repeated ids (2, 3)"),
        SampleInput((np.full(6, 1), W(3, 2)), name="one id six times"),
        SampleInput((np.array(3), W(5, 3)), name="0-d id"),
        SampleInput((ids.astype(np.int32), W(5, 3)), name="int32 ids"),
        SampleInput((np.zeros(0, np.int64), W(4, 3)), name="zero-size ids (0,)"),
        SampleInput((np.zeros((2, 0), np.int64), W(4, 3)), name="zero-size ids (2, 0)"),
        SampleInput((ids, W(5, 3)), {"padding_idx": 0}, name="padding_idx=0, repeated"),
        SampleInput((ids, W(5, 3)), {"padding_idx": -1}, name="padding_idx=-1 (row 4)"),
        SampleInput((ids, strided(W(5, 3))), name="strided weight"),
        SampleInput((np.array([[3, 1, 3, 0, 3, 2]])[:, ::2], W(4, 2)), name="strided ids"),
    ]


def embedding_errors(prefix=""):
    def errors():
        big = np.zeros((4, 20), np.int64)
        big[3, 17] = 70
        return [
            ErrorInput(SampleInput((big, np.ones((65, 2)))), IndexError,
                       r"embedding: token id 70 out of range \[0, 65\) at index \(3, 17\)"),
            ErrorInput(SampleInput((np.array([[1, 2], [3, -1]]), np.ones((5, 2)))), IndexError,
                       r"embedding: token id -1 out of range \[0, 5\) at index \(1, 1\)"),
            ErrorInput(SampleInput((np.array([1.0, 2.0]), np.ones((5, 2))), nondiff=(0,)),
                       TypeError, r"embedding: ids must be an integer tensor, got dtype float64"),
            ErrorInput(SampleInput((np.array([True]), np.ones((5, 2)))), TypeError,
                       r"embedding: ids must be an integer tensor, got dtype bool"),
            ErrorInput(SampleInput((np.array([1]), np.ones((5, 2))), {"padding_idx": 5}),
                       ValueError, prefix + r"padding_idx 5 out of range \[-5, 5\)"),
        ]

    return errors


def dropout_samples(rng, train_key="training"):
    n = lambda *s: normal(rng, s)  # noqa: E731
    return [
        SampleInput((n(2, 3),), {"p": 0.0, train_key: True}, name="p=0, training"),
        SampleInput((n(2, 3),), {"p": 0.5, train_key: False}, name="p=0.5, eval"),
        SampleInput((n(4, 5),), {"p": 1.0, train_key: True}, name="p=1: zeros"),
        SampleInput((n(3, 4),), {"p": 0.3, train_key: True, "seed": 0}, name="p=0.3, seed 0"),
        SampleInput((n(0, 3),), {"p": 0.5, train_key: True, "seed": 1}, name="zero-size"),
        SampleInput((n(),), {"p": 0.5, train_key: True, "seed": 2}, name="0-d, seed 2"),
        SampleInput((strided(n(3, 4)),), {"p": 0.5, train_key: True, "seed": 3},
                    name="strided, seed 3"),
    ]


def dropout_errors(name):
    def errors():
        x = np.ones((2, 3))
        return [
            ErrorInput(SampleInput((x,), {"p": 1.5}), ValueError,
                       rf"{name}: probability has to be between 0 and 1, but got 1.5"),
            ErrorInput(SampleInput((x,), {"p": -0.1}), ValueError,
                       rf"{name}: probability has to be between 0 and 1, but got -0.1"),
            ErrorInput(SampleInput((np.arange(3),), {"p": 0.5}), TypeError,
                       r"dropout: expected a floating point input, got dtype int64"),
        ]

    return errors


def layer_norm_samples(rng):
    n = lambda *s: normal(rng, s)  # noqa: E731
    return [
        SampleInput((n(2, 5), (5,), n(5), n(5))),
        SampleInput((n(2, 3, 4), (3, 4), n(3, 4), n(3, 4)), name="normalized over (3, 4)"),
        SampleInput((n(2, 3, 4), 4, None, None), name="int shape, no affine"),
        SampleInput((n(3, 4), (4,), n(4), None), name="weight only"),
        SampleInput((n(4), (4,), n(4), n(4)), name="1-D input"),
        SampleInput((n(0, 4), (4,), n(4), n(4)), name="zero-size batch"),
        SampleInput((strided(n(3, 4)), (4,), strided(n(4)), n(4)), name="strided"),
        SampleInput((n(2, 4) * 0.01 + 100.0, (4,), n(4), n(4)), {"eps": 0.1},
                    name="offset 100, small spread, eps=0.1"),
    ]


def _layer_norm_errors():
    x = np.ones((2, 4))
    return [
        ErrorInput(SampleInput((x, (5,), None, None)), ValueError,
                   r"layer_norm: normalized_shape \(5,\) does not match the trailing dims of "
                   r"the input of shape \(2, 4\) \(expected \(\*, 5\)\)"),
        ErrorInput(SampleInput((x, (4,), np.ones(3), None)), ValueError,
                   r"layer_norm: weight of shape \(3,\) does not match normalized_shape \(4,\)"),
        ErrorInput(SampleInput((x.astype(np.float32), (4,), np.ones(4), None)), TypeError,
                   r"layer_norm: dtype mismatch: input is float32, weight is float64"),
        ErrorInput(SampleInput((np.ones((2, 4), np.int64), (4,), None, None)), TypeError,
                   r"layer_norm: expected a floating point input, got dtype int64"),
        ErrorInput(SampleInput((x, (), None, None)), ValueError,
                   r"layer_norm: normalized_shape must have at least one dim"),
        ErrorInput(SampleInput((x, (4,), None, None), {"eps": -1.0}), ValueError,
                   r"layer_norm: eps must be non-negative, got -1.0"),
    ]


def rms_norm_samples(rng):
    n = lambda *s: normal(rng, s)  # noqa: E731
    return [
        SampleInput((n(2, 5), (5,), n(5))),
        SampleInput((n(2, 3, 4), (3, 4), n(3, 4)), name="normalized over (3, 4)"),
        SampleInput((n(2, 3, 4), 4, None), name="int shape, no weight"),
        SampleInput((n(4), (4,), n(4)), {"eps": 1e-6}, name="1-D input, eps=1e-6"),
        SampleInput((n(0, 4), (4,), n(4)), name="zero-size batch"),
        SampleInput((strided(n(3, 4)), (4,), strided(n(4))), name="strided"),
    ]


def _rms_norm_errors():
    x = np.ones((2, 4))
    return [
        ErrorInput(SampleInput((x, (3,), None)), ValueError,
                   r"rms_norm: normalized_shape \(3,\) does not match the trailing dims"),
        ErrorInput(SampleInput((x, (4,), np.ones((1, 4)))), ValueError,
                   r"rms_norm: weight of shape \(1, 4\) does not match normalized_shape \(4,\)"),
        ErrorInput(SampleInput((x, (4,), np.ones(4, np.float32))), TypeError,
                   r"rms_norm: dtype mismatch: input is float64, weight is float32"),
    ]


NN = [
    OpInfo("F.linear", F.linear, linear_samples, linear_errors, ref=np_linear),
    OpInfo("F.embedding", f_embedding, embedding_samples, embedding_errors("embedding: "),
           ref=np_embedding, notes="padding positions masked: the padding row's zero gradient "
           "is a rule, not a derivative (unit-tested)"),
    OpInfo("F.dropout", f_dropout, dropout_samples, dropout_errors("dropout"),
           ref=np_dropout, notes="p=0, p=1, eval, and fixed seeds; mask statistics unit-tested"),
    OpInfo("F.layer_norm", F.layer_norm, layer_norm_samples, _layer_norm_errors,
           ref=np_layer_norm),
    OpInfo("F.rms_norm", F.rms_norm, rms_norm_samples, _rms_norm_errors, ref=np_rms_norm),
]
