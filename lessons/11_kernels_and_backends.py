# %% [markdown]
# # Lesson 11 — Kernels and backends: the same math, fewer trips to memory
#
# Every op in lessons 01–10 is a few lines of NumPy: readable, and checked against central
# differences. This lesson is about making those same formulas fast without making them
# wrong. tinylm keeps the plain code as the **reference** and adds, for the hot ops, a
# **fused kernel** that must agree with it:
#
# 1. why fusion pays: a chain of NumPy calls reads and writes memory once per call (§1);
# 2. what a Numba kernel looks like, and the two traps that make one slower than NumPy (§2);
# 3. an `exp` that vectorizes: range reduction and a polynomial, tested over every float32
#    exponent (§3);
# 4. how a kernel is checked: against the reference on every registry sample, and by
#    gradcheck (§4);
# 5. determinism: why a kernel never sums in an order that depends on threads (§5);
# 6. a whole training step with the kernels on and off (§6);
# 7. the GPU: what CuPy changes, and what it does not (§7).
#
# The switch: `TINYLM_KERNELS=reference` in the environment, or `tinylm.kernels.set_enabled`
# and `with tinylm.kernels.reference():` in code, runs the plain reference everywhere.

# %%
import inspect
import time

import matplotlib.pyplot as plt
import numpy as np

import tinylm
from tinylm import kernels
from tinylm.kernels import fastmath
from tinylm.kernels._common import jit

rng = np.random.default_rng(0)
start = time.perf_counter()


def best_time(fn, repeat=5, number=None):
    """The fastest of `repeat` timings of `fn()`, per call in seconds (the minimum is
    the least disturbed by whatever else runs on the machine)."""
    fn()  # compile / warm up
    if number is None:
        t = time.perf_counter()
        fn()
        number = max(1, int(0.02 / max(time.perf_counter() - t, 1e-7)))
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t) / number)
    return best


# %% [markdown]
# ## 1. Why fusion pays: memory traffic
#
# Take $y = \tanh(a \odot b + c)$ on float32 vectors of $n$ elements. NumPy runs it as
# three calls, each a full pass over memory with a temporary array in between:
#
# | call | reads | writes |
# | --- | --- | --- |
# | `t = a * b` | $a, b$ | $t$ |
# | `t = t + c` | $t, c$ | $t'$ |
# | `y = tanh(t')` | $t'$ | $y$ |
#
# That is $5n$ floats read and $3n$ written: $32n$ bytes. A **fused** kernel reads
# $a, b, c$ once and writes $y$ once, $16n$ bytes, and keeps each intermediate in a
# register. While the arrays fit in the CPU's caches the difference is small (the cache
# is fast, and NumPy's per-call overhead of about a microsecond dominates tiny arrays);
# once they do not, every pass is paid at main-memory bandwidth and the fused kernel,
# moving half the bytes, should take about half the time.
#
# Here is the fused kernel, in Numba: a loop over the elements, compiled to machine code
# the first time it is called.

# %%
@jit
def tanh_fma(a, b, c, out):
    for i in range(a.size):
        out[i] = fastmath.tanh_(a[i] * b[i] + c[i])


def tanh_fma_numpy(a, b, c, out):
    np.tanh(a * b + c, out=out)


sizes = [1 << k for k in (8, 11, 14, 17, 20, 23)]
per_element = {"NumPy, 3 passes": [], "fused kernel, 1 pass": []}
for n in sizes:
    a, b, c = (rng.standard_normal(n).astype(np.float32) for _ in range(3))
    out, ref = np.empty_like(a), np.empty_like(a)
    tanh_fma(a, b, c, out)
    tanh_fma_numpy(a, b, c, ref)
    # the same math, up to float32 rounding: the kernel's a*b+c is one fused multiply-add
    # (one rounding where NumPy has two) and its tanh is within 3 ulp of NumPy's
    assert np.allclose(out, ref, rtol=1e-5, atol=1e-6)
    args = (a, b, c)
    per_element["NumPy, 3 passes"].append(
        best_time(lambda args=args, ref=ref: tanh_fma_numpy(*args, ref)) / n)
    per_element["fused kernel, 1 pass"].append(
        best_time(lambda args=args, out=out: tanh_fma(*args, out)) / n)

fig, ax = plt.subplots(figsize=(6, 3.5))
for label, ts in per_element.items():
    ax.loglog(sizes, np.array(ts) * 1e9, "o-", label=label)
ax.set_xlabel("elements n")
ax.set_ylabel("ns per element")
ax.set_title("y = tanh(a*b + c), float32")
ax.legend()
plt.show()
for n, t0, t1 in zip(sizes, *per_element.values()):
    print(f"n = {n:>9,}: NumPy {t0 * 1e9:5.2f} ns/element, fused {t1 * 1e9:5.2f}, "
          f"ratio {t0 / t1:4.1f}x")

# %% [markdown]
# Read the plot from the left: for tiny arrays NumPy pays its fixed cost per call three
# times; in the middle both are limited by arithmetic (here mostly `tanh`); on the right
# the arrays outgrow the caches and NumPy's extra passes cost memory bandwidth. An LSTM
# cell is the same story with more steps: its reference code (lesson 07) is about twenty
# NumPy calls per time step, each a pass over a $(B, 4H)$ or $(B, H)$ array; the fused cell
# kernel is one.
#
# ## 2. What a Numba kernel looks like, and two traps
#
# `@jit` above is tinylm's wrapper of `numba.njit`:

# %%
print(inspect.getsource(jit))

# %% [markdown]
# Each option is there for a measured reason:
#
# - `cache=True` writes the compiled code next to the source, so the next process loads it
#   in milliseconds instead of compiling for a second or more;
# - `error_model="numpy"`: by default Numba checks every division for a zero divisor to
#   raise Python's `ZeroDivisionError`; that check stops LLVM from turning the loop into
#   SIMD instructions. With NumPy's model, `x / 0` is `inf` as in NumPy;
# - `fastmath` is a *set* of LLVM flags, not `True`: `contract` (fused multiply-add) and
#   friends, but not `nnan`/`ninf` (the kernels must pass `inf` and `nan` through as NumPy
#   does) and not `reassoc` (it would let LLVM reorder a sum, §5).
#
# The second trap is `math.exp` and `math.tanh`. Numba compiles them to calls of the C
# library's scalar functions, one element at a time: the loop cannot be vectorized, and
# the "fast" kernel loses to NumPy, whose own float32 `tanh` is hand-written SIMD code.

# %%
@jit
def tanh_fma_libm(a, b, c, out):
    for i in range(a.size):
        out[i] = np.float32(np.tanh(a[i] * b[i] + c[i]))  # the C library's scalar tanhf


n = 1 << 16
a, b, c = (rng.standard_normal(n).astype(np.float32) for _ in range(3))
out = np.empty_like(a)
t_numpy = best_time(lambda: tanh_fma_numpy(a, b, c, out))
t_libm = best_time(lambda: tanh_fma_libm(a, b, c, out))
t_fast = best_time(lambda: tanh_fma(a, b, c, out))
print(f"NumPy (3 calls)                 {t_numpy * 1e6:7.1f} us")
print(f"Numba + the C library's tanh    {t_libm * 1e6:7.1f} us")
print(f"Numba + fastmath.tanh_          {t_fast * 1e6:7.1f} us")

# %% [markdown]
# ## 3. An exp that vectorizes
#
# `fastmath.tanh_` is built on an $e^x$ written with nothing but multiplies, adds and one
# bit trick, so LLVM can vectorize it. The derivation:
#
# 1. **Range reduction.** Write $x = k \ln 2 + r$ with $k = \operatorname{round}(x / \ln 2)$,
#    so $|r| \le \ln 2 / 2 \approx 0.347$. Then $e^x = 2^k e^r$.
# 2. **The polynomial.** On that small interval the Taylor series converges fast:
#    $e^r - 1 = r + r^2/2! + \dots + r^8/8!$, and the first term left out, $r^9/9!$, is
#    below $2 \cdot 10^{-10}$ relative: far below float32's rounding ($6 \cdot 10^{-8}$).
# 3. **$2^k$ from bits.** A float32 is $\pm 1.m \times 2^{e - 127}$ with an 8-bit exponent
#    field $e$: the integer $(k + 127) \ll 23$, reinterpreted as a float32, *is* $2^k$.
#    tinylm multiplies by $2^{\lfloor k/2 \rfloor}$ and $2^{k - \lfloor k/2 \rfloor}$ so the
#    results below $2^{-126}$ come out as the same subnormal numbers NumPy gives.
# 4. **Cody–Waite.** $r = x - k \ln 2$ loses digits if $\ln 2$ is rounded to float32 first,
#    so $\ln 2$ is split into a high part with only 9 significant bits (so $k \cdot$ high is
#    exact) and a low part.
#
# tinylm's code, exactly as the kernels use it:

# %%
print(inspect.getsource(fastmath._expm1_parts_f32.py_func))
print(inspect.getsource(fastmath._exp_f32.py_func))

# %% [markdown]
# Is it right? `tests/test_kernels_fastmath.py::test_float32_function_within_3_ulp_everywhere`
# evaluates it on every 997th of the $2^{32}$ float32 bit patterns (every exponent, both
# signs, the subnormals, $\pm\infty$, nan) against NumPy in float64, and bounds the error
# by 3 units in the last place (ulp). Here is the error over the range where $e^x$ is a
# normal float32:

# %%
x = np.linspace(-87, 88, 200_001, dtype=np.float32)
exact = np.exp(x.astype(np.float64))
ulps = np.abs(fastmath.exp(x) - exact) / np.spacing(exact.astype(np.float32))
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(x[::50], ulps[::50], ".", markersize=1)
ax.set_xlabel("x")
ax.set_ylabel("error (ulp)")
ax.set_title("fastmath.exp against exp in float64")
plt.show()
print(f"largest error: {ulps.max():.2f} ulp; NumPy's own float32 exp: "
      f"{(np.abs(np.exp(x) - exact) / np.spacing(exact.astype(np.float32))).max():.2f} ulp")

# %% [markdown]
# $\tanh$ uses it through $e^{y} - 1$: $\tanh x = -\operatorname{expm1}(-2|x|) /
# (2 + \operatorname{expm1}(-2|x|))$ with the sign of $x$. The obvious
# $(1 - e^{-2x}) / (1 + e^{-2x})$ subtracts two numbers close to 1 when $x$ is small and
# loses every digit; through `expm1` the small-$x$ case keeps its relative accuracy:

# %%
small = np.float32([1e-2, 1e-4, 1e-6])
naive = (1 - np.exp(-2 * small)) / (1 + np.exp(-2 * small))
print("x            naive formula     fastmath.tanh     exact")
for xi, nv, fv in zip(small, naive, fastmath.tanh(small)):
    print(f"{xi:8.0e}   {nv:.8e}   {fv:.8e}   {np.tanh(np.float64(xi)):.8e}")

# %% [markdown]
# ## 4. How a kernel is checked
#
# A kernel is a second implementation of a formula the reference already computes, so the
# reference is its test. Three checks run in the test suite:
#
# 1. **kernel against reference, on every sample of every op** in the op registry
#    (lesson 02): `tinylm.testing.sweep.check_kernels` runs each sample's forward and
#    backward with the kernels on, then inside `kernels.reference()`, and compares outputs
#    and gradients (test IDs `tests/test_registry_sweep.py::test_kernels_match_reference`).
#    In float64 the two may differ only by rounding (a fused multiply-add rounds once where
#    the reference rounds twice, a sum may run in another order): `1e-12` relative. In
#    float32, the kernels' `exp`/`tanh` are within 3 ulp of NumPy's and a fused op chains
#    a handful of such steps: about 20 ulp.
# 2. **gradcheck** (lesson 02) with the kernels on: each kernel's test file compares its
#    backward kernel with central differences in float64 like any other backward (e.g.
#    `tests/test_kernels_rnn.py::test_gradcheck_and_gradgradcheck_with_the_kernels_on`).
#    The tests of lessons 01–10 run with the kernels *off*: they grade the reference code
#    those lessons teach (and that a student writes), which the kernels would bypass.
# 3. **second derivatives**: a backward kernel works on arrays and records no graph; under
#    `create_graph=True` tinylm runs the reference backward instead (written with Tensor
#    ops), so `gradgradcheck` keeps holding with the kernels on.
#
# Here is check 1 on the registry's softmax samples, the way the suite runs it:

# %%
from tinylm.testing import op_db  # noqa: E402
from tinylm.testing.sweep import check_kernels  # noqa: E402

for info in op_db:
    if info.name in ("softmax", "log_softmax"):
        samples = list(info.sample_inputs())
        for sample in samples:
            check_kernels(info, sample)  # raises AssertionError naming the sample
        print(f"{info.name}: kernels agree with the reference on {len(samples)} samples")

# %% [markdown]
# ## 5. Determinism: the same bits every run
#
# Floating-point addition is not associative: $(a + b) + c$ and $a + (b + c)$ can differ in
# the last bit. A parallel sum whose order depends on which thread finishes first therefore
# gives different bits on different runs, and a training run stops being reproducible
# (tinylm's resume-from-checkpoint test compares losses bit for bit). The same numbers,
# summed in three orders:

# %%
values = rng.standard_normal(100_000).astype(np.float32)
in_order = np.float32(0)
for v in values[:2000]:
    in_order += v
halves = values[:1000].sum(dtype=np.float32) + values[1000:2000].sum(dtype=np.float32)
print(f"left to right:  {in_order!r}")
print(f"two halves:     {halves!r}")
print(f"NumPy pairwise: {values[:2000].sum(dtype=np.float32)!r}")

# %% [markdown]
# So every tinylm kernel follows two rules (`shared/PERFORMANCE.md`):
#
# - **no parallel scatter-add.** The embedding backward adds each row of the output
#   gradient into the row of the weight gradient its token id names; two threads adding
#   into the same row at once can lose an update (a *race*), and even without losses the
#   order of the additions would vary. The embedding kernel is a serial loop, and still
#   far faster than `np.add.at` (§6);
# - **reductions in a fixed order.** Where a kernel runs rows on several threads, each row
#   is summed by one thread, start to end, and per-row results are combined serially.
#   The tests run every kernel with one and with two Numba threads and compare the bits.
#
# A third rule is about *when* a kernel may run at all. The Adam and SGD kernels update a
# parameter and its moment buffers in place, walking flat views of them side by side. That
# is only right if every one of those arrays is laid out the same way: C-contiguous (a
# transposed view's flat order is not its logical order), writeable, and of the
# parameter's dtype and shape. When one is not, tinylm runs the reference update instead.
# This test is your exercise for lesson 11 (`pytest -m lesson11` grades it, among the
# kernel tests); here is tinylm's:

# %%
print(inspect.getsource(kernels.optim.fits))

p = np.zeros((3, 4), np.float32)
print("contiguous parameter and buffer:", kernels.optim.fits(p, np.zeros_like(p)))
print("a transposed buffer:            ", kernels.optim.fits(p, np.zeros((4, 3), np.float32).T))
print("a float64 buffer:               ", kernels.optim.fits(p, np.zeros((3, 4))))

# %% [markdown]
# ## 6. A training step, kernels on and off

#
# Lesson 07's LSTM cell is about twenty NumPy calls per time step. tinylm's fused version
# (`tinylm/kernels/rnn.py`) handles one batch row per call of this function, inside a loop
# over the rows; the product $W_{hh} h_{t-1}^\top$ stays one BLAS call per step before it:

# %%
from tinylm.kernels import rnn as rnn_kernels  # noqa: E402

print(inspect.getsource(rnn_kernels._lstm_row.py_func))

# %% [markdown]
# Every line is lesson 07's formula; the differences are all about memory: the four gates
# are read from one row of the product and written back over it, $c_t$, $\tanh c_t$ and
# $h_t$ go straight into buffers allocated once for the whole sequence, and nothing in the
# loop allocates. The gate rows are taken as 1-D slices (`a[:H]`, `a[H:2H]`, ...) because
# indexing `a[H + j]` kept LLVM from vectorizing the loop (ten times slower, measured).
#
# Now the whole training step of lesson 10's character LSTM (embedding, LSTM, linear head,
# cross-entropy, backward, Adam), with the kernels on and off, in the same process. The
# kernels that run in it: the LSTM recurrence, the embedding backward, cross-entropy and
# Adam. Both runs start from the same weights and see the same batches, so their losses
# must agree to float32 rounding.

# %%
from tinylm.models import RNNLMConfig, build_model  # noqa: E402


def lstm_steps(kernels_on: bool, steps: int = 6, B: int = 32, T: int = 64, V: int = 65):
    """Train the LSTM LM for `steps` steps; return (losses, seconds per step after the first)."""
    old = kernels.set_enabled(kernels_on)
    try:
        tinylm.manual_seed(0)
        model = build_model(RNNLMConfig(vocab_size=V, embed_dim=64, hidden_size=256))
        opt = tinylm.optim.Adam(model.parameters(), lr=1e-3)
        data = np.random.default_rng(1).integers(0, V, (steps, B, T + 1))
        losses, times = [], []
        for k in range(steps):
            t0 = time.perf_counter()
            ids = tinylm.tensor(data[k])
            logits, _ = model(ids[:, :-1])
            loss = tinylm.nn.functional.cross_entropy(logits.reshape(-1, V),
                                                      ids[:, 1:].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            times.append(time.perf_counter() - t0)
        return losses, float(np.median(times[1:]))
    finally:
        kernels.set_enabled(old)


lstm_steps(True, steps=2)  # load (or compile) the kernels once, outside the timing
on_losses, on_time = lstm_steps(True)
off_losses, off_time = lstm_steps(False)
print(f"kernels on : {on_time * 1e3:6.1f} ms/step, {32 * 64 / on_time:8,.0f} tokens/s")
print(f"kernels off: {off_time * 1e3:6.1f} ms/step, {32 * 64 / off_time:8,.0f} tokens/s")
print(f"speed-up {off_time / on_time:.2f}x; largest loss difference "
      f"{max(abs(a - b) for a, b in zip(on_losses, off_losses)):.1e}")
assert np.allclose(on_losses, off_losses, rtol=1e-4)

# %% [markdown]
# The speed-up is real but not tenfold: most of the step is matrix products (the per-step
# $W_{hh} h$ and the large weight-gradient products), which are BLAS calls either way.
# Fusion removes the *rest*: the pointwise passes and the Python between them. How the
# whole step compares with PyTorch, and each kernel with the NumPy it replaces, is what
# `tinylm bench` prints (`benchmarks/README.md` records the figures and the machine).

# %% [markdown]
# ## 7. The GPU: what CuPy changes, and what it does not
#
# CuPy is NumPy's interface on CUDA arrays: `cupy.exp`, `cupy.matmul`, slicing and
# broadcasting behave as NumPy's do. tinylm's ops never name NumPy when they compute: they
# ask their input for its array module,

# %%
print(inspect.getsource(tinylm.backend.xp_of))

# %% [markdown]
# and call `xp.exp`, `xp.tanh`, `xp.matmul` on it. So **what does not change** on the GPU:
# the Tensor, the graph, every `Function`'s forward and backward formulas, the modules,
# the optimizers, the trainer. `tinylm.randn(3, device="cuda")` makes a tensor whose array
# is a `cupy.ndarray`, and everything downstream follows it.
#
# **What changes:**
#
# - **where the bytes live.** A GPU has its own memory; `.to("cuda")` and `.cpu()` copy
#   across the PCIe bus, so a training loop moves data once per batch, not per op. Mixing
#   devices in one op is an error that names both devices.
# - **time is asynchronous.** A CuPy call queues work on the GPU and returns at once; to
#   time a step you must wait for the queue (`cupy.cuda.Device().synchronize()`), and
#   `loss.item()` waits implicitly, so calling it every step slows training.
# - **launches, not loops.** Each NumPy-style call is a kernel launch of a few
#   microseconds. For the tiny models of these lessons that fixed cost, not arithmetic,
#   decides the speed, and fusion pays even more than on the CPU: a fused LSTM cell is one
#   launch instead of twenty. Numba kernels do not run on CuPy arrays; their GPU
#   counterparts are CuPy `ElementwiseKernel`s and `RawKernel`s (CUDA C), checked against
#   the same reference.
# - **determinism.** A scatter-add on the GPU (the embedding backward) uses atomic
#   additions by thousands of threads in no fixed order, so its float sums can differ in
#   the last bits from run to run — §5's problem, which the CPU kernels avoid by running
#   serially.
# - **random numbers.** The GPU has its own generator, seeded by `tinylm.manual_seed`
#   too, but its stream differs from the CPU's: the same seed gives different dropout masks
#   on the two devices.
#
# On a machine with a CUDA GPU and CuPy installed, this cell runs one LSTM step on both
# devices and compares the losses; elsewhere it says so and moves on.

# %%
if tinylm.cuda.is_available():
    from tinylm.models import RNNLMConfig, build_model

    losses = {}
    for device in ("cpu", "cuda"):
        tinylm.manual_seed(0)
        model = build_model(RNNLMConfig(vocab_size=65, embed_dim=64, hidden_size=256))
        model.to(device)
        ids = tinylm.tensor(rng.integers(0, 65, (8, 33)), device=device)
        logits, _ = model(ids[:, :-1])
        losses[device] = tinylm.nn.functional.cross_entropy(
            logits.reshape(-1, 65), ids[:, 1:].reshape(-1)).item()
    print(f"loss on the CPU {losses['cpu']:.6f}, on the GPU {losses['cuda']:.6f}")
else:
    print("no CUDA GPU here (or CuPy is not installed): nothing to compare")

# %% [markdown]
# ## Summary
#
# - NumPy code makes one pass over memory per call; a **fused kernel** makes one pass for
#   the whole formula, which pays for tiny arrays (fewer calls) and for arrays larger than
#   the caches (fewer bytes).
# - A Numba kernel is fast only if LLVM can vectorize it: tinylm compiles with NumPy's
#   error model and a chosen set of fast-math flags, and brings its own vectorizing
#   float32 `exp`/`tanh`, derived by range reduction and tested over every exponent.
# - The plain code stays the **reference**: every kernel is compared with it on every
#   registry sample, gradchecked, and kept out of double backward; `TINYLM_KERNELS=reference`
#   turns the kernels off.
# - Kernels are **deterministic**: no parallel scatter-adds, sums in a fixed order.
# - On the GPU the same Python runs through CuPy; what changes is where the bytes live,
#   when work happens, and what "fused" means (launches saved).

# %%
print(f"lesson ran in {time.perf_counter() - start:.0f} s")
