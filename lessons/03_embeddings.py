# %% [markdown]
# # Lesson 03 — Embeddings: a lookup table that learns
#
# A language model reads text as a sequence of integers: a tokenizer turns `"emma"` into
# something like `[5, 13, 13, 1]`. A neural network cannot do much with the *value* 13
# (token 13 is not "bigger" than token 5), so the first layer of every language model
# replaces each id by a vector of learned numbers: row 13 of a table $W$ with one row per
# token. That table is an **embedding**, and training moves its rows so that tokens
# which behave alike end up with similar vectors.
#
# A lookup sounds too simple to need a lesson, but it hides three things worth deriving
# carefully:
#
# 1. a lookup *is* a matrix product, with a one-hot matrix (§1), which tells us its
#    gradient for free (§2);
# 2. that gradient is a **scatter-add**, and the obvious NumPy one-liner for it is
#    silently wrong whenever an id repeats — which is always, in real text (§3);
# 3. the edges: a padding row that must not learn (§5), and ids that are out of range,
#    which NumPy would quietly wrap around (§6).
#
# Along the way we read tinylm's real embedding code (§4) and gradient-check it.

# %%
import inspect
import time

import numpy as np

import tinylm
import tinylm.nn as nn
import tinylm.nn.functional as F
from tinylm.nn.functional import EmbeddingFn, EmbeddingGradFn

tinylm.manual_seed(0)

# %% [markdown]
# ## 1. A one-hot vector times a matrix picks a row
#
# Let the vocabulary have $V$ tokens and let each token's vector have $C$ numbers, so
# $W$ has shape $(V, C)$. The **one-hot** vector of token $v$ is $e_v \in \mathbb{R}^V$,
# all zeros except a 1 at position $v$. Multiply it into $W$:
#
# $$(e_v^\top W)_c = \sum_{k=0}^{V-1} [k = v]\, W_{kc} = W_{vc}.$$
#
# Every term of the sum is zero except the one with $k = v$, so the product is exactly
# row $v$ of $W$. For a whole sequence of ids $i_0, \dots, i_{N-1}$, stack the one-hot
# vectors as the rows of a matrix $O$ of shape $(N, V)$ with $O_{pk} = [k = i_p]$. Then
#
# $$Y = O\,W, \qquad Y_p = W_{i_p} \quad (\text{shape } (N, V)(V, C) = (N, C)).$$
#
# So an embedding layer is a linear layer without a bias whose input happens to be
# one-hot. Let us check it with tinylm: build $O$ by comparing each id with
# `arange(V)`, multiply, and compare with `F.embedding`, which does the lookup. Ids may
# repeat; here token 3 appears three times.

# %%
V, C = 6, 4
W = tinylm.randn(V, C, dtype=tinylm.float64, requires_grad=True)
ids = tinylm.tensor([3, 1, 3, 0, 3])  # int64 ids; token 3 occurs three times


def one_hot(ids, num_classes):
    """(N,) integer ids -> (N, num_classes) float64 one-hot rows."""
    return (ids.unsqueeze(-1) == tinylm.arange(num_classes)).double()


O = one_hot(ids, V)  # (N, V)
print("one-hot O:\n", O)
by_matmul = O @ W  # (N, V) @ (V, C) -> (N, C)
by_lookup = F.embedding(ids, W)  # (N, C)
same = np.array_equal(by_matmul.detach().numpy(), by_lookup.detach().numpy())
print("O @ W equals the lookup:", same)
assert same

# %% [markdown]
# They agree *exactly*, not just to rounding: each output is one product $1 \cdot W_{vc}$
# plus zeros, and adding zeros rounds nothing.
#
# The matmul is the right way to *think* about an embedding and the wrong way to
# *compute* one. It multiplies $N \times V \times C$ numbers, nearly all of them by
# zero, and stores an $N \times V$ one-hot matrix. With GPT-2's vocabulary of about
# 50,000 tokens that would be 50,000 multiplications per output number where a copy
# would do. Here is the difference at a modest $V = 10{,}000$:

# %%
big_V, big_C, N = 10_000, 64, 512
W_big = tinylm.randn(big_V, big_C)
ids_big = tinylm.randint(0, big_V, (N,))
t0 = time.perf_counter()
y_matmul = (ids_big.unsqueeze(-1) == tinylm.arange(big_V)).float() @ W_big
t1 = time.perf_counter()
y_lookup = F.embedding(ids_big, W_big)
t2 = time.perf_counter()
print(f"one-hot matmul: {1e3 * (t1 - t0):7.2f} ms   (one-hot matrix of {N} x {big_V})")
print(f"row lookup    : {1e3 * (t2 - t1):7.2f} ms")
assert np.array_equal(y_matmul.numpy(), y_lookup.numpy())

# %% [markdown]
# ## 2. The gradient of a lookup, derived from the matmul
#
# Because $Y = O W$ is a matrix product, lesson 02 already gave its gradient:
# $\bar W = O^\top \bar Y$. (The ids are integers; nothing is differentiated with
# respect to them, so $O$ is a constant.) Write the product out entry by entry:
#
# $$\bar W_{vc} = \sum_{p=0}^{N-1} O_{pv}\, \bar Y_{pc}
#             = \sum_{p=0}^{N-1} [i_p = v]\, \bar Y_{pc}
#             = \sum_{p \,:\, i_p = v} \bar Y_{pc}.$$
#
# In words: **row $v$ of the gradient is the sum of the output-gradient rows at every
# position where token $v$ was looked up.** A token used three times collects three
# contributions; a token not used at all gets a row of zeros. Computing this without
# building $O$ is called a **scatter-add**: start from zeros and, for each position $p$,
# add row $p$ of $\bar Y$ into row $i_p$.
#
# It is the sum rule of lesson 01 once more: one entry $W_{vc}$ feeds every output that
# looked up $v$, so its adjoint is the sum over those paths.
#
# We seed the backward pass with a random $\bar Y$ (so that no contribution hides
# behind a 1) and compare tinylm's `W.grad` with $O^\top \bar Y$ and with a plain Python
# loop that scatters row by row.

# %%
dY = tinylm.randn(len(ids), C, dtype=tinylm.float64)
F.embedding(ids, W).backward(dY)

onehot_formula = (O.T @ dY).numpy()  # O^T dY: (V, N) @ (N, C) -> (V, C)
loop = np.zeros((V, C))
for p, v in enumerate(ids.tolist()):
    loop[v] += dY.numpy()[p]  # scatter-add, one position at a time

np.testing.assert_allclose(W.grad.numpy(), onehot_formula, rtol=1e-12)
np.testing.assert_allclose(W.grad.numpy(), loop, rtol=1e-12)
print("row 3 of dW      :", W.grad.numpy()[3])
print("dY[0]+dY[2]+dY[4]:", dY.numpy()[[0, 2, 4]].sum(axis=0))
print("rows of tokens never used (2, 4, 5) are zero:", not W.grad.numpy()[[2, 4, 5]].any())

# %% [markdown]
# ## 3. Repeated ids must add up: a bug NumPy makes easy
#
# The scatter-add looks like a one-liner in NumPy: `dW[ids] += dY`. It is wrong. NumPy
# evaluates it as `dW[ids] = dW[ids] + dY`: it reads the old rows, adds, then *assigns*
# the results back. When `ids` holds 3 three times, all three assignments write row 3,
# and the last write wins; two of the three contributions are lost. Plain
# `dW[ids] = dY` has the same fault. `np.add.at(dW, ids, dY)` is NumPy's unbuffered
# scatter-add and does accumulate.

# %%
dY_np = dY.numpy()
assigned = np.zeros((V, C))
assigned[ids.numpy()] = dY_np  # last write wins
buffered = np.zeros((V, C))
buffered[ids.numpy()] += dY_np  # also last write wins!
accumulated = np.zeros((V, C))
np.add.at(accumulated, ids.numpy(), dY_np)  # unbuffered: every row added

print("row 3, dW[ids] = dY      :", assigned[3], "= dY[4] only")
print("row 3, dW[ids] += dY     :", buffered[3], "= dY[4] only")
print("row 3, np.add.at         :", accumulated[3])
np.testing.assert_allclose(buffered[3], dY_np[4])
np.testing.assert_allclose(accumulated, W.grad.numpy(), rtol=1e-12)

# %% [markdown]
# The bug is dangerous because nothing crashes and the rows of tokens that occur once
# are right. Training still runs; common tokens (the ones that repeat most) simply learn
# from a fraction of their data. Let us put the buggy line into an embedding op of our
# own, written with the `Function` contract of lesson 01, and see whether `gradcheck`
# notices.


# %%
class LastWriteWinsEmbedding(tinylm.autograd.Function):
    r"""Forward: y_p = W_{ids_p}.   Backward (WRONG when ids repeat): dW[ids] += dy."""

    @staticmethod
    def forward(ctx, ids, w):
        ctx.ids, ctx.num_rows = ids, w.shape[0]
        return w[ids]  # (N, C)

    @staticmethod
    def backward(ctx, dy):
        dw = np.zeros((ctx.num_rows, dy.shape[-1]))
        dw[ctx.ids] += dy.numpy()  # BUG: buffered, so repeated ids keep one contribution
        return None, dw  # the integer ids get no gradient


def buggy_embedding(ids, w):
    return LastWriteWinsEmbedding.apply(ids, w)


distinct = tinylm.tensor([4, 1, 0])
print("distinct ids:", tinylm.gradcheck(lambda w: buggy_embedding(distinct, w), (W,)))
try:
    tinylm.gradcheck(lambda w: buggy_embedding(ids, w), (W,))
except tinylm.GradcheckError as err:
    print("repeated ids:", err)

# %% [markdown]
# With distinct ids the buggy op passes: every row receives at most one contribution,
# so there is nothing to lose. With repeated ids gradcheck points straight at the lost
# contribution: output row 0 looked up token 3, so nudging $W_{3,0}$ moves output
# $(0, 0)$ one for one (numerical derivative 1), but the buggy backward claims it has no
# effect (analytic 0), because position 0's gradient row was overwritten by position 4's.
#
# The lesson for testing is as important as the one for coding: **a gradient check is
# only as good as its inputs.** tinylm's op registry therefore gives `embedding` sample
# inputs with repeated ids on purpose (and `cross_entropy` repeated targets, since its
# backward has a scatter-add too).
#
# ## 4. tinylm's embedding, read from the source
#
# Here is the real forward and backward. The forward is NumPy's `take` along axis 0, the
# row lookup. The backward hands the work to a second Function, `EmbeddingGradFn`:

# %%
print(inspect.getsource(EmbeddingFn))

# %% [markdown]
# Why a separate Function for the gradient? Because everything a backward computes with
# Tensor ops can itself be differentiated (`backward(create_graph=True)`, lesson 01).
# The scatter-add $\bar W = O^\top \bar Y$ is linear in $\bar Y$; its own adjoint is
# $O\,G$, which is a *lookup* again. So the two ops are each other's backward, just
# like `expand` and `sum_to` in lesson 02: gather forward means scatter-add backward,
# and scatter-add forward means gather backward.

# %%
print(inspect.getsource(EmbeddingGradFn))

# %% [markdown]
# The scatter-add itself avoids `np.add.at`, which is correct but slow. It sorts the
# ids so that equal ids sit next to each other, then sums each run of equal ids with
# `np.add.reduceat` and writes one sum per distinct id. A plain assignment is safe there,
# because after the reduction every id appears once. The order of the additions is fixed
# by the stable sort, so on the CPU the same inputs give the same bits every time.

# %%
print(inspect.getsource(tinylm.nn.functional._scatter_add_rows))

# %% [markdown]
# Now the checks. `F.embedding` over a 2-D batch of ids, with repeats across rows and
# within a row, passes `gradcheck`, and `gradgradcheck` too: the second-order check runs
# `EmbeddingGradFn`'s backward.

# %%
batch_ids = tinylm.tensor([[3, 1, 3], [0, 3, 5]])  # (B, T) = (2, 3)
W = tinylm.randn(V, C, dtype=tinylm.float64, requires_grad=True)
print("gradcheck(F.embedding):    ", tinylm.gradcheck(lambda w: F.embedding(batch_ids, w), (W,)))
print(
    "gradgradcheck(F.embedding):", tinylm.gradgradcheck(lambda w: F.embedding(batch_ids, w), (W,))
)
print("output shape:", F.embedding(batch_ids, W).shape, "= (B, T, C)")

# %% [markdown]
# ## 5. `padding_idx`: a row that never learns
#
# Sentences in a batch have different lengths, so short ones are filled up to the
# longest with a **padding** token. Padding is not text; the model should learn nothing
# from it. `nn.Embedding(V, C, padding_idx=0)` makes row 0 special in two ways:
#
# * it starts at zero, and
# * its gradient is set to zero: $\bar W_{\text{pad}} = 0$, however often it is used.
#
# That second rule is a *decision*, not a derivative. The forward pass still returns row
# 0 at the padding positions, so the true derivative of the output with respect to
# $W_0$ is not zero — and gradcheck says so:

# %%
emb = nn.Embedding(V, C, padding_idx=0, dtype=tinylm.float64)
padded = tinylm.tensor([[4, 2, 2], [5, 0, 0]])  # the second sentence is padded with 0
print("row 0 at the start:", emb.weight.detach().numpy()[0])
out = emb(padded)
(out * tinylm.randn(*out.shape, dtype=tinylm.float64)).sum().backward()
print("grad of row 0 (padding):", emb.weight.grad.numpy()[0])
print("grad of row 2 (used twice):", emb.weight.grad.numpy()[2])

W = tinylm.randn(V, C, dtype=tinylm.float64, requires_grad=True)
ok = tinylm.gradcheck(lambda w: F.embedding(padded, w, padding_idx=0), (W,), raise_exception=False)
print("gradcheck with padding positions in the output:", ok)

# %% [markdown]
# In a real model the padding positions are also left out of the loss (lesson 04's
# `ignore_index`). Then the outputs at those positions have no effect on anything, the
# true derivative with respect to the padding row *is* zero, and gradcheck agrees. We
# mimic that by multiplying the padded positions' outputs by zero, which is exactly what
# tinylm's op registry does for its padding samples:

# %%
keep = (padded != 0).double().unsqueeze(-1)  # (B, T, 1): 1 for real tokens, 0 for padding


def embed_then_mask(w):
    return F.embedding(padded, w, padding_idx=0) * keep


print("gradcheck with padding masked out:", tinylm.gradcheck(embed_then_mask, (W,)))

# %% [markdown]
# ## 6. Strict ids: what NumPy would let slip
#
# NumPy indexing accepts a negative index and counts it from the end: `W[-1]` is the
# last row. For an embedding that is never what you want; a `-1` in a batch of ids is
# a bug upstream (an unknown-token marker, or padding with the wrong value), and
# wrapping it to the last token of the vocabulary hides the bug while the model trains on
# garbage. tinylm refuses, and says which id, where, and what the valid range is. An
# id that is too large, or ids of a float dtype, are refused too.

# %%
W = tinylm.randn(V, C, dtype=tinylm.float64)
bad_batch = np.array([[3, 1, 2], [0, -1, 5]])
print(
    "NumPy wraps -1 to the last row:", np.array_equal(W.numpy()[bad_batch][1, 1], W.numpy()[V - 1])
)

for name, bad in [
    ("negative id", tinylm.tensor(bad_batch)),
    ("id too large", tinylm.tensor([[3, 1, 2], [0, 6, 5]])),
    ("float ids", tinylm.tensor([0.0, 2.0])),
]:
    try:
        F.embedding(bad, W)
    except (IndexError, TypeError) as err:
        print(f"{name:13s} -> {type(err).__name__}: {err}")

# %% [markdown]
# ## Summary
#
# * An embedding is a table $W$ of shape $(V, C)$; looking up ids equals the product of
#   their one-hot matrix with $W$, $Y = OW$, but costs a copy instead of a matmul.
# * Its gradient is $\bar W = O^\top \bar Y$: row $v$ is the sum of the output-gradient
#   rows wherever $v$ was looked up — a scatter-add. Unused rows get zero.
# * Repeated ids must accumulate. `dW[ids] = dY` and `dW[ids] += dY` keep only the last
#   write; `gradcheck` catches that, but only with repeated ids in its inputs.
# * tinylm's `EmbeddingFn` (gather) and `EmbeddingGradFn` (scatter-add) are each
#   other's backward, so second derivatives work; the scatter-add is sort-and-reduce,
#   deterministic.
# * `padding_idx` zeroes one row's gradient by decision; it matches calculus once the
#   padding positions are masked out of the loss.
# * tinylm raises on negative, too-large or float ids instead of wrapping them.
#
# ## Tests that grade this lesson
#
# Run them all with `pytest -m lesson03`:
#
# * `tests/test_lesson03.py::test_one_hot_matmul_equals_lookup`
# * `tests/test_lesson03.py::test_embedding_grad_is_one_hot_transpose_times_dy`
# * `tests/test_lesson03.py::test_repeated_ids_accumulate_gradient`
# * `tests/test_lesson03.py::test_unused_rows_get_zero_gradient`
# * `tests/test_lesson03.py::test_numpy_fancy_add_keeps_only_the_last_write`
# * `tests/test_lesson03.py::test_gradcheck_catches_last_write_wins_only_with_repeats`
# * `tests/test_lesson03.py::test_embedding_passes_gradcheck_and_gradgradcheck`
# * `tests/test_lesson03.py::test_padding_row_starts_at_zero_and_gets_no_gradient`
# * `tests/test_lesson03.py::test_padding_gradcheck_passes_once_padding_is_masked`
# * `tests/test_lesson03.py::test_negative_id_raises_where_numpy_wraps`
# * `tests/test_lesson03.py::test_out_of_range_id_raises_naming_id_position_and_range`
# * `tests/test_lesson03.py::test_float_ids_are_refused`
#
# Next, lesson 04 turns the vectors into a prediction: softmax, cross-entropy, and why
# their gradient is so simple.
