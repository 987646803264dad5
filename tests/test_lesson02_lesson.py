"""Grades lesson 02 (lessons/02_tensors_and_gradcheck.py): broadcasting gradients, the
matmul gradient, the error of central differences, and gradcheck. Run with
``pytest -m lesson02``."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tinylm
from tinylm.autograd import Function
from tinylm.ops.shape import sum_to

pytestmark = pytest.mark.lesson02


def dbl(*shape, seed=None):
    if seed is not None:
        tinylm.manual_seed(seed)
    return tinylm.randn(*shape, dtype=tinylm.float64, requires_grad=True)


def central_difference_error(dtype, eps: float, x: float = 1.0) -> float:
    """|central difference of sin at x - cos x|, computed entirely in ``dtype``."""
    xd, h = dtype(x), dtype(eps)
    estimate = (np.sin(xd + h) - np.sin(xd - h)) / (dtype(2) * h)
    return abs(float(estimate) - math.cos(x))


def test_elementwise_vjp_is_diagonal_jacobian_product():
    rng = np.random.default_rng(0)
    xs, dy = rng.standard_normal(5), rng.standard_normal(5)
    h = 1e-6
    J = np.stack([(np.tanh(xs + h * e) - np.tanh(xs - h * e)) / (2 * h) for e in np.eye(5)], axis=1)
    np.testing.assert_allclose(J - np.diag(np.diag(J)), 0.0, atol=1e-12)
    x = tinylm.tensor(xs, requires_grad=True)
    x.tanh().backward(tinylm.tensor(dy))
    np.testing.assert_allclose(x.grad.numpy(), J.T @ dy, rtol=1e-8)


@pytest.mark.parametrize(
    "sa, sb",
    [((4, 3), (3,)), ((4, 1), (3,)), ((2, 1, 3), (4, 1)), ((3,), (2, 4, 3)), ((), (2, 3))],
)
def test_broadcast_gradient_sums_over_broadcast_dims(sa, sb):
    """For y = a * b and L = sum(w y): da = sum of w b over a's broadcast dims (and for b)."""
    rng = np.random.default_rng(1)
    A, B = rng.standard_normal(sa), rng.standard_normal(sb)
    out_shape = np.broadcast_shapes(sa, sb)
    W = rng.standard_normal(out_shape)
    a = tinylm.tensor(A, requires_grad=True)
    b = tinylm.tensor(B, requires_grad=True)
    ((a * b) * tinylm.tensor(W)).sum().backward()

    def reduce_to(g, shape):  # the sums written out with NumPy
        lead = g.ndim - len(shape)
        g = g.sum(axis=tuple(range(lead)))
        ones = tuple(i for i, s in enumerate(shape) if s == 1)
        return g.sum(axis=ones, keepdims=True) if ones else g

    assert a.grad.shape == sa and b.grad.shape == sb
    np.testing.assert_allclose(a.grad.numpy(), reduce_to(W * B, sa), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(b.grad.numpy(), reduce_to(W * A, sb), rtol=1e-12, atol=1e-14)


def test_sum_to_matches_numpy_sums():
    g = dbl(2, 4, 3, seed=2)
    G = g.detach().numpy()
    np.testing.assert_allclose(
        sum_to(g, (4, 1)).detach().numpy(), G.sum(axis=0).sum(axis=1, keepdims=True), rtol=1e-12
    )
    np.testing.assert_allclose(sum_to(g, (3,)).detach().numpy(), G.sum(axis=(0, 1)), rtol=1e-12)
    np.testing.assert_allclose(sum_to(g, (1, 1, 1)).detach().numpy(), G.sum(keepdims=True))
    assert sum_to(g, (2, 4, 3)) is g  # nothing to undo
    assert tinylm.gradcheck(lambda t: sum_to(t, (4, 1)), (g,))


def test_forgotten_unbroadcast_is_refused():
    class ForgetfulBiasAdd(Function):
        @staticmethod
        def forward(ctx, x, bias):
            return x + bias

        @staticmethod
        def backward(ctx, dy):
            return dy, dy  # bias needs sum_to(dy, bias.shape)

    x, bias = dbl(4, 3, seed=3), dbl(3)
    with pytest.raises(RuntimeError, match=r"ForgetfulBiasAdd.*shape \(4, 3\).*input 1.*\(3,\)"):
        ForgetfulBiasAdd.apply(x, bias).sum().backward()


def test_matmul_gradients_match_formulas():
    rng = np.random.default_rng(4)
    An, Bn, Gn = (rng.standard_normal(s) for s in ((3, 4), (4, 2), (3, 2)))
    A = tinylm.tensor(An, requires_grad=True)
    B = tinylm.tensor(Bn, requires_grad=True)
    (A @ B).backward(tinylm.tensor(Gn))
    np.testing.assert_allclose(A.grad.numpy(), Gn @ Bn.T, rtol=1e-12)  # dA = dY B^T
    np.testing.assert_allclose(B.grad.numpy(), An.T @ Gn, rtol=1e-12)  # dB = A^T dY
    np.testing.assert_allclose(A.grad.numpy(), np.einsum("rj,sj->rs", Gn, Bn), rtol=1e-12)
    np.testing.assert_allclose(B.grad.numpy(), np.einsum("ir,is->rs", An, Gn), rtol=1e-12)
    assert tinylm.gradcheck(tinylm.matmul, (dbl(3, 4, seed=5), dbl(4, 2)))


def test_batched_matmul_sums_shared_weight_gradient():
    rng = np.random.default_rng(6)
    Xn, Wn, Gn = (rng.standard_normal(s) for s in ((5, 3, 4), (4, 2), (5, 3, 2)))
    X = tinylm.tensor(Xn, requires_grad=True)
    W = tinylm.tensor(Wn, requires_grad=True)
    (X @ W).backward(tinylm.tensor(Gn))
    np.testing.assert_allclose(W.grad.numpy(), sum(Xn[i].T @ Gn[i] for i in range(5)), rtol=1e-12)
    np.testing.assert_allclose(X.grad.numpy(), Gn @ Wn.T, rtol=1e-12)


def test_float64_central_difference_error_is_tiny_at_1e_6():
    for x in (0.3, 1.0, 2.5):
        assert central_difference_error(np.float64, 1e-6, x) < 1e-8


def test_float32_central_difference_error_is_far_larger():
    xs = (0.3, 1.0, 2.5)
    err32 = [central_difference_error(np.float32, 1e-6, x) for x in xs]
    err64 = [central_difference_error(np.float64, 1e-6, x) for x in xs]
    assert min(err32) > 1e-4
    assert min(err32) > 1e3 * max(err64)


def test_central_difference_error_is_v_shaped():
    """Truncation dominates for large eps, rounding for small eps; the best eps ~ u^(1/3)."""
    for dtype in (np.float64, np.float32):
        u = np.finfo(dtype).eps / 2
        grid = np.logspace(-12 if dtype is np.float64 else -6, -1, 45)
        err = np.array([central_difference_error(dtype, e) for e in grid])
        best = grid[np.argmin(err)]
        assert err[0] > 100 * err.min() and err[-1] > 100 * err.min()
        assert u ** (1 / 3) / 30 < best < 30 * u ** (1 / 3)
        # the right arm is truncation, eps^2 |f'''| / 6 with f''' = -cos
        assert err[-1] == pytest.approx(grid[-1] ** 2 * math.cos(1.0) / 6, rel=0.05)


@pytest.mark.parametrize(
    "name",
    ["tanh", "broadcast_mul", "broadcast_add", "batched_matmul", "softmax", "sum_to"],
)
def test_gradcheck_passes_on_core_ops(name):
    tinylm.manual_seed(7)
    fn, inputs = {
        "tanh": (tinylm.tanh, (dbl(3, 4),)),
        "broadcast_mul": (lambda a, b: a * b, (dbl(4, 1), dbl(3))),
        "broadcast_add": (lambda a, b: a + b, (dbl(2, 3), dbl(3))),
        "batched_matmul": (tinylm.matmul, (dbl(2, 3, 4), dbl(4, 5))),
        "softmax": (lambda z: tinylm.softmax(z, dim=-1), (dbl(3, 5),)),
        "sum_to": (lambda z: sum_to(z, (4, 1)), (dbl(2, 4, 3),)),
    }[name]
    assert tinylm.gradcheck(fn, inputs)


def test_gradcheck_refuses_float32():
    with pytest.raises(TypeError, match="float64"):
        tinylm.gradcheck(tinylm.tanh, (tinylm.randn(3, requires_grad=True),))


class SiLU(Function):
    r"""Forward: y = x s, s = sigmoid(x).   Backward: dx = dy s (1 + x (1 - s))."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x / (1.0 + np.exp(-x))

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        s = x.sigmoid()
        return dy * s * (1.0 + x * (1.0 - s))


class SiLUBuggy(SiLU):
    """The lesson's slip: the product rule's second term is missing."""

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        return dy * x.sigmoid()


def test_gradcheck_catches_product_rule_slip():
    xs = np.array([[-2.0, -0.5, 0.0], [0.5, 1.5, 3.0]])
    x = tinylm.tensor(xs, requires_grad=True)
    assert tinylm.gradcheck(SiLU.apply, (x,))
    assert tinylm.gradgradcheck(SiLU.apply, (x,))

    with pytest.raises(tinylm.GradcheckError) as info:
        tinylm.gradcheck(SiLUBuggy.apply, (x,))
    err = info.value
    assert err.input_index == 0
    xi = xs[err.index]
    s = 1.0 / (1.0 + math.exp(-xi))
    assert err.numerical == pytest.approx(s * (1 + xi * (1 - s)), rel=1e-6)
    assert err.analytic == pytest.approx(s, rel=1e-12)
    assert "input 0" in str(err) and "numerical" in str(err) and "analytic" in str(err)
    assert tinylm.gradcheck(SiLUBuggy.apply, (x,), raise_exception=False) is False
