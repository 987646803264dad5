# %% [markdown]
# # Lesson 07 — The LSTM: gates, and a path the gradient can survive
#
# Lesson 06 ended with a product of Jacobians $\mathrm{diag}(1 - h^2)\, W_{hh}$ that
# shrinks or grows geometrically with distance. The **long short-term memory** (LSTM,
# Hochreiter and Schmidhuber, 1997) adds a second state, the **cell** $c_t$, that is
# updated by *addition* and scaled only by a learned gate. Along it the gradient is
# multiplied by a number close to 1 when the network wants to remember, with no weight
# matrix and no squashing in between.
#
# Plan:
#
# 1. the LSTM step, gate by gate, in PyTorch's order (i, f, g, o), checked against
#    tinylm's `LSTMCell` (§1);
# 2. every gate's gradient derived (§2), and written out as a NumPy backward (§3);
# 3. three-way agreement: the hand backward, tinylm's autograd and central differences
#    (§4);
# 4. the additive cell path and why gradients survive, with the per-step gradient plot
#    of lesson 06, RNN against LSTM (§5).

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

import tinylm
import tinylm.nn as nn

tinylm.manual_seed(0)
rng = np.random.default_rng(0)
start = time.perf_counter()


def f64(array, requires_grad=False):
    """A float64 tensor from a NumPy array."""
    return tinylm.tensor(np.asarray(array), dtype=tinylm.float64, requires_grad=requires_grad)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


# %% [markdown]
# ## 1. One LSTM step
#
# The LSTM computes four vectors of size $H$ from the input and the previous hidden
# state, all with one product each: $z = W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}$
# has $4H$ entries, cut into four blocks in PyTorch's order:
#
# $$
# \begin{aligned}
# i &= \sigma(z^i) && \text{input gate: how much of the candidate to write}\\
# f &= \sigma(z^f) && \text{forget gate: how much of the old cell to keep}\\
# g &= \tanh(z^g) && \text{candidate values to write}\\
# o &= \sigma(z^o) && \text{output gate: how much of the cell to show}\\
# c_t &= f \odot c_{t-1} + i \odot g && \text{the cell: keep some, add some}\\
# h_t &= o \odot \tanh(c_t) && \text{the hidden state, the layer's output}
# \end{aligned}
# $$
#
# The gates are sigmoids, numbers in $(0, 1)$ that act as soft switches, one per cell
# unit. So `weight_ih` is $(4H, I)$, `weight_hh` is $(4H, H)$ and each bias has $4H$
# entries. Here is the step in NumPy, as a learner would write it, against tinylm's
# `LSTMCell`:

# %%
I, H, B = 3, 4, 2
cell = nn.LSTMCell(I, H, dtype=tinylm.float64)
W_ih, W_hh = cell.weight_ih.detach().numpy(), cell.weight_hh.detach().numpy()
b_ih, b_hh = cell.bias_ih.detach().numpy(), cell.bias_hh.detach().numpy()
x, h, c = rng.standard_normal((B, I)), rng.standard_normal((B, H)), rng.standard_normal((B, H))


def lstm_forward(x, h, c, W_ih, W_hh, b_ih, b_hh):
    """One LSTM step in NumPy. Returns h_t, c_t and what the backward needs."""
    z = x @ W_ih.T + b_ih + h @ W_hh.T + b_hh  # (B, 4H)
    i, f = sigmoid(z[:, :H]), sigmoid(z[:, H : 2 * H])
    g, o = np.tanh(z[:, 2 * H : 3 * H]), sigmoid(z[:, 3 * H :])
    c_new = f * c + i * g
    tanh_c = np.tanh(c_new)
    h_new = o * tanh_c
    return h_new, c_new, (i, f, g, o, tanh_c)


h1, c1, _ = lstm_forward(x, h, c, W_ih, W_hh, b_ih, b_hh)
h1_t, c1_t = cell(f64(x), (f64(h), f64(c)))
print("max |h difference| =", np.abs(h1_t.detach().numpy() - h1).max())
print("max |c difference| =", np.abs(c1_t.detach().numpy() - c1).max())
np.testing.assert_allclose(h1_t.detach().numpy(), h1, atol=1e-14)
np.testing.assert_allclose(c1_t.detach().numpy(), c1, atol=1e-14)

# %% [markdown]
# ## 2. Every gate's gradient
#
# Backward through one step receives two upstream gradients: $\bar h_t = \partial L /
# \partial h_t$ and $\bar c_t$, the gradient reaching $c_t$ from the next step (in a
# sequence, from $c_{t+1} = f_{t+1} c_t + \dots$). We need the two derivatives
#
# $$\sigma'(z) = \sigma(z)\,(1 - \sigma(z)), \qquad \tanh'(z) = 1 - \tanh^2(z),$$
#
# both written with the *outputs*, which the forward already computed.
#
# **The cell.** $c_t$ reaches the loss directly (via $\bar c_t$) and through
# $h_t = o \odot \tanh(c_t)$, so its total gradient is
#
# $$\hat c_t = \bar c_t + \bar h_t \odot o \odot (1 - \tanh^2 c_t).$$
#
# **The gates.** Each appears in exactly one product, so each gradient is "the other
# factor" times the upstream gradient, then through its own activation:
#
# $$
# \begin{aligned}
# \bar z^o &= \bar h_t \odot \tanh(c_t) \odot o(1 - o) && (h_t = o \tanh c_t)\\
# \bar z^i &= \hat c_t \odot g \odot i(1 - i) && (c_t \ni i g)\\
# \bar z^g &= \hat c_t \odot i \odot (1 - g^2) && (c_t \ni i g)\\
# \bar z^f &= \hat c_t \odot c_{t-1} \odot f(1 - f) && (c_t \ni f c_{t-1})
# \end{aligned}
# $$
#
# **What flows on.** $c_{t-1}$ appears only in $f \odot c_{t-1}$:
#
# $$\bar c_{t-1} = \hat c_t \odot f .$$
#
# Everything else goes through the one affine map: with $\bar z = [\bar z^i, \bar z^f,
# \bar z^g, \bar z^o]$ (B, 4H), exactly as for any linear layer,
#
# $$\bar x_t = \bar z W_{ih}, \quad \bar h_{t-1} = \bar z W_{hh}, \quad
# \bar W_{ih} = \bar z^\top x_t, \quad \bar W_{hh} = \bar z^\top h_{t-1}, \quad
# \bar b_{ih} = \bar b_{hh} = \textstyle\sum_{\text{batch}} \bar z .$$
#
# ## 3. The backward, by hand
#
# The formulas above, line by line, on NumPy arrays:


# %%
def lstm_backward(dh, dc, x, h, c, W_ih, W_hh, cache):
    """Gradients of one LSTM step from dL/dh_t and dL/dc_t (upstream)."""
    i, f, g, o, tanh_c = cache
    dc_hat = dc + dh * o * (1 - tanh_c**2)  # total gradient of c_t
    dz_i = dc_hat * g * i * (1 - i)
    dz_f = dc_hat * c * f * (1 - f)
    dz_g = dc_hat * i * (1 - g**2)
    dz_o = dh * tanh_c * o * (1 - o)
    dz = np.concatenate([dz_i, dz_f, dz_g, dz_o], axis=1)  # (B, 4H), gate order i, f, g, o
    return {
        "x": dz @ W_ih,
        "h": dz @ W_hh,
        "c": dc_hat * f,  # the additive path
        "weight_ih": dz.T @ x,
        "weight_hh": dz.T @ h,
        "bias_ih": dz.sum(axis=0),
        "bias_hh": dz.sum(axis=0),
    }


# %% [markdown]
# ## 4. Three-way agreement
#
# To test a backward we need a loss that exercises both outputs. Take fixed random
# weights $V_h, V_c$ and
#
# $$L = \sum V_h \odot h_t + \sum V_c \odot c_t ,$$
#
# so that $\bar h_t = V_h$ and $\bar c_t = V_c$. Three independent answers:
#
# 1. the hand backward above, fed $V_h$ and $V_c$;
# 2. tinylm's autograd: `L.backward()` through `LSTMCell`;
# 3. central differences, $(L(\theta + \epsilon) - L(\theta - \epsilon)) / 2\epsilon$
#    for every single number $\theta$, computed with tinylm's forward only (lesson 02).
#
# Everything in float64, where central differences are accurate to about $10^{-10}$.

# %%
Vh, Vc = rng.standard_normal((B, H)), rng.standard_normal((B, H))

# 1. by hand
_, _, cache = lstm_forward(x, h, c, W_ih, W_hh, b_ih, b_hh)
by_hand = lstm_backward(Vh, Vc, x, h, c, W_ih, W_hh, cache)

# 2. tinylm's autograd
inputs = {"x": f64(x, True), "h": f64(h, True), "c": f64(c, True)}
inputs.update((name, getattr(cell, name)) for name in ("weight_ih", "weight_hh", "bias_ih",
                                                       "bias_hh"))  # fmt: skip
cell.zero_grad()


def loss_of(cell, x, h, c):
    h_new, c_new = cell(x, (h, c))
    return (h_new * f64(Vh)).sum() + (c_new * f64(Vc)).sum()


loss_of(cell, inputs["x"], inputs["h"], inputs["c"]).backward()
autograd = {name: t.grad.numpy() for name, t in inputs.items()}

# 3. central differences, one element at a time, through tinylm's forward
eps = 1e-6
numerical = {}
with tinylm.no_grad():
    for name, t in inputs.items():
        grad = np.zeros(t.shape)
        for idx in np.ndindex(*t.shape):
            old = t.data[idx]
            t.data[idx] = old + eps
            up = loss_of(cell, inputs["x"], inputs["h"], inputs["c"]).item()
            t.data[idx] = old - eps
            down = loss_of(cell, inputs["x"], inputs["h"], inputs["c"]).item()
            t.data[idx] = old
            grad[idx] = (up - down) / (2 * eps)
        numerical[name] = grad

print(f"{'':10s} {'hand - autograd':>16s} {'hand - numerical':>17s} {'autograd - num.':>16s}")
for name in inputs:
    a, b, n = by_hand[name], autograd[name], numerical[name]
    diffs = [np.abs(a - b).max(), np.abs(a - n).max(), np.abs(b - n).max()]
    print(f"{name:10s} {diffs[0]:16.2e} {diffs[1]:17.2e} {diffs[2]:16.2e}")
    assert max(diffs) < 1e-8, name

# %% [markdown]
# The hand backward and autograd agree to rounding ($10^{-16}$); both differ from the
# central differences by about $10^{-10}$, the accuracy of the differences themselves.
# Three computations that share no derivative code give the same numbers: the
# derivation of §2 is right.
#
# tinylm's own `lstm_cell_backward` (in `tinylm/nn/rnn_cells.py`, the part the course
# cuts out as an exercise) is these same lines written with Tensor ops.
#
# ## 5. The additive path: why the gradient survives
#
# Over many steps the cell state gets a gradient from two routes: through $h$ (the
# same kind of product $\bar z W_{hh}$ as in a plain RNN) and directly from the next
# cell, $\bar c_{t-1} = \hat c_t \odot f_t$. Along the direct route, $k$ steps back,
#
# $$\frac{\partial c_t}{\partial c_{t-k}}\Big|_{\text{direct}}
#   = \mathrm{diag}(f_t \odot f_{t-1} \odot \cdots \odot f_{t-k+1}) .$$
#
# No weight matrix and no $1 - \tanh^2$ factor: only the forget gates. Where the network
# keeps $f \approx 1$, "remember this", the gradient passes almost unchanged, however far.
# This is the **constant error carousel** of the original paper. And the network
# *learns* when to do so: $f$ depends on the input and the state, so it can keep a value
# for 100 steps and then erase it.
#
# The path is only as good as the gates. At initialisation all pre-activations are
# small, so every $f \approx \sigma(0) = 0.5$, and the product halves each step, not
# much better than the RNN. The standard remedy (Gers et al. 2000, Jozefowicz et al.
# 2015) is to initialise the forget gate's bias positive, so that $f$ starts near 1.
#
# The experiment of lesson 06, §3: $H = 16$, $T = 50$ steps of small random input, the
# loss $\sum_j h_{T,j}$ at the last step, and `record_step_grads` for the norm of
# $\partial L / \partial h_t$ at every step. Three models with the same seed: a tanh RNN,
# an LSTM with default initialisation, and an LSTM whose forget-gate bias is set to 3
# ($f \approx 0.95$). For the last we also plot the gradient along the cell,
# $\|\partial L / \partial c_t\|$ (`rec.norms(state="c")`).

# %%
I, H, T, B = 4, 16, 50, 8
x_seq = f64(rng.standard_normal((T, B, I)) * 0.1)


def step_grad_norms(model, state="h"):
    with nn.record_step_grads(model) as rec:
        output, _ = model(x_seq)
        loss = output[-1].sum()
    loss.backward()
    return rec.norms(state=state)  # (T,)


tinylm.manual_seed(1)
rnn = nn.RNN(I, H, dtype=tinylm.float64)
tinylm.manual_seed(1)
lstm = nn.LSTM(I, H, dtype=tinylm.float64)
tinylm.manual_seed(1)
lstm_fb = nn.LSTM(I, H, dtype=tinylm.float64)
with tinylm.no_grad():  # rows H..2H of the biases belong to the forget gate
    lstm_fb.bias_ih_l0.data[H : 2 * H] = 0.0
    lstm_fb.bias_hh_l0.data[H : 2 * H] = 3.0

curves = {
    "tanh RNN": step_grad_norms(rnn),
    "LSTM, default init": step_grad_norms(lstm),
    "LSTM, forget bias 3": step_grad_norms(lstm_fb),
}
cell_curve = step_grad_norms(lstm_fb, state="c")
distance = T - 1 - np.arange(T)

fig, ax = plt.subplots(figsize=(7, 3.8), layout="constrained")
for label, n in curves.items():
    ax.semilogy(distance, n, label=rf"{label}: $\|\partial L/\partial h_t\|$")
ax.semilogy(distance, cell_curve, "--", label=r"LSTM, forget bias 3: $\|\partial L/\partial c_t\|$")
ax.set_xlabel("steps between the state and the loss  (T - t)")
ax.set_ylabel("gradient norm")
ax.set_title("The same task as lesson 06: RNN against LSTM")
ax.legend(fontsize=8)
plt.show()

for label, n in curves.items():
    print(f"{label:20s}: at the loss {n[-1]:7.3g}   49 steps back {n[0]:9.3g}")
assert curves["LSTM, forget bias 3"][0] > 1e6 * curves["tanh RNN"][0]
print(f"lesson ran in {time.perf_counter() - start:.1f} s")

# %% [markdown]
# The RNN's gradient is $10^{-13}$ of its size after 49 steps. The default LSTM is
# better, yet still vanishes, because its forget gates sit near 0.5. With the forget
# bias at 3 the gradient 49 steps back is about as large as at the loss: the cell
# carried it. None of the models has been trained; training moves the gates where the
# task needs them, and the additive path is what makes that learnable.
#
# ## Summary
#
# * An LSTM step computes four blocks from one affine map, in the order (i, f, g, o):
#   three sigmoid gates and a tanh candidate; then $c_t = f c_{t-1} + i g$ and
#   $h_t = o \tanh c_t$.
# * Backward: first the cell's total gradient
#   $\hat c_t = \bar c_t + \bar h_t\, o\, (1 - \tanh^2 c_t)$; each gate's gradient is the
#   other factor of its product times its activation's derivative; $\bar c_{t-1} =
#   \hat c_t f$; the rest goes through the affine map as in any linear layer.
# * A hand backward, autograd and central differences agree to $10^{-8}$ and better in
#   float64.
# * The cell's direct path multiplies the gradient by the forget gate only: no weight
#   matrix, no squashing. With $f$ near 1 the gradient survives many steps; a positive
#   forget-gate bias puts it there from the start.
#
# ## Tests that grade this lesson
#
# Run them all with `pytest -m lesson07`:
#
# * `tests/test_lesson07.py::test_lstm_step_by_hand_matches_lstm_cell`
# * `tests/test_lesson07.py::test_lstm_gate_order_is_i_f_g_o`
# * `tests/test_lesson07.py::test_hand_backward_autograd_and_central_differences_agree`
# * `tests/test_lesson07.py::test_cell_gradient_passes_back_through_forget_gate_only`
# * `tests/test_lesson07.py::test_lstm_cell_gradcheck`
# * `tests/test_lesson07.py::test_forget_bias_keeps_gradient_alive_where_rnn_vanishes`
# * `tests/test_lesson07.py::test_lstm_parameter_count_is_four_times_rnn`
