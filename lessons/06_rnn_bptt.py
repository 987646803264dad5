# %% [markdown]
# # Lesson 06 — Recurrent networks and backpropagation through time
#
# The models of lesson 05 read a fixed window of three characters. A **recurrent neural
# network** (RNN) reads a sequence of any length, one step at a time, and carries what it
# has seen so far in a vector, its **hidden state**. The same weights are used at every
# step, so one small set of parameters can process a sentence or a book.
#
# Training it raises a new question: a loss at step 50 depends on the input at step 1
# through 49 applications of the same function. Its gradient has to travel back through
# all of them, and on the way it is multiplied by the same matrix again and again. This
# lesson derives exactly what happens to it.
#
# Plan:
#
# 1. the recurrence, written by hand and checked against tinylm's `RNNCell` and `RNN` (§1);
# 2. backpropagation through time (BPTT) derived: the gradient reaching step $t$ is a
#    product of Jacobians $\mathrm{diag}(1 - h^2)\, W_{hh}$ (§2);
# 3. vanishing and exploding gradients, measured at every step with tinylm's
#    step-gradient recorder and plotted (§3);
# 4. gradient clipping, the standard cure for explosions (§4);
# 5. truncated BPTT: long sequences trained in chunks by detaching the state (§5);
# 6. a gradient check of `RNNCell` (§6).

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

import tinylm
import tinylm.nn as nn
from tinylm import optim
from tinylm.gradcheck import gradcheck
from tinylm.nn.utils import clip_grad_norm_

tinylm.manual_seed(0)
rng = np.random.default_rng(0)
start = time.perf_counter()


def f64(array, requires_grad=False):
    """A float64 tensor from a NumPy array."""
    return tinylm.tensor(np.asarray(array), dtype=tinylm.float64, requires_grad=requires_grad)


# %% [markdown]
# ## 1. The recurrence
#
# At step $t$ the RNN combines the input $x_t$ (size $I$) with the previous hidden state
# $h_{t-1}$ (size $H$):
#
# $$h_t = \tanh\big(W_{ih}\, x_t + b_{ih} + W_{hh}\, h_{t-1} + b_{hh}\big),
# \qquad t = 1, \dots, T,$$
#
# starting from $h_0$ (zeros unless given). $W_{ih}$ is $H \times I$, $W_{hh}$ is
# $H \times H$; both biases have size $H$ (two of them because PyTorch has two; only
# their sum matters). The output of the layer is the whole sequence $h_1, \dots, h_T$.
# We call the argument of tanh the **pre-activation** $z_t$.
#
# In code the batch comes first in every row, so the products are written with
# transposes: `h = tanh(x @ W_ih.T + b_ih + h @ W_hh.T + b_hh)`, shapes `(B, I)` and
# `(B, H)`. tinylm's `nn.RNNCell` is one step and `nn.RNN` the whole loop, with
# PyTorch's parameter names. Here is the loop by hand with NumPy, using the weights of a
# tinylm `RNN`:

# %%
I, H, T, B = 3, 5, 6, 2
rnn = nn.RNN(I, H, dtype=tinylm.float64)  # input (T, B, I): time first, as PyTorch
x = f64(rng.standard_normal((T, B, I)))

W_ih, W_hh = rnn.weight_ih_l0.detach().numpy(), rnn.weight_hh_l0.detach().numpy()
b_ih, b_hh = rnn.bias_ih_l0.detach().numpy(), rnn.bias_hh_l0.detach().numpy()
h = np.zeros((B, H))
by_hand = []
for t in range(T):
    h = np.tanh(x.numpy()[t] @ W_ih.T + b_ih + h @ W_hh.T + b_hh)  # (B, H)
    by_hand.append(h)
by_hand = np.stack(by_hand)  # (T, B, H)

output, h_n = rnn(x)  # output (T, B, H) = h_1..h_T;  h_n (1, B, H) = h_T
print("output shape", output.shape, " h_n shape", h_n.shape)
print("max |tinylm - by hand| =", np.abs(output.detach().numpy() - by_hand).max())
np.testing.assert_allclose(output.detach().numpy(), by_hand, atol=1e-14)

# %% [markdown]
# The same with `RNNCell`, called once per step: it is the loop written in Python, with
# the cell's own parameters (`weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`).

# %%
cell = nn.RNNCell(I, H, dtype=tinylm.float64)
with tinylm.no_grad():  # give the cell the layer's weights
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        getattr(cell, name).data[...] = getattr(rnn, name + "_l0").data
h = None
for t in range(T):
    h = cell(x[t], h)  # (B, H)
np.testing.assert_allclose(h.detach().numpy(), by_hand[-1], atol=1e-14)
print("RNNCell unrolled by hand gives the same h_T")

# %% [markdown]
# ## 2. Backpropagation through time
#
# Unroll the loop and it is an ordinary, deep computation graph: $T$ copies of the cell,
# all sharing $W_{ih}, W_{hh}$ and the biases. Backpropagation through it is called
# **backpropagation through time**. Nothing new is needed, only the chain rule; what is
# worth deriving is the *shape* of the result.
#
# Write $\bar h_t = \partial L / \partial h_t$ for the **total** gradient reaching $h_t$:
# $h_t$ is used by the loss directly (through the output at step $t$) and by the next
# step. So
#
# $$\bar h_t = \frac{\partial L}{\partial y_t} + \bar h_{t+1}\,
#   \frac{\partial h_{t+1}}{\partial h_t}, \qquad \bar h_{T+1} = 0 .$$
#
# One step's Jacobian: $h_{t} = \tanh(z_t)$ with $z_t = \dots + W_{hh} h_{t-1}$, and
# $\tanh'(z) = 1 - \tanh^2(z) = 1 - h^2$, so
#
# $$J_t = \frac{\partial h_t}{\partial h_{t-1}} = \mathrm{diag}(1 - h_t^2)\; W_{hh} .$$
#
# In code, with row vectors: $\bar z_t = \bar h_t \odot (1 - h_t^2)$ and the part passed
# back is $\bar z_t W_{hh}$. The weight gradients collect a term from every step, because
# the same weights are used at every step:
# $\partial L/\partial W_{hh} = \sum_t \bar z_t^\top h_{t-1}$,
# $\partial L/\partial W_{ih} = \sum_t \bar z_t^\top x_t$.
#
# If the loss only looks at the last step, unrolling the recursion gives the gradient that
# reaches the start:
#
# $$\frac{\partial L}{\partial h_0} = \frac{\partial L}{\partial h_T}\;
#   J_T\, J_{T-1} \cdots J_1 .$$
#
# **A product of $T$ matrices.** Let us build it by hand and compare it with autograd's
# `h0.grad` (batch of one, $L = \sum_j h_{T,j}$, so $\partial L/\partial h_T$ is a row of
# ones):

# %%
x1 = f64(rng.standard_normal((T, 1, I)))
h0 = f64(rng.standard_normal((1, 1, H)) * 0.5, requires_grad=True)
output, _ = rnn(x1, h0)
output[-1].sum().backward()

hs = output.detach().numpy()[:, 0]  # (T, H): h_1..h_T
grad = np.ones(H)  # dL/dh_T
for t in range(T - 1, -1, -1):
    J = np.diag(1 - hs[t] ** 2) @ W_hh  # J_t = dh_t / dh_{t-1}, (H, H)
    grad = grad @ J
print("dL/dh_0 from the Jacobian product:", grad.round(6))
print("dL/dh_0 from tinylm's autograd   :", h0.grad.numpy()[0, 0].round(6))
np.testing.assert_allclose(grad, h0.grad.numpy()[0, 0], atol=1e-13)

# %% [markdown]
# **Why this vanishes or explodes.** Norms are submultiplicative, and
# $0 < 1 - h^2 \le 1$, so each factor is at most as large as $W_{hh}$:
#
# $$\|J_t\| \le \max_j (1 - h_{t,j}^2)\; \|W_{hh}\| \le \sigma_{\max}(W_{hh}),
# \qquad
# \Big\|\frac{\partial L}{\partial h_{T-k}}\Big\| \le \sigma_{\max}(W_{hh})^k\,
# \Big\|\frac{\partial L}{\partial h_T}\Big\| .$$
#
# * If the largest singular value of $W_{hh}$ is below 1, the gradient from a loss $k$
#   steps later shrinks at least like $\sigma_{\max}^k$: **vanishing gradients**. The
#   network cannot learn that an input long ago mattered, because no gradient says so.
#   Saturated units ($|h| \approx 1$, so $1 - h^2 \approx 0$) make it worse.
# * If $W_{hh}$ is large, the factors can be larger than 1 and the product grows
#   geometrically: **exploding gradients**, and one update throws the weights far away.
#   The bound only goes one way: tanh's saturation caps $h$ and shrinks the factors, so
#   the growth is less than $\sigma_{\max}^k$, but still geometric when the state stays
#   in tanh's steep middle.
#
# Only a product of factors that stay very close to 1 keeps its size over many steps,
# and a plain RNN has no way to keep them there. That is what the LSTM of lesson 07
# changes.

# %% [markdown]
# ## 3. Seeing it: the gradient norm at every step
#
# tinylm records the gradient reaching each time step for us. Inside
# `with nn.record_step_grads(model) as rec:` every recurrent layer that runs a forward is
# watched; after `backward()`, `rec.norms()` is $\|\bar h_t\|$ for $t = 1, \dots, T$
# (index $0 \dots T-1$), the total gradient of BPTT, taken from the layer's own backward.
#
# The experiment: a tanh RNN with $H = 16$ reads $T = 50$ steps of small random input,
# the loss is $\sum_j h_{T,j}$ (it only looks at the last step), and $W_{hh}$ is a random
# orthogonal matrix (all singular values 1) times a scale $s$. So $\sigma_{\max} = s$.

# %%
H, I, T, B = 16, 4, 50, 8
Q, _ = np.linalg.qr(rng.standard_normal((H, H)))  # orthogonal: every singular value is 1
x_seq = f64(rng.standard_normal((T, B, I)) * 0.1)


def step_grad_norms(scale: float) -> np.ndarray:
    """||dL/dh_t|| for t = 1..T, for L = sum(h_T) and W_hh = scale * Q."""
    tinylm.manual_seed(1)
    model = nn.RNN(I, H, dtype=tinylm.float64)
    with tinylm.no_grad():
        model.weight_hh_l0.data[...] = scale * Q
    with nn.record_step_grads(model) as rec:
        output, _ = model(x_seq)
        loss = output[-1].sum()
    loss.backward()
    return rec.norms()  # (T,)


scales = (0.5, 0.9, 1.5, 3.0)
norms = {s: step_grad_norms(s) for s in scales}
distance = T - 1 - np.arange(T)  # how many steps before the loss each h_t is

fig, ax = plt.subplots(figsize=(7, 3.8), layout="constrained")
for s in scales:
    ax.semilogy(distance, norms[s], label=rf"$W_{{hh}} = {s}\,Q$")
ax.set_xlabel("steps between $h_t$ and the loss  (T - t)")
ax.set_ylabel(r"$\|\partial L / \partial h_t\|$")
ax.set_title("Tanh RNN: the gradient vanishes or explodes geometrically with distance")
ax.legend()
plt.show()

for s in scales:
    n = norms[s]
    print(
        f"s = {s}: at the loss {n[-1]:9.3g}   10 steps back {n[-11]:9.3g}   "
        f"49 steps back {n[0]:9.3g}"
    )
assert norms[0.5][0] < 1e-10 * norms[0.5][-1]  # vanished
assert norms[3.0][0] > 1e3 * norms[3.0][-1]  # exploded

# %% [markdown]
# With $s = 0.5$ the gradient loses a factor of about two per step and is about $10^{-16}$ of
# its size after 49 steps: the first inputs get no learning signal at all. With
# $s = 0.9$ it still decays, more slowly. With $s = 1.5$ and $3$ it grows by orders of
# magnitude. A straight line on the log scale is the signature of a geometric
# product.
#
# ## 4. Gradient clipping
#
# Exploding gradients have a blunt but effective cure: before the update, if the joint
# norm $N$ of all parameter gradients exceeds a threshold `max_norm`, scale every
# gradient by `max_norm / N`. The direction of the step is kept, only its length is
# capped (lesson 05, §7). `tinylm.nn.utils.clip_grad_norm_` does it and returns $N$
# before clipping. Vanishing gradients have no such fix: a gradient that is $10^{-15}$
# carries no direction worth scaling up.

# %%
tinylm.manual_seed(1)
model = nn.RNN(I, H, dtype=tinylm.float64)
with tinylm.no_grad():
    model.weight_hh_l0.data[...] = 3.0 * Q
output, _ = model(x_seq)
output[-1].sum().backward()
before = [p.grad.numpy().copy() for p in model.parameters()]
total = clip_grad_norm_(model.parameters(), max_norm=1.0)
after = [p.grad.numpy() for p in model.parameters()]
flat_before, flat_after = (
    np.concatenate([g.ravel() for g in before]),
    np.concatenate([g.ravel() for g in after]),
)
cosine = flat_before @ flat_after / (np.linalg.norm(flat_before) * np.linalg.norm(flat_after))
print(f"norm before clipping {total.item():.4g}, after {np.linalg.norm(flat_after):.6f}")
print(f"cosine between the two directions: {cosine:.12f}")
assert abs(np.linalg.norm(flat_after) - 1.0) < 1e-5 and cosine > 1 - 1e-12

# %% [markdown]
# ## 5. Truncated BPTT: detaching the state
#
# Backpropagating through a whole book is neither affordable (every step's states are
# kept for the backward pass) nor useful (the gradient from far away has vanished or
# exploded anyway). **Truncated BPTT** cuts the sequence into chunks of $k$ steps. The
# hidden state is carried from one chunk to the next, so the forward pass still sees the
# whole past, but it is **detached**: `h = h.detach()` makes it a constant, so the
# backward of one chunk stops at the chunk's start.
#
# First the cut itself. Two chunks, the state carried across detached, the loss at the
# end of the second: the first chunk's input gets no gradient, the second's does.

# %%
xa = f64(rng.standard_normal((5, 1, I)), requires_grad=True)
xb = f64(rng.standard_normal((5, 1, I)), requires_grad=True)
_, h = model(xa)
output, _ = model(xb, h.detach())  # carry the state, cut the graph
output[-1].sum().backward()
print("gradient reached chunk 1:", xa.grad is not None and np.abs(xa.grad.numpy()).max() > 0)
print("gradient reached chunk 2:", np.abs(xb.grad.numpy()).max() > 0)
assert xa.grad is None or np.abs(xa.grad.numpy()).max() == 0

# %% [markdown]
# Now a real use: a 1,000-step sequence, trained in chunks of 50 steps. The task is to
# output the input from two steps earlier, $y_t = u_{t-2}$; the dependency is shorter
# than a chunk, so the truncation loses nothing. A linear readout maps $h_t$ to a
# prediction. At a chunk boundary the target still depends on the previous chunk's
# inputs, which the carried state remembers.

# %%
tinylm.manual_seed(0)
u = rng.uniform(-1, 1, size=(1000, 1, 1))  # (T, B, 1)
target = np.concatenate([np.zeros((2, 1, 1)), u[:-2]])  # y_t = u_{t-2}
net = nn.RNN(1, 24, dtype=tinylm.float64)
readout = nn.Linear(24, 1, dtype=tinylm.float64)
opt = optim.Adam([*net.parameters(), *readout.parameters()], lr=0.01)
chunk = 50
losses = []
for _ in range(15):
    h, epoch_loss = None, 0.0
    for s in range(0, 1000, chunk):
        output, h = net(f64(u[s : s + chunk]), h)
        loss = ((readout(output) - f64(target[s : s + chunk])) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        h = h.detach()  # truncated BPTT: keep the value, drop the graph
        epoch_loss += loss.item() / (1000 // chunk)
    losses.append(epoch_loss)
print("mean squared error per epoch:", " ".join(f"{v:.4f}" for v in losses))
print(f"(predicting 0 scores {np.mean(u**2):.4f})")
assert losses[-1] < 0.2 * losses[0]

# %% [markdown]
# Without the `detach()`, each chunk's backward would reach back through every earlier
# chunk: the work per step would grow with the position in the sequence and every state
# since the start would stay in memory. The detach makes both constant per chunk.
#
# ## 6. Gradient check of `RNNCell`
#
# Finally, tinylm's gradients of one cell, for its input, state and all four parameters,
# against central differences in float64 (lesson 02). `gradcheck` perturbs each input in
# place, so the parameters can be passed as inputs while the function calls the cell.

# %%
cell = nn.RNNCell(3, 4, dtype=tinylm.float64)
x_in = f64(rng.standard_normal((2, 3)), requires_grad=True)
h_in = f64(rng.standard_normal((2, 4)), requires_grad=True)
params = [cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh]
print("gradcheck(RNNCell):", gradcheck(lambda x, h, *p: cell(x, h), [x_in, h_in, *params]))
print(f"lesson ran in {time.perf_counter() - start:.1f} s")

# %% [markdown]
# ## Summary
#
# * An RNN applies one cell at every step:
#   $h_t = \tanh(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})$, the same weights each
#   time.
# * BPTT is the chain rule on the unrolled graph. The gradient reaching $h_t$ is the
#   direct term plus the next step's gradient times $J_{t+1} = \mathrm{diag}(1 - h_{t+1}^2)
#   W_{hh}$; from $k$ steps away it is a product of $k$ such Jacobians.
# * $\|J_t\| \le \sigma_{\max}(W_{hh})$: with small recurrent weights the gradient
#   vanishes geometrically, with large ones it can explode geometrically.
# * Clipping the gradient norm caps exploding steps and keeps their direction; nothing so
#   simple fixes vanishing.
# * Truncated BPTT carries the state forward and detaches it, so backward stops at the
#   chunk boundary and long sequences cost memory per chunk only.
#
# ## Tests that grade this lesson
#
# Run them all with `pytest -m lesson06`:
#
# * `tests/test_lesson06.py::test_rnn_layer_matches_recurrence_by_hand`
# * `tests/test_lesson06.py::test_rnn_cell_unrolled_equals_rnn_layer`
# * `tests/test_lesson06.py::test_bptt_jacobian_product_equals_autograd_dh0`
# * `tests/test_lesson06.py::test_jacobian_norm_bounded_by_largest_singular_value`
# * `tests/test_lesson06.py::test_small_weight_tanh_rnn_gradient_norms_decay_with_distance`
# * `tests/test_lesson06.py::test_large_weight_tanh_rnn_gradient_norms_grow_with_distance`
# * `tests/test_lesson06.py::test_clip_grad_norm_caps_exploding_rnn_gradient`
# * `tests/test_lesson06.py::test_detached_state_stops_gradient_at_chunk_boundary`
# * `tests/test_lesson06.py::test_truncated_bptt_trains_1000_step_sequence`
# * `tests/test_lesson06.py::test_rnn_cell_gradcheck`
