"""Tie and kink rules that the registry's samples deliberately avoid, checked directly.

At a tie or a kink the derivative is not defined; tinylm picks PyTorch's convention
in each case, documented in the op's docstring, and these tests pin it.
"""

from __future__ import annotations

import numpy as np
import pytest

import tinylm

pytestmark = pytest.mark.lesson02


def leaf(values):
    return tinylm.tensor(np.array(values, dtype=np.float64), requires_grad=True)


@pytest.mark.parametrize("op", [tinylm.maximum, tinylm.minimum])
def test_a_tie_splits_the_gradient_evenly(op):
    a, b = leaf([1.0, 2.0, 5.0]), leaf([1.0, 3.0, 4.0])
    (op(a, b) * leaf([10.0, 20.0, 30.0]).detach()).sum().backward()
    # element 0 is a tie: 10 is split 5/5; elements 1 and 2 go wholly to the winner
    want_a = [5.0, 0.0, 30.0] if op is tinylm.maximum else [5.0, 20.0, 0.0]
    want_b = [5.0, 20.0, 0.0] if op is tinylm.maximum else [5.0, 0.0, 30.0]
    np.testing.assert_array_equal(a.grad.numpy(), want_a)
    np.testing.assert_array_equal(b.grad.numpy(), want_b)


def test_a_tie_under_broadcasting_sums_the_halves():
    a = leaf([[2.0], [0.0]])  # (2, 1)
    b = leaf([2.0, 2.0, 1.0])  # (3,)
    tinylm.maximum(a, b).sum().backward()
    # row 0: a=2 ties b=2 twice (1/2 + 1/2) and beats b=1 once (1) -> 2
    # row 1: a=0 loses to all three -> 0
    np.testing.assert_array_equal(a.grad.numpy(), [[2.0], [0.0]])
    # b[0], b[1]: half from the row-0 tie + all of row 1; b[2]: only row 1
    np.testing.assert_array_equal(b.grad.numpy(), [1.5, 1.5, 1.0])


@pytest.mark.parametrize(("op", "x", "want"), [
    (tinylm.amax, [1.0, 3.0, 3.0, -2.0], [0.0, 0.5, 0.5, 0.0]),
    (tinylm.amin, [-2.0, 3.0, -2.0, -2.0], [1 / 3, 0.0, 1 / 3, 1 / 3]),
])
def test_amax_amin_share_the_gradient_among_ties(op, x, want):
    t = leaf(x)
    op(t).backward()
    np.testing.assert_allclose(t.grad.numpy(), want, rtol=0, atol=1e-15)


def test_amax_ties_per_slice_along_a_dim():
    t = leaf([[1.0, 1.0], [0.0, 2.0]])
    tinylm.amax(t, dim=1).sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), [[0.5, 0.5], [0.0, 1.0]])


def test_kinks_follow_pytorch():
    x = leaf([-1.0, 0.0, 1.0])
    tinylm.relu(x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 1.0])  # relu'(0) = 0
    x = leaf([-1.0, 0.0, 1.0])
    x.abs().sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [-1.0, 0.0, 1.0])  # |x|'(0) = 0
    x = leaf([-1.0, -0.5, 0.0, 0.7, 1.0])
    x.clamp(min=-0.5, max=0.7).sum().backward()
    # inside [min, max], bounds included, the gradient passes; outside it is 0
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 1.0, 1.0, 1.0, 0.0])


def test_where_routes_each_element_to_one_branch():
    cond = tinylm.tensor([True, False, True])
    a, b = leaf([1.0, 2.0, 3.0]), leaf([4.0])  # b broadcasts
    tinylm.where(cond, a, b).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(b.grad.numpy(), [1.0])  # one element picked from b


def test_masked_fill_cuts_the_gradient_where_filled():
    x = leaf([[1.0, 2.0], [3.0, 4.0]])
    y = x.masked_fill(tinylm.tensor([True, False]), float("-inf"))
    np.testing.assert_array_equal(y.detach().numpy(), [[-np.inf, 2.0], [-np.inf, 4.0]])
    y.masked_fill(tinylm.tensor([True, False]), 0.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0.0, 1.0], [0.0, 1.0]])
