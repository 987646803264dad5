# %% [markdown]
# # Lesson 04 — Softmax and cross-entropy
#
# A language model ends every step with a vector of **logits**: one real number per
# token of the vocabulary, any sign, any size. To train it we need two things from those
# numbers: a probability distribution over the next token (**softmax**), and a single
# number saying how wrong that distribution was about the token that actually came next
# (**cross-entropy**). This pair sits at the end of almost every classifier and every
# language model, so its gradient is computed billions of times. It turns out to be
# beautifully simple, $p - y$, and this lesson derives why.
#
# Plan:
#
# 1. softmax and its Jacobian $\operatorname{diag}(p) - p p^\top$ (§1);
# 2. cross-entropy, and why its gradient with respect to the logits is $p - y$ (§2);
# 3. log-sum-exp: computing both without overflow at logits of 1000 (§3);
# 4. label smoothing: what the target becomes, and what that does to the optimum (§4);
# 5. `ignore_index`: which targets count, and what the mean divides by (§5);
# 6. gradient checks of tinylm's `F.cross_entropy` (§6).

# %%
import inspect

import numpy as np

import tinylm
import tinylm.nn.functional as F
from tinylm.gradcheck import jacobians
from tinylm.ops.softmax import LogSoftmax, Softmax

tinylm.manual_seed(0)


def dbl(*shape):
    return tinylm.randn(*shape, dtype=tinylm.float64, requires_grad=True)


# %% [markdown]
# ## 1. Softmax and its Jacobian
#
# Softmax turns logits $z \in \mathbb{R}^C$ into probabilities:
#
# $$p_i = \frac{e^{z_i}}{S}, \qquad S = \sum_{k=1}^{C} e^{z_k}.$$
#
# Every $p_i$ is positive, and they sum to 1. Larger logits get larger probabilities, and
# adding the same constant $a$ to every logit changes nothing: the factor $e^a$ appears
# in the numerator and in $S$ and cancels.
#
# **The Jacobian.** Differentiate $p_i$ with respect to $z_j$ by the quotient rule. The
# numerator $e^{z_i}$ has derivative $[i = j]\,e^{z_i}$; the denominator $S$ has
# derivative $e^{z_j}$. So
#
# $$\frac{\partial p_i}{\partial z_j}
#   = \frac{[i = j]\, e^{z_i}\, S - e^{z_i}\, e^{z_j}}{S^2}
#   = [i = j]\, p_i - p_i\, p_j,
# \qquad\text{i.e.}\qquad
# J = \operatorname{diag}(p) - p\,p^\top .$$
#
# Three things to notice:
#
# * $J$ is **symmetric**.
# * Each **row sums to zero**: $\sum_j J_{ij} = p_i - p_i \sum_j p_j = 0$. That is the
#   shift invariance again: moving all logits together ($dz = a\mathbf{1}$) moves no
#   probability, so $J\mathbf{1} = 0$ and $J$ is singular.
# * Unlike $\tanh$ in lesson 02, softmax is not elementwise: every output depends on
#   every input, so $J$ is full. The backward still never builds it. The
#   vector-Jacobian product for an output gradient $g$ is
#
# $$(J^\top g)_j = \sum_i g_i\,(p_i [i = j] - p_i p_j) = p_j \Big(g_j - \sum_i g_i p_i\Big),$$
#
# one dot product and an elementwise product: $O(C)$ work instead of $O(C^2)$.
#
# Let us compare the formula with the Jacobian measured by central differences
# (`tinylm.gradcheck.jacobians` returns both the numerical Jacobian and the one tinylm's
# backward produces, row by row).

# %%
z = dbl(5)
p = tinylm.softmax(z, dim=-1).detach().numpy()
J_formula = np.diag(p) - np.outer(p, p)
[(_, J_numerical, J_backward)] = jacobians(lambda z: tinylm.softmax(z, dim=-1), (z,))
np.set_printoptions(precision=4, suppress=True)
print("p =", p)
print("J = diag(p) - p p^T:\n", J_formula)
print("max |formula - numerical| =", np.abs(J_formula - J_numerical).max())
print("max |formula - backward|  =", np.abs(J_formula - J_backward).max())
print("largest |row sum|:", np.abs(J_formula.sum(axis=1)).max())
np.testing.assert_allclose(J_numerical, J_formula, atol=1e-9)
np.testing.assert_allclose(J_backward, J_formula, atol=1e-15)

# %% [markdown]
# tinylm's `Softmax` is that vector-Jacobian product, line for line: `y` is $p$, `dy` is
# $g$.

# %%
print(inspect.getsource(Softmax))

# %% [markdown]
# ## 2. Cross-entropy, and why its gradient is $p - y$
#
# The model said $p$; the true next token was class $y$. Cross-entropy charges the
# negative log of the probability the model gave to the truth:
#
# $$\ell = -\log p_y .$$
#
# It is zero when the model was certain and right ($p_y = 1$), grows without bound as
# $p_y \to 0$, and averaging it over a dataset is the negative log-likelihood, so
# minimising it is maximum-likelihood training. Insert the softmax, using
# $\log p_y = z_y - \log S$:
#
# $$\ell = -z_y + \log \sum_k e^{z_k}.$$
#
# Differentiate with respect to $z_i$. The first term gives $-[i = y]$; the second gives
# $e^{z_i} / S = p_i$. So
#
# $$\boxed{\;\frac{\partial \ell}{\partial z_i} = p_i - [i = y]\;}
# \qquad\text{or, with } y \text{ one-hot,}\qquad \nabla_z \ell = p - y .$$
#
# The same answer comes out of the chain rule through §1, and that route shows why the
# two are best fused. $\partial \ell / \partial p_y = -1/p_y$, and row $y$ of $J$ is
# $p_y([y = i] - p_i)$, so
#
# $$\frac{\partial \ell}{\partial z_i} = -\frac{1}{p_y}\, p_y\,([y = i] - p_i) = p_i - [i = y].$$
#
# The $1/p_y$ cancels exactly — but only on paper. Computed as two separate steps, a
# confident wrong prediction ($p_y \approx 10^{-30}$) would send a gradient of
# $10^{30}$ into softmax's backward, to be multiplied by a tiny number again. Working
# with $\log p$ directly (`log_softmax`, §3) avoids ever forming $1/p_y$.
#
# What $p - y$ says: the correct logit is pushed up by $1 - p_y$, every wrong logit $i$
# is pushed down by $p_i$, in proportion to how much probability it stole. The push is
# never larger than 1, and it fades as the prediction becomes right. Each gradient row
# sums to zero, as shift invariance demands.
#
# A batch of $N$ examples uses the mean loss $L = \frac1N \sum_n \ell_n$, so row $n$ of the
# gradient is $(p_n - y_n)/N$. Check it against tinylm:

# %%
N, C = 4, 5
z = dbl(N, C)
y = tinylm.tensor([2, 0, 4, 2])
F.cross_entropy(z, y).backward()

P = tinylm.softmax(z, dim=-1).detach().numpy()
Y = np.eye(C)[y.numpy()]  # one-hot targets, (N, C)
print("z.grad:\n", z.grad.numpy())
print("(P - Y) / N:\n", (P - Y) / N)
np.testing.assert_allclose(z.grad.numpy(), (P - Y) / N, rtol=1e-12, atol=1e-15)
print("largest |row sum| of the gradient:", np.abs(z.grad.numpy().sum(axis=1)).max())

# %% [markdown]
# **Any target distribution.** Sometimes the target is itself a distribution $q$ over
# classes, not a single class. The loss is then $\ell = -\sum_c q_c \log p_c$, and since
# $\partial \log p_c / \partial z_i = [i = c] - p_i$,
#
# $$\frac{\partial \ell}{\partial z_i} = -\sum_c q_c\,([i = c] - p_i)
#   = p_i \sum_c q_c - q_i = p_i - q_i ,$$
#
# using $\sum_c q_c = 1$. The one-hot case is $q = y$. We will need this in §4.
#
# ## 3. Log-sum-exp: stable at any logits
#
# $e^{z}$ overflows float64 above $z \approx 709.8$ (float32 above $88.7$). Logits of
# a few hundred are rare at initialisation but common enough late in training, or after
# a bad step. Computed naively, $S$ becomes `inf`, and `inf / inf` is `nan`:

# %%
logits = np.array([1000.0, 999.0, 998.0])
with np.errstate(over="ignore", invalid="ignore"):
    e = np.exp(logits)
    print("naive exp:        ", e)
    print("naive softmax:    ", e / e.sum())
    print("naive log-sum-exp:", np.log(e.sum()))

# %% [markdown]
# The fix uses the shift invariance. For any constant $m$,
#
# $$\log \sum_k e^{z_k} = \log\Big(e^{m} \sum_k e^{z_k - m}\Big) = m + \log \sum_k e^{z_k - m}.$$
#
# Choose $m = \max_k z_k$. Then every exponent $z_k - m \le 0$, so no term exceeds 1 and
# nothing overflows; and the largest term is exactly $e^0 = 1$, so the sum lies in
# $[1, C]$ and its logarithm never sees 0. The same shift makes softmax safe:
# $p_i = e^{z_i - m} / \sum_k e^{z_k - m}$.
#
# There is a second trap at the other end. Take logits $(0, -1000)$: $p_2 = e^{-1000}$
# is about $10^{-434}$, far below the smallest positive float64 (about
# $5 \times 10^{-324}$), so it rounds to 0, and $\log p_2 = -\infty$. But the true value
# is a perfectly ordinary $-1000$. So the loss must be computed from **log-softmax**,
#
# $$\log p_i = (z_i - m) - \log \sum_k e^{z_k - m},$$
#
# never as `log(softmax(z))`. tinylm's `F.cross_entropy` does exactly that:

# %%
big = tinylm.tensor([1000.0, 999.0, 998.0], dtype=tinylm.float64)
print("tinylm softmax([1000, 999, 998]):", tinylm.softmax(big, dim=0))
print("tinylm softmax([2, 1, 0])       :", tinylm.softmax(big - 998.0, dim=0))
print(
    "tinylm logsumexp                :",
    big.logsumexp(dim=0).item(),
    " = 1000 + log(1 + e^-1 + e^-2) =",
    1000 + np.log(1 + np.exp(-1) + np.exp(-2)),
)

far = tinylm.tensor([[0.0, -1000.0]], dtype=tinylm.float64, requires_grad=True)
with np.errstate(divide="ignore"):
    print("naive log(softmax) :", np.log(tinylm.softmax(far, dim=-1).detach().numpy()))
print("tinylm log_softmax :", tinylm.log_softmax(far, dim=-1))
loss = F.cross_entropy(far, tinylm.tensor([1]))  # the truth is the class given e^-1000
loss.backward()
print("cross-entropy:", loss.item(), "  gradient p - y:", far.grad.numpy())
assert loss.item() == 1000.0 and np.isfinite(far.grad.numpy()).all()

# %% [markdown]
# The loss is exactly 1000 and the gradient is exactly $p - y = (1, 0) - (0, 1)$: the
# model is told, at full strength, to move probability to the class it ignored. Here is
# tinylm's `LogSoftmax`; its backward is §2's formula for a general upstream gradient,
# $\bar z_i = g_i - p_i \sum_k g_k$ with $p_i = e^{\log p_i}$:

# %%
print(inspect.getsource(LogSoftmax))

# %% [markdown]
# ## 4. Label smoothing
#
# With one-hot targets the loss keeps falling as long as $p_y$ creeps toward 1, which
# needs $z_y - z_i \to \infty$. A model trained long enough is rewarded for ever more
# extreme logits and ever more overconfident predictions. **Label smoothing** takes a
# little probability $\varepsilon$ off the true class and spreads it uniformly over all
# $C$ classes (the true one included). The target distribution becomes
#
# $$q = (1 - \varepsilon)\, y + \frac{\varepsilon}{C}\,\mathbf{1},
# \qquad q_y = 1 - \varepsilon + \frac{\varepsilon}{C},
# \qquad q_{i \ne y} = \frac{\varepsilon}{C}.$$
#
# Putting it into $\ell = -\sum_c q_c \log p_c$ splits the loss into two familiar terms:
#
# $$\ell = (1 - \varepsilon)\,\big(-\log p_y\big) + \frac{\varepsilon}{C} \sum_{c=1}^{C} \big(-\log p_c\big),$$
#
# and by §2 its gradient is simply $p - q$. Now the optimum is finite: the gradient
# vanishes when $p = q$, that is at logits $z = \log q$ (plus any constant), where the
# gap between the true logit and the others is
# $\log\big((1 - \varepsilon + \varepsilon/C) / (\varepsilon/C)\big)$. The loss there is
# not 0 but the entropy of $q$, $H(q) = -\sum_c q_c \log q_c$: the smallest loss any
# prediction can reach against a target that is itself uncertain.
#
# Check the formula and the gradient against tinylm's `label_smoothing`:

# %%
eps = 0.1
z = dbl(N, C)
loss = F.cross_entropy(z, y, label_smoothing=eps)
loss.backward()

logp = tinylm.log_softmax(z, dim=-1).detach().numpy()
P = np.exp(logp)
Q = (1 - eps) * Y + eps / C  # the smoothed targets, (N, C)
by_hand = ((1 - eps) * -logp[np.arange(N), y.numpy()] + eps / C * -logp.sum(axis=1)).mean()
print(f"tinylm {loss.item():.12f}   by hand {by_hand:.12f}")
np.testing.assert_allclose(loss.item(), by_hand, rtol=1e-12)
np.testing.assert_allclose(z.grad.numpy(), (P - Q) / N, rtol=1e-12, atol=1e-15)
print("gradient equals (P - Q) / N")

# %% [markdown]
# At the optimum $z = \log q$ the gradient vanishes and the loss equals $H(q)$:

# %%
q_row = Q[0]
z_opt = tinylm.tensor(np.log(q_row)[None, :], requires_grad=True)  # (1, C), float64
loss = F.cross_entropy(z_opt, y[:1], label_smoothing=eps)
loss.backward()
entropy = -(q_row * np.log(q_row)).sum()
print("q =", q_row, "  logit gap:", np.log(q_row.max() / q_row.min()))
print(f"loss at z = log q: {loss.item():.12f}   H(q) = {entropy:.12f}")
print("largest |gradient| there:", np.abs(z_opt.grad.numpy()).max())
np.testing.assert_allclose(loss.item(), entropy, rtol=1e-12)
np.testing.assert_allclose(z_opt.grad.numpy(), 0.0, atol=1e-15)

# %% [markdown]
# ## 5. `ignore_index`: targets that do not count
#
# Batches of sentences are padded to a common length (lesson 03). The padding positions
# have targets too, but nothing should be learned from them. `F.cross_entropy` skips
# every target equal to `ignore_index` (by default $-100$, a value that can never be a
# class id). Write $K = \{n : y_n \ne \text{ignore\_index}\}$ for the positions that
# count. The mean loss is
#
# $$L = \frac{1}{|K|} \sum_{n \in K} \ell_n ,$$
#
# a mean over the counted targets only: the denominator is $|K|$, not $N$. By §2 the
# gradient is $(p_n - q_n)/|K|$ for $n \in K$ and exactly zero for the ignored rows.
#
# Why $|K|$? With $N$ in the denominator the loss of a sentence would depend on how much
# padding its batch happened to need: the same two real tokens would count half as much
# in a batch padded to 8 as in one padded to 4, and the effective learning rate would
# wobble with sentence length. Dividing by $|K|$ gives every real token the same weight.
# Label smoothing combines with it as you would expect: the counted rows use the smoothed
# $q$, the ignored rows still contribute nothing.

# %%
PAD = -100
z4 = dbl(4, C)
z8 = tinylm.cat([z4.detach(), tinylm.randn(4, C, dtype=tinylm.float64)])  # 4 more rows
y4 = tinylm.tensor([2, 0, PAD, PAD])  # two real targets, padded to 4
y8 = tinylm.tensor([2, 0, PAD, PAD, PAD, PAD, PAD, PAD])  # the same two, padded to 8
l4, l8 = F.cross_entropy(z4, y4), F.cross_entropy(z8, y8)
print(f"padded to 4: {l4.item():.12f}   padded to 8: {l8.item():.12f}")
assert abs(l4.item() - l8.item()) < 1e-14

per_row = F.cross_entropy(z4, tinylm.tensor([2, 0, 0, 0]), reduction="none").detach().numpy()
print(
    f"mean over the 2 counted rows: {per_row[:2].sum() / 2:.12f}"
    f"   dividing by N = 4 would give {per_row[:2].sum() / 4:.12f}"
)

# gradient with smoothing and ignore_index together: (P - Q)/|K| on counted rows, 0 elsewhere
z = dbl(N, C)
y_pad = tinylm.tensor([2, PAD, 4, PAD])
F.cross_entropy(z, y_pad, label_smoothing=eps).backward()
P = tinylm.softmax(z, dim=-1).detach().numpy()
counted = y_pad.numpy() != PAD
expected = np.zeros((N, C))
Q = (1 - eps) * np.eye(C)[y_pad.numpy()[counted]] + eps / C
expected[counted] = (P[counted] - Q) / counted.sum()
print("z.grad:\n", z.grad.numpy())
np.testing.assert_allclose(z.grad.numpy(), expected, rtol=1e-12, atol=1e-15)

# %% [markdown]
# One corner remains: what if *every* target is ignored? Then $|K| = 0$ and the mean is
# $0/0$. tinylm does what PyTorch does: the loss is `nan` (a visible signal that the
# batch held nothing to learn from), while the gradient is all zeros, so an optimizer
# step changes nothing. (With `reduction="sum"` the loss is simply 0.)

# %%
z = dbl(2, C)
loss = F.cross_entropy(z, tinylm.tensor([PAD, PAD]))
loss.backward()
print("all ignored: loss", loss.item(), "  gradient all zero:", not z.grad.numpy().any())

# %% [markdown]
# ## 6. Gradient checks
#
# Finally, `gradcheck` compares tinylm's whole `F.cross_entropy` backward — log-softmax,
# the pick of the target's log-probability (a scatter-add in backward, as in lesson 03),
# smoothing, masking and the mean — with central differences. The targets repeat a class
# on purpose. The last case uses a `(N, C, T)` input, one prediction per position of a
# sequence, the shape a language model produces when the class dim comes second.

# %%
y_seq = tinylm.tensor([[1, 3, PAD], [3, 3, 0]])  # (N, T) = (2, 3)
cases = {
    "plain": (lambda z: F.cross_entropy(z, y), dbl(N, C)),
    "label_smoothing=0.1": (lambda z: F.cross_entropy(z, y, label_smoothing=0.1), dbl(N, C)),
    "ignore_index": (lambda z: F.cross_entropy(z, y_pad), dbl(N, C)),
    "both, reduction=sum": (
        lambda z: F.cross_entropy(z, y_pad, label_smoothing=0.2, reduction="sum"),
        dbl(N, C),
    ),
    "(N, C, T) input": (lambda z: F.cross_entropy(z, y_seq, label_smoothing=0.1), dbl(2, C, 3)),
}
for name, (fn, z) in cases.items():
    print(f"{name:22s} gradcheck: {tinylm.gradcheck(fn, (z,))}")
print("gradgradcheck (plain):", tinylm.gradgradcheck(lambda z: F.cross_entropy(z, y), (dbl(N, C),)))

# %% [markdown]
# ## Summary
#
# * Softmax $p = e^{z} / \sum_k e^{z_k}$ is unchanged by adding a constant to all logits.
#   Its Jacobian is $\operatorname{diag}(p) - pp^\top$: symmetric, rows summing to zero;
#   the backward computes $p \odot (g - g\cdot p)$ without building it.
# * Cross-entropy $\ell = -\log p_y = -z_y + \log\sum_k e^{z_k}$ has gradient $p - y$; for
#   any target distribution $q$ it is $p - q$; a mean over $N$ divides it by $N$.
# * Subtracting the max makes log-sum-exp and softmax safe at any logits; the loss must
#   come from `log_softmax`, never `log(softmax)`.
# * Label smoothing uses the target $q = (1-\varepsilon)y + \varepsilon/C$: the gradient
#   becomes $p - q$, the optimum is the finite $z = \log q$, and the best loss is $H(q)$.
# * `ignore_index` drops targets from both the sum and the count: the mean divides by the
#   number of counted targets, so padding does not change the loss; all-ignored gives
#   `nan` with a zero gradient.
#
# ## Tests that grade this lesson
#
# Run them all with `pytest -m lesson04`:
#
# * `tests/test_lesson04.py::test_softmax_jacobian_is_diag_p_minus_outer_p`
# * `tests/test_lesson04.py::test_softmax_jacobian_rows_sum_to_zero_and_shift_invariance`
# * `tests/test_lesson04.py::test_softmax_backward_is_the_vjp_formula`
# * `tests/test_lesson04.py::test_cross_entropy_gradient_is_softmax_minus_one_hot`
# * `tests/test_lesson04.py::test_soft_target_gradient_is_p_minus_q`
# * `tests/test_lesson04.py::test_naive_softmax_overflows_where_tinylm_is_exact`
# * `tests/test_lesson04.py::test_log_softmax_is_finite_where_log_of_softmax_is_not`
# * `tests/test_lesson04.py::test_label_smoothing_loss_and_gradient_match_formulas`
# * `tests/test_lesson04.py::test_label_smoothing_optimum_is_log_q_with_loss_entropy`
# * `tests/test_lesson04.py::test_ignore_index_mean_divides_by_counted_targets`
# * `tests/test_lesson04.py::test_ignore_index_with_smoothing_gradient`
# * `tests/test_lesson04.py::test_all_ignored_mean_is_nan_with_zero_gradient`
# * `tests/test_lesson04.py::test_cross_entropy_passes_gradcheck`
#
# Next, lesson 05 uses these gradients: optimizers that turn them into steps, and a first
# model trained on real names.
