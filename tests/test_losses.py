"""Losses against values and gradients derived by hand, the all-ignored case, errors and
numerics at extreme logits.

Most expected values use the logits row z = [0, ln 3], whose softmax is p = [1/4, 3/4]:
-log p = [ln 4, ln 4/3]. The gradient of cross-entropy with respect to the logits is
p - q for a target distribution q (one-hot y, smoothed, or given probabilities).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import tinylm
from tinylm import gradcheck, gradgradcheck
from tinylm.nn.losses import cross_entropy, mse_loss, nll_loss

pytestmark = pytest.mark.lesson04

LN3, LN4, LN43 = math.log(3), math.log(4), math.log(4 / 3)
P = np.array([0.25, 0.75])  # softmax([0, ln 3])


def leaf(values, dtype=np.float64):
    return tinylm.tensor(np.array(values, dtype=dtype), requires_grad=True)


def ids(values):
    return tinylm.tensor(np.array(values, dtype=np.int64))


def const(values, dtype=np.float64):
    return tinylm.tensor(np.array(values, dtype=dtype))


def value(t):
    return t.detach().numpy()


@pytest.fixture(autouse=True)
def strict_float():
    """An intermediate overflow or invalid operation anywhere fails the test."""
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        yield


# ----------------------------------------------------------------------------- values


def test_uniform_logits_give_log_c_and_gradient_p_minus_y():
    z = leaf([0.0, 0.0, 0.0, 0.0])
    loss = cross_entropy(z, ids(2))  # (C,) input, 0-d target
    assert value(loss) == pytest.approx(LN4, abs=1e-15)
    loss.backward()
    np.testing.assert_allclose(z.grad.numpy(), [0.25, 0.25, -0.75, 0.25], atol=1e-15)


def test_batch_mean_and_sum_and_none():
    z = leaf([[0.0, LN3], [0.0, LN3]])
    y = ids([1, 0])
    np.testing.assert_allclose(value(cross_entropy(z, y, reduction="none")), [LN43, LN4])
    assert value(cross_entropy(z, y, reduction="sum")) == pytest.approx(LN43 + LN4)
    loss = cross_entropy(z, y)
    assert value(loss) == pytest.approx((LN43 + LN4) / 2)
    loss.backward()  # (p - y_n) / N
    np.testing.assert_allclose(z.grad.numpy(), [(P - [0, 1]) / 2, (P - [1, 0]) / 2])


def test_spatial_input_reduces_over_every_position():
    # (N, C, d) = (1, 2, 2): position 0 has logits (0, 0), position 1 has (0, ln 3)
    z = leaf([[[0.0, 0.0], [0.0, LN3]]])
    np.testing.assert_allclose(value(cross_entropy(z, ids([[0, 1]]), reduction="none")),
                               [[math.log(2), LN43]])


def test_weighted_mean_divides_by_the_weights_of_the_targets():
    z = leaf([[0.0, LN3]] * 3)
    w = const([1.0, 3.0])
    loss = cross_entropy(z, ids([0, 1, 1]), weight=w)
    # sum_n w_{y_n} (-log p_{y_n}) / sum_n w_{y_n} = (ln 4 + 3 ln 4/3 + 3 ln 4/3) / 7
    assert value(loss) == pytest.approx((LN4 + 6 * LN43) / 7)
    loss.backward()
    want = [1 * (P - [1, 0]) / 7, 3 * (P - [0, 1]) / 7, 3 * (P - [0, 1]) / 7]
    np.testing.assert_allclose(z.grad.numpy(), want)


def test_ignored_targets_count_for_nothing():
    z = leaf([[0.0, LN3], [5.0, -5.0], [0.0, LN3]])
    loss = cross_entropy(z, ids([0, -100, 1]))
    assert value(loss) == pytest.approx((LN4 + LN43) / 2)  # mean over the 2 counted rows
    loss.backward()
    np.testing.assert_allclose(z.grad.numpy(), [(P - [1, 0]) / 2, [0, 0], (P - [0, 1]) / 2])
    # ignore_index may name a real class: then that class is skipped
    assert value(cross_entropy(z, ids([0, 1, 1]), ignore_index=1)) == pytest.approx(LN4)


def test_label_smoothing_mixes_in_the_uniform_distribution():
    z = leaf([0.0, LN3])
    loss = cross_entropy(z, ids(1), label_smoothing=0.2)
    # q = 0.8 e_1 + 0.2 / 2 = [0.1, 0.9]: loss = 0.1 ln 4 + 0.9 ln 4/3, gradient p - q
    assert value(loss) == pytest.approx(0.1 * LN4 + 0.9 * LN43)
    loss.backward()
    np.testing.assert_allclose(z.grad.numpy(), [0.15, -0.15], atol=1e-15)


def test_label_smoothing_with_weights_and_ignore_index_as_pytorch():
    # PyTorch: (1 - eps) nll + eps / C * sum_c -w_c log p_c, both over the counted targets
    # and divided by their total weight (here w_0 = 1; row 1 is ignored)
    z = leaf([[0.0, LN3], [1.0, 2.0]])
    loss = cross_entropy(z, ids([0, -100]), weight=const([1.0, 3.0]), label_smoothing=0.5)
    assert value(loss) == pytest.approx(0.5 * LN4 + 0.25 * (LN4 + 3 * LN43))


def test_probability_targets():
    z = leaf([[0.0, LN3]])
    q = leaf([[0.5, 0.5]])
    loss = cross_entropy(z, q)
    assert value(loss) == pytest.approx(0.5 * LN4 + 0.5 * LN43)
    loss.backward()
    np.testing.assert_allclose(z.grad.numpy(), [P - [0.5, 0.5]])
    np.testing.assert_allclose(q.grad.numpy(), [[-math.log(0.25), -math.log(0.75)]])
    # weights scale each class's term; the mean still divides by the number of rows
    loss = cross_entropy(z, q.detach(), weight=const([1.0, 3.0]))
    assert value(loss) == pytest.approx(0.5 * LN4 + 1.5 * LN43)
    # one-hot probabilities give the same as class ids
    y = const([[0.0, 1.0]])
    assert value(cross_entropy(z, y, label_smoothing=0.3)) == pytest.approx(
        value(cross_entropy(z, ids([1]), label_smoothing=0.3)))


def test_cross_entropy_is_nll_of_log_softmax_and_layout_free():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((3, 5, 4))  # (N, C, d)
    y = rng.integers(0, 5, size=(3, 4))
    y[0, 1] = -100
    a = cross_entropy(tinylm.tensor(z), ids(y), reduction="none")
    b = nll_loss(tinylm.tensor(z).log_softmax(dim=1), ids(y), reduction="none")
    np.testing.assert_allclose(value(a), value(b), rtol=1e-14)
    # (N, C, d) equals the (N d, C) rows
    flat = cross_entropy(tinylm.tensor(z.transpose(0, 2, 1).reshape(12, 5)), ids(y.ravel()))
    assert value(cross_entropy(tinylm.tensor(z), ids(y))) == pytest.approx(value(flat))


def test_nll_loss_and_mse_loss_values():
    x = leaf([[-1.0, -2.0, -3.0], [-0.5, -1.5, -2.5]])
    loss = nll_loss(x, ids([2, 0]), weight=const([2.0, 1.0, 1.0]))
    assert value(loss) == pytest.approx((3.0 + 2 * 0.5) / 3)
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), [[0, 0, -1 / 3], [-2 / 3, 0, 0]])
    a, t = leaf([1.0, 2.0, 3.0]), leaf([1.0, 0.0, 0.0])
    loss = mse_loss(a, t)
    assert value(loss) == pytest.approx(13 / 3)
    loss.backward()
    np.testing.assert_allclose(a.grad.numpy(), [0, 4 / 3, 2])
    np.testing.assert_allclose(t.grad.numpy(), [0, -4 / 3, -2])


def test_gradients_of_gradients():
    rng = np.random.default_rng(1)
    z = leaf(rng.standard_normal((4, 3, 2)))
    y = ids([[0, -100], [2, 2], [1, 0], [-100, 1]])
    w = const([0.5, 1.0, 2.0])

    def f(z):
        return cross_entropy(z, y, weight=w, label_smoothing=0.1)

    assert gradcheck(f, (z,)) and gradgradcheck(f, (z,))


def test_the_target_is_gathered_not_one_hot_multiplied():
    """One advanced index picks log p at the targets; no matmul, no (N, C) one-hot. (The
    reference graph: with the kernels on, one fused CrossEntropyFn node replaces it.)"""
    z = leaf(np.zeros((4, 3)))
    with tinylm.kernels.reference():
        loss = cross_entropy(z, ids([0, 2, 1, 2]))
    seen, stack = set(), [loss]
    while stack:
        t = stack.pop()
        if t._ctx is not None:
            seen.add(t._ctx.fn.__name__)
            stack.extend(x for x in t._ctx.inputs if x is not None)
    assert {"LogSoftmax", "GetItem"} <= seen and "MatMul" not in seen


# ----------------------------------------------------------------------------- all ignored


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("weighted", [False, True])
def test_every_target_ignored_gives_nan_mean_and_zero_gradient(smoothing, weighted):
    """As PyTorch 2.13: 'mean' is 0/0 = nan, the gradient is exactly 0, and no NumPy
    floating-point warning is raised on the way (the fixture turns them into errors)."""
    z = leaf([[0.0, LN3], [1.0, 2.0]])
    w = const([1.0, 3.0]) if weighted else None
    y = ids([-100, -100])
    loss = cross_entropy(z, y, weight=w, label_smoothing=smoothing)
    assert math.isnan(float(value(loss)))
    loss.backward()
    np.testing.assert_array_equal(z.grad.numpy(), np.zeros((2, 2)))
    assert value(cross_entropy(z, y, weight=w, label_smoothing=smoothing, reduction="sum")) == 0
    np.testing.assert_array_equal(value(cross_entropy(z, y, reduction="none")), [0.0, 0.0])


def test_all_ignored_nll_and_empty_batch():
    x = leaf([[-1.0, -2.0]])
    loss = nll_loss(x, ids([-100]))
    assert math.isnan(float(value(loss)))
    loss.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0.0, 0.0]])
    empty = leaf(np.zeros((0, 3)))
    assert math.isnan(float(value(cross_entropy(empty, ids(np.zeros(0, np.int64))))))
    assert math.isnan(float(value(cross_entropy(empty, const(np.zeros((0, 3)))))))
    assert math.isnan(float(value(mse_loss(leaf([]), leaf([])))))


def test_zero_total_weight_of_counted_targets_is_nan_with_nan_gradient():
    """Counted targets whose weights sum to 0: PyTorch gives nan and a nan gradient
    for them (0 times 1/0), unlike ignored targets, which get exactly 0."""
    z = leaf([[0.0, LN3], [1.0, 2.0]])
    loss = cross_entropy(z, ids([0, -100]), weight=const([0.0, 1.0]))
    assert math.isnan(float(value(loss)))
    loss.backward()
    assert np.isnan(z.grad.numpy()[0]).all()
    np.testing.assert_array_equal(z.grad.numpy()[1], [0.0, 0.0])


# ----------------------------------------------------------------------------- numerics


@pytest.mark.parametrize(("dtype", "big"), [(np.float32, 1e4), (np.float64, 1e30)])
def test_cross_entropy_at_huge_logits(dtype, big):
    z = leaf([[big, -big, 0.0], [big, big, -big]], dtype)
    # row 0: log p = [0, -2 big, -big]; row 1: log p = [-ln 2, -ln 2, -2 big - ln 2]
    loss = cross_entropy(z, ids([0, 2]), reduction="none")
    want = np.array([0.0, 2 * big + math.log(2)])
    np.testing.assert_allclose(value(loss), want.astype(dtype), rtol=1e-6)
    assert loss.dtype == dtype
    cross_entropy(z, ids([0, 2])).backward()
    # (p - y) / 2: row 0: p = e_0 = y -> 0; row 1: p = [1/2, 1/2, 0], y = e_2
    np.testing.assert_allclose(z.grad.numpy(), [[0, 0, 0], [0.25, 0.25, -0.5]], atol=1e-7)
    assert z.grad.dtype == dtype


@pytest.mark.parametrize(("dtype", "big"), [(np.float32, 1e4), (np.float64, 1e30)])
def test_smoothing_and_probabilities_at_huge_logits(dtype, big):
    z = leaf([[big, -big, 0.0], [big, big, -big]], dtype)
    eps, ln2 = 0.3, math.log(2)
    loss = cross_entropy(z, ids([0, 2]), label_smoothing=eps, reduction="none")
    # (1 - eps) (-log p_y) + eps / 3 (-sum_c log p_c)
    want = [(1 - eps) * 0 + eps / 3 * (3 * big),
            (1 - eps) * (2 * big + ln2) + eps / 3 * (2 * big + 3 * ln2)]
    np.testing.assert_allclose(value(loss), np.array(want).astype(dtype), rtol=1e-6)
    loss.sum().backward()
    q = (1 - eps) * np.eye(3)[[0, 2]] + eps / 3
    p = np.array([[1, 0, 0], [0.5, 0.5, 0]])
    np.testing.assert_allclose(z.grad.numpy(), p - q, atol=1e-6)
    zp = leaf(value(z), dtype)
    loss = cross_entropy(zp, const([[1.0, 0, 0], [0.5, 0.5, 0]], dtype), reduction="sum")
    np.testing.assert_allclose(value(loss), dtype(ln2), rtol=1e-6)  # row 0: 0, row 1: ln 2
    loss.backward()
    np.testing.assert_allclose(zp.grad.numpy(), np.zeros((2, 3)), atol=1e-7)


@pytest.mark.parametrize(("dtype", "big"), [(np.float32, 1e4), (np.float64, 1e30)])
def test_nll_of_log_softmax_at_huge_logits(dtype, big):
    z = leaf([[big, -big], [-big, big]], dtype)
    lp = z.log_softmax(dim=1)  # [[0, -2 big], [-2 big, 0]]
    np.testing.assert_allclose(value(lp), np.array([[0, -2 * big], [-2 * big, 0]], dtype))
    loss = nll_loss(lp, ids([1, 1]))  # (2 big + 0) / 2
    np.testing.assert_allclose(value(loss), dtype(big), rtol=1e-6)
    loss.backward()
    g = z.grad.numpy()  # (p - y) / 2 with p = [1, 0] and [0, 1]
    assert np.isfinite(g).all()
    np.testing.assert_allclose(g, [[0.5, -0.5], [0, 0]], atol=1e-7)


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(("call", "exc", "match"), [
    (lambda z: cross_entropy(z, ids([0, 3])), IndexError,
     r"cross_entropy: target id 3 out of range \[0, 3\) at index \(1,\)"),
    (lambda z: cross_entropy(z, ids([-2, 0])), IndexError,
     r"target id -2 out of range \[0, 3\) at index \(0,\) \(negative ids are not wrapped"),
    (lambda z: nll_loss(z, ids([0, 1, 2])), ValueError,
     r"nll_loss: target of shape \(3,\) does not match input of shape \(2, 3\)"),
    (lambda z: cross_entropy(z, const([0.0, 1.0])), ValueError,
     r"floating point target holds class probabilities and must have the input's shape"),
    (lambda z: cross_entropy(z, ids([0, 1]), weight=const([1.0, 1.0])), ValueError,
     r"weight must have shape \(C,\) = \(3,\)"),
    (lambda z: cross_entropy(z, ids([0, 1]), reduction="mean "), ValueError,
     r"reduction='mean ' is not valid"),
    (lambda z: cross_entropy(z, ids([0, 1]), label_smoothing=float("nan")), ValueError,
     r"label_smoothing must be in \[0.0, 1.0\], got nan"),
    (lambda z: mse_loss(z, const(np.zeros((3, 2)))), ValueError,
     r"mse_loss: target of shape \(3, 2\) does not match input of shape \(2, 3\)"),
])
def test_errors_name_the_function_the_value_and_the_range(call, exc, match):
    with pytest.raises(exc, match=match):
        call(leaf(np.zeros((2, 3))))
