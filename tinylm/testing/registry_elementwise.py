"""Registry entries for elementwise ops: arithmetic, unary functions, selection."""

from __future__ import annotations

import math
import operator

import numpy as np

from .. import ops
from .opinfo import ErrorInput, OpInfo, SampleInput, away_from, strided, transposed

f64 = np.float64

# ----------------------------------------------------------------------------- shapes

UNARY_SHAPES = [(), (5,), (2, 3), (0, 3), (2, 3, 2)]
BINARY_SHAPES = [
    ((2, 3), (2, 3)),
    ((2, 3), (3,)),  # broadcast over the leading dim
    ((2, 1), (1, 3)),  # both sides broadcast
    ((), (2, 3)),  # 0-d with a matrix
    ((3, 1, 2), (4, 1)),  # rank-3 against rank-2
    ((0, 3), (1, 3)),  # zero-size
]


def unary_samples(values):
    """Samples of a unary op with values from ``values(rng, shape)``."""

    def samples(rng):
        out = [SampleInput((values(rng, s),)) for s in UNARY_SHAPES]
        out.append(SampleInput((strided(values(rng, (3, 4))),), name="strided view (3, 4)"))
        out.append(SampleInput((transposed(values(rng, (3, 4))),), name="transposed (4, 3)"))
        return out

    return samples


def binary_samples(va, vb, scalar_b=1.7, scalar_a=1.3):
    """Samples of a binary op: broadcast pairs, views, and a Python number on either side
    (the number on the left exercises the reversed operator, e.g. ``__radd__``)."""

    def samples(rng):
        out = [SampleInput((va(rng, sa), vb(rng, sb))) for sa, sb in BINARY_SHAPES]
        out.append(SampleInput((transposed(va(rng, (2, 3))), strided(vb(rng, (2, 3)))),
                               name="transposed (2, 3) with strided (2, 3)"))
        if scalar_b is not None:
            out.append(SampleInput((va(rng, (2, 3)), scalar_b), name=f"tensor, {scalar_b}"))
        if scalar_a is not None:
            out.append(SampleInput((scalar_a, vb(rng, (2, 3))), name=f"{scalar_a}, tensor"))
        return out

    return samples


def normal(rng, s):
    return rng.standard_normal(s)


def positive(rng, s):
    return rng.uniform(0.5, 2.0, s)


def nonzero(rng, s):
    return away_from(rng, s, (0.0,), margin=0.3)


def _binary_errors(name, op):
    def errors():
        a, b = np.ones((2, 3)), np.ones((4,))
        return [
            ErrorInput(SampleInput((a, b)), ValueError,
                       rf"{name}: shapes \(2, 3\) and \(4,\) do not broadcast"),
            ErrorInput(SampleInput((a, np.ones(3, np.float32))), TypeError,
                       rf"{name}: dtype mismatch float64 vs float32"),
        ]

    return errors


def _float_only_errors(name):
    def errors():
        return [ErrorInput(SampleInput((np.arange(3),)), TypeError,
                           rf"{name}: expected a floating point tensor, got dtype int64")]

    return errors


_erf_ref = np.vectorize(math.erf, otypes=[f64])


def _gelu_ref(x, approximate="none"):
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1 + _erf_ref(x / math.sqrt(2)))


def _gelu_samples(rng):
    base = unary_samples(lambda r, s: r.uniform(-3, 3, s))(rng)
    tanh = [SampleInput(s.args, {"approximate": "tanh"}, name=f"tanh: {s.describe()}")
            for s in base[:4]]
    return base + tanh


def _extreme(values_fn, extremes):
    """Add a sample of extreme values (where an op could overflow) to a sample maker."""

    def samples(rng):
        return values_fn(rng) + [SampleInput((np.array(extremes, dtype=f64),), name="extremes")]

    return samples


def _clamp_samples(rng):
    x = lambda s: away_from(rng, s, (-0.5, 0.7))  # noqa: E731 - kinks at the bounds
    return [
        SampleInput((x((2, 3)),), {"min": -0.5, "max": 0.7}),
        SampleInput((x((5,)),), {"min": -0.5}),
        SampleInput((x((5,)),), {"max": 0.7}),
        SampleInput((x(()),), {"min": -0.5, "max": 0.7}),
        SampleInput((x((0, 2)),), {"min": -0.5, "max": 0.7}),
        SampleInput((strided(x((3, 4))),), {"min": -0.5, "max": 0.7}, name="strided"),
    ]


def _clamp_errors():
    x = np.ones(3)
    return [
        ErrorInput(SampleInput((x,), {"min": 1.0, "max": 0.0}), ValueError,
                   r"clamp: min \(1.0\) is greater than max \(0.0\)"),
        ErrorInput(SampleInput((x,), {}), ValueError, r"clamp: at least one of min and max"),
    ]


def _tie_free_pair(rng):
    """maximum/minimum samples: a's values and b's come from interleaved grids 0.002
    apart, so a never equals b anywhere and the tie rule never decides a sample."""
    grid = np.linspace(-2.0, 2.0, 2001)

    def a(r, s):
        return r.choice(grid[0::2], size=s)

    def b(r, s):
        return r.choice(grid[1::2], size=s)

    return binary_samples(a, b, scalar_b=None, scalar_a=None)(rng)


def _where_samples(rng):
    cond = lambda s: np.asarray(rng.random(s) > 0.5)  # noqa: E731
    return [
        SampleInput((cond((2, 3)), normal(rng, (2, 3)), normal(rng, (2, 3)))),
        SampleInput((cond((2, 3)), normal(rng, (3,)), normal(rng, (2, 1))), name="broadcast"),
        SampleInput((cond((3,)), normal(rng, (2, 3)), 0.5), name="number as other"),
        SampleInput((cond(()), normal(rng, ()), normal(rng, ()))),
        SampleInput((cond((0, 2)), normal(rng, (0, 2)), normal(rng, (0, 2)))),
    ]


def _where_errors():
    return [
        ErrorInput(SampleInput((np.ones(3), np.ones(3), np.ones(3)), nondiff=(0,)), TypeError,
                   r"where: condition must have dtype bool, got float64"),
        ErrorInput(SampleInput((np.ones(3, bool), np.ones((2, 3)), np.ones(4))), ValueError,
                   r"where: shapes \(2, 3\) and \(4,\) do not broadcast"),
    ]


def _masked_fill_samples(rng):
    m = lambda s: np.asarray(rng.random(s) > 0.5)  # noqa: E731
    return [
        SampleInput((normal(rng, (2, 3)), m((2, 3)), -1.5)),
        SampleInput((normal(rng, (2, 3)), m((3,)), float("-inf")), name="row mask, -inf",
                    gradgrad=True),
        SampleInput((normal(rng, (4, 2, 3)), m((2, 1)), 0.0), name="broadcast mask"),
        SampleInput((normal(rng, ()), np.array(True), 2.0)),
        SampleInput((strided(normal(rng, (3, 4))), m((3, 4)), 7.0), name="strided"),
    ]


def _masked_fill_errors():
    return [
        ErrorInput(SampleInput((np.ones(3), np.ones(3), 0.0), nondiff=(1,)), TypeError,
                   r"masked_fill: mask must have dtype bool"),
        ErrorInput(SampleInput((np.ones(3), np.ones((2, 3), bool), 0.0)), ValueError,
                   r"masked_fill: mask of shape \(2, 3\) must broadcast to the input's shape"),
    ]


def _pow_samples(rng):
    tensor_exp = binary_samples(positive, normal, scalar_b=None, scalar_a=2.0)(rng)
    return tensor_exp + [
        SampleInput((normal(rng, (2, 3)), 2), name="x ** 2"),
        SampleInput((normal(rng, (2, 3)), 3), name="x ** 3"),
        SampleInput((positive(rng, (2, 3)), 0.5), name="x ** 0.5"),
        SampleInput((positive(rng, (2, 3)), -1.5), name="x ** -1.5"),
        SampleInput((normal(rng, (4,)), 0), name="x ** 0"),
        SampleInput((normal(rng, (4,)), 1), name="x ** 1"),
    ]


def _pow_errors():
    return _binary_errors("pow", operator.pow)() + [
        ErrorInput(SampleInput((np.arange(3), 0.5)), TypeError,
                   r"pow: integer tensor to the power 0.5"),
    ]


def _div_errors():
    return _binary_errors("div", operator.truediv)() + [
        ErrorInput(SampleInput((np.arange(3), np.arange(1, 4))), TypeError,
                   r"div: both operands are integers"),
    ]


ELEMENTWISE = [
    OpInfo("add", operator.add, binary_samples(normal, normal), _binary_errors("add", None),
           ref=np.add),
    OpInfo("sub", operator.sub, binary_samples(normal, normal), _binary_errors("sub", None),
           ref=np.subtract),
    OpInfo("mul", operator.mul, binary_samples(normal, normal), _binary_errors("mul", None),
           ref=np.multiply),
    OpInfo("div", operator.truediv, binary_samples(normal, nonzero), _div_errors,
           ref=np.divide, notes="denominators kept at least 0.3 away from 0"),
    OpInfo("neg", operator.neg, unary_samples(normal), ref=np.negative),
    OpInfo("pow", operator.pow, _pow_samples, _pow_errors, ref=np.power,
           notes="tensor exponents use positive bases (the derivative in b needs ln a)"),
    OpInfo("exp", ops.exp, _extreme(unary_samples(normal), [-700.0, -50.0, 50.0, 300.0]),
           _float_only_errors("exp"), ref=np.exp),
    OpInfo("log", ops.log, _extreme(unary_samples(positive), [1e-3, 1e8, 1e300]),
           _float_only_errors("log"), ref=np.log),
    OpInfo("sqrt", ops.sqrt, _extreme(unary_samples(positive), [1e-2, 1e100]),
           _float_only_errors("sqrt"), ref=np.sqrt),
    OpInfo("abs", ops.abs, unary_samples(nonzero), ref=np.abs,
           notes="kink at 0: values kept 0.3 away; the gradient at 0 is 0, as PyTorch"),
    OpInfo("tanh", ops.tanh, _extreme(unary_samples(normal), [-30.0, -15.0, 15.0, 30.0]),
           _float_only_errors("tanh"), ref=np.tanh),
    OpInfo("sigmoid", ops.sigmoid, _extreme(unary_samples(normal), [-800.0, -40.0, 40.0, 800.0]),
           _float_only_errors("sigmoid"), ref=lambda x: 0.5 * (1 + np.tanh(x / 2))),
    OpInfo("relu", ops.relu, unary_samples(nonzero), ref=lambda x: np.maximum(x, 0),
           notes="kink at 0: values kept 0.3 away; the gradient at 0 is 0, as PyTorch"),
    OpInfo("erf", ops.erf, unary_samples(normal), _float_only_errors("erf"), ref=_erf_ref),
    OpInfo("gelu", ops.gelu, _gelu_samples, lambda: [
        ErrorInput(SampleInput((np.ones(2),), {"approximate": "fast"}), ValueError,
                   r"gelu: approximate must be 'none' or 'tanh'")] + _float_only_errors("gelu")(),
        ref=_gelu_ref),
    OpInfo("clamp", ops.clamp, _clamp_samples, _clamp_errors,
           ref=lambda x, min=None, max=None: np.clip(x, min, max),
           notes="values kept 0.1 away from the bounds; at a bound the gradient passes (PyTorch)"),
    OpInfo("maximum", ops.maximum, _tie_free_pair, _binary_errors("maximum", None),
           ref=np.maximum, notes="tie rule: equal inputs split the gradient 1/2 each (PyTorch); "
           "samples avoid ties, tests/test_ops_select.py checks the rule itself"),
    OpInfo("minimum", ops.minimum, _tie_free_pair, _binary_errors("minimum", None),
           ref=np.minimum, notes="tie rule as maximum"),
    OpInfo("where", ops.where, _where_samples, _where_errors, ref=np.where),
    OpInfo("masked_fill", ops.masked_fill, _masked_fill_samples, _masked_fill_errors,
           ref=lambda x, m, v: np.where(m, v, x)),
]
