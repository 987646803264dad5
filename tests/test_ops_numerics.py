"""Numerical stability at extreme values, with exact expected results.

Each test runs with NumPy's overflow and invalid-operation checks turned into errors,
so an intermediate inf or nan anywhere (not just in the result) fails it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import tinylm

pytestmark = pytest.mark.lesson02


@pytest.fixture(autouse=True)
def strict_float():
    with np.errstate(over="raise", invalid="raise"):
        yield


@pytest.mark.parametrize(("dtype", "big"), [(np.float32, 1e4), (np.float64, 1e30)])
def test_softmax_and_log_softmax_at_huge_logits(dtype, big):
    z = tinylm.tensor(np.array([[big, -big, 0.0], [big, big, -big]], dtype=dtype),
                      requires_grad=True)
    p = z.softmax(dim=1)
    np.testing.assert_array_equal(p.detach().numpy(), np.array([[1, 0, 0], [0.5, 0.5, 0]], dtype))
    lp = z.log_softmax(dim=1)
    want = np.array([[0.0, -2 * big, -big], [-math.log(2), -math.log(2), -2 * big - math.log(2)]])
    np.testing.assert_allclose(lp.detach().numpy(), want.astype(dtype), rtol=1e-6)
    (lp[:, 0]).sum().backward()
    # d log p_0 / d z = e_0 - p: row 0 -> [0, 0, 0]; row 1 -> [0.5, -0.5, 0]
    np.testing.assert_allclose(z.grad.numpy(), np.array([[0, 0, 0], [0.5, -0.5, 0]], dtype),
                               atol=1e-7)
    assert z.grad.dtype == dtype


@pytest.mark.parametrize(("dtype", "big"), [(np.float32, 1e4), (np.float64, 1e30)])
def test_logsumexp_at_huge_logits(dtype, big):
    x = tinylm.tensor(np.array([[big, big], [-big, -big]], dtype=dtype), requires_grad=True)
    y = x.logsumexp(dim=1)
    want = np.array([big + math.log(2), -big + math.log(2)], dtype=np.float64)
    np.testing.assert_allclose(y.detach().numpy(), want.astype(dtype), rtol=1e-7)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 2), 0.5, dtype))


def test_logsumexp_of_infinite_slices():
    with np.errstate(divide="ignore"):  # log(0) = -inf is the right answer here
        x = tinylm.tensor([[-np.inf, -np.inf], [np.inf, 1.0], [-np.inf, 2.0]])
        np.testing.assert_array_equal(x.logsumexp(dim=1).numpy(), [-np.inf, np.inf, 2.0])


@pytest.mark.parametrize(("dtype", "big"), [(np.float32, 100.0), (np.float64, 800.0)])
def test_sigmoid_never_overflows(dtype, big):
    x = tinylm.tensor(np.array([-big, -30.0, 0.0, 30.0, big], dtype=dtype), requires_grad=True)
    y = x.sigmoid()
    got = y.detach().numpy()
    # e^{-100} = 3.7e-44 is a float32 denormal, e^{-800} underflows float64 to 0
    assert 0.0 <= got[0] < 1e-40 and got[2] == 0.5 and got[-1] == 1.0
    # relative accuracy in the far tail, where 1 / (1 + e^{30}) must not round to 0
    np.testing.assert_allclose(got[1], 1 / (1 + math.exp(30)), rtol=1e-6)
    y.sum().backward()
    assert np.all(np.isfinite(x.grad.numpy()))
    np.testing.assert_allclose(x.grad.numpy()[2], 0.25)


def test_tanh_and_exp_at_the_ends_of_float32():
    x = tinylm.tensor(np.array([-50.0, 50.0], np.float32), requires_grad=True)
    x.tanh().sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0])
    y = tinylm.tensor(np.array([-104.0, 88.0], np.float32)).exp().numpy()
    assert y[0] >= 0 and np.isfinite(y[1])
