"""Registry entries for the layers of ``tinylm.nn``: ``nn.Linear``, ``nn.Embedding``, ...

Each entry's op builds the layer in float64 and puts the sample's own tensors in as
its parameters (``_with_params``, a functional call), so gradcheck checks the
gradients of the parameters as well as of the input. Building a layer draws its
initial weights; the RNG is saved and restored around it, so sweeping the registry
never changes the random stream a test sees. Samples, references and the handling of
padding_idx and dropout are those of the F entries (``registry_nn.py``).
"""

from __future__ import annotations

import math

import numpy as np

from .. import nn
from .opinfo import ErrorInput, OpInfo, SampleInput, away_from, strided
from .registry_nn import (
    KeepRng,
    dropout_errors,
    dropout_samples,
    embedding_errors,
    embedding_samples,
    layer_norm_samples,
    linear_errors,
    linear_samples,
    normal,
    np_dropout,
    np_embedding,
    np_layer_norm,
    np_linear,
    np_rms_norm,
    np_softmax,
    padding_mask,
    rms_norm_samples,
)

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _with_params(build, **params):
    """Build a layer (RNG left untouched) and use the given tensors as its parameters."""
    with KeepRng():
        m = build()
    for name, t in params.items():
        m._parameters[name] = t  # the sample's leaf itself, so its gradient is checked
    return m


# ----------------------------------------------------------------------------- layer ops


def nn_linear(input, weight, bias=None):
    out_f, in_f = weight.shape
    m = _with_params(lambda: nn.Linear(in_f, out_f, bias=bias is not None, dtype=weight.dtype),
                     weight=weight, **({"bias": bias} if bias is not None else {}))
    return m(input)


def nn_embedding(input, weight, padding_idx=None):
    V, C = weight.shape
    m = _with_params(lambda: nn.Embedding(V, C, padding_idx, dtype=weight.dtype), weight=weight)
    return padding_mask(m(input), input, padding_idx, V)


def nn_layer_norm(input, weight, bias, normalized_shape=None, eps=1e-5):
    shape = tuple(weight.shape) if normalized_shape is None else normalized_shape
    m = _with_params(lambda: nn.LayerNorm(shape, eps, elementwise_affine=weight is not None,
                                          bias=bias is not None, dtype=input.dtype),
                     **{k: v for k, v in (("weight", weight), ("bias", bias)) if v is not None})
    return m(input)


def nn_rms_norm(input, weight, normalized_shape=None, eps=None):
    shape = tuple(weight.shape) if normalized_shape is None else normalized_shape
    m = _with_params(lambda: nn.RMSNorm(shape, eps, elementwise_affine=weight is not None,
                                        dtype=input.dtype),
                     **({"weight": weight} if weight is not None else {}))
    return m(input)


def nn_dropout(input, p=0.5, train=True, seed=None):
    m = nn.Dropout(p).train(train)
    if seed is None:
        return m(input)
    with KeepRng(seed):
        return m(input)


def nn_sequential(input, w1, b1, w2, b2):
    """Sequential(Linear, Tanh, Linear), its parameters "0.weight", ... from the sample."""
    def build():
        return nn.Sequential(nn.Linear(w1.shape[1], w1.shape[0], dtype=w1.dtype), nn.Tanh(),
                             nn.Linear(w2.shape[1], w2.shape[0], dtype=w2.dtype))
    with KeepRng():
        m = build()
    _with_params(lambda: m[0], weight=w1, bias=b1)
    _with_params(lambda: m[2], weight=w2, bias=b2)
    return m(input)


def _activation(cls, **fixed):
    def op(input, **kw):
        return cls(**fixed, **kw)(input)

    op.__name__ = f"nn_{cls.__name__.lower()}"
    return op


def _nn_layer_norm_samples(rng):
    """F.layer_norm's samples as (x, weight, bias, normalized_shape=...)."""
    out = []
    for s in layer_norm_samples(rng):
        x, shape, w, b = s.args
        out.append(SampleInput((x, w, b), {"normalized_shape": shape, **s.kwargs}, name=s.name))
    return out


def _nn_rms_norm_samples(rng):
    out = []
    for s in rms_norm_samples(rng):
        x, shape, w = s.args
        out.append(SampleInput((x, w), {"normalized_shape": shape, **s.kwargs}, name=s.name))
    return out


def _unary_samples(values):
    def samples(rng):
        out = [SampleInput((values(rng, s),)) for s in [(), (5,), (2, 3), (0, 3), (2, 3, 2)]]
        out.append(SampleInput((strided(values(rng, (3, 4))),), name="strided (3, 4)"))
        return out

    return samples


def _gelu_samples(rng):
    base = _unary_samples(lambda r, s: r.uniform(-3, 3, s))(rng)
    return base + [SampleInput(s.args, {"approximate": "tanh"}, name=f"tanh: {s.describe()}")
                   for s in base[1:4]]


def _softmax_samples(rng):
    out = [SampleInput((normal(rng, s),), {"dim": d})
           for s, d in [((2, 5), -1), ((2, 5), 0), ((3, 2, 4), 1), ((0, 3), 1)]]
    out.append(SampleInput((strided(normal(rng, (3, 4))),), {"dim": -1}, name="strided"))
    return out


def _sequential_samples(rng):
    n = lambda *s: normal(rng, s)  # noqa: E731
    return [
        SampleInput((n(2, 3), n(4, 3), n(4), n(2, 4), n(2))),
        SampleInput((n(2, 2, 3), n(4, 3), n(4), n(2, 4), n(2)), name="batched (2, 2, 3)"),
    ]


def _float_errors(name):
    def errors():
        return [ErrorInput(SampleInput((np.arange(3),)), TypeError,
                           rf"{name}: expected a floating point tensor, got dtype int64")]

    return errors


LAYERS = [
    OpInfo("nn.Linear", nn_linear, linear_samples, lambda: linear_errors(layer=True),
           ref=np_linear),
    OpInfo("nn.Embedding", nn_embedding, embedding_samples, embedding_errors("Embedding: "),
           ref=np_embedding, notes="as F.embedding"),
    OpInfo("nn.Dropout", nn_dropout, lambda rng: dropout_samples(rng, "train"),
           dropout_errors("Dropout"),
           ref=lambda x, p=0.5, train=True, seed=None: np_dropout(x, p, train, seed)),
    OpInfo("nn.LayerNorm", nn_layer_norm, _nn_layer_norm_samples, lambda: [
        ErrorInput(SampleInput((np.ones((2, 4)), np.ones(5), np.ones(5))), ValueError,
                   r"layer_norm: normalized_shape \(5,\) does not match")],
        ref=lambda x, w, b, normalized_shape=None, eps=1e-5: np_layer_norm(
            x, w.shape if normalized_shape is None else normalized_shape, w, b, eps)),
    OpInfo("nn.RMSNorm", nn_rms_norm, _nn_rms_norm_samples, lambda: [
        ErrorInput(SampleInput((np.ones((2, 4)), np.ones(5))), ValueError,
                   r"rms_norm: normalized_shape \(5,\) does not match")],
        ref=lambda x, w, normalized_shape=None, eps=None: np_rms_norm(
            x, w.shape if normalized_shape is None else normalized_shape, w, eps)),
    OpInfo("nn.ReLU", _activation(nn.ReLU), _unary_samples(
        lambda r, s: away_from(r, s, (0.0,), margin=0.3)), ref=lambda x: np.maximum(x, 0),
        notes="kink at 0: values kept 0.3 away"),
    OpInfo("nn.GELU", _activation(nn.GELU), _gelu_samples, _float_errors("gelu"),
           ref=lambda x, approximate="none": (
               0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
               if approximate == "tanh" else 0.5 * x * (1 + _erf(x / math.sqrt(2))))),
    OpInfo("nn.Tanh", _activation(nn.Tanh), _unary_samples(normal), _float_errors("tanh"),
           ref=np.tanh),
    OpInfo("nn.Sigmoid", _activation(nn.Sigmoid), _unary_samples(normal),
           _float_errors("sigmoid"), ref=lambda x: 0.5 * (1 + np.tanh(x / 2))),
    OpInfo("nn.Softmax", _activation(nn.Softmax), _softmax_samples, lambda: [
        ErrorInput(SampleInput((np.ones((2, 3)),), {"dim": None}), TypeError,
                   r"softmax: dim is required"),
        ErrorInput(SampleInput((np.ones((2, 3)),), {"dim": 2}), IndexError,
                   r"softmax: dim 2 out of range")], ref=np_softmax),
    OpInfo("nn.Sequential", nn_sequential, _sequential_samples, lambda: [
        ErrorInput(SampleInput((np.ones((2, 5)), np.ones((4, 3)), np.ones(4), np.ones((2, 4)),
                                np.ones(2))), ValueError,
                   r"linear: input of shape \(2, 5\) does not end in in_features=3")],
        ref=lambda x, w1, b1, w2, b2: np.tanh(x @ w1.T + b1) @ w2.T + b2,
        notes="Sequential(Linear, Tanh, Linear)"),
]
