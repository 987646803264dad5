# %% [markdown]
# # Lesson 09 — Attention and the Transformer block
#
# A recurrent network (lessons 06–08) carries the past forward in one state vector, step by
# step; whatever it forgot is gone. **Attention** takes another route: at every position the
# model may look back at *all* earlier positions at once and take a weighted average of
# what it finds there, the weights computed from how well a *query* matches each *key*.
# Stack attention with a small MLP, residual connections and LayerNorm and you have the
# Transformer block, the unit a GPT repeats a dozen to a hundred times.
#
# Plan:
#
# 1. dot-product attention, forward (§1);
# 2. its backward, through the softmax: $dQ$, $dK$, $dV$ derived and checked (§2);
# 3. why the scores are divided by $\sqrt{d}$: the variance argument, numerically (§3);
# 4. causal masking, and what a query with nothing to look at gets (§4);
# 5. multi-head attention: split, batched heads, concat, `out_proj` (§5);
# 6. attention ignores order; positional encodings restore it (§6);
# 7. the pre-LN Transformer block (§7);
# 8. a tiny model trained for a few seconds, and its attention map (§8);
# 9. gradient checks (§9).

# %%
import inspect

import matplotlib.pyplot as plt
import numpy as np

import tinylm
import tinylm.nn as nn
import tinylm.nn.functional as F
from tinylm import optim
from tinylm.nn.attention import MaskedSoftmaxFn, MultiheadAttention, _split_heads

tinylm.manual_seed(0)
np.set_printoptions(precision=3, suppress=True)


def dbl(*shape):
    return tinylm.randn(*shape, dtype=tinylm.float64, requires_grad=True)


# %% [markdown]
# ## 1. Dot-product attention
#
# Take $L$ queries $q_i$, and $S$ key/value pairs $(k_j, v_j)$; queries and keys live in
# $\mathbb{R}^d$, values in $\mathbb{R}^{d_v}$. Stacked as rows they are matrices
# $Q \in \mathbb{R}^{L\times d}$, $K \in \mathbb{R}^{S\times d}$, $V \in \mathbb{R}^{S\times d_v}$.
# Attention computes, for each query, a probability distribution over the keys and returns
# the matching average of the values:
#
# $$S = Q K^\top \;(\text{scores } s_{ij} = q_i\cdot k_j), \qquad
#   A = \operatorname{softmax}_{\text{row}}\!\big(c\,S\big), \qquad Y = A V,
#   \qquad c = \tfrac{1}{\sqrt d}.$$
#
# Row $i$ of $A$ sums to 1, so $y_i = \sum_j a_{ij} v_j$ is a convex combination of the
# values: a *soft lookup*. A query that matches key $j$ much better than the others
# ($s_{ij}$ large) reads almost only $v_j$. In self-attention, $Q$, $K$ and $V$ are three
# linear projections of the same sequence (§5).
#
# Here are the three lines in NumPy next to tinylm's `F.scaled_dot_product_attention`
# (PyTorch's signature; the `...` batch dims broadcast).

# %%
L, S_, d = 4, 5, 8
Q, K, V = dbl(L, d), dbl(S_, d), dbl(S_, 3)
q, k, v = Q.detach().numpy(), K.detach().numpy(), V.detach().numpy()


def softmax_rows(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


A_np = softmax_rows(q @ k.T / np.sqrt(d))  # (L, S)
Y_np = A_np @ v  # (L, dv)
Y = F.scaled_dot_product_attention(Q, K, V)
print("attention weights A (rows sum to 1):\n", A_np)
print("max |numpy - tinylm| =", np.abs(Y.detach().numpy() - Y_np).max())
np.testing.assert_allclose(Y.detach().numpy(), Y_np, atol=1e-14)

# %% [markdown]
# ## 2. The backward pass, through the softmax
#
# Let $G = \partial \mathcal{L}/\partial Y$ be the gradient arriving from above. Walk the
# three lines backwards.
#
# **The values.** $Y = AV$ is a matrix product, so (lesson 02) $dV = A^\top G$ and
# $dA = G V^\top$. Read $dV$ as: value $j$ collects the gradient of every output that read
# it, weighted by how much it was read, $dv_j = \sum_i a_{ij}\, g_i$.
#
# **The softmax.** Each row $a$ of $A$ is the softmax of the row $z = cs$. Lesson 04 gave
# its Jacobian $\partial a_i/\partial z_j = a_i([i=j] - a_j)$ and the vector-Jacobian
# product with an upstream row $g = dA_{i,:}$:
#
# $$dz_j = \sum_i g_i\, a_i([i=j] - a_j) = a_j\Big(g_j - \sum_i g_i a_i\Big).$$
#
# All rows at once, with $\odot$ the elementwise product and $\operatorname{rowsum}$ kept as
# a column that broadcasts:
#
# $$\boxed{\;dZ = A \odot \big(dA - \operatorname{rowsum}(dA \odot A)\big)\;}, \qquad dS = c\, dZ .$$
#
# **The scores.** $S = QK^\top$ is one more product: $dQ = dS\,K$ and $dK = dS^\top Q$
# (since $s_{ij} = q_i \cdot k_j$, query $i$ gets $\sum_j ds_{ij} k_j$, key $j$ gets
# $\sum_i ds_{ij} q_i$).
#
# Altogether, with $P = A$ the probabilities:
#
# $$dV = P^\top G,\quad dP = G V^\top,\quad dS = c\,P \odot \big(dP - \operatorname{rowsum}(dP\odot P)\big),
#   \quad dQ = dS\,K,\quad dK = dS^\top Q .$$
#
# A shortcut worth knowing: $dp_{ij} = g_i \cdot v_j$, so
# $\operatorname{rowsum}(dP \odot P)_i = \sum_j p_{ij}\, g_i\cdot v_j = g_i \cdot y_i$.
# Fused attention kernels (FlashAttention) use it to get the row sums from $G$ and $Y$
# without keeping $P$ around. Let us write the five lines in NumPy and compare
# with tinylm's autograd, for a random upstream $G$.

# %%
G = np.random.default_rng(1).standard_normal((L, 3))  # dL/dY
c = 1 / np.sqrt(d)
P = A_np
dV = P.T @ G  # (S, dv)
dP = G @ v.T  # (L, S)
dS = c * P * (dP - (dP * P).sum(axis=-1, keepdims=True))  # (L, S)
dQ = dS @ k  # (L, d)
dK = dS.T @ q  # (S, d)

Y.backward(tinylm.tensor(G))
for name, mine, auto in (("dQ", dQ, Q.grad), ("dK", dK, K.grad), ("dV", dV, V.grad)):
    err = np.abs(mine - auto.numpy()).max()
    print(f"{name}: max |by hand - autograd| = {err:.1e}")
    np.testing.assert_allclose(mine, auto.numpy(), atol=1e-13)
print("rowsum(dP * P) == G . Y row by row:", np.allclose((dP * P).sum(-1), (G * Y_np).sum(-1)))

# %% [markdown]
# Nobody in tinylm wrote $dQ$, $dK$ or $dV$ by hand: the two products are ordinary
# `matmul`s with their own backward. Only the softmax step is one Function,
# `MaskedSoftmaxFn`, which also applies the scale and the mask. Its `backward` is the boxed
# line, `a * (dy - (dy * a).sum(...))`:

# %%
print(inspect.getsource(MaskedSoftmaxFn.backward))

# %% [markdown]
# ## 3. Why divide by $\sqrt{d}$
#
# Suppose the entries of $q$ and $k$ are independent with mean 0 and variance 1 (roughly
# what LayerNorm and a sensible initialisation give). Then $q\cdot k = \sum_{m=1}^{d} q_m k_m$
# is a sum of $d$ independent terms, each of mean 0 and variance
# $\mathbb{E}[q_m^2]\,\mathbb{E}[k_m^2] = 1$. Variances of independent terms add:
#
# $$\operatorname{Var}(q\cdot k) = d, \qquad \operatorname{Var}\!\Big(\frac{q\cdot k}{\sqrt d}\Big) = 1 .$$
#
# Without the scale, scores at $d = 256$ have a standard deviation of 16. The softmax of
# such a row is nearly one-hot: the largest score takes almost all the weight. That is bad
# for learning, because a saturated softmax has a tiny Jacobian
# ($a_i(1-a_i) \approx 0$ for every $i$): almost no gradient reaches $Q$ and $K$. Measure
# all three things — score variance, the largest weight in a row, and the size of the
# softmax's Jacobian — with and without the scale:

# %%
rng = np.random.default_rng(0)
print(
    f"{'d':>4} | {'Var(q.k)':>9} {'Var(q.k/sqrt d)':>15} | {'max a (raw)':>11} "
    f"{'max a (scaled)':>14} | {'|J| raw':>8} {'|J| scaled':>10}"
)
for dim in (4, 16, 64, 256):
    qs, ks = rng.standard_normal((2, 2000, 16, dim))  # 2000 rows of 16 keys
    s = np.einsum("nd,nkd->nk", qs[:, 0], ks)  # (2000, 16) scores q.k
    a_raw, a_scaled = softmax_rows(s), softmax_rows(s / np.sqrt(dim))

    def jac_norm(a):  # mean Frobenius norm of diag(a) - a a^T over the rows
        return np.mean([np.linalg.norm(np.diag(r) - np.outer(r, r)) for r in a[:200]])

    print(
        f"{dim:4d} | {s.var():9.1f} {s.var() / dim:15.2f} | {a_raw.max(-1).mean():11.3f} "
        f"{a_scaled.max(-1).mean():14.3f} | {jac_norm(a_raw):8.3f} {jac_norm(a_scaled):10.3f}"
    )

# %% [markdown]
# The raw variance grows like $d$; after scaling it is 1 at
# every width, the largest weight stays moderate, and the Jacobian — the gradient's path to
# $Q$ and $K$ — keeps its size instead of collapsing as $d$ grows. `scale=None` in
# `F.scaled_dot_product_attention` means exactly $1/\sqrt{d}$, with $d$ the last dim of the
# query.
#
# ## 4. Causal masking
#
# A language model predicts token $t+1$ from tokens $\le t$. If position $t$ could attend to
# position $t+1$ during training, it would simply read the answer. A **causal mask** forbids
# it: score $s_{ij}$ with $j > i$ is replaced by $-\infty$ before the softmax, so
# $a_{ij} = e^{-\infty}/\ldots = 0$. All positions are still computed in one pass (that is
# why Transformers train fast), but each row only mixes its own past.
#
# In backward, the masked entries have $a_{ij} = 0$, so the boxed formula gives
# $ds_{ij} = 0$: no gradient flows from query $i$ to a future key either. Check both
# directions: changing a future token leaves the earlier outputs bit-for-bit identical,
# and the gradient of output 2 with respect to positions 3 and later is exactly zero.

# %%
T = 6
x = dbl(T, d)
y = F.scaled_dot_product_attention(x, x, x, is_causal=True)  # self-attention, (T, d)
x_np = x.detach().numpy()
scores = np.where(np.tri(T, dtype=bool), x_np @ x_np.T / np.sqrt(d), -np.inf)  # j > i: -inf
A_causal = softmax_rows(scores)
np.testing.assert_allclose(y.detach().numpy(), A_causal @ x_np, atol=1e-13)
print("causal attention weights (upper triangle is zero):\n", A_causal)

x2 = x.detach().numpy().copy()
x2[4] += 10.0  # change token 4 a lot
y2 = F.scaled_dot_product_attention(*(tinylm.tensor(x2),) * 3, is_causal=True)
same = (y2.detach().numpy()[:4] == y.detach().numpy()[:4]).all()
print("outputs 0..3 unchanged after editing token 4:", same)
print("output 4 changed:", not np.allclose(y2.detach().numpy()[4], y.detach().numpy()[4]))

y[2].sum().backward()
print("|d y_2 / d x_j| per position j:", np.abs(x.grad.numpy()).sum(axis=1))

# %% [markdown]
# **A row with nothing to attend to.** With a general mask (padding, for example) a query
# can end up with *every* key masked. The formula then reads $0/0$: the row of scores is
# all $-\infty$, every $e^{-\infty}$ is 0, and so is their sum. A naive softmax returns
# `nan`, and one `nan` spreads through the next matmul into every later layer and into the
# loss. tinylm does what PyTorch 2.5+ does in `scaled_dot_product_attention`: such a row
# gets weights 0, hence output 0 and no gradient at all. (PyTorch's
# `nn.MultiheadAttention` with `need_weights=True` still gives `nan`; tinylm gives zeros
# there too.) Below, query 1 may see no key (`attn_mask` for `F` is True where attending
# is *allowed*):

# %%
Q4, K4, V4 = dbl(3, 4), dbl(5, 4), dbl(5, 2)
allowed = np.ones((3, 5), dtype=bool)
allowed[1] = False  # query 1 sees nothing
y = F.scaled_dot_product_attention(Q4, K4, V4, attn_mask=tinylm.tensor(allowed))
y.sum().backward()
print("outputs:\n", y.detach().numpy())
print("dQ row 1 (the fully masked query):", Q4.grad.numpy()[1])
with np.errstate(invalid="ignore"):
    naive = np.exp(np.full(5, -np.inf)) / np.exp(np.full(5, -np.inf)).sum()
print("a naive softmax of that row:", naive)

# %% [markdown]
# ## 5. Multi-head attention
#
# One softmax gives each query one distribution: it can look mainly at one place. Language
# needs several kinds of lookup at once (the previous word, the subject of the sentence,
# the matching bracket), so a Transformer runs $H$ attentions side by side, each in its own
# $D = E/H$ dims:
#
# $$Q = X W_q^\top + b_q,\quad K = X W_k^\top + b_k,\quad V = X W_v^\top + b_v
#   \qquad (T, E)$$
# $$\text{head}_h = \operatorname{attention}(Q_{:,hD:(h+1)D},\; K_{:,hD:(h+1)D},\; V_{:,hD:(h+1)D})
#   \qquad (T, D)$$
# $$\operatorname{MHA}(X) = [\text{head}_1, \ldots, \text{head}_H]\, W_o^\top + b_o
#   \qquad (T, E).$$
#
# The cost is the same as one head of width $E$: the projections are one $(3E, E)$ matrix
# (`in_proj_weight`, stacked $[W_q; W_k; W_v]$ as in PyTorch), and the heads are *not* a
# Python loop. `_split_heads` reshapes $(N, T, E) \to (N, T, H, D)$ and swaps two axes to
# $(N, H, T, D)$: now the head is just another batch dim, and one batched `matmul` does all
# heads. Afterwards the inverse reshape puts the heads side by side again (the concat), and
# `out_proj` mixes them.

# %%
print(inspect.getsource(_split_heads))
src = inspect.getsource(MultiheadAttention.forward)
start = src.index("        w_q, w_k, w_v")
print(src[start : src.index("        if weights is not None")])

# %% [markdown]
# (The `BEGIN SOLUTION` markers are where the course cuts out an assignment; with
# `need_weights=False` the same computation goes through `F.scaled_dot_product_attention`.)
# To be sure the batched code means what the formulas say, write the per-head loop by hand
# with the module's own weights and compare:

# %%
E, H, T = 8, 2, 5
mha = MultiheadAttention(E, H, batch_first=True).double()
X = tinylm.randn(1, T, E, dtype=tinylm.float64)
out, w_avg = mha(X, X, X)  # (1, T, E), weights averaged over heads (1, T, T)

x_np = X.numpy()[0]
W, b = mha.in_proj_weight.detach().numpy(), mha.in_proj_bias.detach().numpy()
Wq, Wk, Wv = np.split(W, 3)
bq, bk, bv = np.split(b, 3)
Qf, Kf, Vf = x_np @ Wq.T + bq, x_np @ Wk.T + bk, x_np @ Wv.T + bv  # (T, E) each
D = E // H
heads = []
for h in range(H):  # the loop tinylm does not run
    cols = slice(h * D, (h + 1) * D)
    a = softmax_rows(Qf[:, cols] @ Kf[:, cols].T / np.sqrt(D))  # (T, T)
    heads.append(a @ Vf[:, cols])  # (T, D)
concat = np.concatenate(heads, axis=1)  # (T, E)
loop_out = concat @ mha.out_proj.weight.detach().numpy().T + mha.out_proj.bias.detach().numpy()
print("max |batched heads - per-head loop| =", np.abs(out.detach().numpy()[0] - loop_out).max())
np.testing.assert_allclose(out.detach().numpy()[0], loop_out, atol=1e-13)

# %% [markdown]
# ## 6. Attention ignores order; positional encodings restore it
#
# Shuffle the tokens of a sequence with a permutation matrix $\Pi$. Every projection acts
# row by row, so $Q$, $K$, $V$ are shuffled the same way. The scores become
# $\Pi Q K^\top \Pi^\top$: rows and columns permuted. A row-wise softmax commutes with
# both, and $\Pi A \Pi^\top\, \Pi V = \Pi A V$ because $\Pi^\top\Pi = I$. So
#
# $$\operatorname{MHA}(\Pi X) = \Pi\,\operatorname{MHA}(X):$$
#
# self-attention (without a causal mask) is **permutation-equivariant**. It sees a *set*
# of tokens, not a sequence: "dog bites man" and "man bites dog" give the same outputs,
# merely reordered. Demonstrate with the layer from §5:

# %%
perm = np.array([3, 0, 4, 1, 2])
Xp = tinylm.tensor(X.numpy()[:, perm])
out_p, _ = mha(Xp, Xp, Xp)
gap = np.abs(out_p.detach().numpy() - out.detach().numpy()[:, perm]).max()
print("no positions:   max |MHA(PX) - P MHA(X)| =", f"{gap:.1e}")

# %% [markdown]
# The fix is to make each token's vector depend on where it is: add a position vector
# $P_t$ to the embedding at position $t$ before the first block. The original Transformer
# used fixed sinusoids of geometrically spaced frequencies,
#
# $$P_{t,2i} = \sin(t\,\omega_i),\qquad P_{t,2i+1} = \cos(t\,\omega_i),\qquad
#   \omega_i = 10000^{-2i/E},$$
#
# with wavelengths from $2\pi$ to $10000\cdot 2\pi$: near positions differ in the fast
# (first) dims, far ones in the slow dims. Each $(\sin, \cos)$ pair is a point on a circle
# turned by the angle $t\,\omega_i$, so moving $k$ steps is a fixed rotation by
# $k\,\omega_i$ whatever $t$ is: relative offsets are linear functions of the code.
# GPT-2 instead *learns* a table of $P_t$ (`LearnedPositionalEmbedding`). Either way, the
# shuffled sequence now gets different vectors, and equivariance is gone — as it must be:

# %%
pe = nn.SinusoidalPositionalEncoding(E, max_len=32, dtype=tinylm.float64)
table = pe.pe.numpy()
t_idx, i_idx = np.arange(32)[:, None], np.arange(0, E, 2)
omega = 10000.0 ** (-i_idx / E)
np.testing.assert_allclose(table[:, 0::2], np.sin(t_idx * omega), atol=1e-15)
np.testing.assert_allclose(table[:, 1::2], np.cos(t_idx * omega), atol=1e-15)

k_off, w0 = 3, omega[0]
cs, sn = np.cos(k_off * w0), np.sin(k_off * w0)
rot = np.array([[cs, -sn], [sn, cs]])  # row vectors: [sin, cos](t + k) = [sin, cos](t) @ rot
print(
    "P_{t+3} = R P_t for the fastest pair, at every t:",
    np.allclose(table[3:, 0:2], table[:-3, 0:2] @ rot),
)

out_pe, _ = mha(pe(X), pe(X), pe(X))
out_pe_p, _ = mha(pe(Xp), pe(Xp), pe(Xp))
gap = np.abs(out_pe_p.detach().numpy() - out_pe.detach().numpy()[:, perm]).max()
print("with positions: max |MHA(PX) - P MHA(X)| =", f"{gap:.2f}")

# %% [markdown]
# (A causal mask also breaks the symmetry, since "earlier" is baked into the mask; but a
# causal model without positions still cannot tell, say, how far back a token is. Models
# use both.)
#
# ## 7. The pre-LN Transformer block
#
# A GPT block has two branches, each added to a **residual stream** $x$:
#
# $$x \leftarrow x + \operatorname{Attn}(\operatorname{LN}_1(x)), \qquad
#   x \leftarrow x + \operatorname{MLP}(\operatorname{LN}_2(x)),$$
#
# with causal multi-head self-attention, and an MLP $E \to 4E \to E$ with a GELU between.
# Attention *moves* information between positions; the MLP *processes* each position on
# its own. Two design points:
#
# * **Residuals.** The stream is only ever added to, so $\partial x_{\text{out}}/\partial
#   x_{\text{in}} = I + (\text{branch terms})$: the gradient reaches the first block through
#   the identity, however deep the stack — the same trick as the LSTM's additive cell
#   state (lesson 07).
# * **Pre-LN.** LayerNorm sits at the *input* of each branch (GPT-2), not after the sum
#   (the 2017 paper's post-LN). The identity path then carries no normalisation at all,
#   and deep stacks train without a careful learning-rate warm-up.
#
# tinylm's `TransformerBlock.forward` is those two lines:

# %%
print(inspect.getsource(nn.TransformerBlock.forward))

# %% [markdown]
# ## 8. Watching attention work
#
# A task that needs attention: the input is a random sequence of tokens and the target at
# position $t$ is the token at position $t-2$. No single position holds the answer, so the
# model must learn to look exactly two steps back — a "previous-token head", one of the
# first circuits found inside real language models. One block with one head, learned
# positions, and Adam; a second or two of training is enough.

# %%
VOCAB, T, E, LAG = 8, 12, 32, 2


class Copier(nn.Module):
    """Embedding + learned positions -> one TransformerBlock -> LayerNorm -> logits."""

    def __init__(self):
        super().__init__()
        self.tok = nn.Embedding(VOCAB, E)
        self.pos = nn.LearnedPositionalEmbedding(T, E)
        self.block = nn.TransformerBlock(E, n_heads=1)
        self.ln_f = nn.LayerNorm(E)
        self.head = nn.Linear(E, VOCAB)

    def forward(self, idx):
        return self.head(self.ln_f(self.block(self.pos(self.tok(idx)))))  # (B, T, VOCAB)


tinylm.manual_seed(0)
model = Copier()
opt = optim.Adam(model.parameters(), lr=1e-2)
rng = np.random.default_rng(0)
for step in range(60):
    xb = rng.integers(0, VOCAB, (32, T))
    yb = np.full((32, T), -100)  # -100: ignore_index, the first positions have no answer
    yb[:, LAG:] = xb[:, :-LAG]
    loss = F.cross_entropy(
        model(tinylm.tensor(xb)).reshape(32 * T, VOCAB), tinylm.tensor(yb.reshape(-1))
    )
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step % 20 == 0 or step == 59:
        print(f"step {step:3d}  loss {loss.item():.4f}   (chance: log 8 = {np.log(8):.2f})")

# %% [markdown]
# To see the weights, run the block's pieces on one sequence and ask its attention layer
# for them (`need_weights=True`; MultiheadAttention's bool mask is True where attending is
# *forbidden*, PyTorch's convention for that class).

# %%
xs = tinylm.tensor(rng.integers(0, VOCAB, (1, T)))
with tinylm.no_grad():
    h = model.block.ln_1(model.pos(model.tok(xs)))
    future = tinylm.tensor(np.triu(np.ones((T, T), dtype=bool), k=1))
    _, weights = model.block.attn(h, h, h, attn_mask=future, need_weights=True)
weights = weights.numpy()[0]  # (T, T)

fig, ax = plt.subplots(figsize=(5, 4.5))
im = ax.imshow(weights, cmap="viridis", vmin=0, vmax=1)
ax.set_xlabel("key position j (attended to)")
ax.set_ylabel("query position i")
ax.set_title(f"learned attention: copy the token {LAG} steps back")
fig.colorbar(im, ax=ax)
plt.show()
diag = np.array([weights[i, i - LAG] for i in range(LAG, T)])
print("weight on key i-2, per query i >= 2:", diag.round(2))

# %% [markdown]
# The bright stripe two below the diagonal is the learned lookup: each query puts almost
# all its weight on the key two steps back. The upper triangle is black — the causal mask
# at work — and rows 0 and 1, which have no answer to find, spread their weight over what
# they can see.
#
# ## 9. Gradient checks
#
# The derivation in §2 was checked against autograd; here autograd is checked against
# central differences (lesson 02), in float64, including the causal and boolean/additive
# mask paths of `F.scaled_dot_product_attention` and a small `MultiheadAttention` (its
# inputs and, through a closure, its in-projection weights).

# %%
Q, K, V = dbl(2, 3, 4), dbl(2, 5, 4), dbl(2, 5, 3)
bool_mask = tinylm.tensor(np.random.default_rng(2).random((3, 5)) < 0.7)
add_mask = tinylm.randn(3, 5, dtype=tinylm.float64)
cases = {
    "plain": lambda q, k, v: F.scaled_dot_product_attention(q, k, v),
    "bool mask": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=bool_mask),
    "additive mask": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=add_mask),
}
for name, fn in cases.items():
    print(f"sdpa, {name:14s} gradcheck: {tinylm.gradcheck(fn, (Q, K, V))}")
Qc = dbl(2, 5, 4)
print(
    "sdpa, is_causal      gradcheck:",
    tinylm.gradcheck(
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), (Qc, K, V)
    ),
)

small = MultiheadAttention(4, 2, batch_first=True).double()
Xg = dbl(2, 3, 4)
causal = tinylm.tensor(np.triu(np.ones((3, 3), dtype=bool), k=1))
print(
    "MultiheadAttention  gradcheck:",
    tinylm.gradcheck(lambda x: small(x, x, x, attn_mask=causal)[0], (Xg,)),
)
w_in = small.in_proj_weight
print(
    "  w.r.t. in_proj_weight:",
    tinylm.gradcheck(lambda w: small(Xg.detach(), Xg.detach(), Xg.detach())[0], (w_in,)),
)

# %% [markdown]
# ## Summary
#
# * Attention is a soft lookup: $Y = \operatorname{softmax}(QK^\top/\sqrt d)\,V$, each output
#   a convex combination of the values.
# * Backward: $dV = P^\top G$, $dP = GV^\top$,
#   $dS = c\,P\odot(dP - \operatorname{rowsum}(dP\odot P))$, $dQ = dS\,K$, $dK = dS^\top Q$.
#   Only the softmax needs a hand-written backward; the products are matmuls.
# * Dot products of $d$ unit-variance components have variance $d$; dividing by $\sqrt d$
#   keeps scores at variance 1 so the softmax does not saturate and gradients survive.
# * A causal mask sets future scores to $-\infty$: no influence forward, no gradient
#   backward. A query with every key masked gets zero weights, output and gradient in
#   tinylm, not `nan`.
# * Multi-head attention splits $E$ into $H$ heads of $D = E/H$ dims, runs them as a batch
#   dim $(N, H, T, D)$, concatenates and mixes with `out_proj`; it equals the per-head loop.
# * Self-attention is permutation-equivariant; sinusoidal or learned position vectors
#   added to the embeddings break the symmetry.
# * The pre-LN block: $x + \operatorname{Attn}(\operatorname{LN}(x))$, then
#   $x + \operatorname{MLP}(\operatorname{LN}(x))$; the residual stream is an identity path
#   for the gradient.
#
# ## Tests that grade this lesson
#
# Run them all with `pytest -m lesson09`:
#
# * `tests/test_lesson09.py::test_attention_backward_by_hand_matches_autograd`
# * `tests/test_lesson09.py::test_softmax_backward_formula_matches_masked_softmax`
# * `tests/test_lesson09.py::test_scaling_keeps_score_variance_near_one`
# * `tests/test_lesson09.py::test_causal_mask_blocks_future_influence`
# * `tests/test_lesson09.py::test_fully_masked_row_gives_zero_output_and_gradient`
# * `tests/test_lesson09.py::test_multihead_equals_per_head_loop`
# * `tests/test_lesson09.py::test_attention_without_positions_is_permutation_equivariant`
# * `tests/test_lesson09.py::test_positional_encoding_breaks_permutation_equivariance`
# * `tests/test_lesson09.py::test_sinusoidal_table_matches_formula`
# * `tests/test_lesson09.py::test_transformer_block_is_pre_ln_residual_composition`
# * `tests/test_lesson09.py::test_scaled_dot_product_attention_passes_gradcheck`
# * `tests/test_lesson09.py::test_multihead_attention_passes_gradcheck`
#
# With attention, embeddings, cross-entropy and an optimizer, every piece of a GPT is now
# on the table: stacking these blocks over a token embedding is the whole model.
