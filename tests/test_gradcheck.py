"""gradcheck catches each class of backward bug, and passes correct ops.

Every bug below is a deliberately wrong custom ``Function`` (the public contract).
Each test asserts *where* the report points (input, element, output element) and
the numerical/analytic values there, derived by hand in the comments.
"""

import numpy as np
import pytest

import tinylm
from tinylm import GradcheckError, gradcheck, gradgradcheck
from tinylm.autograd import Function

pytestmark = pytest.mark.lesson02

X = [0.5, -1.0, 2.0, 1.5]  # |x| is largest at index 2


def t64(data, requires_grad=True):
    return tinylm.tensor(np.array(data, dtype=np.float64), requires_grad=requires_grad)


def caught(fn, inputs, **kw) -> GradcheckError:
    with pytest.raises(GradcheckError) as info:
        gradcheck(fn, inputs, **kw)
    return info.value


# --------------------------------------------------------------------------- buggy ops


def square_with(backward, name):
    """A custom Function y = x^2 (x saved) whose backward is ``backward(x, dy)``."""

    class Square(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x**2

        @staticmethod
        def backward(ctx, dy):
            (x,) = ctx.saved_tensors
            return backward(x, dy)

    Square.__name__ = name
    return Square


# the right backward is 2 * x * dy
SquareMissingFactor = square_with(lambda x, dy: x * dy, "SquareMissingFactor")
SquareIgnoresDy = square_with(lambda x, dy: 2 * x, "SquareIgnoresDy")
SquareFloat32Grad = square_with(
    lambda x, dy: (2 * x * dy).data.astype(np.float32), "SquareFloat32Grad"
)
# noise of 1e-8 * dy: far below atol, and zero for dy = 0, so only the repeat check sees it
SquareNoisy = square_with(
    lambda x, dy: (2 * x + 1e-8 * np.random.default_rng().standard_normal(x.shape)) * dy,
    "SquareNoisy",
)
# right values, but computed on raw arrays: a constant, so no second derivative at all
SquareArrayBackward = square_with(lambda x, dy: 2 * x.data * dy.data, "SquareArrayBackward")


def matmul_with(backward, name):
    """A custom Function Y = A B (A, B saved) whose backward is ``backward(a, b, dy)``."""

    class MatMul(Function):
        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            return a @ b

        @staticmethod
        def backward(ctx, dy):
            a, b = ctx.saved_tensors
            return backward(a, b, dy)

    MatMul.__name__ = name
    return MatMul


# the right backward is dY B^T, A^T dY
MatMulTransposed = matmul_with(lambda a, b, dy: (dy @ b, a.T @ dy), "MatMulTransposed")
# dA transposed: shape (k, n) for an (n, k) A
MatMulReturnsTranspose = matmul_with(
    lambda a, b, dy: ((dy @ b.T).T, a.T @ dy), "MatMulReturnsTranspose"
)


class GatherLastWriteWins(Function):
    """y = x[idx]; backward assigns dx[idx] = dy, so a repeated index keeps one copy only."""

    @staticmethod
    def forward(ctx, x, idx):
        ctx.shape, ctx.idx = x.shape, idx
        return x[idx]

    @staticmethod
    def backward(ctx, dy):
        dx = np.zeros(ctx.shape)
        dx[ctx.idx] = dy.data  # bug: np.add.at(dx, ctx.idx, dy.data)
        return dx


def broadcast_add_with(db, name):
    """A custom Function y = a + b, b (C,) broadcast over the rows of a (R, C); backward
    returns dy for a (right) and ``db(dy)`` for b (the right one is dy.sum(dim=0))."""

    class Add(Function):
        @staticmethod
        def forward(ctx, a, b):
            return a + b

        @staticmethod
        def backward(ctx, dy):
            return dy, db(dy)

    Add.__name__ = name
    return Add


AddNoReduce = broadcast_add_with(lambda dy: dy, "AddNoReduce")
AddMeanReduce = broadcast_add_with(lambda dy: dy.mean(dim=0), "AddMeanReduce")


class SquareConstantX(Function):
    """Right first derivative, wrong second: backward uses x as a raw array (a constant)."""

    @staticmethod
    def forward(ctx, x):
        ctx.x = x  # not save_for_backward: backward sees no Tensor, so no graph through x
        return x**2

    @staticmethod
    def backward(ctx, dy):
        return 2 * ctx.x * dy  # depends on dy (a Tensor) but on x only as a constant


class ScaleOffByOnePercent(Function):
    """y = 3x, backward returns 3.03 dy: a relative error of 1e-2."""

    @staticmethod
    def forward(ctx, x):
        return 3 * x

    @staticmethod
    def backward(ctx, dy):
        return 3.03 * dy


# --------------------------------------------------------------------------- bug classes


def test_missing_factor_full():
    # J = diag(2x) but analytic diag(x): the excess |x_j| - rtol 2|x_j| is largest at x = 2.
    e = caught(SquareMissingFactor.apply, [t64(X)])
    assert e.input_index == 0
    assert e.index == (2,) and e.output_index == (0, (2,))
    assert e.numerical == pytest.approx(4.0, abs=1e-8)
    assert e.analytic == pytest.approx(2.0, abs=1e-12)
    assert "input 0" in str(e) and "numerical" in str(e) and "analytic" in str(e)


def test_bug_in_second_output_is_located():
    # outputs are numbered in the order fn returns them; tanh is right, the square is not
    e = caught(lambda x: (x.tanh(), SquareMissingFactor.apply(x)), [t64(X)])
    assert e.input_index == 0 and e.index == (2,) and e.output_index == (1, (2,))
    assert e.numerical == pytest.approx(4.0, abs=1e-8) and e.analytic == pytest.approx(2.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_missing_factor_fast(seed):
    # v^T diag(x) u is exactly half of v^T diag(2x) u, whatever v and u are.
    e = caught(SquareMissingFactor.apply, [t64(X)], fast_mode=True, seed=seed)
    assert e.input_index == 0 and e.index is None
    assert e.analytic == pytest.approx(e.numerical / 2, rel=1e-6)
    assert "fast mode" in str(e)


B_SQ = [[1.0, 2.0, 3.0], [0.0, 1.0, 5.0], [1.0, -1.0, 2.0]]
A_SQ = [[0.3, -0.2, 0.7], [1.1, 0.4, -0.5], [0.2, 0.9, -1.3]]


def test_transposed_gradient_square():
    # dY = e_(i,k) gives dA = e_i B[k, :], so analytic dY_ik/dA_ij = B[k, j], true B[j, k].
    # |B[k, j] - B[j, k]| is largest (6) for {j, k} = {1, 2}; rtol |B[j, k]| tips it to
    # j = 2, k = 1 (|B[2, 1]| = 1 < |B[1, 2]| = 5). Every row i ties (up to rounding).
    e = caught(MatMulTransposed.apply, [t64(A_SQ), t64(B_SQ)])
    assert e.input_index == 0
    (i, j), (out, (i2, k)) = e.index, e.output_index
    assert (j, k) == (2, 1) and i == i2 and out == 0
    assert e.numerical == pytest.approx(-1.0, abs=1e-8)  # B[2, 1]
    assert e.analytic == pytest.approx(5.0, abs=1e-12)  # B[1, 2]
    assert not gradcheck(
        MatMulTransposed.apply, [t64(A_SQ), t64(B_SQ)], fast_mode=True, raise_exception=False
    )


def test_transposed_gradient_non_square_a():
    # A (2, 3), B (3, 3): dY B has the right shape (2, 3), only the values are wrong.
    a = t64(A_SQ[:2])
    e = caught(MatMulTransposed.apply, [a, t64(B_SQ)])
    (i, j), (_, (i2, k)) = e.index, e.output_index
    assert e.input_index == 0 and (j, k) == (2, 1) and i == i2
    assert (e.numerical, e.analytic) == (pytest.approx(-1.0, abs=1e-8), pytest.approx(5.0))
    e = caught(MatMulTransposed.apply, [a, t64(B_SQ)], fast_mode=True)
    assert e.input_index == 0


@pytest.mark.parametrize("fast_mode", [False, True])
def test_transposed_gradient_non_square_becomes_gradcheck_error(fast_mode):
    rng = np.random.default_rng(0)
    a, b = t64(rng.standard_normal((2, 3))), t64(rng.standard_normal((3, 4)))
    # dY (2, 4) @ B (3, 4) cannot even be computed: the crash inside backward is reported
    e = caught(MatMulTransposed.apply, [a, b], fast_mode=fast_mode)
    assert "backward failed" in str(e) and "matmul" in str(e)
    assert isinstance(e.__cause__, ValueError)
    # a transposed (3, 2) gradient for a (2, 3) input: the engine's shape error, reported
    e = caught(MatMulReturnsTranspose.apply, [a, b], fast_mode=fast_mode)
    assert "backward failed" in str(e) and "(3, 2)" in str(e) and "(2, 3)" in str(e)
    assert not gradcheck(
        MatMulReturnsTranspose.apply, [a, b], fast_mode=fast_mode, raise_exception=False
    )


@pytest.mark.parametrize("fast_mode", [False, True])
def test_ignoring_output_gradient(fast_mode):
    # dy = 0 must give dx = 0; this backward gives 2x, largest (4.0) at x = 2.
    e = caught(SquareIgnoresDy.apply, [t64(X)], fast_mode=fast_mode)
    assert e.input_index == 0 and e.index == (2,)
    assert e.numerical == 0.0 and e.analytic == pytest.approx(4.0)
    assert "zero output gradient" in str(e)


IDX = np.array([2, 0, 2, 3])  # x[2] is picked twice: y[0] and y[2]


def test_last_write_wins_scatter_full():
    # Seed dy = e_0 (output 0 reads x[2]): dx[IDX] = dy writes dy[0] = 1 into dx[2], then
    # dy[2] = 0 over it. So analytic dy_0/dx_2 = 0, numerical 1. Every other entry is right.
    e = caught(lambda x: GatherLastWriteWins.apply(x, idx=IDX), [t64(X)])
    assert e.input_index == 0
    assert e.index == (2,) and e.output_index == (0, (0,))
    assert e.numerical == pytest.approx(1.0, abs=1e-8) and e.analytic == 0.0
    assert "1 of 16 entries fail" in str(e)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_last_write_wins_scatter_fast(seed):
    # the projections differ by v_0 u_2, nonzero for random v, u
    e = caught(lambda x: GatherLastWriteWins.apply(x, idx=IDX), [t64(X)], fast_mode=True, seed=seed)
    assert e.input_index == 0
    assert e.numerical != pytest.approx(e.analytic, rel=1e-3)


def test_real_getitem_adds_repeated_indices():
    assert gradcheck(lambda x: x[IDX], [t64(X)])
    assert gradcheck(lambda x: x[IDX], [t64(X)], fast_mode=True)


A23 = [[0.1, 0.2, 0.3], [-0.4, 0.5, 0.6]]


@pytest.mark.parametrize("fast_mode", [False, True])
def test_missing_broadcast_reduction(fast_mode):
    # b (3,) is broadcast to (2, 3); an unreduced dy (2, 3) is the wrong shape for b
    e = caught(AddNoReduce.apply, [t64(A23), t64([1.0, 2.0, 3.0])], fast_mode=fast_mode)
    assert "backward failed" in str(e) and "input 1" in str(e) and "(3,)" in str(e)


def test_wrong_broadcast_reduction():
    # b_j feeds y[0, j] and y[1, j], so dy_ij/db_j = 1; mean over 2 rows gives 0.5 for all.
    # All six entries tie (up to rounding); each pairs output (r, j) with b index j.
    e = caught(AddMeanReduce.apply, [t64(A23), t64([1.0, 2.0, 3.0])])
    assert e.input_index == 1  # input 0's gradient is right: the report skips it
    (j,), (out, (_, j2)) = e.index, e.output_index
    assert j == j2 and out == 0
    assert e.numerical == pytest.approx(1.0, abs=1e-8) and e.analytic == pytest.approx(0.5)
    assert "6 of 18 entries fail" in str(e)
    e = caught(AddMeanReduce.apply, [t64(A23), t64([1.0, 2.0, 3.0])], fast_mode=True)
    assert e.input_index == 1


@pytest.mark.parametrize("fast_mode", [False, True])
def test_wrong_dtype_gradient(fast_mode):
    e = caught(SquareFloat32Grad.apply, [t64(X)], fast_mode=fast_mode)
    assert "float32" in str(e) and "float64" in str(e)


@pytest.mark.parametrize("fast_mode", [False, True])
def test_nondeterministic_backward(fast_mode):
    # the noise (1e-8) is far below atol: the Jacobians agree, only the repeat check fails
    e = caught(SquareNoisy.apply, [t64(X)], fast_mode=fast_mode)
    assert e.input_index == 0 and "not deterministic" in str(e)
    assert gradcheck(SquareNoisy.apply, [t64(X)], fast_mode=fast_mode, nondet_tol=1e-6)


def test_wrong_second_derivative_constant_x():
    # backward = 2 x v with x frozen: the first derivative is right ...
    assert gradcheck(SquareConstantX.apply, [t64(X)])
    # ... but d(2 x v)/dx = 2 v is lost: analytic 0, numerical 2 v_j, worst at |v| = 3
    v = t64([1.0, -3.0, 0.5, 2.0])
    with pytest.raises(GradcheckError) as info:
        gradgradcheck(SquareConstantX.apply, [t64(X)], grad_outputs=[v])
    e = info.value
    assert e.input_index == 0 and e.index == (1,) and e.output_index == (0, (1,))
    assert e.numerical == pytest.approx(-6.0, abs=1e-8) and e.analytic == 0.0
    assert "grad of" in str(e)
    with pytest.raises(GradcheckError) as info:
        gradgradcheck(SquareConstantX.apply, [t64(X)], grad_outputs=[v], fast_mode=True)
    assert info.value.input_index == 0


@pytest.mark.parametrize("fast_mode", [False, True])
def test_wrong_second_derivative_array_backward(fast_mode):
    assert gradcheck(SquareArrayBackward.apply, [t64(X)], fast_mode=fast_mode)
    assert not gradgradcheck(
        SquareArrayBackward.apply, [t64(X)], fast_mode=fast_mode, raise_exception=False
    )


def test_nan_on_one_side_fails():
    # a formula that breaks down (NaN) for dy = 1 only, so it gets past the zero check:
    # a NaN must never compare as "no difference"
    nan_at_one = square_with(
        lambda x, dy: np.where(dy.data == 1.0, np.nan, 2 * x.data * dy.data), "NanAtOne"
    )
    e = caught(nan_at_one.apply, [t64(X)])
    assert e.index == (0,) and np.isnan(e.analytic) and e.numerical == pytest.approx(1.0)


# --------------------------------------------------------------------------- tolerances


def test_tolerances_are_meaningful():
    # Why the defaults are right: a central difference has truncation error
    # ~ eps^2 |f'''| / 6 and rounding error ~ machine_eps |f| / eps. In float64 with
    # eps = 1e-6 that is ~1e-12 + ~1e-10, four orders of magnitude below atol = 1e-5
    # (and rtol = 1e-3), so a correct backward passes with room to spare and a 1e-2
    # relative error, 10x rtol, cannot hide.
    x = t64(X)
    e = caught(ScaleOffByOnePercent.apply, [x])
    assert e.numerical == pytest.approx(3.0, abs=1e-8) and e.analytic == pytest.approx(3.03)
    e = caught(ScaleOffByOnePercent.apply, [x], fast_mode=True)
    assert e.analytic == pytest.approx(1.01 * e.numerical, rel=1e-6)
    # looser than the bug, it passes: the verdict really is the tolerance comparison
    assert gradcheck(ScaleOffByOnePercent.apply, [x], rtol=2e-2)
    # the numerical error of a correct smooth op is ~1e-10: far tighter tolerances hold
    assert gradcheck(lambda x: (x * x).tanh().exp(), [x], atol=1e-8, rtol=1e-7)


# --------------------------------------------------------------------------- correct ops pass


def _two_outputs(a, b):
    return a * b, (a + b).sum()


CORRECT = {
    "chain": (lambda x: (x * x).tanh().exp(), [(4,)]),
    "matmul": (lambda a, b: a @ b, [(2, 3), (3, 4)]),
    "batched_matmul": (lambda a, b: a @ b, [(2, 2, 3), (3, 2)]),
    "broadcast_mul_add": (lambda a, b: a * b + b, [(2, 3), (3,)]),
    "softmax": (lambda x: x.softmax(dim=-1), [(2, 5)]),
    "sum_dim": (lambda x: x.sum(dim=1, keepdim=True), [(3, 4)]),
    "two_outputs": (_two_outputs, [(2, 3), (2, 3)]),
    "zero_dim": (lambda x, y: x * y + x.exp(), [(), (3,)]),
    "zero_size": (lambda x, y: x.sum(dim=0) + y, [(0, 3), (3,)]),
}


@pytest.mark.parametrize("fast_mode", [False, True])
@pytest.mark.parametrize("case", CORRECT)
def test_correct_ops_pass(case, fast_mode):
    fn, shapes = CORRECT[case]
    rng = np.random.default_rng(1)
    inputs = [t64(rng.standard_normal(s)) for s in shapes]
    assert gradcheck(fn, inputs, fast_mode=fast_mode)


@pytest.mark.parametrize("case", ["chain", "matmul", "broadcast_mul_add", "softmax"])
def test_correct_ops_pass_gradgradcheck(case):
    fn, shapes = CORRECT[case]
    rng = np.random.default_rng(2)
    assert gradgradcheck(fn, [t64(rng.standard_normal(s)) for s in shapes])


def test_inputs_without_grad_pass_through():
    # a constant tensor, a float32 constant and a Python number are not checked
    const = t64([[1.0, 2.0, 3.0]], requires_grad=False)
    scale32 = tinylm.tensor([2.0], dtype=tinylm.float32)

    def fn(x, c, s32, k):
        return x * c * k + float(s32.item())

    assert gradcheck(fn, [t64(A23), const, scale32, 3])
    # the bug in input 1 is found even when input 0 is a constant
    e = caught(AddMeanReduce.apply, [t64(A23, requires_grad=False), t64([1.0, 2.0, 3.0])])
    assert e.input_index == 1


def test_single_tensor_input_and_inputs_restored():
    x = t64(X)
    before = x.data.copy()
    assert gradcheck(lambda x: x.tanh(), x)
    assert not gradcheck(SquareMissingFactor.apply, x, raise_exception=False)
    assert gradcheck(lambda x: x.tanh(), x, fast_mode=True)
    np.testing.assert_array_equal(x.data, before)  # every perturbation was undone, bit-exact
    assert x.grad is None  # gradcheck never touches .grad


def test_read_only_input_is_checked():
    x = tinylm.Tensor(np.broadcast_to(np.array([0.5, -1.0]), (3, 2)), requires_grad=True)
    assert gradcheck(lambda x: (x * x).sum(dim=0), [x])


# --------------------------------------------------------------------------- misuse


def test_raise_exception_false_returns_false():
    assert gradcheck(SquareMissingFactor.apply, [t64(X)], raise_exception=False) is False
    assert gradcheck(SquareIgnoresDy.apply, [t64(X)], raise_exception=False) is False
    assert gradcheck(SquareFloat32Grad.apply, [t64(X)], raise_exception=False) is False
    assert gradcheck(lambda x: x.tanh(), [t64(X)], raise_exception=False) is True


def test_float32_input_refused():
    x32 = tinylm.tensor(X, dtype=tinylm.float32, requires_grad=True)
    for check in (gradcheck, gradgradcheck):
        with pytest.raises(TypeError, match="float64"):
            check(lambda x: x * x, [x32])
    with pytest.raises(TypeError, match="float64"):  # misuse raises even so
        gradcheck(lambda x: x * x, [x32], raise_exception=False)


def test_non_leaf_input_refused():
    y = t64(X) * 2
    with pytest.raises(ValueError, match="leaf"):
        gradcheck(lambda x: x * x, [y])


def test_nothing_to_check_refused():
    with pytest.raises(ValueError, match="requires grad"):
        gradcheck(lambda x: x * x, [t64(X, requires_grad=False)])


def test_report_names_a_function_passed_as_its_apply():
    class Doubled(Function):
        @staticmethod
        def forward(ctx, x):
            return 2 * x

        @staticmethod
        def backward(ctx, dy):
            return dy  # bug: the factor 2 is missing

    x = tinylm.randn(3, dtype=tinylm.float64, requires_grad=True)
    with pytest.raises(GradcheckError, match=r"Doubled\.apply"):
        gradcheck(Doubled.apply, (x,))
