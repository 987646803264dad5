# %% [markdown]
# # Lesson 01 — Automatic differentiation, from the ground up
#
# Training a language model means nudging millions of numbers so that one number, the
# loss, goes down. To know which way to nudge each of them we need the derivative of
# the loss with respect to every one. Deriving those by hand for a whole model would be
# slow and error-prone. **Automatic differentiation** (autograd) computes them exactly,
# for any program built from simple pieces, for roughly the cost of running the program
# a second time.
#
# In this lesson you will:
#
# 1. recall what a derivative is, and estimate one with a computer;
# 2. derive the chain rule, and see how it turns a program into a graph;
# 3. learn *reverse mode*: walking that graph backwards in topological order;
# 4. build a tiny scalar autograd engine of your own (a `Value` class, about 50 lines)
#    and check it against numerical derivatives;
# 5. run the same computation with tinylm's `Tensor`, read tinylm's real code for one
#    op, and write a custom op with tinylm's public `Function` contract.
#
# Every cell runs in well under a second. Read the Markdown, run the code, and change the
# numbers: nothing teaches autograd like breaking it on purpose.

# %%
import inspect
import math
import sys

import numpy as np

import tinylm

# %% [markdown]
# ## 1. What a derivative is
#
# The derivative of $f$ at $x$ is the rate at which $f(x)$ changes when $x$ changes a
# little:
#
# $$f'(x) = \lim_{h \to 0} \frac{f(x + h) - f(x)}{h}.$$
#
# Take $f(x) = x^3$. Expanding the cube, $(x + h)^3 = x^3 + 3x^2 h + 3 x h^2 + h^3$, so
#
# $$\frac{f(x + h) - f(x)}{h} = 3x^2 + 3xh + h^2 \;\xrightarrow{\;h \to 0\;}\; 3x^2 .$$
#
# A computer cannot take a limit, but it can pick a small $h$. The quotient above (the
# *forward difference*) is off by $3xh + h^2$, an error proportional to $h$. Stepping to
# both sides does much better. Subtracting the two expansions, the even powers of $h$
# cancel: $(x+h)^3 - (x-h)^3 = 6x^2 h + 2h^3$, and so the **central difference** is
#
# $$\frac{f(x + h) - f(x - h)}{2h} = 3x^2 + h^2 ,$$
#
# off by only $h^2$: with $h = 10^{-6}$, by $10^{-12}$ — in exact arithmetic. A computer
# rounds every value of $f$ it computes, and dividing by the tiny $2h$ magnifies that
# rounding to about $10^{-10}$ here, which is the error you will see printed. Lesson 02
# shows why this rounding error grows as $h$ shrinks, why $h = 10^{-6}$ is about the
# sweet spot, and why we compute in float64. Central differences are our independent
# check throughout: slow and approximate, but they never look at a derivative we
# derived by hand.


# %%
def central_difference(f, x, h=1e-6):
    """Estimate f'(x) from two evaluations of f, one on each side of x."""
    return (f(x + h) - f(x - h)) / (2 * h)


def cube(x):
    return x**3


x0 = 1.5
exact = 3 * x0**2
forward = (cube(x0 + 1e-6) - cube(x0)) / 1e-6
central = central_difference(cube, x0)
print(f"exact 3x^2          = {exact:.12f}")
print(f"forward difference  = {forward:.12f}   error {abs(forward - exact):.1e}")
print(f"central difference  = {central:.12f}   error {abs(central - exact):.1e}")
assert abs(central - exact) < abs(forward - exact)
assert abs(central - exact) < 1e-8

# %% [markdown]
# ## 2. The chain rule
#
# Programs compose functions: $y = g(u)$ with $u = f(x)$. A small change $\Delta x$
# changes $u$ by about $f'(x)\,\Delta x$; that change of $u$ changes $y$ by about
# $g'(u)$ times itself. Multiplying the two rates,
#
# $$\frac{dy}{dx} = \frac{dy}{du}\,\frac{du}{dx} = g'(f(x))\; f'(x).$$
#
# **The chain rule says: multiply the local derivatives along the way.** Each step only
# needs to know its own derivative, never the whole expression.
#
# Example: $y = \tanh(x^2)$. The two local derivatives are $du/dx = 2x$ for
# $u = x^2$, and, for $y = \tanh u = \dfrac{e^u - e^{-u}}{e^u + e^{-u}}$, by the quotient rule
#
# $$\frac{dy}{du} = \frac{(e^u + e^{-u})^2 - (e^u - e^{-u})^2}{(e^u + e^{-u})^2}
#   = 1 - \tanh^2 u = 1 - y^2 .$$
#
# Notice that $\tanh$'s derivative is written with its *output* $y$: whoever computes the
# derivative later can reuse the value the forward computation already produced. tinylm's
# `Tanh` does exactly that (section 7). Altogether
#
# $$\frac{d}{dx}\tanh(x^2) = (1 - y^2)\cdot 2x .$$

# %%
x0 = 0.8
y0 = math.tanh(x0**2)
by_chain_rule = (1 - y0**2) * 2 * x0
numerical = central_difference(lambda x: math.tanh(x**2), x0)
print(f"chain rule {by_chain_rule:.10f}   central difference {numerical:.10f}")
assert abs(by_chain_rule - numerical) < 1e-8

# %% [markdown]
# ### More than one path: the sum rule
#
# Often $x$ reaches the result along several roads. Let $u = x^2$, $v = e^x$ and
# $L = u\,v$. Nudging $x$ nudges *both* $u$ and $v$, and to first order their effects
# on $L$ add up. This is the multivariable chain rule:
#
# $$\frac{dL}{dx} = \frac{\partial L}{\partial u}\frac{du}{dx}
#                 + \frac{\partial L}{\partial v}\frac{dv}{dx}
#                 = v \cdot 2x + u \cdot e^x = (2x + x^2)\,e^x .$$
#
# **Multiply along each path, then add over the paths.** These two rules are all of
# autograd; the rest is bookkeeping.

# %%
x0 = 0.3
by_paths = math.exp(x0) * 2 * x0 + x0**2 * math.exp(x0)
numerical = central_difference(lambda x: x**2 * math.exp(x), x0)
print(f"sum over paths {by_paths:.10f}   central difference {numerical:.10f}")
assert abs(by_paths - numerical) < 1e-8

# %% [markdown]
# ## 3. Programs are graphs
#
# Write a computation as a sequence of primitive steps, one operation each. Here is the
# running example of this lesson, with three inputs $a, b, c$:
#
# $$L = \tanh(a b + c)\; e^{a}$$
#
# | step | value | local derivatives |
# |---|---|---|
# | 1 | $d = a\,b$ | $\partial d/\partial a = b,\ \partial d/\partial b = a$ |
# | 2 | $z = d + c$ | $\partial z/\partial d = 1,\ \partial z/\partial c = 1$ |
# | 3 | $t = \tanh z$ | $\partial t/\partial z = 1 - t^2$ |
# | 4 | $s = e^{a}$ | $\partial s/\partial a = e^{a} = s$ |
# | 5 | $L = t\,s$ | $\partial L/\partial t = s,\ \partial L/\partial s = t$ |
#
# Each value is a **node**; an **edge** runs from each input of a step to its output.
#
# ```
#  a ──┬──▶ d = a·b ──▶ z = d + c ──▶ t = tanh z ──┐
#  b ──┘                    ▲                      ├──▶ L = t·s
#  c ───────────────────────┘                      │
#  a ─────────────────▶ s = exp a ─────────────────┘
# ```
#
# `a` is drawn twice but is one node with two outgoing edges: the graph is a directed
# acyclic graph (a DAG), not a tree, and `a` reaches $L$ along two paths.

# %% [markdown]
# ## 4. Reverse mode
#
# Call $\bar v = \partial L / \partial v$ the **adjoint** (or simply "the gradient") of a
# node $v$. Start from $\bar L = 1$. If $v$ is used by the nodes $u_1, \dots, u_k$ (its
# *consumers*), the sum rule gives
#
# $$\bar v = \sum_{i=1}^{k} \bar u_i \,\frac{\partial u_i}{\partial v}.$$
#
# So $\bar v$ is complete only once every consumer's adjoint is complete. Processing the
# nodes **from the output back to the inputs, each node after all of its consumers**,
# makes every adjoint final by the time it is used. For the running example:
#
# $$
# \begin{aligned}
# \bar L &= 1 \\
# \bar t &= \bar L\, s, \qquad \bar s = \bar L\, t \\
# \bar z &= \bar t\,(1 - t^2) \\
# \bar d &= \bar z, \qquad \bar c = \bar z \\
# \bar b &= \bar d\, a \\
# \bar a &= \underbrace{\bar d\, b}_{\text{via } d} + \underbrace{\bar s\, s}_{\text{via } s}
# \end{aligned}
# $$
#
# Let us compute that by hand, in plain Python, and check each gradient against central
# differences.


# %%
def L_of(a, b, c):
    return math.tanh(a * b + c) * math.exp(a)


a0, b0, c0 = 0.7, -1.3, 0.4

# forward pass: keep every intermediate value, the backward pass needs them
d = a0 * b0
z = d + c0
t = math.tanh(z)
s = math.exp(a0)
L = t * s

# backward pass: one line per adjoint, consumers before producers
L_bar = 1.0
t_bar, s_bar = L_bar * s, L_bar * t
z_bar = t_bar * (1 - t * t)
d_bar, c_bar = z_bar, z_bar
b_bar = d_bar * a0
a_bar = d_bar * b0 + s_bar * s  # two paths into a: their contributions add

numerical = (
    central_difference(lambda a: L_of(a, b0, c0), a0),
    central_difference(lambda b: L_of(a0, b, c0), b0),
    central_difference(lambda c: L_of(a0, b0, c), c0),
)
for name, by_hand, num in zip("abc", (a_bar, b_bar, c_bar), numerical):
    print(f"dL/d{name}: by hand {by_hand:+.10f}   central difference {num:+.10f}")
    assert abs(by_hand - num) < 1e-8

# %% [markdown]
# ### Why backwards?
#
# One could also sweep *forwards*, carrying $dv/da$ for every node $v$ along with its
# value (**forward mode**). That gives the derivatives of every node with respect to
# **one** input per pass. Reverse mode gives the derivative of **one** output with
# respect to every node per pass. A loss is a single number and a model has millions of
# parameters, so reverse mode wins by a factor of millions: one backward pass, costing
# about as much as the forward pass, gives the whole gradient. (Reverse mode applied to
# neural networks is what is usually called *backpropagation*.)
#
# The price is memory: the backward pass needs forward values ($a$, $b$, $s$, $t$ above),
# so they must be kept until it runs.
#
# ### Topological order, iteratively
#
# An order of the nodes in which every node comes after the nodes it was computed from
# is a **topological order**. Reversed, every node comes after all of its consumers —
# exactly what the backward pass needs. Depth-first search finds one: emit a node only
# after all of its inputs have been emitted.
#
# The textbook way to write that search is recursive, one nested call per edge followed.
# Each call takes a frame on Python's call stack, and Python refuses to go deeper than
# `sys.getrecursionlimit()` frames (1000 by default). A recurrent network unrolled over
# 1,000 time steps has several ops per step, so its graph is thousands of nodes deep:
# the recursive search crashes with `RecursionError` exactly on the models we care about.
# The fix is to keep our own stack in a list, so depth is limited only by memory. Both
# versions follow; we will run both on a deep graph in a moment.


# %%
def topological_order(root):
    """Every node reachable from `root`, each after all of its parents, without recursion.

    The stack holds (node, parents_done) pairs. A node is first pushed with
    parents_done=False. When popped like that, it goes back on the stack with True and
    its parents are pushed on top of it, so it comes off again, and is emitted, only
    after every parent has been emitted.
    """
    order, seen = [], set()
    stack = [(root, False)]
    while stack:
        node, parents_done = stack.pop()
        if parents_done:
            order.append(node)
            continue
        if id(node) in seen:  # reached again along another path: nothing more to do
            continue
        seen.add(id(node))
        stack.append((node, True))
        for parent in node.parents:
            if id(parent) not in seen:
                stack.append((parent, False))
    return order


def topological_order_recursive(root):
    """The same order by plain recursion: short, and fails on deep graphs."""
    order, seen = [], set()

    def visit(node):
        if id(node) in seen:
            return
        seen.add(id(node))
        for parent in node.parents:
            visit(parent)
        order.append(node)

    visit(root)
    return order


# %% [markdown]
# ## 5. A scalar autograd engine of your own
#
# A `Value` holds one number and remembers how it was made: its `parents` (the Values it
# was computed from) and `local_grads`, the partial derivative of itself with respect to
# each parent, worked out at the moment it is created (that is the "local derivatives"
# column of the table in section 3). Its backward pass is the adjoint formula of
# section 4, word for word:
#
# $$\bar p \mathrel{+}= \bar v \,\frac{\partial v}{\partial p}
#   \quad\text{for every node } v \text{ in reverse topological order and every parent } p.$$
#
# The `+=` *is* the sum over paths: a parent used by several nodes receives one
# contribution from each. It also handles `a * a` correctly, where the same parent
# appears twice in one node.


# %%
class Value:
    """A scalar that remembers how it was computed."""

    def __init__(self, data, parents=(), local_grads=(), op=""):
        self.data = float(data)
        self.grad = 0.0
        self.parents = parents  # the Values this one was computed from
        self.local_grads = local_grads  # d(self)/d(parent), one number per parent
        self.op = op

    def __repr__(self):
        return f"Value({self.data:.6g}, grad={self.grad:.6g}, op={self.op!r})"

    @staticmethod
    def lift(x):
        return x if isinstance(x, Value) else Value(x)

    def __add__(self, other):  # y = p + q: dy/dp = 1, dy/dq = 1
        other = Value.lift(other)
        return Value(self.data + other.data, (self, other), (1.0, 1.0), "+")

    def __mul__(self, other):  # y = p q: dy/dp = q, dy/dq = p
        other = Value.lift(other)
        return Value(self.data * other.data, (self, other), (other.data, self.data), "*")

    __radd__ = __add__  # 2 + v
    __rmul__ = __mul__  # 2 * v

    def tanh(self):  # y = tanh p: dy/dp = 1 - y^2
        y = math.tanh(self.data)
        return Value(y, (self,), (1.0 - y * y,), "tanh")

    def exp(self):  # y = e^p: dy/dp = e^p = y
        y = math.exp(self.data)
        return Value(y, (self,), (y,), "exp")

    def backward(self):
        """Fill .grad of every node of the graph with d(self)/d(node)."""
        order = topological_order(self)
        for node in order:
            node.grad = 0.0
        self.grad = 1.0  # dL/dL
        for node in reversed(order):  # each node after all of its consumers
            for parent, local in zip(node.parents, node.local_grads):
                parent.grad += node.grad * local  # one path's contribution


# %% [markdown]
# Now the running example with `Value`s, checked against both the hand-written backward
# pass and central differences:

# %%
a, b, c = Value(a0), Value(b0), Value(c0)
L = (a * b + c).tanh() * a.exp()
L.backward()
print(L)
for name, v, by_hand, num in zip("abc", (a, b, c), (a_bar, b_bar, c_bar), numerical):
    print(f"dL/d{name}: Value {v.grad:+.10f}   by hand {by_hand:+.10f}   central {num:+.10f}")
    assert abs(v.grad - by_hand) < 1e-12
    assert abs(v.grad - num) < 1e-8

# %% [markdown]
# ### Each node once, however many paths
#
# Square a value thirty times: $v_0 = x$, $v_{k+1} = v_k \cdot v_k$, so
# $L = v_{30} = x^{2^{30}}$. From $L$ back to $x$ there are $2^{30}$, about a billion,
# distinct paths (each multiplication offers two edges to the level below). Following
# every path separately would take ages. The topological order visits 31 nodes, once
# each. With $x = 1$ the answer is easy to check by hand:
# $dL/dx = 2^{30} x^{2^{30}-1} = 2^{30}$.

# %%
x = Value(1.0)
v = x
for _ in range(30):
    v = v * v
v.backward()
print(f"nodes visited: {len(topological_order(v))},  dL/dx = {x.grad:.0f} = 2**30 = {2**30}")
assert x.grad == 2**30

# %% [markdown]
# ### A deep graph: why the search must not recurse
#
# A chain of 3,000 steps $v \leftarrow v + 0.001 \tanh v$ builds about 12,000 nodes
# (the constant $0.001$ is a node too), one behind the other, like an unrolled recurrent
# network. The recursive search gives up; the iterative one does not care. The gradient
# is still checked against central differences.


# %%
def deep_chain(x, steps=3000):
    v = x
    for _ in range(steps):
        v = v + 0.001 * v.tanh()
    return v


x = Value(0.5)
y = deep_chain(x)
try:
    topological_order_recursive(y)
except RecursionError as err:
    print(f"recursive search: RecursionError ({err}) at limit {sys.getrecursionlimit()}")
else:
    print("recursive search survived (this Python has a very high recursion limit)")

y.backward()  # iterative: fine
numerical_dx = central_difference(lambda x: deep_chain(Value(x)).data, 0.5)
print(f"nodes: {len(topological_order(y))},  dy/dx = {x.grad:.10f},  central {numerical_dx:.10f}")
assert abs(x.grad - numerical_dx) <= 1e-6 * abs(numerical_dx) + 1e-12

# %% [markdown]
# ## 6. The same computation in tinylm
#
# tinylm's `Tensor` is the grown-up `Value`: it holds a whole NumPy array instead of one
# number, and knows many more ops, but the idea is the same. A 0-d tensor is a scalar,
# so the running example carries over unchanged. We use float64 so the comparison with
# our float64 `Value`s is exact to about $10^{-15}$.

# %%
ta = tinylm.tensor(a0, dtype=tinylm.float64, requires_grad=True)
tb = tinylm.tensor(b0, dtype=tinylm.float64, requires_grad=True)
tc = tinylm.tensor(c0, dtype=tinylm.float64, requires_grad=True)
tL = (ta * tb + tc).tanh() * ta.exp()
tL.backward()
print(tL)
for name, t_in, v in zip("abc", (ta, tb, tc), (a, b, c)):
    print(f"dL/d{name}: tinylm {t_in.grad.item():+.12f}   Value {v.grad:+.12f}")
    assert abs(t_in.grad.item() - v.grad) < 1e-12

# %% [markdown]
# With arrays, one node does the work of many `Value`s. Give `a`, `b`, `c` five elements
# each and sum the result: element $i$ of the gradient is the scalar formula of section 4
# evaluated at element $i$, because the five computations never mix.

# %%
tinylm.manual_seed(0)
va = tinylm.randn(5, dtype=tinylm.float64, requires_grad=True)
vb = tinylm.randn(5, dtype=tinylm.float64, requires_grad=True)
vc = tinylm.randn(5, dtype=tinylm.float64, requires_grad=True)
((va * vb + vc).tanh() * va.exp()).sum().backward()

A, B, C = va.detach().numpy(), vb.detach().numpy(), vc.detach().numpy()
T, S = np.tanh(A * B + C), np.exp(A)
expected_a = S * (1 - T**2) * B + T * S  # the two paths into a
print("tinylm dL/da:", va.grad)
print("formula     :", expected_a)
np.testing.assert_allclose(va.grad.numpy(), expected_a, rtol=1e-12)

# %% [markdown]
# ## 7. Inside tinylm: the `Function` contract
#
# Every tensor made by an op remembers its op in `grad_fn`; that is the graph:

# %%
print("L   made by", tL.grad_fn.__name__)
print("a.exp() made by", ta.exp().grad_fn.__name__)
print("a is a leaf:", ta.is_leaf, "  grad_fn:", ta.grad_fn)

# %% [markdown]
# Each op is a subclass of `tinylm.autograd.Function` with two static methods. Here is
# tinylm's real `Tanh`, read straight from the installed package:

# %%
print(inspect.getsource(tinylm.ops.unary.Tanh))

# %% [markdown]
# Compare it with `Value.tanh`:
#
# * `forward(ctx, x)` gets plain arrays and returns the array $y = \tanh x$. It saves
#   $y$ with `ctx.save_for_backward`, because the derivative is written with $y$
#   (section 2).
# * `backward(ctx, dy)` gets the adjoint of the output, $\bar y$ (`dy`, a Tensor the
#   shape of `y`), and returns the adjoint of the input, $\bar x = \bar y\,(1 - y^2)$.
#   What it saved comes back from `ctx.saved_tensors` as Tensors too.
#   `Value` stored the local derivative as a number and multiplied later; a tensor op
#   instead computes the *product* directly, because for array ops the table of all
#   local derivatives (a Jacobian matrix) would be enormous. Lesson 02 makes this
#   precise.
# * The backward is written with Tensor operations, so with
#   `backward(create_graph=True)` it is itself recorded, and gradients of gradients
#   become possible. Without it, backward records nothing.
#
# tinylm's backward pass, `run_backward` in `tinylm/autograd.py`, finds its order
# differently from our depth-first search but with the same guarantees: it first counts
# how many consumers each tensor has, then processes a tensor once all of them have
# handed in their contribution (Kahn's algorithm). It is iterative, visits every node
# once, and adds the contributions of several consumers before calling the op's
# `backward` a single time with the total.
#
# ### Your own op
#
# The same contract is public: a custom op is written exactly like tinylm's own. Here is
# $y = x^3$ with $\bar x = 3x^2\,\bar y$ (section 1). `gradcheck` compares the backward
# with central differences for every element (lesson 02 covers how); it returns `True`
# or raises an error describing the mismatch. We also count how often `backward` runs
# when the output feeds three consumers.


# %%
class Cube(tinylm.autograd.Function):
    r"""Forward: y = x^3.   Backward: dx = 3 x^2 dy.   Saves: x."""

    backward_calls = 0

    @staticmethod
    def forward(ctx, x):  # backend arrays in, backend array out
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    def backward(ctx, dy):  # one gradient per forward input
        Cube.backward_calls += 1
        (x,) = ctx.saved_tensors
        return 3 * x**2 * dy


def cube_op(x):
    return Cube.apply(x)


x = tinylm.randn(4, dtype=tinylm.float64, requires_grad=True)
print("gradcheck(Cube):", tinylm.gradcheck(cube_op, (x,)))

Cube.backward_calls = 0
u = cube_op(x)
loss = (u.tanh() + u.exp() + u * 2.0).sum()  # u has three consumers
loss.backward()
X = x.detach().numpy()
U = X**3
expected = ((1 - np.tanh(U) ** 2) + np.exp(U) + 2.0) * 3 * X**2
print("Cube.backward calls:", Cube.backward_calls)
np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12)
assert Cube.backward_calls == 1

# %% [markdown]
# One last rule of the engine: after `backward()` the values saved for it are freed, so
# a second `backward()` through the same graph is refused with a clear message (pass
# `retain_graph=True` to the first call if you need two).

# %%
y = cube_op(x).sum()
y.backward()
try:
    y.backward()
except RuntimeError as err:
    print("second backward:", err)

# %% [markdown]
# And a deep graph is no problem for tinylm either: 2,500 steps of three ops each, a
# chain of 7,500 nodes, far beyond Python's recursion limit, checked against a central
# difference.

# %%
x = tinylm.tensor(0.5, dtype=tinylm.float64, requires_grad=True)
y = x
for _ in range(2500):
    y = y + 0.001 * y.tanh()  # three ops per step: tanh, *, +
y.backward()


def deep_numpy(x):
    for _ in range(2500):
        x = x + 0.001 * np.tanh(x)
    return x


numerical_dx = central_difference(deep_numpy, 0.5)
print(f"dy/dx = {x.grad.item():.10f}   central {numerical_dx:.10f}")
assert abs(x.grad.item() - numerical_dx) <= 1e-6 * abs(numerical_dx) + 1e-12

# %% [markdown]
# ## Summary
#
# * A derivative is a local rate of change; central differences estimate it with error
#   $O(h^2)$ and are our independent check.
# * Chain rule: multiply local derivatives along a path. Sum rule: add over paths.
# * A program is a DAG of primitive ops. Reverse mode seeds $\bar L = 1$ and applies
#   $\bar v = \sum_i \bar u_i\,\partial u_i/\partial v$, visiting nodes in reverse
#   topological order so each adjoint is complete before it is used; one backward pass
#   gives the gradient with respect to everything.
# * Topological sorting must be iterative: graphs of unrolled networks are deeper than
#   Python's recursion limit.
# * In tinylm an op is a `Function` with `forward(ctx, *arrays)` and `backward(ctx, dy)`;
#   your own ops use the same contract and are checked with `tinylm.gradcheck`.
#
# ## Tests that grade this lesson
#
# Run them all with `pytest -m lesson01`. Each checks a claim of this lesson against
# tinylm:
#
# * `tests/test_lesson01.py::test_cube_derivative_matches_central_difference`
# * `tests/test_lesson01.py::test_scalar_engine_matches_central_differences`
# * `tests/test_lesson01.py::test_chain_rule_composite_matches_central_differences`
# * `tests/test_lesson01.py::test_reused_input_sums_both_paths`
# * `tests/test_lesson01.py::test_diamond_graph_sums_both_paths`
# * `tests/test_lesson01.py::test_each_node_backward_runs_once`
# * `tests/test_lesson01.py::test_deep_chain_needs_no_recursion`
# * `tests/test_lesson01.py::test_tanh_backward_uses_saved_output`
# * `tests/test_lesson01.py::test_custom_cube_function_passes_gradcheck`
# * `tests/test_lesson01.py::test_second_backward_is_refused`
#
# Next, lesson 02 moves from scalars to tensors: broadcasting, the matrix-product
# gradient, and how far a numerical gradient can be trusted.
