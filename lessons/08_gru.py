# %% [markdown]
# # Lesson 08 — The GRU: a lighter gate design
#
# The LSTM of lesson 07 keeps two states and four blocks of weights. The **gated
# recurrent unit** (GRU, Cho et al. 2014) keeps only $h_t$, uses three blocks, and still
# has an additive path for the gradient. In practice it often trains about as well as an
# LSTM with a quarter fewer parameters. This short lesson writes its step in PyTorch's
# formulation, derives its gradient, checks it, and counts parameters.

# %%
import numpy as np

import tinylm
import tinylm.nn as nn
from tinylm.gradcheck import gradcheck

tinylm.manual_seed(0)
rng = np.random.default_rng(0)


def f64(array, requires_grad=False):
    """A float64 tensor from a NumPy array."""
    return tinylm.tensor(np.asarray(array), dtype=tinylm.float64, requires_grad=requires_grad)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


# %% [markdown]
# ## 1. The step
#
# Two affine maps, each of size $3H$, cut into blocks in the order (r, z, n):
# $a = W_{ih} x_t + b_{ih}$ and $b = W_{hh} h_{t-1} + b_{hh}$. Then
#
# $$
# \begin{aligned}
# r &= \sigma(a^r + b^r) && \text{reset gate: how much of the past the candidate sees}\\
# z &= \sigma(a^z + b^z) && \text{update gate: how much of } h_{t-1} \text{ to keep}\\
# n &= \tanh\big(a^n + r \odot (W_{hn} h_{t-1} + b_{hn})\big) && \text{candidate}\\
# h_t &= (1 - z) \odot n + z \odot h_{t-1}
# \end{aligned}
# $$
#
# Compared with the LSTM: the update gate $z$ plays both the forget gate ($z$) and the
# input gate ($1 - z$), tied together so that $h_t$ is a weighted average of old and new;
# there is no separate cell and no output gate. One detail is PyTorch's: the reset gate
# multiplies $W_{hn} h_{t-1} + b_{hn}$ *including its bias*, so $b_{hn}$ cannot be merged
# into $b_{in}$. In NumPy, against tinylm's `GRUCell`:

# %%
I, H, B = 3, 4, 2
cell = nn.GRUCell(I, H, dtype=tinylm.float64)
W_ih, W_hh = cell.weight_ih.detach().numpy(), cell.weight_hh.detach().numpy()
b_ih, b_hh = cell.bias_ih.detach().numpy(), cell.bias_hh.detach().numpy()
x, h = rng.standard_normal((B, I)), rng.standard_normal((B, H))

a = x @ W_ih.T + b_ih  # (B, 3H)
b = h @ W_hh.T + b_hh  # (B, 3H)
r = sigmoid(a[:, :H] + b[:, :H])
z = sigmoid(a[:, H : 2 * H] + b[:, H : 2 * H])
n = np.tanh(a[:, 2 * H :] + r * b[:, 2 * H :])
h_new = (1 - z) * n + z * h

h_tinylm = cell(f64(x), f64(h)).detach().numpy()
print("max |tinylm - by hand| =", np.abs(h_tinylm - h_new).max())
np.testing.assert_allclose(h_tinylm, h_new, atol=1e-14)

# %% [markdown]
# ## 2. The gradient
#
# Given $\bar h_t = \partial L / \partial h_t$, each line of the forward pass gives one
# line of the backward, from the last to the first (pre-activation gradients written
# $\bar z^r, \bar z^z, \bar z^n$):
#
# $$
# \begin{aligned}
# \bar z^n &= \bar h_t \odot (1 - z) \odot (1 - n^2) && \text{through } (1-z) n \text{ and tanh}\\
# \bar z^z &= \bar h_t \odot (h_{t-1} - n) \odot z (1 - z) && \partial h_t / \partial z = h_{t-1} - n\\
# \bar z^r &= \bar z^n \odot b^n \odot r (1 - r) && n \ni r\, b^n\\
# \bar a &= [\bar z^r, \bar z^z, \bar z^n], \quad
#   \bar b = [\bar z^r, \bar z^z, \bar z^n \odot r]\\
# \bar h_{t-1} &= \bar h_t \odot z + \bar b\, W_{hh}
# \end{aligned}
# $$
#
# The last line holds the GRU's additive path: the term $\bar h_t \odot z$ reaches
# $h_{t-1}$ with no weight matrix and no tanh derivative, just as $\hat c_t \odot f$
# did in the LSTM. With $z$ near 1 the gradient passes through.
#
# Written out and checked against autograd, for the input $x$ and the state $h$:

# %%
Vh = rng.standard_normal((B, H))  # L = sum(Vh * h_t), so dL/dh_t = Vh
dz_n = Vh * (1 - z) * (1 - n**2)
dz_z = Vh * (h - n) * z * (1 - z)
dz_r = dz_n * b[:, 2 * H :] * r * (1 - r)
da = np.concatenate([dz_r, dz_z, dz_n], axis=1)
db = np.concatenate([dz_r, dz_z, dz_n * r], axis=1)
dx_hand, dh_hand = da @ W_ih, Vh * z + db @ W_hh

xt, ht = f64(x, True), f64(h, True)
(cell(xt, ht) * f64(Vh)).sum().backward()
print("dx: max |hand - autograd| =", np.abs(dx_hand - xt.grad.numpy()).max())
print("dh: max |hand - autograd| =", np.abs(dh_hand - ht.grad.numpy()).max())
np.testing.assert_allclose(dx_hand, xt.grad.numpy(), atol=1e-13)
np.testing.assert_allclose(dh_hand, ht.grad.numpy(), atol=1e-13)

# %% [markdown]
# And the whole cell, all six inputs and parameters, against central differences:

# %%
params = [cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh]
print("gradcheck(GRUCell):", gradcheck(lambda x, h, *p: cell(x, h), [xt, ht, *params]))

# %% [markdown]
# ## 3. Parameters
#
# Each block is an input map ($H \times I$), a hidden map ($H \times H$) and two biases
# ($2H$). An RNN has one block, a GRU three, an LSTM four:
#
# $$\#\text{GRU} = 3\,(HI + H^2 + 2H), \qquad \#\text{LSTM} = 4\,(HI + H^2 + 2H),$$
#
# so a GRU of the same size has exactly three quarters of an LSTM's parameters (and of
# its multiply-adds per step).


# %%
def count(model):
    return sum(p.numel() for p in model.parameters())


I, H = 64, 256
for name, cls in (("RNN", nn.RNN), ("GRU", nn.GRU), ("LSTM", nn.LSTM)):
    print(f"{name:4s} I={I}, H={H}: {count(cls(I, H)):7d} parameters")
assert count(nn.GRU(I, H)) * 4 == count(nn.LSTM(I, H)) * 3

# %% [markdown]
# ## Summary
#
# * GRU: $r, z$ sigmoid gates and a candidate $n = \tanh(a^n + r \odot (W_{hn} h + b_{hn}))$;
#   $h_t = (1 - z) n + z h_{t-1}$, one state, gate order (r, z, n).
# * Backward: each forward line gives one backward line; the term $\bar h_t \odot z$ is
#   an additive path for the gradient, like the LSTM's cell.
# * Three blocks of weights instead of the LSTM's four: 3/4 of the parameters.
#
# ## Tests that grade this lesson
#
# Run them all with `pytest -m lesson08`:
#
# * `tests/test_lesson08.py::test_gru_step_formula_matches_gru_cell`
# * `tests/test_lesson08.py::test_reset_gate_multiplies_hidden_bias`
# * `tests/test_lesson08.py::test_hand_backward_matches_autograd`
# * `tests/test_lesson08.py::test_gru_cell_gradcheck`
# * `tests/test_lesson08.py::test_gru_parameter_count_is_three_quarters_of_lstm`
