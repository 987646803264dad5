"""Autograd: backward, grad modes, higher-order gradients, and the custom-Function contract.

Every expected gradient is derived by hand in a comment (or with NumPy) next to its test.
"""

from __future__ import annotations

import numpy as np
import pytest

import tinylm
from tinylm import Tensor
from tinylm.autograd import Function, grad

pytestmark = pytest.mark.lesson01


def f64(a, requires_grad=True) -> Tensor:
    return tinylm.tensor(np.asarray(a, dtype=np.float64), requires_grad=requires_grad)


X = np.array([[0.5, -1.25, 2.0], [1.5, 0.75, -0.3]])


# ----------------------------------------------------------------------------- backward


def test_simple_gradient():
    # y = sum(x^2 + 3x)  =>  dy/dx = 2x + 3
    x = f64(X)
    (x * x + 3.0 * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * X + 3, rtol=0, atol=1e-15)
    assert x.grad.dtype == np.float64 and x.grad.shape == X.shape


def test_gradients_accumulate_across_backward_calls():
    # two separate graphs of sum(x^2): .grad = 2x + 2x
    x = f64(X)
    (x * x).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 4 * X, atol=1e-15)
    x.zero_grad_()
    assert x.grad is None
    (3.0 * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full_like(X, 3.0))


def test_long_chain_backward_has_no_recursion_error():
    # y = x c^n  =>  dy/dx = c^n,  for n = 5,000 multiplications
    n, c = 5000, 1.0001
    x = f64(2.0)
    y = x
    for _ in range(n):
        y = y * c
    y.backward()
    np.testing.assert_allclose(x.grad.item(), c**n, rtol=1e-10)
    np.testing.assert_allclose(y.item(), 2.0 * c**n, rtol=1e-10)


def test_long_chain_of_mixed_ops():
    # y_{k+1} = y_k + tanh(y_k) / 100, 2,000 times: compare with a hand-written
    # forward-mode sweep, dy_{k+1}/dx = dy_k/dx (1 + (1 - tanh^2 y_k) / 100)
    x = f64(0.3)
    y = x
    v, dv = 0.3, 1.0  # value and derivative dv/dx, carried alongside
    for _ in range(2000):
        y = y + y.tanh() / 100.0
        dv = dv * (1.0 + (1.0 - np.tanh(v) ** 2) / 100.0)
        v = v + np.tanh(v) / 100.0
    assert 1.1 < dv < 1e6  # a gradient that neither vanished nor overflowed
    y.backward()
    np.testing.assert_allclose(y.item(), v, rtol=1e-12)
    np.testing.assert_allclose(x.grad.item(), dv, rtol=1e-9)


def test_retain_graph_allows_a_second_backward():
    # y = sum(x^3): each backward adds 3x^2
    x = f64(X)
    y = (x * x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * 3 * X**2, rtol=1e-14)


def test_second_backward_without_retain_graph_raises():
    x = f64(X)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * X)  # the failed call added nothing


def test_backward_on_a_non_scalar_needs_a_gradient():
    x = f64(X)
    y = x * 2.0
    with pytest.raises(RuntimeError, match=r"\(2, 3\)"):
        y.backward()
    g = np.arange(6.0).reshape(2, 3)
    y.backward(tinylm.tensor(g))  # d<y, g>/dx = 2 g
    np.testing.assert_allclose(x.grad.numpy(), 2 * g)


def test_backward_gradient_of_the_wrong_shape_or_dtype_raises():
    x = f64(X)
    with pytest.raises(RuntimeError, match=r"\(3,\).*\(2, 3\)"):
        (x * 2.0).backward(tinylm.ones(3, dtype=tinylm.float64))
    with pytest.raises(RuntimeError, match="float32"):
        (x * 2.0).backward(tinylm.ones(2, 3))


def test_backward_of_a_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        tinylm.tensor([1.0, 2.0]).sum().backward()
    x = f64(X)
    with tinylm.no_grad():
        y = (x * x).sum()
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


def test_backward_of_several_roots_one_feeding_the_other():
    # y = sum(2x), z = 3y: backward([y, z]) adds dy/dx + dz/dx = 2 + 6
    x = f64(X)
    y = (x * 2.0).sum()
    z = y * 3.0
    tinylm.autograd.backward([y, z])
    np.testing.assert_allclose(x.grad.numpy(), np.full_like(X, 8.0))


def test_backward_accepts_an_array_gradient():
    x = f64(X)
    (x * 3.0).backward(np.ones_like(X))
    np.testing.assert_allclose(x.grad.numpy(), np.full_like(X, 3.0))


def test_backward_on_a_leaf():
    x = f64(X)
    g = tinylm.tensor(np.ones_like(X) * 5.0)
    x.backward(g)
    np.testing.assert_array_equal(x.grad.numpy(), g.numpy())
    x.grad.data[0, 0] = -1.0  # the stored gradient is its own array
    assert g.data[0, 0] == 5.0


def test_diamond_graph_sums_both_branches():
    # a = 2x, b = x^2, y = sum(a b) = sum(2 x^3)  =>  dy/dx = 6 x^2
    x = f64(X)
    a = x * 2.0
    b = x * x
    (a * b).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 6 * X**2, rtol=1e-14)


def test_shared_intermediate():
    # h = 3x, y = sum(h^2 + h)  =>  dy/dh = 2h + 1, dy/dx = 3 (2h + 1)
    x = f64(X)
    h = x * 3.0
    (h * h + h).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 3 * (2 * 3 * X + 1), rtol=1e-14)


def test_same_tensor_twice_in_one_op():
    # y = sum(x + x) => 2;  y = sum(x * x) => 2x
    x = f64(X)
    (x + x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full_like(X, 2.0))
    x.grad = None
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * X)


def test_broadcasting_gradient_is_summed():
    # y = sum(x * w) with w (3,) broadcast over 2 rows  =>  dw_j = sum_i x_ij
    x = f64(X)
    w = f64([1.0, 2.0, 3.0])
    (x * w).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), X.sum(axis=0), rtol=1e-14)
    np.testing.assert_allclose(x.grad.numpy(), np.broadcast_to([1.0, 2.0, 3.0], X.shape))
    assert w.grad.shape == (3,)


def test_only_leaves_that_require_grad_get_grad():
    x = f64(X)
    c = f64(X, requires_grad=False)
    h = x * c
    (h * 2.0).sum().backward()
    assert c.grad is None
    assert h.grad is None  # a non-leaf keeps no .grad unless asked (retain_grad)
    np.testing.assert_allclose(x.grad.numpy(), 2 * X)


# ----------------------------------------------------------------------------- .grad ownership


def test_leaf_grads_never_share_memory():
    # z = a + b: Add's backward hands the same dy to both inputs
    a = f64(X)
    b = f64(-X)
    z = a + b
    z.sum().backward()
    assert a.grad.data is not b.grad.data
    assert not np.shares_memory(a.grad.data, b.grad.data)
    assert a.grad.data.flags.writeable and b.grad.data.flags.writeable
    a.grad.data += 1.0  # an optimizer may update .grad in place
    np.testing.assert_array_equal(b.grad.numpy(), np.ones_like(X))
    np.testing.assert_array_equal(a.grad.numpy(), np.full_like(X, 2.0))


def test_leaf_grad_does_not_alias_the_seed_gradient():
    # y = x + 0 passes the seed straight through to x
    x = f64(X)
    g = tinylm.tensor(np.ones_like(X))
    (x + 0.0).backward(g)
    assert not np.shares_memory(x.grad.data, g.data)
    x.grad.data *= 3.0
    np.testing.assert_array_equal(g.numpy(), np.ones_like(X))


def test_leaf_grad_of_a_broadcast_or_view_is_writeable():
    # sum's backward is a read-only broadcast; reshape's is a view of dy
    x = f64(X)
    x.sum().backward()
    assert x.grad.data.flags.writeable and x.grad.data.base is None
    y = f64(X)
    y.reshape(6).backward(tinylm.tensor(np.arange(6.0)))
    assert y.grad.data.flags.writeable
    np.testing.assert_array_equal(y.grad.numpy(), np.arange(6.0).reshape(2, 3))


def test_leaf_grads_with_create_graph_are_separate_and_differentiable():
    # z = sum(a + b) and z = sum(a * b) with create_graph: the stored grads are still
    # separate writeable arrays, and a.grad = b stays a function of b
    a, b = f64([1.0, 2.0]), f64([3.0, 4.0])
    (a + b).sum().backward(create_graph=True)
    assert a.grad is not b.grad and not np.shares_memory(a.grad.data, b.grad.data)
    assert a.grad.data.flags.writeable and b.grad.data.flags.writeable
    a.grad, b.grad = None, None
    (a * b).sum().backward(create_graph=True)
    np.testing.assert_array_equal(a.grad.detach().numpy(), [3.0, 4.0])
    (d,) = grad(a.grad.sum(), b)  # d/db sum(b) = 1
    np.testing.assert_array_equal(d.numpy(), [1.0, 1.0])
    x = f64([1.0, 2.0])
    g = tinylm.tensor([1.0, 1.0], dtype=tinylm.float64)
    x.backward(g, create_graph=True)
    assert not np.shares_memory(x.grad.data, g.data)


def test_retain_grad_and_leaf_grads_are_separate_arrays():
    a = f64(X)
    h = a * 1.0
    h.retain_grad()
    h.sum().backward()
    assert not np.shares_memory(h.grad.data, a.grad.data)


# ----------------------------------------------------------------------------- grad mode


def test_no_grad_records_nothing():
    x = f64(X)
    assert tinylm.is_grad_enabled()
    with tinylm.no_grad():
        assert not tinylm.is_grad_enabled()
        y = x * 2.0
        assert not y.requires_grad and y.grad_fn is None
    assert tinylm.is_grad_enabled()
    z = x * 2.0
    assert z.requires_grad and z.grad_fn is not None


def test_grad_mode_is_restored_after_an_exception():
    with pytest.raises(ZeroDivisionError):
        with tinylm.no_grad():
            raise ZeroDivisionError
    assert tinylm.is_grad_enabled()


def test_enable_grad_inside_no_grad():
    x = f64(X)
    with tinylm.no_grad():
        with tinylm.enable_grad():
            assert tinylm.is_grad_enabled()
            y = x * 2.0
        assert not tinylm.is_grad_enabled()
    assert y.requires_grad


@pytest.mark.parametrize("mode", [True, False])
def test_set_grad_enabled(mode):
    x = f64(X)
    with tinylm.set_grad_enabled(mode):
        assert tinylm.is_grad_enabled() is mode
        y = x * 2.0
    assert tinylm.is_grad_enabled()
    assert y.requires_grad is mode


def test_grad_mode_as_decorators():
    x = f64(X)

    @tinylm.no_grad()
    def f(t):
        return t * 2.0

    @tinylm.set_grad_enabled(False)
    def g(t):
        return t * 2.0

    @tinylm.enable_grad()
    def h(t):
        return t * 2.0

    assert f.__name__ == "f"
    assert not f(x).requires_grad
    assert not g(x).requires_grad
    assert tinylm.is_grad_enabled()
    with tinylm.no_grad():
        assert h(x).requires_grad
        assert not tinylm.is_grad_enabled()


def test_detach_cuts_the_graph():
    # z = sum(stop(2x) * x)  =>  dz/dx = 2x  (the detached factor is a constant)
    x = f64(X)
    y = x * 2.0
    z = (y.detach() * x).sum()
    z.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * X)


# ----------------------------------------------------------------------------- higher order


def test_backward_without_create_graph_builds_nothing():
    x = f64(X)
    (x * x * x).sum().backward()
    assert not x.grad.requires_grad and x.grad.grad_fn is None


def test_second_derivative_of_cube_is_6x():
    xs = np.array([-1.5, -0.2, 0.7, 2.0])
    x = f64(xs)
    (g,) = grad((x**3).sum(), x, create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), 3 * xs**2, rtol=1e-14)  # d/dx x^3
    assert g.requires_grad
    (h,) = grad(g.sum(), x)
    np.testing.assert_allclose(h.numpy(), 6 * xs, rtol=1e-14)  # d2/dx2 x^3

    # and numerically: central differences of the analytic first derivative
    def first(v):
        t = f64(v)
        (d,) = grad((t**3).sum(), t)
        return d.numpy()

    eps = 1e-6
    numeric = (first(xs + eps) - first(xs - eps)) / (2 * eps)
    np.testing.assert_allclose(h.numpy(), numeric, rtol=1e-6)


def test_backward_create_graph_then_differentiate_the_grad():
    # y = sum(x^3); after backward(create_graph=True), x.grad = 3x^2 is a graph;
    # differentiating sum(x.grad) w.r.t. x gives 6x
    xs = np.array([0.5, -2.0, 3.0])
    x = f64(xs)
    (x**3).sum().backward(create_graph=True)
    assert x.grad.requires_grad
    (h,) = grad(x.grad.sum(), x)
    np.testing.assert_allclose(h.numpy(), 6 * xs, rtol=1e-14)


def test_third_derivative():
    # d3/dx3 sin-free check: x^4 -> 24 x
    xs = np.array([0.5, -1.0, 2.0])
    x = f64(xs)
    (g1,) = grad((x**4).sum(), x, create_graph=True)
    (g2,) = grad(g1.sum(), x, create_graph=True)
    (g3,) = grad(g2.sum(), x)
    np.testing.assert_allclose(g2.detach().numpy(), 12 * xs**2, rtol=1e-14)
    np.testing.assert_allclose(g3.numpy(), 24 * xs, rtol=1e-14)


def test_grad_returns_without_touching_dot_grad():
    # y = sum(x * w)  =>  dy/dx = w, dy/dw = x
    x = f64(X)
    w = f64(2 * X + 1)
    gx, gw = grad((x * w).sum(), [x, w])
    np.testing.assert_allclose(gx.numpy(), 2 * X + 1)
    np.testing.assert_allclose(gw.numpy(), X)
    assert x.grad is None and w.grad is None


def test_grad_allow_unused():
    x = f64(X)
    unused = f64([1.0])
    y = (x * x).sum()
    with pytest.raises(RuntimeError, match="allow_unused"):
        grad(y, [x, unused], retain_graph=True)
    gx, gu = grad(y, [x, unused], allow_unused=True)
    np.testing.assert_allclose(gx.numpy(), 2 * X)
    assert gu is None


def test_grad_of_an_intermediate():
    # h = 2x, y = sum(h^2)  =>  dy/dh = 2h = 4x
    x = f64(X)
    h = x * 2.0
    (gh,) = grad((h * h).sum(), h)
    np.testing.assert_allclose(gh.numpy(), 4 * X)
    assert x.grad is None


def test_grad_of_a_leaf_and_its_descendant_together():
    # h = x^2, y = sum(3h)  =>  dy/dh = 3, dy/dx = 6x
    x = f64(X)
    h = x * x
    gh, gx = grad((h * 3.0).sum(), [h, x])
    np.testing.assert_allclose(gh.numpy(), np.full_like(X, 3.0))
    np.testing.assert_allclose(gx.numpy(), 6 * X)


def test_grad_frees_the_graph_unless_retained():
    x = f64(X)
    y = (x * x).sum()
    (g1,) = grad(y, x, retain_graph=True)
    (g2,) = grad(y, x)
    np.testing.assert_array_equal(g1.numpy(), g2.numpy())
    with pytest.raises(RuntimeError, match="retain_graph"):
        grad(y, x)


def test_grad_rejects_inputs_without_grad():
    x = f64(X)
    c = f64(X, requires_grad=False)
    with pytest.raises(RuntimeError, match="input 1"):
        grad((x * c).sum(), [x, c])


def test_retain_grad_on_a_non_leaf():
    # h = 2x, y = sum(h^2)  =>  h.grad = 2h, x.grad = 2 * 2h = 8x
    x = f64(X)
    h = x * 2.0
    h.retain_grad()
    m = h * h
    m.sum().backward()
    np.testing.assert_allclose(h.grad.numpy(), 4 * X)
    np.testing.assert_allclose(x.grad.numpy(), 8 * X)
    assert m.grad is None


def test_retain_grad_needs_requires_grad():
    with pytest.raises(RuntimeError, match="require grad"):
        tinylm.tensor([1.0]).retain_grad()


# ----------------------------------------------------------------------------- custom Functions


class Cube(Function):
    """The custom-op example of DESIGN.md, verbatim: backward returns Tensors."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        return 3 * x**2 * dy


class CubeArrays(Function):
    """The same op with a backward that returns a plain backend array."""

    @staticmethod
    def forward(ctx, x):
        assert isinstance(x, np.ndarray)  # forward sees arrays, not Tensors
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        assert isinstance(x, Tensor) and isinstance(dy, Tensor)
        return 3 * x.data**2 * dy.data


@pytest.mark.parametrize("fn", [Cube, CubeArrays])
def test_custom_function_forward_and_backward(fn):
    xs = np.array([[1.0, -2.0], [0.5, 3.0]])
    t = f64(xs)
    y = fn.apply(t)
    assert isinstance(y, Tensor) and y.grad_fn is fn and y.requires_grad
    np.testing.assert_allclose(y.detach().numpy(), xs**3)
    y.sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), 3 * xs**2)  # d/dx x^3 = 3x^2


def test_custom_function_float32():
    t = tinylm.tensor([1.0, 2.0], requires_grad=True)
    y = Cube.apply(t)
    assert y.dtype == np.float32
    y.sum().backward()
    assert t.grad.dtype == np.float32
    np.testing.assert_allclose(t.grad.numpy(), [3.0, 12.0])


@pytest.mark.parametrize("fn", [Cube, CubeArrays])
def test_custom_function_gradchecks(fn):
    t = f64([[0.3, -1.2, 2.0], [0.9, -0.4, 1.1]])
    assert tinylm.gradcheck(fn.apply, (t,))


def test_custom_function_gradgradcheck():
    # the saved input comes back as the graph's own Tensor, so 3 x^2 dy is differentiable
    t = f64([0.3, -1.2, 2.0])
    assert tinylm.gradgradcheck(Cube.apply, (t,))
    (g,) = grad(Cube.apply(t).sum(), t, create_graph=True)
    (h,) = grad(g.sum(), t)
    np.testing.assert_allclose(h.numpy(), 6 * np.array([0.3, -1.2, 2.0]), rtol=1e-14)


def test_saved_input_is_the_graph_tensor():
    seen = {}

    class Probe(Function):
        @staticmethod
        def forward(ctx, x, w):
            k = x * 2.0  # an intermediate array: comes back as a constant Tensor
            ctx.save_for_backward(x, w, k)
            return x * w

        @staticmethod
        def backward(ctx, dy):
            seen["saved"] = ctx.saved_tensors
            x, w, _ = ctx.saved_tensors
            return dy * w, dy * x

    x, w = f64([1.0, 2.0]), f64([3.0, 4.0])
    Probe.apply(x, w).sum().backward()
    sx, sw, sk = seen["saved"]
    assert sx is x and sw is w
    assert isinstance(sk, Tensor) and not sk.requires_grad
    np.testing.assert_array_equal(sk.numpy(), [2.0, 4.0])
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 4.0])
    np.testing.assert_array_equal(w.grad.numpy(), [1.0, 2.0])


def test_backward_of_the_wrong_shape_names_function_and_shapes():
    class BadSum(Function):
        @staticmethod
        def forward(ctx, x):
            return x.sum()

        @staticmethod
        def backward(ctx, dy):
            return dy  # forgot to expand back to x's shape

    x = f64(X)
    with pytest.raises(RuntimeError) as info:
        BadSum.apply(x).backward()
    msg = str(info.value)
    assert "BadSum" in msg and "()" in msg and "(2, 3)" in msg


def test_backward_of_the_wrong_dtype_raises():
    class BadDtype(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, dy):
            return dy.data.astype(np.float32) * 2

    x = f64([1.0])
    with pytest.raises(RuntimeError, match="BadDtype.*float32.*float64"):
        BadDtype.apply(x).backward()


def test_backward_with_the_wrong_number_of_gradients_raises():
    class TwoIn(Function):
        @staticmethod
        def forward(ctx, a, b):
            return a + b

        @staticmethod
        def backward(ctx, dy):
            return dy  # one gradient for two inputs

    a, b = f64([1.0]), f64([2.0])
    with pytest.raises(RuntimeError, match="TwoIn.*1 gradients for 2 inputs"):
        TwoIn.apply(a, b).backward()


def test_needs_input_grad():
    seen = {}

    class MulFn(Function):
        @staticmethod
        def forward(ctx, a, b):
            seen["forward"] = ctx.needs_input_grad
            ctx.save_for_backward(a, b)
            return a * b

        @staticmethod
        def backward(ctx, dy):
            seen["backward"] = ctx.needs_input_grad
            a, b = ctx.saved_tensors
            da = dy * b if ctx.needs_input_grad[0] else None
            db = dy * a if ctx.needs_input_grad[1] else None
            return da, db

    a, b = f64([2.0, 3.0]), f64([5.0, 7.0], requires_grad=False)
    MulFn.apply(a, b).sum().backward()
    assert seen == {"forward": (True, False), "backward": (True, False)}
    np.testing.assert_array_equal(a.grad.numpy(), [5.0, 7.0])
    assert b.grad is None
    # a plain array input is a constant: it never needs a gradient
    MulFn.apply(b, np.array([1.0, 1.0]))
    assert seen["forward"] == ()  # nothing requires grad: no graph, nothing to ask


def test_function_under_no_grad_records_nothing():
    x = f64([1.0, 2.0])
    with tinylm.no_grad():
        y = Cube.apply(x)
    assert not y.requires_grad and y.grad_fn is None


def test_each_node_is_visited_once():
    calls = []

    class Counted(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 1.0

        @staticmethod
        def backward(ctx, dy):
            calls.append(1)
            return dy

    # h feeds three consumers; its backward must run once, with the summed gradient
    x = f64([1.0, 2.0])
    h = Counted.apply(x)
    (h + h * 2.0 + h * h).sum().backward()
    assert len(calls) == 1
    np.testing.assert_allclose(x.grad.numpy(), 1.0 + 2.0 + 2 * np.array([1.0, 2.0]))


def test_once_differentiable_refuses_create_graph():
    class Fused(Function):
        once_differentiable = True

        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, dy):
            (x,) = ctx.saved_tensors
            return 2.0 * x.data * dy.data

    x = f64([1.0, 2.0])
    Fused.apply(x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])
    with pytest.raises(RuntimeError, match="Fused.*once-differentiable"):
        grad(Fused.apply(x).sum(), x, create_graph=True)


def test_forward_returning_an_int_for_grad_inputs_raises():
    class ToInt(Function):
        @staticmethod
        def forward(ctx, x):
            return x.astype(np.int64)

        @staticmethod
        def backward(ctx, dy):  # pragma: no cover - never reached
            return dy

    with pytest.raises(TypeError, match="ToInt.*int64"):
        ToInt.apply(f64([1.0]))


def test_a_tensor_listed_twice_as_an_output_is_one_node():
    """grad([g, g], ...) seeds g twice and still reaches everything upstream of g."""
    b = tinylm.tensor([0.5, -1.0], dtype=tinylm.float64, requires_grad=True)
    g = (b * 3.0).tanh()
    (db,) = tinylm.autograd.grad([g, g], [b], [tinylm.ones_like(g), tinylm.ones_like(g)])
    want = 2 * 3.0 * (1 - np.tanh(3.0 * b.detach().numpy()) ** 2)
    np.testing.assert_allclose(db.numpy(), want, rtol=1e-12)
    b2 = tinylm.tensor([0.3, 0.1], dtype=tinylm.float64, requires_grad=True)
    assert tinylm.gradgradcheck(lambda x, y: (x + y).tanh(), (b, b2))
