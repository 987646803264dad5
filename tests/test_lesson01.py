"""Grades lesson 01 (lessons/01_autograd.py): each test checks one claim of the lesson
against tinylm's engine. Run with ``pytest -m lesson01``."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tinylm
from tinylm.autograd import Function

pytestmark = pytest.mark.lesson01


def central_difference(f, x: float, h: float = 1e-6) -> float:
    return (f(x + h) - f(x - h)) / (2 * h)


def scalar(v: float) -> tinylm.Tensor:
    return tinylm.tensor(v, dtype=tinylm.float64, requires_grad=True)


def counting(fn_forward, fn_backward):
    """A Function class whose backward calls are counted in ``cls.calls``."""

    class Counted(Function):
        calls = 0

        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return fn_forward(x)

        @staticmethod
        def backward(ctx, dy):
            Counted.calls += 1
            (x,) = ctx.saved_tensors
            return fn_backward(x, dy)

    return Counted


class Cube(Function):
    r"""Forward: y = x^3.   Backward: dx = 3 x^2 dy.   Saves: x.  (DESIGN.md's example)"""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        return 3 * x**2 * dy


def test_cube_derivative_matches_central_difference():
    for x0 in (-1.7, 0.3, 1.5):
        x = scalar(x0)
        Cube.apply(x).backward()
        assert x.grad.item() == pytest.approx(3 * x0**2, rel=1e-12)
        assert x.grad.item() == pytest.approx(central_difference(lambda v: v**3, x0), rel=1e-8)


def test_scalar_engine_matches_central_differences():
    """The lesson's running example L = tanh(a b + c) e^a on 0-d tensors."""

    def L_of(a, b, c):
        return math.tanh(a * b + c) * math.exp(a)

    a0, b0, c0 = 0.7, -1.3, 0.4
    a, b, c = scalar(a0), scalar(b0), scalar(c0)
    L = (a * b + c).tanh() * a.exp()
    L.backward()
    assert L.item() == pytest.approx(L_of(a0, b0, c0), rel=1e-14)
    numerical = (
        central_difference(lambda v: L_of(v, b0, c0), a0),
        central_difference(lambda v: L_of(a0, v, c0), b0),
        central_difference(lambda v: L_of(a0, b0, v), c0),
    )
    for t, num in zip((a, b, c), numerical):
        assert t.grad.shape == ()
        assert t.grad.item() == pytest.approx(num, rel=1e-7, abs=1e-9)


def test_chain_rule_composite_matches_central_differences():
    """d/dx tanh(x^2) = (1 - y^2) 2x, elementwise on a vector."""
    xs = np.array([-1.2, -0.3, 0.0, 0.8, 2.0])
    x = tinylm.tensor(xs, requires_grad=True)
    y = (x * x).tanh()
    y.sum().backward()
    by_chain_rule = (1 - np.tanh(xs**2) ** 2) * 2 * xs
    numerical = [central_difference(lambda v: math.tanh(v * v), x0) for x0 in xs]
    np.testing.assert_allclose(x.grad.numpy(), by_chain_rule, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(x.grad.numpy(), numerical, rtol=1e-7, atol=1e-9)


def test_reused_input_sums_both_paths():
    """L = x^2 e^x reaches x through u = x*x (itself two edges) and v = e^x."""
    x0 = 0.3
    x = scalar(x0)
    ((x * x) * x.exp()).backward()
    expected = (2 * x0 + x0**2) * math.exp(x0)
    assert x.grad.item() == pytest.approx(expected, rel=1e-12)
    assert x.grad.item() == pytest.approx(
        central_difference(lambda v: v * v * math.exp(v), x0), rel=1e-8
    )


def test_diamond_graph_sums_both_paths():
    """x -> u = x^3 -> {v = tanh u, w = exp u} -> L = v w: two paths from u to L."""
    CountedCube = counting(lambda a: a**3, lambda x, dy: 3 * x**2 * dy)
    x0 = 0.6
    x = scalar(x0)
    u = CountedCube.apply(x)
    L = u.tanh() * u.exp()
    L.backward()
    u0 = x0**3
    v0, w0 = math.tanh(u0), math.exp(u0)
    du = w0 * (1 - v0**2) + v0 * w0  # path through v + path through w
    assert x.grad.item() == pytest.approx(du * 3 * x0**2, rel=1e-12)
    assert x.grad.item() == pytest.approx(
        central_difference(lambda v: math.tanh(v**3) * math.exp(v**3), x0), rel=1e-8
    )
    assert CountedCube.calls == 1  # both contributions summed first, then one backward


def test_each_node_backward_runs_once():
    """A ladder u_k = Sq(v_k), v_{k+1} = u_k + u_k: 2^n paths from the root to x, yet
    every Sq node's backward runs exactly once, and the gradient is exact."""
    Square = counting(lambda a: a * a, lambda x, dy: 2.0 * x * dy)
    n = 40
    x = scalar(0.5)
    v = x
    for _ in range(n):
        u = Square.apply(v)
        v = u + u  # v_{k+1} = 2 v_k^2 keeps v = 0.5, and dv_{k+1}/dv_k = 4 v_k = 2
    v.backward()
    assert v.item() == 0.5
    assert Square.calls == n
    assert x.grad.item() == 2.0**n


def test_deep_chain_needs_no_recursion():
    """7,500 ops in a chain, far deeper than Python's recursion limit of ~1000."""
    steps = 2500
    x = scalar(0.5)
    y = x
    for _ in range(steps):
        y = y + 0.001 * y.tanh()
    y.backward()

    def deep(v):
        for _ in range(steps):
            v = v + 0.001 * math.tanh(v)
        return v

    assert y.item() == pytest.approx(deep(0.5), rel=1e-12)
    assert x.grad.item() == pytest.approx(central_difference(deep, 0.5), rel=1e-6)


def test_tanh_backward_uses_saved_output():
    """Tanh saves its output y and returns dy (1 - y^2)."""
    xs = np.array([-2.0, -0.1, 0.0, 0.7, 3.0])
    dys = np.array([0.3, -1.0, 2.0, 0.5, -0.25])
    x = tinylm.tensor(xs, requires_grad=True)
    y = tinylm.tanh(x)
    assert y.grad_fn is tinylm.ops.unary.Tanh
    y.backward(tinylm.tensor(dys))
    ys = np.tanh(xs)
    np.testing.assert_allclose(x.grad.numpy(), dys * (1 - ys * ys), rtol=1e-12)


def test_custom_cube_function_passes_gradcheck():
    tinylm.manual_seed(1)
    x = tinylm.randn(2, 3, dtype=tinylm.float64, requires_grad=True)

    def cube(t):
        return Cube.apply(t)

    assert tinylm.gradcheck(cube, (x,))
    y = cube(x)
    assert y.grad_fn is Cube
    np.testing.assert_allclose(y.detach().numpy(), x.detach().numpy() ** 3, rtol=1e-15)


def test_second_backward_is_refused():
    x = scalar(1.3)
    y = Cube.apply(x) * 2.0
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()
    z = Cube.apply(x) * 2.0
    z.backward(retain_graph=True)
    z.backward()  # allowed once the graph was retained; gradients accumulate
    assert x.grad.item() == pytest.approx(3 * (6 * 1.3**2), rel=1e-12)
