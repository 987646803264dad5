# %% [markdown]
# # Lesson 05 — Optimizers, and a first model trained on real names
#
# Lessons 01–04 computed gradients: for every parameter, which way the loss goes up.
# An **optimizer** decides what to do with them: how far to step, whether to remember
# past gradients, whether to treat some parameters differently from others. The choice
# matters as much as the model. The same network can train in minutes or not at all
# depending on it.
#
# Plan:
#
# 1. gradient descent on a quadratic, where everything can be solved exactly: the step
#    size limit and why long narrow valleys are slow (§1);
# 2. momentum: a running sum of gradients that speeds up along the valley and damps the
#    zigzag across it (§2);
# 3. Adam: per-parameter step sizes, and its bias correction derived (§3);
# 4. AdamW: why weight decay and an L2 penalty are the same for SGD but not for Adam (§4);
# 5. all three on two 2-D functions, plotted (§5);
# 6. learning-rate schedules: warmup and cosine decay (§6), and gradient clipping (§7);
# 7. finally a real model: a character-level bigram and then a small MLP trained with
#    Adam on 5,163 public-domain first names, generating new ones (§8).
#
# Every optimizer here is tinylm's own, `tinylm.optim`, with PyTorch's names and update
# rules.

# %%
import inspect
import math
import time

import matplotlib.pyplot as plt
import numpy as np

import tinylm
import tinylm.nn as nn
import tinylm.nn.functional as F
from tinylm import optim
from tinylm.data import load_names
from tinylm.nn.utils import clip_grad_norm_
from tinylm.optim.lr_scheduler import WarmupCosineLR

tinylm.manual_seed(0)


def param(*values):
    """A float64 leaf tensor to optimize."""
    return tinylm.tensor(list(values), dtype=tinylm.float64, requires_grad=True)


def step(opt, loss_fn, p):
    """One training step: zero the gradient, forward, backward, update. Returns the loss."""
    opt.zero_grad()
    loss = loss_fn(p)
    loss.backward()
    opt.step()
    return loss.item()


# %% [markdown]
# ## 1. Gradient descent, solved exactly on a quadratic
#
# Gradient descent steps against the gradient with a learning rate $\eta$:
#
# $$\theta_{t+1} = \theta_t - \eta\, \nabla f(\theta_t).$$
#
# Near a minimum every smooth loss looks like a quadratic bowl, so the quadratic is where
# to understand it. Take $f(x, y) = \tfrac12 (a x^2 + b y^2)$ with $0 < a < b$: a valley
# whose curvature across ($b$) is larger than along ($a$). The gradient is $(a x, b y)$,
# and the two coordinates evolve independently:
#
# $$x_{t+1} = (1 - \eta a)\, x_t \;\Rightarrow\; x_t = (1 - \eta a)^t x_0,
# \qquad y_t = (1 - \eta b)^t y_0 .$$
#
# Each coordinate is multiplied by a fixed factor every step. It shrinks only if that
# factor lies in $(-1, 1)$, so **the steepest direction sets the limit:**
# $\eta < 2/b$. Above it, $y$ flips sign and grows every step: divergence. Between $1/b$
# and $2/b$ the factor is negative, and $y$ zigzags across the valley while shrinking.
# Meanwhile $x$, along the valley floor, shrinks by $1 - \eta a > 1 - 2a/b$ per step. With
# the **condition number** $\kappa = b/a$, the best one can do is
# $\eta = 2/(a + b)$, where both factors have size $(\kappa - 1)/(\kappa + 1)$. For
# $\kappa = 25$ that is $0.92$ per step; for $\kappa = 1000$, $0.998$: thousands of steps
# to get anywhere. Real losses have condition numbers far larger.
#
# tinylm's `SGD` (without momentum, it is exactly this rule) reproduces the closed form:

# %%
a, b = 1.0, 25.0


def quadratic(p):
    return 0.5 * (a * p[0] ** 2 + b * p[1] ** 2)


for lr in (0.07, 0.085):  # just below and just above 2/b = 0.08
    p = param(-4.0, 1.5)
    opt = optim.SGD([p], lr=lr)
    for _ in range(20):
        step(opt, quadratic, p)
    closed_form = np.array([(1 - lr * a) ** 20 * -4.0, (1 - lr * b) ** 20 * 1.5])
    print(f"lr={lr}: after 20 steps {p.detach().numpy()}   closed form {closed_form}")
    np.testing.assert_allclose(p.detach().numpy(), closed_form, rtol=1e-12)

# %% [markdown]
# At $\eta = 0.07$, $y$ has all but vanished ($|1 - 1.75|^{20} \approx 0.003$) while $x$ has
# covered only three quarters of its way ($0.93^{20} \approx 0.23$). At $\eta = 0.085$, just
# past $2/b$, $y$ has grown from 1.5 to about 16 while $x$ still improves: the slow
# direction wants a larger step that the steep direction forbids.
#
# ## 2. Momentum
#
# Momentum keeps a running sum of past gradients, a **velocity** $b_t$, and steps along
# it. In PyTorch's form (tinylm's `SGD(momentum=mu)`):
#
# $$b_t = \mu\, b_{t-1} + g_t, \qquad \theta_t = \theta_{t-1} - \eta\, b_t,
# \qquad b_1 = g_1 .$$
#
# Unrolled, $b_t = g_t + \mu g_{t-1} + \mu^2 g_{t-2} + \dots$, so two cases explain
# what it does:
#
# * **A steady gradient** $g$ (the slope along the valley floor):
#   $b_t = g\,(1 + \mu + \dots + \mu^{t-1}) \to g / (1 - \mu)$. The step grows to
#   $\eta/(1-\mu)$, ten times $\eta$ for $\mu = 0.9$.
# * **An alternating gradient** $+g, -g, +g, \dots$ (the zigzag across the valley):
#   $b_t \to \pm g / (1 + \mu)$. The swings partly cancel and the step shrinks.
#
# So momentum speeds up exactly the slow, consistent direction and damps the oscillating
# one. On the quadratic, a linear recurrence again, one can show that with the best
# $\eta$ and $\mu$ the error shrinks like $(\sqrt\kappa - 1)/(\sqrt\kappa + 1)$ per step
# instead of $(\kappa - 1)/(\kappa + 1)$: for $\kappa = 25$, 0.67 instead of 0.92. Here
# is the recurrence written out by hand next to tinylm's `SGD`, and the two velocity
# limits:

# %%
mu, lr = 0.6, 0.07
p = param(-4.0, 1.5)
opt = optim.SGD([p], lr=lr, momentum=mu)
theta, velocity = np.array([-4.0, 1.5]), None
for _ in range(20):
    step(opt, quadratic, p)
    g = np.array([a, b]) * theta
    velocity = g if velocity is None else mu * velocity + g
    theta = theta - lr * velocity
print("tinylm SGD(momentum=0.6):", p.detach().numpy(), "  by hand:", theta)
np.testing.assert_allclose(p.detach().numpy(), theta, rtol=1e-12)

for name, grads in (("steady", [1.0] * 100), ("alternating", [1.0, -1.0] * 50)):
    v = 0.0
    for g in grads:
        v = 0.9 * v + g
    print(
        f"{name:12s} gradient, mu=0.9: |b_100| = {abs(v):.4f}   "
        f"(limit {1 / (1 - 0.9) if name == 'steady' else 1 / (1 + 0.9):.4f})"
    )

# %% [markdown]
# ## 3. Adam, and why it corrects its bias
#
# Momentum still uses one learning rate for every parameter. But parameters differ
# wildly: an embedding row of a rare token sees a gradient once in a thousand steps, a
# bias sees one every step; gradients of different layers differ by orders of magnitude.
# **Adam** gives every parameter its own step size by dividing by a running estimate of
# that parameter's gradient magnitude. With gradient $g_t$ at step $t = 1, 2, \dots$:
#
# $$
# \begin{aligned}
# m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t && \text{(average gradient, like momentum)}\\
# v_t &= \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2 && \text{(average squared gradient)}\\
# \hat m_t &= \frac{m_t}{1 - \beta_1^t}, \qquad \hat v_t = \frac{v_t}{1 - \beta_2^t}
#   && \text{(bias correction)}\\
# \theta_t &= \theta_{t-1} - \eta\, \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}
# \end{aligned}
# $$
#
# everything elementwise, with $m_0 = v_0 = 0$ and the defaults $\beta_1 = 0.9$,
# $\beta_2 = 0.999$, $\epsilon = 10^{-8}$. The ratio $\hat m / \sqrt{\hat v}$ is
# unit-free: multiply a parameter's gradients by 1000 and both numerator and denominator
# grow by 1000. Each parameter moves by **about $\eta$ per step**, whatever the scale of
# its gradient, less when its gradients keep changing sign (then $|\hat m| \ll \sqrt{\hat v}$).
#
# **Where the bias comes from.** Unroll the average:
#
# $$m_t = (1 - \beta_1) \sum_{k=1}^{t} \beta_1^{\,t-k}\, g_k .$$
#
# If the gradients come from a distribution with a fixed mean $\mathbb{E}[g]$, then
#
# $$\mathbb{E}[m_t] = \mathbb{E}[g]\,(1 - \beta_1) \sum_{j=0}^{t-1} \beta_1^{\,j}
#   = \mathbb{E}[g]\,(1 - \beta_1)\, \frac{1 - \beta_1^t}{1 - \beta_1}
#   = (1 - \beta_1^t)\, \mathbb{E}[g].$$
#
# The weights of an exponential average sum to 1 only over an infinite past; starting
# from $m_0 = 0$ leaves out the weight $\beta_1^t$ that the missing history would have
# had, so $m_t$ is biased toward zero by exactly the factor $1 - \beta_1^t$. Dividing by
# it gives $\mathbb{E}[\hat m_t] = \mathbb{E}[g]$. The same argument with $g^2$ gives
# $\hat v_t = v_t / (1 - \beta_2^t)$.
#
# The two biases do not cancel, because $\beta_2$ is much closer to 1. At $t = 1$:
# $m_1 = 0.1\, g_1$ and $v_1 = 0.001\, g_1^2$, so the uncorrected ratio would be
# $0.1 / \sqrt{0.001} \approx 3.16$ times too large; around $t = 12$ it peaks at about 6.6
# times too large, and it takes thousands of steps to fade. With the correction,
# $\hat m_1 = g_1$ and $\hat v_1 = g_1^2$, and **the first step is exactly
# $\eta\, g_1 / (|g_1| + \epsilon)$: every parameter moves by $\eta$, in the direction
# of its gradient's sign, however large or small that gradient is.**
#
# Check it with tinylm's `Adam`: three parameters whose gradients differ by a factor of
# a million.

# %%
p = param(0.0, 0.0, 0.0)
scales = tinylm.tensor([1e-3, 1.0, 1e3], dtype=tinylm.float64)
opt = optim.Adam([p], lr=0.01)
step(opt, lambda p: (p * scales).sum(), p)  # gradient = scales
print("gradients      :", scales.numpy())
print("first Adam step:", p.detach().numpy())
np.testing.assert_allclose(p.detach().numpy(), -0.01, rtol=1e-4)

# %% [markdown]
# Now follow the bias over time with a constant gradient $g = 1$, reading $m_t$ and $v_t$
# from the optimizer's real state (`opt.state[p]["exp_avg"]` and `["exp_avg_sq"]`, the
# names PyTorch uses). The corrected step stays at $\eta$; the uncorrected one,
# $\eta\, m_t / \sqrt{v_t}$, would be several times too large for hundreds of steps.

# %%
p = param(0.0)
opt = optim.Adam([p], lr=1e-3)
actual, uncorrected = [], []
for _ in range(2000):
    before = p.item()
    step(opt, lambda p: p.sum(), p)  # dL/dp = 1
    state = opt.state[p]
    actual.append(before - p.item())
    uncorrected.append(1e-3 * state["exp_avg"][0] / (math.sqrt(state["exp_avg_sq"][0]) + 1e-8))
actual, uncorrected = np.array(actual) / 1e-3, np.array(uncorrected) / 1e-3
t = np.arange(1, 2001)
np.testing.assert_allclose(uncorrected, (1 - 0.9**t) / np.sqrt(1 - 0.999**t), rtol=1e-6)

fig, ax = plt.subplots(figsize=(7, 3.5), layout="constrained")
ax.semilogx(t, uncorrected, label=r"without correction: $m_t / \sqrt{v_t}$")
ax.semilogx(t, actual, label=r"tinylm Adam: $\hat m_t / (\sqrt{\hat v_t} + \epsilon)$")
ax.set_xlabel("step t")
ax.set_ylabel("step size / learning rate")
ax.set_title("Adam with a constant gradient: the bias correction keeps the step at lr")
ax.legend()
plt.show()
print(f"largest uncorrected step: {uncorrected.max():.2f} x lr at t = {uncorrected.argmax() + 1}")

# %% [markdown]
# Here is tinylm's whole update, the formulas above line by line (the `BEGIN SOLUTION`
# markers are where the course cuts out an assignment). It works in place on arrays to
# avoid allocating memory every step, and adds $\epsilon$ after the correction of
# $\sqrt{v_t}$, as PyTorch does. (The two lines before the markers hand the step to a fused
# Numba kernel when one applies: the same arithmetic in one pass over memory, giving the
# same bits. Lesson 11 is about those kernels; this lesson's tests run with them off.)

# %%
print(inspect.getsource(optim.Adam._update))

# %% [markdown]
# ## 4. AdamW: weight decay is not an L2 penalty (for Adam)
#
# Weight decay shrinks weights toward zero a little every step, which keeps a model from
# relying on a few huge weights. There are two ways to write it.
#
# * **L2 penalty**: add $\frac{\lambda}{2}\|\theta\|^2$ to the loss, i.e. add $\lambda\theta$
#   to the gradient: $g_t \leftarrow g_t + \lambda \theta_{t-1}$. This is what
#   `SGD(weight_decay=...)` and `Adam(weight_decay=...)` do.
# * **Decoupled decay**: shrink the weights directly,
#   $\theta \leftarrow (1 - \eta\lambda)\,\theta$, and then apply the optimizer's update to
#   the raw gradient. This is `AdamW`.
#
# For plain SGD they are the same thing:
# $\theta - \eta(g + \lambda\theta) = (1 - \eta\lambda)\theta - \eta g$.
#
# For Adam they are not. The L2 term $\lambda\theta$ enters $m$ and $v$ and is divided by
# $\sqrt{\hat v}$ like any gradient. For a parameter with large gradients,
# $\sqrt{\hat v}$ is large and the decay is divided away: it barely decays. For a
# parameter whose loss gradient is zero, the only gradient is $\lambda\theta$, and
# Adam normalises it to a step of about $\eta$, **whatever $\lambda$ is**. Either way the
# decay no longer does what $\lambda$ says. AdamW applies the same relative shrink
# $\eta\lambda$ to every weight, independent of its gradient history.
#
# An experiment: two weights start at 1. Weight A gets no gradient from the loss; weight
# B gets a large gradient of alternating sign, $\pm 100$ (so it goes nowhere on its own).
# 300 steps with $\eta = 0.01$, $\lambda = 0.1$. Decoupled decay should leave both at
# $(1 - \eta\lambda)^{300} = 0.999^{300} \approx 0.74$.


# %%
def decay_experiment(make_optimizer, steps=300):
    p = param(1.0, 1.0)  # (A, B)
    opt = make_optimizer([p])
    for t in range(steps):
        push = tinylm.tensor([0.0, 100.0 * (-1) ** t], dtype=tinylm.float64)
        opt.zero_grad()
        (p * push).sum().backward()  # gradient (0, +-100)
        opt.step()
    return p.detach().numpy()


lr, wd = 0.01, 0.1
adam_l2 = decay_experiment(lambda ps: optim.Adam(ps, lr=lr, weight_decay=wd))
adamw = decay_experiment(lambda ps: optim.AdamW(ps, lr=lr, weight_decay=wd))
print(f"expected decay (1 - lr wd)^300 = {(1 - lr * wd) ** 300:.3f}")
print(f"Adam + L2 : A = {adam_l2[0]:+.3f}   B = {adam_l2[1]:+.3f}")
print(f"AdamW     : A = {adamw[0]:+.3f}   B = {adamw[1]:+.3f}")

# and for SGD the two forms agree
sgd_l2 = param(1.0, -2.0)
sgd_decoupled = param(1.0, -2.0)
opt_l2 = optim.SGD([sgd_l2], lr=lr, weight_decay=wd)
opt_plain = optim.SGD([sgd_decoupled], lr=lr)
for _ in range(50):
    step(opt_l2, quadratic, sgd_l2)
    opt_plain.zero_grad()
    quadratic(sgd_decoupled).backward()  # g at the current weights
    with tinylm.no_grad():
        sgd_decoupled.data *= 1 - lr * wd  # decoupled: shrink the weights ...
    opt_plain.step()  # ... then a plain SGD step with g
print(
    "SGD with L2:",
    sgd_l2.detach().numpy(),
    "  SGD with decoupled decay:",
    sgd_decoupled.detach().numpy(),
)
np.testing.assert_allclose(sgd_l2.detach().numpy(), sgd_decoupled.detach().numpy(), rtol=1e-12)

# %% [markdown]
# With the L2 penalty, A was driven to zero at about $\eta$ per step (it then hovers near
# zero), far faster than $\lambda$ asked for, and B kept nearly all of its weight. AdamW
# decayed both by the same factor.
#
# ## 5. Trajectories: SGD, momentum and Adam in two dimensions
#
# Left: the quadratic valley of §1 ($\kappa = 25$), 50 steps each, SGD and momentum with
# the same $\eta = 0.07$. Right: Rosenbrock's function
# $f(x, y) = (1 - x)^2 + 100\,(y - x^2)^2$, a curved valley with steep walls and its
# minimum at $(1, 1)$, 500 steps each. All runs use tinylm's optimizers on a 2-element
# parameter tensor.


# %%
def rosenbrock(p):
    return (1 - p[0]) ** 2 + 100.0 * (p[1] - p[0] ** 2) ** 2


def trajectory(f, start, make_optimizer, steps):
    p = param(*start)
    opt = make_optimizer([p])
    path, losses = [p.detach().numpy().copy()], []
    for _ in range(steps):
        losses.append(step(opt, f, p))
        path.append(p.detach().numpy().copy())
    return np.array(path), np.array(losses)


problems = {
    "quadratic": (
        quadratic,
        (-4.0, 1.5),
        50,
        ((-4.5, 1.0), (-2.0, 2.0)),
        {
            "SGD lr=0.07": lambda ps: optim.SGD(ps, lr=0.07),
            "momentum 0.6, lr=0.07": lambda ps: optim.SGD(ps, lr=0.07, momentum=0.6),
            "Adam lr=0.2": lambda ps: optim.Adam(ps, lr=0.2),
        },
    ),
    "Rosenbrock": (
        rosenbrock,
        (-1.5, 2.0),
        500,
        ((-2.0, 2.0), (-1.0, 3.0)),
        {
            "SGD lr=1e-3": lambda ps: optim.SGD(ps, lr=1e-3),
            "momentum 0.9, lr=1e-3": lambda ps: optim.SGD(ps, lr=1e-3, momentum=0.9),
            "Adam lr=0.1": lambda ps: optim.Adam(ps, lr=0.1),
        },
    ),
}

fig, axes = plt.subplots(1, 3, figsize=(16, 4.6), layout="constrained")
final = {}
for ax, (name, (f, start, steps, (xlim, ylim), optimizers)) in zip(axes, problems.items()):
    X, Y = np.meshgrid(np.linspace(*xlim, 300), np.linspace(*ylim, 300))
    Z = f(np.stack([X, Y]))  # the same function, evaluated on NumPy arrays
    ax.contour(X, Y, Z, levels=np.logspace(-1.5, 3.2, 16), colors="0.75", linewidths=0.8)
    for label, make in optimizers.items():
        path, losses = trajectory(f, start, make, steps)
        final[name, label] = losses[-1]
        style = "--" if label.startswith("Adam") else ".-"  # dashed: the paths overlap
        on_top = 3 if label.startswith("SGD") else 2  # SGD's short path stays visible
        ax.plot(path[:, 0], path[:, 1], style, ms=2.5, lw=1, label=label, zorder=on_top)
        if name == "quadratic":
            axes[2].semilogy(losses, label=label)
    ax.plot(*start, "ko")
    ax.plot(0.0 if name == "quadratic" else 1.0, 0.0 if name == "quadratic" else 1.0, "k*", ms=12)
    ax.set_title(f"{name}: {steps} steps")
    ax.legend(fontsize=8, loc="lower right" if name == "Rosenbrock" else "upper right")
axes[2].set_title("quadratic: loss per step")
axes[2].set_xlabel("step")
axes[2].legend(fontsize=8)
plt.show()
for (name, label), loss in final.items():
    print(f"{name:10s} {label:22s} final loss {loss:.2e}")

# %% [markdown]
# What the pictures show:
#
# * **SGD** zigzags across the quadratic valley (its factor $1 - 0.07 \cdot 25 = -0.75$)
#   while creeping along it. On Rosenbrock the steep walls cap its learning rate, and with
#   that rate it makes almost no progress along the curved floor in 500 steps.
# * **Momentum**, with the *same* learning rate, damps the zigzag and races along the
#   floor: on the quadratic its loss falls by orders of magnitude more; on Rosenbrock it
#   follows the banana-shaped valley nearly to the minimum.
# * **Adam** first heads off at 45 degrees: both coordinates step by about $\eta$,
#   however different their gradients. That makes it insensitive to the scaling of the
#   problem (Rosenbrock's steep walls do not slow it down), but it does not slow down by
#   itself near the minimum: on the quadratic it overshoots and circles. Its steps shrink
#   only when the gradient's sign starts to flip, or when we lower $\eta$ — the job of a
#   schedule.
#
# No optimizer wins everywhere. In deep learning Adam (in its AdamW form) is the default
# because it copes with badly scaled parameters without tuning, and a schedule takes care
# of the endgame.
#
# ## 6. Learning-rate schedules: warmup, then cosine decay
#
# A schedule changes $\eta$ over training. The one used to train most language models
# has two parts. With $W$ warmup steps, $T$ total steps and peak rate $\eta_0$:
#
# $$
# \eta_t = \begin{cases}
#   \eta_0\,\dfrac{t + 1}{W} & 0 \le t < W \quad\text{(linear warmup)}\\[2ex]
#   \eta_{\min} + \tfrac12(\eta_0 - \eta_{\min})\Big(1 + \cos\Big(\pi\,\dfrac{t - W}{T - W}\Big)\Big)
#     & W \le t \le T \quad\text{(cosine decay)}
# \end{cases}
# $$
#
# * **Warmup.** At the start the weights are random, the gradients are large and
#   change quickly, and Adam's $\hat v$ rests on a handful of samples. Adam moves every
#   parameter by about $\eta$ no matter how uncertain the direction (§3), so a small $\eta$
#   at first keeps those early steps from wrecking the initialisation.
# * **Decay.** With gradients from random minibatches, a constant $\eta$ never settles:
#   the parameters keep jittering around the minimum by an amount that grows with
#   $\eta$. Lowering $\eta$ at the end lets them settle. The cosine decays slowly at
#   first (long progress at high rates) and slowly again at the end (a gentle landing).
#
# `tinylm.optim.lr_scheduler.WarmupCosineLR` implements the formula; call its `step()`
# after every `optimizer.step()`.

# %%
opt = optim.AdamW([param(0.0)], lr=1e-2)
schedule = WarmupCosineLR(opt, warmup_steps=100, total_steps=1000, min_lr=1e-3)
rates = []
for _ in range(1200):
    rates.append(opt.param_groups[0]["lr"])
    schedule.step()
fig, ax = plt.subplots(figsize=(7, 3), layout="constrained")
ax.plot(rates)
ax.axvline(100, color="gray", ls=":", lw=1)
ax.axvline(1000, color="gray", ls=":", lw=1)
ax.set_xlabel("step t")
ax.set_ylabel("learning rate")
ax.set_title("WarmupCosineLR: warmup 100, total 1000, min_lr 1e-3")
plt.show()
print(
    "lr at t = 0, 99, 100, 550, 1000, 1100:",
    [f"{rates[t]:.2e}" for t in (0, 99, 100, 550, 1000, 1100)],
)
assert rates[99] == 1e-2 and abs(rates[550] - (1e-3 + 1e-2) / 2) < 1e-12 and rates[1100] == 1e-3

# %% [markdown]
# ## 7. Gradient clipping
#
# Sometimes one unlucky batch produces a gradient a thousand times larger than usual
# (recurrent networks are prone to it, lesson 06). One SGD step along it can undo hours
# of training. `clip_grad_norm_(parameters, max_norm)` treats all gradients as one long
# vector with norm $N = \sqrt{\sum_i \|g_i\|^2}$ and, if $N$ exceeds `max_norm`,
# multiplies every gradient by $\text{max\_norm}/N$: the direction is kept, only the
# length is capped. Call it between `backward()` and `step()`; it returns $N$ before
# clipping, a useful number to log.

# %%
w1, w2 = param(3.0, 0.0), param(0.0, 4.0)
(w1 * 100.0).sum().backward()  # gradient (100, 100)
(w2 * tinylm.tensor([0.0, 200.0], dtype=tinylm.float64)).sum().backward()  # gradient (0, 200)
norm = clip_grad_norm_([w1, w2], max_norm=1.0)
clipped = np.concatenate([w1.grad.numpy(), w2.grad.numpy()])
print(f"norm before: {norm.item():.4f} = sqrt(100^2 + 100^2 + 200^2)")
print("gradients after:", clipped, "  norm:", np.linalg.norm(clipped))

# %% [markdown]
# ## 8. A first real model: generating names
#
# Time to train something real. `tinylm.data.load_names()` returns 5,163 US first names
# from the 1990 census (public domain, shipped with tinylm). We model them one character
# at a time: given the characters so far, predict the next one. Each name is framed by a
# special character `.` that means "start" before the name and "end" after it, so the
# model also learns when to stop. The vocabulary is the 26 letters plus `.`: $V = 27$.
#
# We split by **name**, not by character: 90% of the names for training, 10% held out
# for validation. A model that had merely memorised its training names would do well on
# them and badly on the held-out ones, which it has never seen.

# %%
tinylm.manual_seed(0)
names = load_names()
order = tinylm.rand(len(names)).numpy().argsort()  # a seeded shuffle (the file is sorted)
names = [names[i] for i in order]
chars = sorted(set("".join(names)))
stoi = {c: i + 1 for i, c in enumerate(chars)}
stoi["."] = 0
itos = {i: c for c, i in stoi.items()}
V = len(stoi)


def examples(words, context=3):
    """(contexts, targets): for each character of each word (and the end), the ids of the
    `context` characters before it, padded with '.' at the start."""
    X, Y = [], []
    for w in words:
        window = [0] * context
        for ch in w + ".":
            X.append(window)
            Y.append(stoi[ch])
            window = window[1:] + [stoi[ch]]
    return tinylm.tensor(X), tinylm.tensor(Y)


n_train = int(0.9 * len(names))
Xtr, Ytr = examples(names[:n_train])
Xva, Yva = examples(names[n_train:])
print(f"{len(names)} names, vocabulary {V}: {''.join(itos[i] for i in range(V))}")
print(
    f"train: {n_train} names, {len(Ytr)} examples;  validation: {len(names) - n_train} "
    f"names, {len(Yva)} examples"
)
print("the examples of 'emma':")
for ctx, target in zip(*(t.tolist() for t in examples(["emma"]))):
    print("   ", "".join(itos[i] for i in ctx), "->", itos[target])

# %% [markdown]
# A model that knows nothing predicts all 27 characters with probability $1/27$, a loss of
# $\log 27 \approx 3.30$. That is the number to beat.
#
# ### The bigram model: a table of logits
#
# The simplest model looks only at the previous character $c$ and predicts the next one
# from a row of 27 logits: a table $W$ of shape $V \times V$, and the logits are row $c$.
# That is an embedding whose vectors have size $V$ (lesson 03) followed by cross-entropy
# (lesson 04). We train it with Adam on the whole training set at once (a full batch:
# 32k examples are cheap for a 27×27 table).
#
# The bigram has a closed-form optimum to check against. With one free logit per
# (previous, next) pair, cross-entropy is minimised when softmax of row $c$ equals the
# observed frequencies of the characters following $c$ (lesson 04: the gradient
# $p - y$, summed over all the examples with previous character $c$, vanishes when $p$
# is their average one-hot vector). So the trained table must reproduce the counts.

# %%
tinylm.manual_seed(1)
W = tinylm.zeros(V, V, requires_grad=True)  # all zeros: uniform predictions, loss log(27)
opt = optim.Adam([W], lr=0.3)
prev_tr, prev_va = Xtr[:, -1], Xva[:, -1]  # the previous character only
t0 = time.perf_counter()
for _ in range(100):
    loss = F.cross_entropy(F.embedding(prev_tr, W), Ytr)
    opt.zero_grad()
    loss.backward()
    opt.step()
with tinylm.no_grad():
    bigram_train = F.cross_entropy(F.embedding(prev_tr, W), Ytr).item()
    bigram_val = F.cross_entropy(F.embedding(prev_va, W), Yva).item()
print(
    f"bigram: train loss {bigram_train:.4f}, val loss {bigram_val:.4f}   "
    f"({time.perf_counter() - t0:.1f} s)"
)

counts = np.zeros((V, V))
np.add.at(counts, (prev_tr.numpy(), Ytr.numpy()), 1)  # how often next follows prev
frequencies = counts / counts.sum(axis=1, keepdims=True)
learned = tinylm.softmax(W, dim=1).detach().numpy()
e, a_ = stoi["e"], stoi["a"]
print(
    f"P(next = 'a' | prev = 'e'): learned {learned[e, a_]:.4f}   counted {frequencies[e, a_]:.4f}"
)
print(
    f"largest difference between learned and counted probabilities: "
    f"{np.abs(learned - frequencies).max():.4f}"
)

# %% [markdown]
# ### A small MLP: more context
#
# One character of context is not much: after an `a` the bigram cannot tell the start of
# `anna` (context `..a`) from the end of `maria` (context `ria`, where the name most
# likely stops). The next model, in the spirit of Bengio et al.'s 2003 neural
# language model, reads the **three** previous characters:
#
# 1. embed each of them with a learned table $E$ of shape $(V, 10)$ (lesson 03): ten
#    numbers per character instead of 27;
# 2. concatenate the three vectors into one of size 30;
# 3. a hidden layer: $h = \tanh(x W_1^\top + b_1)$ with 200 units;
# 4. logits $z = h W_2^\top + b_2$ over the 27 characters, then cross-entropy.
#
# Shapes for a batch of $B$ contexts: ids $(B, 3)$ → embeddings $(B, 3, 10)$ → flattened
# $(B, 30)$ → hidden $(B, 200)$ → logits $(B, 27)$.


# %%
class NameMLP(nn.Module):
    """Three previous characters -> embedding -> Linear -> tanh -> Linear -> logits."""

    def __init__(self, vocab_size, context=3, embed_dim=10, hidden=200):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.hidden = nn.Linear(context * embed_dim, hidden)
        self.out = nn.Linear(hidden, vocab_size)

    def forward(self, ids):  # ids (B, context)
        x = self.embed(ids)  # (B, context, embed_dim)
        x = x.reshape(ids.shape[0], -1)  # (B, context * embed_dim)
        h = self.hidden(x).tanh()  # (B, hidden)
        return self.out(h)  # (B, V) logits


tinylm.manual_seed(2)
model = NameMLP(V)
print(model)
print("parameters:", sum(p.numel() for p in model.parameters()))
with tinylm.no_grad():
    print(
        f"loss before training: {F.cross_entropy(model(Xva), Yva).item():.3f}   "
        f"(log 27 = {math.log(27):.3f})"
    )

# %% [markdown]
# We train on random **minibatches** of 256 examples: each step sees a different sample,
# so its gradient is a noisy estimate of the full one, at a tiny fraction of the cost.
# AdamW with the warmup-and-cosine schedule of §6 (a little weight decay keeps the
# weights modest), 3,000 steps. Every 250 steps we measure the loss on the validation
# names, under `no_grad` since nothing there is trained.

# %%
steps, batch_size = 3000, 256
opt = optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-3)
schedule = WarmupCosineLR(opt, warmup_steps=100, total_steps=steps, min_lr=1e-3)
train_losses, val_points = [], []
t0 = time.perf_counter()
for it in range(steps):
    batch = tinylm.randint(0, len(Ytr), (batch_size,))  # seeded by tinylm.manual_seed
    loss = F.cross_entropy(model(Xtr[batch]), Ytr[batch])
    opt.zero_grad()
    loss.backward()
    opt.step()
    schedule.step()
    train_losses.append(loss.item())
    if (it + 1) % 250 == 0:
        with tinylm.no_grad():
            val_points.append((it + 1, F.cross_entropy(model(Xva), Yva).item()))
with tinylm.no_grad():
    mlp_train = F.cross_entropy(model(Xtr), Ytr).item()
    mlp_val = F.cross_entropy(model(Xva), Yva).item()
print(
    f"MLP: train loss {mlp_train:.4f}, val loss {mlp_val:.4f}   "
    f"({time.perf_counter() - t0:.1f} s for {steps} steps)"
)

smooth = np.convolve(train_losses, np.ones(50) / 50, mode="valid")  # mean of 50 steps
fig, ax = plt.subplots(figsize=(8, 4), layout="constrained")
ax.plot(train_losses, color="tab:blue", alpha=0.25, lw=0.8, label="train (one minibatch)")
ax.plot(np.arange(49, steps), smooth, color="tab:blue", label="train (mean of 50 steps)")
ax.plot(*zip(*val_points), "o-", color="tab:orange", label="validation (held-out names)")
ax.axhline(bigram_val, color="tab:green", ls="--", label=f"bigram, validation ({bigram_val:.3f})")
ax.axhline(math.log(27), color="gray", ls=":", label="uniform guess (log 27)")
ax.set_xlabel("step")
ax.set_ylabel("cross-entropy")
ax.set_ylim(1.6, 3.4)
ax.set_title("Character-level MLP on names")
ax.legend()
plt.show()

# %% [markdown]
# ### Sampling new names
#
# To generate, start from the context `...`, compute the model's probabilities for the
# next character, draw one at random according to them, shift it into the context, and
# repeat until the model draws `.`. Drawing uses tinylm's seeded generator
# (`tinylm.rand`), so the same seed gives the same names.


# %%
def sample_name(model, context=3, max_len=20):
    window, out = [0] * context, []
    with tinylm.no_grad():
        while len(out) < max_len:
            probs = tinylm.softmax(model(tinylm.tensor([window])), dim=-1).numpy()[0]  # (V,)
            u = tinylm.rand(1, dtype=tinylm.float64).item()
            ix = min(int(np.searchsorted(np.cumsum(probs), u)), V - 1)  # inverse CDF
            if ix == 0:
                break
            out.append(itos[ix])
            window = window[1:] + [ix]
    return "".join(out)


tinylm.manual_seed(5)
samples = [sample_name(model) for _ in range(12)]
print(", ".join(samples))
seen = set(names)
print("new (not in the corpus):", [s for s in samples if s not in seen])

# %% [markdown]
# The results, side by side:

# %%
print(f"uniform guess : {math.log(27):.4f}")
print(f"bigram        : val loss {bigram_val:.4f}  (train {bigram_train:.4f})")
print(f"MLP, 3 chars  : val loss {mlp_val:.4f}  (train {mlp_train:.4f})")
assert mlp_val < bigram_val - 0.2

# %% [markdown]
# The MLP beats the bigram clearly on names it has never seen. Its train loss sits a
# little below its validation loss: with 5,000 names and about 12,000 parameters it
# begins to memorise, which the held-out names reveal and the training loss hides.
# Longer contexts, larger embeddings or more data would push both down; lessons 06–09
# replace the fixed window of three characters by models that read the whole prefix.
#
# ## Summary
#
# * Gradient descent on a quadratic multiplies each eigen-direction by $1 - \eta\lambda$:
#   $\eta < 2/\lambda_{\max}$, and progress along the flattest direction is slow when the
#   condition number is large.
# * Momentum, $b_t = \mu b_{t-1} + g_t$, amplifies steady gradients by up to $1/(1-\mu)$
#   and damps alternating ones to $1/(1+\mu)$.
# * Adam divides a momentum average by the root of an average of squared gradients, so
#   each parameter steps by about $\eta$. Both averages start at zero and are biased by
#   $1 - \beta^t$; dividing by it makes the first step exactly $\eta$ per parameter.
# * An L2 penalty passes through Adam's scaling and stops meaning "decay by $\eta\lambda$";
#   AdamW decays the weights directly. For SGD the two are the same.
# * Warmup keeps the first, least informed steps small; cosine decay lets noisy minibatch
#   training settle. Gradient clipping caps the step's length and keeps its direction.
# * On names: a bigram learns exactly the counted character frequencies; an MLP over three
#   characters of context generalises better to held-out names.
#
# ## Tests that grade this lesson
#
# Run them all with `pytest -m lesson05`:
#
# * `tests/test_lesson05.py::test_gradient_descent_on_quadratic_matches_closed_form`
# * `tests/test_lesson05.py::test_gradient_descent_diverges_above_two_over_curvature`
# * `tests/test_lesson05.py::test_momentum_matches_heavy_ball_recurrence`
# * `tests/test_lesson05.py::test_momentum_beats_sgd_on_elongated_quadratic`
# * `tests/test_lesson05.py::test_adam_first_step_moves_each_parameter_by_lr`
# * `tests/test_lesson05.py::test_adam_bias_correction_gives_unbiased_moments`
# * `tests/test_lesson05.py::test_adam_update_is_invariant_to_gradient_scale`
# * `tests/test_lesson05.py::test_sgd_l2_equals_decoupled_weight_decay`
# * `tests/test_lesson05.py::test_adamw_differs_from_adam_with_l2`
# * `tests/test_lesson05.py::test_adam_l2_ignores_lambda_for_zero_gradient_weights`
# * `tests/test_lesson05.py::test_warmup_cosine_schedule_values`
# * `tests/test_lesson05.py::test_clip_grad_norm_caps_norm_and_keeps_direction`
# * `tests/test_lesson05.py::test_bigram_learns_counted_frequencies`
# * `tests/test_lesson05.py::test_mlp_beats_bigram_on_held_out_names`
