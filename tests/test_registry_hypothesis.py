"""Hypothesis on top of the registry's fixed samples: random shapes (broadcast pairs and
zero-size dims included), random dims, random values, each gradchecked in float64."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinylm
from tinylm.testing import get_op
from tinylm.testing.opinfo import SampleInput
from tinylm.testing.sweep import check_gradient, check_layouts, check_reference

pytestmark = pytest.mark.lesson02

SETTINGS = settings(max_examples=15, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

# small shapes keep full Jacobians cheap: at most 4 dims of at most 3 (0 allowed)
broadcast_pairs = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3,
                                                    min_side=0, max_side=3)
shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3)


def values(draw, shape, low=-2.0, high=2.0):
    return draw(hnp.arrays(np.float64, shape,
                           elements=st.floats(low, high, allow_nan=False, width=64)))


def away_from_zero(draw, shape):
    x = values(draw, shape, 0.3, 2.0)
    signs = draw(hnp.arrays(np.float64, shape, elements=st.sampled_from([-1.0, 1.0])))
    return x * signs


def run_all(name, sample):
    info = get_op(name)
    check_reference(info, sample)
    check_gradient(info, sample)
    check_layouts(info, sample)


@pytest.mark.parametrize("name", ["add", "sub", "mul", "div"])
@SETTINGS
@given(data=st.data(), pair=broadcast_pairs)
def test_binary_ops_on_broadcast_shapes(name, data, pair):
    sa, sb = pair.input_shapes
    a = values(data.draw, sa)
    b = away_from_zero(data.draw, sb) if name == "div" else values(data.draw, sb)
    run_all(name, SampleInput((a, b)))


@pytest.mark.parametrize("name", ["maximum", "minimum"])
@SETTINGS
@given(data=st.data(), pair=broadcast_pairs)
def test_max_min_without_ties(name, data, pair):
    sa, sb = pair.input_shapes
    a = values(data.draw, sa)
    b = values(data.draw, sb)
    # keep every pair at least 0.01 apart so central differences never cross a tie
    close = np.abs(np.broadcast_to(a, pair.result_shape) - b) < 0.01
    if close.any():
        b = b + 0.05 * np.ones(sb)
        close = np.abs(np.broadcast_to(a, pair.result_shape) - b) < 0.01
    if not close.any():
        run_all(name, SampleInput((a, b)))


@pytest.mark.parametrize("name", ["exp", "tanh", "sigmoid", "gelu", "erf", "neg"])
@SETTINGS
@given(data=st.data(), shape=shapes)
def test_smooth_unary_ops(name, data, shape):
    run_all(name, SampleInput((values(data.draw, shape),)))


@pytest.mark.parametrize("name", ["abs", "relu"])
@SETTINGS
@given(data=st.data(), shape=shapes)
def test_kinked_unary_ops_away_from_the_kink(name, data, shape):
    run_all(name, SampleInput((away_from_zero(data.draw, shape),)))


@SETTINGS
@given(data=st.data(), shape=shapes)
def test_log_and_sqrt_on_positive_values(data, shape):
    x = values(data.draw, shape, 0.1, 5.0)
    run_all("log", SampleInput((x,)))
    run_all("sqrt", SampleInput((x,)))


def dims_for(draw, ndim):
    """None, one dim (maybe negative), or a tuple of distinct dims."""
    if ndim == 0:
        return None
    kind = draw(st.sampled_from(["none", "one", "tuple"]))
    if kind == "none":
        return None
    if kind == "one":
        return draw(st.integers(-ndim, ndim - 1))
    return tuple(draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim,
                               unique=True)))


@pytest.mark.parametrize("name", ["sum", "mean", "logsumexp", "amax", "amin", "var"])
@SETTINGS
@given(data=st.data(), shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3))
def test_reductions_over_random_dims(name, data, shape):
    dim = dims_for(data.draw, len(shape))
    keepdim = data.draw(st.booleans())
    n = int(np.prod([shape[d] for d in ([dim] if isinstance(dim, int) else dim or
                                       range(len(shape)))]))
    if name == "var" and n < 2:
        return
    if name in ("amax", "amin"):
        # distinct values: a random permutation of a grid 0.01 apart has no ties
        x = data.draw(st.permutations(np.linspace(-2, 2, int(np.prod(shape))).tolist()))
        x = np.array(x, dtype=np.float64).reshape(shape)
    else:
        x = values(data.draw, shape)
    if name == "logsumexp" and dim is None:
        dim = tuple(range(len(shape)))
    run_all(name, SampleInput((x,), {"dim": dim, "keepdim": keepdim}))


@SETTINGS
@given(data=st.data(), batch=broadcast_pairs, n=st.integers(1, 3), k=st.integers(0, 3),
       m=st.integers(1, 3))
def test_matmul_with_broadcast_batches(data, batch, n, k, m):
    sa, sb = batch.input_shapes
    a = values(data.draw, sa + (n, k))
    b = values(data.draw, sb + (k, m))
    run_all("matmul", SampleInput((a, b)))


@SETTINGS
@given(data=st.data(), shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
def test_getitem_with_random_repeated_indices(data, shape):
    idx = np.array(data.draw(st.lists(st.integers(-shape[0], shape[0] - 1), min_size=1,
                                      max_size=6)))
    run_all("getitem", SampleInput((values(data.draw, shape), idx)))
    # repeated indices really accumulate: the gradient counts how often each row was picked
    x = tinylm.tensor(np.zeros(shape), requires_grad=True)
    x[tinylm.tensor(idx)].sum().backward()
    counts = np.bincount(idx % shape[0], minlength=shape[0]).astype(float)
    np.testing.assert_array_equal(x.grad.numpy(), np.broadcast_to(
        counts.reshape((-1,) + (1,) * (len(shape) - 1)), shape))
