"""check_layer: a learner's NumPy forward/backward pair, checked with gradcheck's machinery."""

from __future__ import annotations

import numpy as np
import pytest

import tinylm
from tinylm.gradcheck import GradcheckError
from tinylm.testing import check_layer

RNG = np.random.default_rng(0)
X, W, B = RNG.standard_normal((3, 4)), RNG.standard_normal((4, 2)), RNG.standard_normal(2)


def affine_forward(x, w, b):
    return x @ w + b, (x, w)


def affine_backward(dout, cache):
    x, w = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)


def affine_backward_mean_db(dout, cache):  # the classic slip: mean instead of sum
    x, w = cache
    return dout @ w.T, x.T @ dout, dout.mean(axis=0)


def test_a_correct_layer_passes():
    assert check_layer(affine_forward, affine_backward, [X, W, B]) is True
    assert check_layer(affine_forward, affine_backward, (X, W, B), fast_mode=True) is True


def test_a_wrong_gradient_is_reported_like_gradcheck_naming_the_parameter():
    with pytest.raises(GradcheckError) as err:
        check_layer(affine_forward, affine_backward_mean_db, [X, W, B])
    e = err.value
    assert (e.input_index, e.index) == (2, (0,))
    assert e.numerical == pytest.approx(1.0) and e.analytic == pytest.approx(1 / 3)
    msg = str(e)
    assert msg.startswith("check_layer: affine_forward/affine_backward_mean_db: Jacobian "
                          "mismatch for input 2 (b) (shape (2,))")
    assert "numerical 1" in msg and "analytic  0.3333333333" in msg
    assert check_layer(affine_forward, affine_backward_mean_db, [X, W, B],
                       raise_exception=False) is False


def test_the_report_is_gradchecks_report():
    """The same slip written as a tinylm Function gives gradcheck's numbers exactly."""

    class Affine(tinylm.autograd.Function):
        @staticmethod
        def forward(ctx, x, w, b):
            ctx.cache = (x, w)
            return x @ w + b

        @staticmethod
        def backward(ctx, dy):
            return affine_backward_mean_db(dy.data, ctx.cache)

    ts = [tinylm.tensor(a, requires_grad=True) for a in (X, W, B)]
    with pytest.raises(GradcheckError) as ref:
        tinylm.gradcheck(Affine.apply, ts)
    with pytest.raises(GradcheckError) as ours:
        check_layer(affine_forward, affine_backward_mean_db, [X, W, B])
    a, b = ref.value, ours.value
    assert (a.input_index, a.index, a.output_index, a.numerical, a.analytic) == (
        b.input_index, b.index, b.output_index, b.numerical, b.analytic)
    assert str(a).split("\n", 1)[1] == str(b).split("\n", 1)[1]  # all but the name line


def test_forward_without_a_cache_gets_its_inputs_back():
    def relu_forward(x):
        return np.maximum(x, 0.0)

    def relu_backward(dout, cache):
        (x,) = cache
        return dout * (x > 0)

    x = np.where(np.abs(X) < 0.1, 0.5, X)  # no kink within eps
    assert check_layer(relu_forward, relu_backward, [x])


def test_integer_labels_pass_through_and_backward_may_return_only_checked_gradients():
    def softmax_loss_forward(x, y):
        z = x - x.max(axis=1, keepdims=True)
        p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        return -np.log(p[np.arange(len(y)), y]).mean(), (p, y)

    def softmax_loss_backward(dout, cache):
        p, y = cache
        dx = p.copy()
        dx[np.arange(len(y)), y] -= 1
        return dx / len(y) * dout  # one gradient: for x; y is not checked

    y = np.array([0, 3, 1])
    assert check_layer(softmax_loss_forward, softmax_loss_backward, [X, y])

    def with_none(dout, cache):
        return softmax_loss_backward(dout, cache), None

    assert check_layer(softmax_loss_forward, with_none, [X, y])


def test_keyword_arguments_numbers_and_nondiff_inputs():
    def scale_forward(x, s, *, power=1):
        return s * x**power, (x, s)

    def scale_backward(dout, cache):
        x, s = cache
        return 2 * s * x * dout, (x**2 * dout).sum()

    assert check_layer(scale_forward, scale_backward, [X, 1.5], kwargs={"power": 2})
    s = np.array(1.5)
    assert check_layer(scale_forward, scale_backward, [X, s], kwargs={"power": 2})
    assert check_layer(scale_forward, lambda d, c: (scale_backward(d, c)[0], None), [X, s],
                       kwargs={"power": 2}, nondiff=(1,))


def test_a_forgotten_dout_is_caught_by_the_zero_gradient_check():
    def tanh_forward(x):
        y = np.tanh(x)
        return y, y

    with pytest.raises(GradcheckError, match="zero output gradient gave a nonzero gradient"):
        check_layer(tanh_forward, lambda dout, y: 1 - y**2, [X])


@pytest.mark.parametrize(("backward", "match"), [
    (lambda d, c: (d @ c[1].T, c[0].T @ d, d), r"gradient of shape \(3, 2\) for input 2 \(b\)"),
    (lambda d, c: (d @ c[1].T, c[0].T @ d), r"returned 2 gradient\(s\) for 3 input\(s\)"),
    (lambda d, c: (d @ c[1].T, (c[0].T @ d).astype(np.float32), d.sum(0)), r"dtype float32"),
])
def test_malformed_gradients_name_the_input(backward, match):
    with pytest.raises(GradcheckError, match=match):
        check_layer(affine_forward, backward, [X, W, B])


def test_misuse_is_refused_with_a_clear_error():
    with pytest.raises(TypeError, match=r"input 1 \(w\) has dtype float32.*astype\(np\.float64\)"):
        check_layer(affine_forward, affine_backward, [X, W.astype(np.float32), B])
    with pytest.raises(ValueError, match="no float input to check"):
        check_layer(lambda i: i * 1.0, lambda d, c: None, [np.arange(3)])

    def doubles_in_place(x):
        x *= 2
        return x

    with pytest.raises(ValueError, match="forward modified its input 0 in place"):
        check_layer(doubles_in_place, lambda d, c: 2 * d, [X.copy()])


def test_the_callers_arrays_are_never_changed():
    x, w, b = X.copy(), W.copy(), B.copy()
    check_layer(affine_forward, affine_backward, [x, w, b])
    np.testing.assert_array_equal(x, X)
    np.testing.assert_array_equal(w, W)
    np.testing.assert_array_equal(b, B)
