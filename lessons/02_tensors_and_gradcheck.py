# %% [markdown]
# # Lesson 02 — Tensors, broadcasting, and checking gradients
#
# Lesson 01 differentiated programs made of single numbers. Real models work on arrays —
# *tensors* — and two new things happen there:
#
# 1. an op's derivative becomes a Jacobian matrix far too large to build, so each
#    backward computes a *vector-Jacobian product* directly;
# 2. shapes change: broadcasting silently copies values, and the backward pass has to
#    undo those copies, by summing.
#
# Then comes the question every backward raises: **is it right?** We answer it the way
# tinylm's test suite does, by comparing with central differences. That only works if we
# understand how accurate central differences are, so we will derive their error,
# measure it, and see why gradient checks must run in float64.
#
# Plan: the vector-Jacobian product (§1), broadcasting (§2), the matrix-product gradient
# (§3), the error of central differences (§4), `tinylm.gradcheck` (§5), and a buggy op
# that gradcheck catches (§6).

# %%
import math

import matplotlib.pyplot as plt
import numpy as np

import tinylm
from tinylm.ops.shape import sum_to

tinylm.manual_seed(0)
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. From scalars to tensors: the vector-Jacobian product
#
# Let an op map an input $x$ with $n$ elements to an output $y$ with $m$ elements, and
# let $L$ be the scalar loss further down the graph. The sum rule of lesson 01, applied to
# every element of $x$, reads
#
# $$\bar x_j = \sum_{i=1}^{m} \bar y_i \,\frac{\partial y_i}{\partial x_j},
# \qquad\text{that is}\qquad \bar x = J^\top \bar y,
# \qquad J_{ij} = \frac{\partial y_i}{\partial x_j}.$$
#
# $J$ is the Jacobian, an $m \times n$ matrix. For a $1000 \times 1000$ activation it
# would have $10^{12}$ entries, so no backward ever builds it. Each op works out
# $J^\top \bar y$ in closed form instead. For an elementwise op like $\tanh$,
# $y_i$ depends only on $x_i$, so $J$ is diagonal with $J_{ii} = 1 - y_i^2$ and the
# product collapses to an elementwise one:
#
# $$\bar x = \bar y \odot (1 - y \odot y),$$
#
# which is exactly `Tanh.backward`'s `dy * (1.0 - y * y)` from lesson 01. Let us build
# the Jacobian of a 4-element $\tanh$ numerically, column by column, see that it is
# diagonal, and compare $J^\top \bar y$ with tinylm's backward. (`y.backward(dy)` seeds
# the output's adjoint with `dy` instead of 1.)

# %%
h = 1e-6
x_np = rng.standard_normal(4)
J = np.zeros((4, 4))
for j in range(4):
    e_j = np.zeros(4)
    e_j[j] = 1.0
    J[:, j] = (np.tanh(x_np + h * e_j) - np.tanh(x_np - h * e_j)) / (2 * h)
print("numerical Jacobian of tanh (diagonal):\n", np.round(J, 6))

dy = rng.standard_normal(4)
x = tinylm.tensor(x_np, requires_grad=True)  # float64, as the NumPy data
y = x.tanh()
y.backward(tinylm.tensor(dy))
print("J^T dy          :", J.T @ dy)
print("tinylm backward :", x.grad.numpy())
np.testing.assert_allclose(x.grad.numpy(), J.T @ dy, rtol=1e-8)
assert np.count_nonzero(np.abs(J - np.diag(np.diag(J))) > 1e-12) == 0

# %% [markdown]
# Note the shapes: `dy` has the shape of the output, and the gradient returned for an
# input always has the shape of *that input*. tinylm checks this for every op.

# %% [markdown]
# ## 2. Broadcasting, and why its gradient is a sum
#
# NumPy and tinylm let you combine arrays of different shapes by **broadcasting**:
#
# 1. line the shapes up at the right;
# 2. where one shape is shorter, pretend it has leading dimensions of size 1;
# 3. in each position the sizes must be equal, or one of them 1; a size-1 dimension is
#    stretched (its values repeated) to match the other.
#
# So a bias of shape `(3,)` is added to every row of a `(4, 3)` batch, and a column
# `(4, 1)` times a row `(3,)` gives a `(4, 3)` table.
#
# Take $y_{ij} = x_{ij} + b_j$, with $x$ of shape $(4, 3)$ and $b$ of shape $(3,)$.
# The single number $b_j$ feeds four outputs $y_{0j}, \dots, y_{3j}$: four paths. By
# the sum rule
#
# $$\bar b_j = \sum_{i} \bar y_{ij}\,\frac{\partial y_{ij}}{\partial b_j}
#            = \sum_{i} \bar y_{ij}.$$
#
# That holds for any broadcast: **broadcasting copies, and the gradient of a copied value
# is the sum of the gradients of its copies.** Every broadcasting op therefore ends its
# backward with `sum_to(grad, input_shape)` (also called `unbroadcast`), which sums over
#
# * the leading dimensions that broadcasting added, and
# * every dimension where the input had size 1 (keeping it, with size 1).
#
# Here is `tinylm.ops.shape.sum_to` reducing a `(2, 4, 3)` gradient to shape `(4, 1)`:
# it sums over dimension 0 (added) and dimension 2 (stretched from 1).

# %%
g = tinylm.randn(2, 4, 3, dtype=tinylm.float64)
reduced = sum_to(g, (4, 1))
by_numpy = g.numpy().sum(axis=0).sum(axis=1, keepdims=True)
print("sum_to shape:", reduced.shape)
np.testing.assert_allclose(reduced.numpy(), by_numpy, rtol=1e-12)

# %% [markdown]
# Now a product that broadcasts both ways, $y_{ij} = a_i\, b_j$ with $a$ of shape
# $(4, 1)$ and $b$ of shape $(3,)$, and a loss $L = \sum_{ij} w_{ij}\, y_{ij}$ with
# random weights $w$, so that $\bar y = w$ is not just ones. By the product rule and the
# sum rule,
#
# $$\bar a_i = \sum_j w_{ij}\, b_j, \qquad \bar b_j = \sum_i w_{ij}\, a_i .$$

# %%
a = tinylm.randn(4, 1, dtype=tinylm.float64, requires_grad=True)
b = tinylm.randn(3, dtype=tinylm.float64, requires_grad=True)
w = tinylm.randn(4, 3, dtype=tinylm.float64)
y = a * b  # (4, 1) * (3,) -> (4, 3)
(y * w).sum().backward()

A, B, W = a.detach().numpy(), b.detach().numpy(), w.numpy()
print("a.grad shape", a.grad.shape, " b.grad shape", b.grad.shape)
np.testing.assert_allclose(a.grad.numpy(), (W * B).sum(axis=1, keepdims=True), rtol=1e-12)
np.testing.assert_allclose(b.grad.numpy(), (W * A).sum(axis=0), rtol=1e-12)
print("both gradients equal the sums over the broadcast dimensions")

# %% [markdown]
# What if an op forgets the sum? Its gradient would have the *output's* shape, `(4, 3)`,
# for an input of shape `(3,)`. tinylm refuses such a gradient and says which op and
# which input; that catches the most common broadcasting bug before it can corrupt
# anything.


# %%
class ForgetfulBiasAdd(tinylm.autograd.Function):
    """y = x + bias, with a backward that forgets to unbroadcast (a bug, on purpose)."""

    @staticmethod
    def forward(ctx, x, bias):
        return x + bias

    @staticmethod
    def backward(ctx, dy):
        return dy, dy  # wrong for bias: should be sum_to(dy, bias.shape)


x = tinylm.randn(4, 3, dtype=tinylm.float64, requires_grad=True)
bias = tinylm.randn(3, dtype=tinylm.float64, requires_grad=True)
try:
    ForgetfulBiasAdd.apply(x, bias).sum().backward()
except RuntimeError as err:
    print("refused:", err)

# %% [markdown]
# (In tinylm, `expand` — broadcasting made explicit — and `sum_to` are each other's
# backward: copying forward means summing backward, and summing forward means copying
# backward.)

# %% [markdown]
# ## 3. The gradient of a matrix product
#
# Let $Y = A B$ with $A$ of shape $(n, k)$, $B$ of shape $(k, m)$, so
# $Y_{ij} = \sum_p A_{ip} B_{pj}$, and write $G = \bar Y$ for the adjoint arriving from
# above. Entry $A_{rs}$ appears in row $r$ of $Y$ only, multiplied by $B_{sj}$ in
# column $j$: $\partial Y_{ij} / \partial A_{rs} = [i = r]\, B_{sj}$. The sum rule gives
#
# $$\bar A_{rs} = \sum_{i,j} G_{ij}\,[i = r]\,B_{sj} = \sum_j G_{rj} B_{sj}
#   = (G B^\top)_{rs},$$
#
# and in the same way, since $\partial Y_{ij} / \partial B_{rs} = A_{ir}\,[j = s]$,
#
# $$\bar B_{rs} = \sum_{i} A_{ir}\, G_{is} = (A^\top G)_{rs}.$$
#
# So $\;dA = dY\,B^\top$ and $dB = A^\top dY$. The shapes agree, as they must:
# $(n, m)(m, k) = (n, k)$ like $A$, and $(k, n)(n, m) = (k, m)$ like $B$. (The shapes
# alone nearly force these formulas, a handy memory aid; the derivation is what proves
# them.) We check tinylm three ways: against the matrix formulas, against the index
# formula summed literally with `einsum`, and with central differences.

# %%
n, k, m = 3, 4, 2
A = tinylm.randn(n, k, dtype=tinylm.float64, requires_grad=True)
B = tinylm.randn(k, m, dtype=tinylm.float64, requires_grad=True)
G = tinylm.randn(n, m, dtype=tinylm.float64)
(A @ B).backward(G)  # seed dL/dY = G

An, Bn, Gn = A.detach().numpy(), B.detach().numpy(), G.numpy()
np.testing.assert_allclose(A.grad.numpy(), Gn @ Bn.T, rtol=1e-12)
np.testing.assert_allclose(B.grad.numpy(), An.T @ Gn, rtol=1e-12)
np.testing.assert_allclose(A.grad.numpy(), np.einsum("rj,sj->rs", Gn, Bn), rtol=1e-12)
np.testing.assert_allclose(B.grad.numpy(), np.einsum("ir,is->rs", An, Gn), rtol=1e-12)
print("dA = dY B^T and dB = A^T dY:", tinylm.gradcheck(tinylm.matmul, (A, B)))

# %% [markdown]
# Broadcasting and matmul meet in every neural network layer: a batch of inputs
# $X_b$ of shape $(5, 3, 4)$ times one weight matrix $W$ of shape $(4, 2)$. $W$ is
# broadcast over the 5 batch entries, so by §2 its gradient is the sum of the 5
# per-entry gradients: $\bar W = \sum_b X_b^\top G_b$.

# %%
X = tinylm.randn(5, 3, 4, dtype=tinylm.float64, requires_grad=True)
W = tinylm.randn(4, 2, dtype=tinylm.float64, requires_grad=True)
G = tinylm.randn(5, 3, 2, dtype=tinylm.float64)
(X @ W).backward(G)
Xn, Gn = X.detach().numpy(), G.numpy()
expected_dW = sum(Xn[i].T @ Gn[i] for i in range(5))
np.testing.assert_allclose(W.grad.numpy(), expected_dW, rtol=1e-12)
print("W.grad shape", W.grad.shape, "= sum over the batch of X_b^T G_b")

# %% [markdown]
# ## 4. How accurate are central differences?
#
# Every check above leaned on central differences. How much can they be trusted, and how
# should the step $\varepsilon$ be chosen? Two errors pull in opposite directions.
#
# **Truncation error.** Taylor's theorem around $x$:
#
# $$f(x \pm \varepsilon) = f(x) \pm \varepsilon f'(x) + \tfrac{\varepsilon^2}{2} f''(x)
#   \pm \tfrac{\varepsilon^3}{6} f'''(x) + O(\varepsilon^4).$$
#
# Subtracting the two, the even terms cancel:
#
# $$f(x+\varepsilon) - f(x-\varepsilon) = 2\varepsilon f'(x) + \tfrac{\varepsilon^3}{3} f'''(x)
#   + O(\varepsilon^5),$$
#
# so that
#
# $$D(\varepsilon) = \frac{f(x+\varepsilon) - f(x-\varepsilon)}{2\varepsilon}
#   = f'(x) + \frac{\varepsilon^2}{6} f'''(x) + O(\varepsilon^4).$$
#
# The truncation error $\approx \varepsilon^2 |f'''(x)| / 6$ shrinks as $\varepsilon^2$.
# In exact arithmetic, smaller is always better.
#
# **Rounding error.** A computer stores each $f(x \pm \varepsilon)$ rounded to a relative
# precision of about $u$, the unit roundoff: half the machine epsilon,
# $u \approx 1.1 \times 10^{-16}$ in float64 and $u \approx 6.0 \times 10^{-8}$ in float32.
# Each value is off by up to about $u|f(x)|$. Their difference is a small number computed
# from two large, nearly equal ones, so these absolute errors survive the subtraction
# while the true difference shrinks with $\varepsilon$. Divided by $2\varepsilon$ they
# become
#
# $$\text{rounding error} \approx \frac{2\,u|f(x)|}{2\varepsilon} = \frac{u|f(x)|}{\varepsilon}.$$
#
# This one *grows* as $\varepsilon$ shrinks.
#
# **The best step.** The total error is about
# $E(\varepsilon) = \tfrac{\varepsilon^2}{6}|f'''| + \tfrac{u}{\varepsilon}|f|$.
# Setting $E'(\varepsilon) = \tfrac{\varepsilon}{3}|f'''| - \tfrac{u}{\varepsilon^2}|f| = 0$
# gives
#
# $$\varepsilon^* = \left(\frac{3u|f|}{|f'''|}\right)^{1/3} \sim u^{1/3},
# \qquad E(\varepsilon^*) \sim u^{2/3}.$$
#
# For a function with $|f| \approx |f'''| \approx 1$ the model predicts:
#
# | | $u$ | best step $\varepsilon^* \sim u^{1/3}$ | best error $\sim u^{2/3}$ | error at $\varepsilon = 10^{-6}$ |
# |---|---|---|---|---|
# | float64 | $1.1 \times 10^{-16}$ | $\sim 7 \times 10^{-6}$ | $\sim 10^{-11}$ | $\lesssim 10^{-10}$ |
# | float32 | $6.0 \times 10^{-8}$ | $\sim 6 \times 10^{-3}$ | $\sim 10^{-5}$ | $\lesssim 6 \times 10^{-2}$ |
#
# That table is the reason for two of tinylm's choices. Gradient checks run in
# **float64**: in float32 even the best step leaves an error around $10^{-5}$, too coarse
# to tell a right gradient from a slightly wrong one. And `gradcheck`'s default step is
# $\varepsilon = 10^{-6}$, near the float64 optimum.
#
# Let us predict and measure for $f = \sin$ at $x = 1$, where
# $f'(1) = \cos 1$ is known exactly and $f'''(1) = -\cos 1$.


# %%
def central_difference_error(dtype, eps, x=1.0):
    """|central difference of sin at x - cos(x)|, computed entirely in `dtype`."""
    x, h = dtype(x), dtype(eps)
    estimate = (np.sin(x + h) - np.sin(x - h)) / (dtype(2) * h)
    return abs(float(estimate) - math.cos(1.0))


f_abs, f3_abs = abs(math.sin(1.0)), abs(math.cos(1.0))
for dtype in (np.float64, np.float32):
    u = np.finfo(dtype).eps / 2
    eps_star = (3 * u * f_abs / f3_abs) ** (1 / 3)
    print(
        f"{dtype.__name__}: u = {u:.1e}, predicted best eps = {eps_star:.1e}, "
        f"measured error at eps=1e-6: {central_difference_error(dtype, 1e-6):.1e}"
    )

err64 = central_difference_error(np.float64, 1e-6)
err32 = central_difference_error(np.float32, 1e-6)
assert err64 < 1e-8
assert err32 > 1e3 * err64

# %% [markdown]
# Now sweep $\varepsilon$ over thirteen orders of magnitude and plot the error on log-log
# axes. Each dtype draws a **V**: on the right, truncation error (a line of slope $+2$);
# on the left, rounding error (slope $-1$, noisy because rounding is). The dashed lines
# are the model $E(\varepsilon)$ from above. It is a pessimistic estimate — rounding
# errors partly cancel, so the measured points mostly sit below it, and a lucky step can
# land far below — but it gets the slopes and the position of each V right: the bottom
# sits where the two errors meet, near $u^{1/3}$. (For float32 at the far left,
# $x \pm \varepsilon$ rounds back to $x$ itself, the difference is exactly 0, and the
# error flattens out at $|f'(x)| = \cos 1$.)

# %%
eps_grid = np.logspace(-13, -0.5, 120)
fig, ax = plt.subplots(figsize=(7, 4.5))
for dtype, color in ((np.float64, "tab:blue"), (np.float32, "tab:orange")):
    u = np.finfo(dtype).eps / 2
    errors = np.array([central_difference_error(dtype, e) for e in eps_grid])
    model = eps_grid**2 * f3_abs / 6 + u * f_abs / eps_grid
    ax.loglog(eps_grid, np.maximum(errors, 1e-17), color=color, label=f"{dtype.__name__}: measured")
    ax.loglog(eps_grid, model, color=color, ls="--", lw=1, label=f"{dtype.__name__}: model")
    best = eps_grid[np.argmin(errors)]
    print(f"{dtype.__name__}: smallest measured error {errors.min():.1e} at eps = {best:.1e}")
ax.axvline(1e-6, color="gray", lw=0.8, ls=":")
ax.text(1.2e-6, 1e-15, "gradcheck's eps", color="gray")
ax.set_xlabel(r"step $\varepsilon$")
ax.set_ylabel(r"$|D(\varepsilon) - f'(x)|$")
ax.set_title("Central difference error for sin'(1): rounding (left) vs truncation (right)")
ax.set_ylim(1e-17, 10)
ax.legend(loc="lower left", fontsize=8)
plt.show()

# %% [markdown]
# ## 5. `tinylm.gradcheck`
#
# `tinylm.gradcheck(fn, inputs)` turns §1 and §4 into a test. For every input that
# requires grad it builds the whole Jacobian twice:
#
# * **numerically**, one column per input element: perturb that element by
#   $\pm\varepsilon$ and take the central difference of every output (§4);
# * **analytically**, one row per output element: run backward with a one-hot output
#   gradient $\bar y = e_i$, which returns $J^\top e_i$, row $i$ of $J$ (§1).
#
# It passes when
# $|\text{analytic} - \text{numerical}| \le \text{atol} + \text{rtol}\,|\text{numerical}|$
# everywhere (defaults $\varepsilon = 10^{-6}$, atol $= 10^{-5}$, rtol $= 10^{-3}$). It
# also checks what every correct backward must do besides: a zero output gradient gives
# zero input gradients, two backward passes agree, and each gradient has its input's
# shape and dtype. Building whole Jacobians costs two forward passes per input element,
# so use small inputs (or `fast_mode=True`, which compares one random projection
# $v^\top J u$ instead).
#
# It returns `True` or raises `GradcheckError`. A few ops, including broadcasting ones:


# %%
def dbl(*shape):
    return tinylm.randn(*shape, dtype=tinylm.float64, requires_grad=True)


checks = {
    "tanh": (tinylm.tanh, (dbl(3, 4),)),
    "broadcast mul (4,1)*(3,)": (lambda a, b: a * b, (dbl(4, 1), dbl(3))),
    "broadcast add (2,3)+(3,)": (lambda a, b: a + b, (dbl(2, 3), dbl(3))),
    "matmul (2,3,4)@(4,5)": (tinylm.matmul, (dbl(2, 3, 4), dbl(4, 5))),
    "softmax over the last dim": (lambda z: tinylm.softmax(z, dim=-1), (dbl(3, 5),)),
    "sum_to (2,4,3)->(4,1)": (lambda z: sum_to(z, (4, 1)), (dbl(2, 4, 3),)),
}
for name, (fn, inputs) in checks.items():
    print(f"{name:28s} gradcheck: {tinylm.gradcheck(fn, inputs)}")

# %% [markdown]
# It refuses float32 inputs outright, for the reasons in §4:

# %%
try:
    tinylm.gradcheck(tinylm.tanh, (tinylm.randn(3, requires_grad=True),))
except TypeError as err:
    print("refused:", err)

# %% [markdown]
# ## 6. A bug that gradcheck catches
#
# SiLU (also called swish), $y = x\,\sigma(x)$ with $\sigma(x) = 1/(1 + e^{-x})$, is a
# popular activation. Its derivative needs the product rule, together with
# $\sigma'(x) = \sigma(x)(1 - \sigma(x))$:
#
# $$\frac{dy}{dx} = \sigma(x) + x\,\sigma(x)\bigl(1 - \sigma(x)\bigr)
#   = \sigma(x)\bigl(1 + x(1 - \sigma(x))\bigr).$$
#
# A classic slip is to forget the second term of the product rule and return only
# $\sigma(x)\,\bar y$. Nothing crashes; the shapes are right; training would even limp
# along. Only a gradient check notices:


# %%
class SiLUBuggy(tinylm.autograd.Function):
    r"""Forward: y = x sigmoid(x).   Backward (WRONG): dx = dy sigmoid(x).   Saves: x."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x / (1.0 + np.exp(-x))

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        return dy * x.sigmoid()  # forgot the product rule's second term


def silu_buggy(x):
    return SiLUBuggy.apply(x)


x = tinylm.tensor([[-2.0, -0.5, 0.0], [0.5, 1.5, 3.0]], dtype=tinylm.float64, requires_grad=True)
try:
    tinylm.gradcheck(silu_buggy, (x,))
except tinylm.GradcheckError as err:
    report = err
    print(err)

# %% [markdown]
# The report names the input, the worst element, and both values. The error object
# carries them as attributes too, so we can confirm by hand that "numerical" is the true
# derivative $\sigma(1 + x(1-\sigma))$ at that element and "analytic" is the buggy
# $\sigma$:

# %%
xi = x.detach().numpy()[report.index]
sig = 1.0 / (1.0 + math.exp(-xi))
print(f"element {report.index}: x = {xi}")
print(f"  numerical {report.numerical:.8f}   true derivative {sig * (1 + xi * (1 - sig)):.8f}")
print(f"  analytic  {report.analytic:.8f}   buggy sigma(x)   {sig:.8f}")
assert abs(report.numerical - sig * (1 + xi * (1 - sig))) < 1e-8
assert abs(report.analytic - sig) < 1e-12

# %% [markdown]
# The fix adds the missing term. Because the backward is written with Tensor ops, it is
# itself differentiable, so `gradgradcheck` can check the second derivative as well.


# %%
class SiLU(tinylm.autograd.Function):
    r"""Forward: y = x s, s = sigmoid(x).   Backward: dx = dy s (1 + x (1 - s)).   Saves: x."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x / (1.0 + np.exp(-x))

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        s = x.sigmoid()
        return dy * s * (1.0 + x * (1.0 - s))


def silu(x):
    return SiLU.apply(x)


print("gradcheck(SiLU):    ", tinylm.gradcheck(silu, (x,)))
print("gradgradcheck(SiLU):", tinylm.gradgradcheck(silu, (x,)))

# %% [markdown]
# ## Summary
#
# * A tensor op's backward computes the vector-Jacobian product $\bar x = J^\top \bar y$
#   without building $J$; the gradient of an input has that input's shape.
# * Broadcasting copies values, so the backward sums: `sum_to` adds over the added
#   leading dimensions and over the stretched size-1 dimensions.
# * For $Y = AB$: $dA = dY\,B^\top$ and $dB = A^\top dY$, summed over any broadcast
#   batch dimensions.
# * Central differences have truncation error $O(\varepsilon^2)$ and rounding error
#   $O(u/\varepsilon)$; the best step is near $u^{1/3}$. In float64 that means
#   $\varepsilon \approx 10^{-6}$ and errors of $10^{-10}$ or less; float32 is hopeless for
#   checking, so gradient checks use float64.
# * `tinylm.gradcheck` compares full Jacobians and reports the input, the element and
#   both values; wrap your own ops in it before you trust them.
#
# ## Tests that grade this lesson
#
# Run them all with `pytest -m lesson02`:
#
# * `tests/test_lesson02_lesson.py::test_elementwise_vjp_is_diagonal_jacobian_product`
# * `tests/test_lesson02_lesson.py::test_broadcast_gradient_sums_over_broadcast_dims`
# * `tests/test_lesson02_lesson.py::test_sum_to_matches_numpy_sums`
# * `tests/test_lesson02_lesson.py::test_forgotten_unbroadcast_is_refused`
# * `tests/test_lesson02_lesson.py::test_matmul_gradients_match_formulas`
# * `tests/test_lesson02_lesson.py::test_batched_matmul_sums_shared_weight_gradient`
# * `tests/test_lesson02_lesson.py::test_float64_central_difference_error_is_tiny_at_1e_6`
# * `tests/test_lesson02_lesson.py::test_float32_central_difference_error_is_far_larger`
# * `tests/test_lesson02_lesson.py::test_central_difference_error_is_v_shaped`
# * `tests/test_lesson02_lesson.py::test_gradcheck_passes_on_core_ops`
# * `tests/test_lesson02_lesson.py::test_gradcheck_refuses_float32`
# * `tests/test_lesson02_lesson.py::test_gradcheck_catches_product_rule_slip`
