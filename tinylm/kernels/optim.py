r"""Adam/AdamW and SGD(-momentum) updates in place: one pass over memory per parameter.

The reference ``_update`` (tinylm/optim/adam.py, sgd.py; lessons/05_optimizers.py) is a
chain of whole-array NumPy calls. Adam's is 13 of them (``tmp = g (1-\beta_1)``,
``m *= \beta_1``, ``m += tmp``, ``tmp = g^2``, ...), and each reads or writes a whole
array: about 30 array-sized trips to memory per step. The kernel walks the parameter once,
element by element, reading :math:`\theta, g, m, v` and writing :math:`\theta, m, v`: 7
trips (9 with amsgrad's :math:`\hat v`). For a parameter larger than the caches the
update is bound by memory traffic, so that ratio is about the speedup; for one that fits
(the LSTM's 1024 x 256 ``W_hh``) NumPy also pays a call per expression.

Per element :math:`i`, exactly the reference's operations in the reference's order::

    Adam     g  <- theta lambda + g                   (L2, weight_decay != 0)
    AdamW    theta <- theta (1 - lr lambda)           (decoupled, weight_decay != 0)
             m  <- m beta1 + g (1 - beta1)
             v  <- v beta2 + (g g)(1 - beta2)
             vh <- max(vh, v) if amsgrad else v
             theta <- theta - (m / (sqrt(vh) / sqrt(1 - beta2^t) + eps)) (lr / (1 - beta1^t))

    SGD      d  <- theta lambda + g                   (weight_decay != 0)
             b  <- d  (first step),  b mu + d (1 - tau)  (later steps; momentum != 0)
             d  <- b mu + d  (nesterov),  b  (momentum, not nesterov)
             theta <- theta - d lr

**Same bits as the reference.** Each line above is the same IEEE operation NumPy does, on
the same operands: the hyperparameter expressions (``1 - beta1``, ``lr / (1 - beta1**t)``,
``sqrt(1 - beta2**t)``, ...) are computed in Python floats and rounded once to the
parameter's dtype, as NumPy 2 does with a Python scalar (NEP 50). The kernels are compiled
*without* fast-math: ``contract`` would fuse ``m beta1 + g (1-beta1)`` into one rounding
and ``arcp`` would turn the divisions into multiplications by a reciprocal, each off by an
ulp here and there. Exact division and sqrt are what the kernel computes most of, so this
costs time where the arrays sit in cache (350k elements: 0.16 ms against 0.105 ms with
fast-math; 55 µs of a char-LSTM step of ~50 ms), and buys an update that is bit for bit
the lesson's (tests/test_kernels_optim.py checks equality). Hyperparameters that are
NumPy scalars change the reference's arithmetic (a ``np.float64`` lr makes a float32
update compute in float64), so they take the reference.

**Threads.** The element loops are independent, so a ``prange`` split over elements gives
the same bits with any number of threads. It is used from :data:`PARALLEL_MIN` (4M)
elements, where the update is bound by memory bandwidth and a second core adds some.
Measured on 2 shared cores (Adam, float32, best of many runs): 10M elements, serial 8.2 ms,
prange 5.6 ms; 4M, 2.1 and 1.5 ms; 1M, 0.45 and 0.52 ms (prange slower); 262k (the
char-LSTM's ``W_hh``), 0.11 and 0.16 ms. Below the threshold, which is every parameter of
the char-LSTM and the tiny GPT, waking Numba's threads costs more than the second core
saves, and more still while other processes hold the cores (prange on every parameter made
the tiny GPT's Adam step 4x slower, not faster). Numba's threads use the ``workqueue``
layer (kernels/_common.py): they sleep between calls and leave OpenBLAS alone.

**One call per parameter**, not one over all of them: a call costs ~1 µs, while handing
the arrays over as Numba typed lists cost more than the ~10 calls it saves (measured on
the char-LSTM's parameters: 260 µs against 166 µs per step).
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from ._common import BenchCase, jit, use_numba

__all__ = ["adam_update", "sgd_update", "fits", "PARALLEL_MIN", "bench_cases"]

PARALLEL_MIN = 1 << 22  # elements (4M) from which the prange kernels run

# Weight-decay modes of the Adam kernel.
_NO_DECAY, _L2, _DECOUPLED = 0, 1, 2


# ----------------------------------------------------------------------------- Adam


@jit(inline="always", fastmath=False)
def _adam_elem(p, g, m, v, vh, beta1, c1, beta2, c2, step_size, bc2_sqrt, eps, wd, mode,
               amsgrad):  # fmt: skip
    """One element of the Adam update: the new (theta, m, v, v_hat)."""
    if mode == _L2:
        g = p * wd + g  # g + lambda theta (wd = lambda)
    elif mode == _DECOUPLED:
        p = p * wd  # theta (1 - lr lambda) (wd = 1 - lr lambda)
    m = m * beta1 + g * c1  # m_t = beta1 m + (1 - beta1) g
    v = v * beta2 + (g * g) * c2  # v_t = beta2 v + (1 - beta2) g^2
    if amsgrad:
        if v > vh or v != v:  # np.maximum: the larger, and nan if either is nan
            vh = v
    else:
        vh = v
    denom = np.sqrt(vh) / bc2_sqrt + eps  # sqrt(v_hat) / sqrt(1 - beta2^t) + eps
    return p - (m / denom) * step_size, m, v, vh


@jit(fastmath=False)
def _adam_serial(p, g, m, v, vh, beta1, c1, beta2, c2, step_size, bc2_sqrt, eps, wd, mode,
                 amsgrad):  # fmt: skip
    """Adam over flat C-contiguous arrays, in place (vh is only touched with amsgrad)."""
    for i in range(p.size):
        p[i], m[i], v[i], vhi = _adam_elem(p[i], g[i], m[i], v[i], vh[i], beta1, c1, beta2,
                                           c2, step_size, bc2_sqrt, eps, wd, mode,
                                           amsgrad)  # fmt: skip
        if amsgrad:
            vh[i] = vhi


@jit(fastmath=False, parallel=True)
def _adam_parallel(p, g, m, v, vh, beta1, c1, beta2, c2, step_size, bc2_sqrt, eps, wd, mode,
                   amsgrad):  # fmt: skip
    """:func:`_adam_serial` split over elements between threads (same bits)."""
    for i in prange(p.size):
        p[i], m[i], v[i], vhi = _adam_elem(p[i], g[i], m[i], v[i], vh[i], beta1, c1, beta2,
                                           c2, step_size, bc2_sqrt, eps, wd, mode,
                                           amsgrad)  # fmt: skip
        if amsgrad:
            vh[i] = vhi


# ----------------------------------------------------------------------------- SGD


@jit(inline="always", fastmath=False)
def _sgd_elem(p, g, b, lr, mu, c_tau, wd, decay, momentum, first, nesterov):
    """One element of the SGD update: the new (theta, b)."""
    d = g
    if decay:
        d = p * wd + d  # g + lambda theta
    if momentum:
        if first:
            b = d  # b_1 = g_1, undamped
        else:
            b = b * mu + d * c_tau  # b_t = mu b + (1 - tau) g   (c_tau = 1: d * 1 is d)
        if nesterov:
            d = b * mu + d  # g + mu b_t
        else:
            d = b
    return p - d * lr, b


@jit(fastmath=False)
def _sgd_serial(p, g, b, lr, mu, c_tau, wd, decay, momentum, first, nesterov):
    """SGD over flat C-contiguous arrays, in place (b is only touched with momentum)."""
    for i in range(p.size):
        p[i], bi = _sgd_elem(p[i], g[i], b[i], lr, mu, c_tau, wd, decay, momentum, first,
                             nesterov)  # fmt: skip
        if momentum:
            b[i] = bi


@jit(fastmath=False, parallel=True)
def _sgd_parallel(p, g, b, lr, mu, c_tau, wd, decay, momentum, first, nesterov):
    """:func:`_sgd_serial` split over elements between threads (same bits)."""
    for i in prange(p.size):
        p[i], bi = _sgd_elem(p[i], g[i], b[i], lr, mu, c_tau, wd, decay, momentum, first,
                             nesterov)  # fmt: skip
        if momentum:
            b[i] = bi


# ----------------------------------------------------------------------------- entry points


def fits(p, *buffers) -> bool:
    """True when the kernels can update ``p`` and its buffers in place: NumPy float32 or
    float64 arrays (:func:`use_numba`), all of p's dtype and shape, C-contiguous and
    writeable. (The gradient is only read: any layout, see :func:`_flat_grad`.)

    Lesson 11 asks for this test: a kernel that walks a flat view of p and its buffers
    side by side must never be given a strided view (it would update the wrong elements),
    a read-only array, or a buffer of another dtype (it would round differently)."""
    # BEGIN SOLUTION lesson11 when a kernel may update a parameter and its buffers in place
    if not use_numba(p, *buffers):
        return False
    for a in (p, *buffers):
        if a.dtype != p.dtype or a.shape != p.shape:
            return False
        if not (a.flags.c_contiguous and a.flags.writeable):
            return False
    return True
    # END SOLUTION


def _plain(*values) -> bool:
    """Hyperparameters that are Python numbers (see the module docstring)."""
    return all(type(x) is float or type(x) is int for x in values)


def _flat_grad(g, p):
    """g as a flat C-contiguous array of p's dtype (a copy only if g is strided)."""
    if type(g) is not np.ndarray or g.dtype != p.dtype or g.shape != p.shape:
        return None
    return np.ascontiguousarray(g).reshape(-1)


def adam_update(p, g, m, v, vh, group: dict, step: int, decoupled: bool) -> bool:
    """Adam (``decoupled=False``) or AdamW step ``step`` (t >= 1) on ``p`` in place, with
    moments ``m``, ``v`` and, when ``vh`` is not None, amsgrad's running max ``vh``; the
    hyperparameters are the group's (``lr``, ``betas``, ``eps``, ``weight_decay``).

    Returns True when done; False, touching nothing, when the kernel does not apply (not a
    NumPy float32/float64 array, a buffer of another dtype or layout, a NumPy-scalar
    hyperparameter): the caller runs the reference then.
    """
    lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
    amsgrad = vh is not None
    bufs = (m, v, vh) if amsgrad else (m, v)
    if not (fits(p, *bufs) and _plain(lr, beta1, beta2, eps, wd, step)):
        return False
    gf = _flat_grad(g, p)
    if gf is None:
        return False
    f = p.dtype.type  # round each constant once to p's dtype, as NumPy does (NEP 50)
    if wd == 0:
        mode, wd_c = _NO_DECAY, f(0)
    elif decoupled:
        mode, wd_c = _DECOUPLED, f(1 - lr * wd)
    else:
        mode, wd_c = _L2, f(wd)
    step_size, bc2_sqrt = f(lr / (1 - beta1**step)), f(math.sqrt(1 - beta2**step))
    pf, mf, vf = p.reshape(-1), m.reshape(-1), v.reshape(-1)  # views: all C-contiguous
    vhf = vh.reshape(-1) if amsgrad else vf  # not touched without amsgrad
    kernel = _adam_parallel if p.size >= PARALLEL_MIN else _adam_serial
    kernel(pf, gf, mf, vf, vhf, f(beta1), f(1 - beta1), f(beta2), f(1 - beta2), step_size,
           bc2_sqrt, f(eps), wd_c, mode, amsgrad)  # fmt: skip
    return True


def sgd_update(p, g, buf, group: dict, first: bool) -> bool:
    """SGD on ``p`` in place with the group's ``lr``, ``momentum``, ``dampening``,
    ``weight_decay``, ``nesterov``; with momentum, ``buf`` is the momentum buffer,
    overwritten with :math:`b_1 = g_1` when ``first`` (the caller allocates it, e.g.
    ``np.empty_like(p)``). Returns True when done, False (touching nothing) when the kernel
    does not apply, as :func:`adam_update`."""
    lr, mu, tau, wd = group["lr"], group["momentum"], group["dampening"], group["weight_decay"]
    bufs = (buf,) if mu != 0 else ()
    if not (fits(p, *bufs) and _plain(lr, mu, tau, wd)):
        return False
    gf = _flat_grad(g, p)
    if gf is None:
        return False
    f = p.dtype.type
    pf = p.reshape(-1)
    bf = buf.reshape(-1) if mu != 0 else pf  # not touched without momentum
    kernel = _sgd_parallel if p.size >= PARALLEL_MIN else _sgd_serial
    kernel(pf, gf, bf, f(lr), f(mu), f(1 - tau), f(wd), wd != 0, mu != 0, bool(first),
           bool(group["nesterov"]))  # fmt: skip
    return True


# ----------------------------------------------------------------------------- benchmark


def _numpy_adam(p, g, m, v, lr, beta1, beta2, eps, t):
    """The reference's in-place NumPy expression (tinylm/optim/adam.py), for the table."""
    tmp = np.multiply(g, 1 - beta1)
    m *= beta1
    m += tmp
    np.multiply(g, g, out=tmp)
    tmp *= 1 - beta2
    v *= beta2
    v += tmp
    np.sqrt(v, out=tmp)
    tmp /= math.sqrt(1 - beta2**t)
    tmp += eps
    np.divide(m, tmp, out=tmp)
    tmp *= lr / (1 - beta1**t)
    p -= tmp


def _numpy_sgd(p, g, b, lr, mu):
    """The reference's SGD-momentum expression (tinylm/optim/sgd.py), for the table."""
    b *= mu
    b += g
    p -= lr * b


def bench_cases(quick: bool = False) -> list[BenchCase]:
    """Adam and SGD-momentum over one float32 parameter of 10M elements (1M quick), step 10
    of lr 1e-3 (Adam) / 0.01 with momentum 0.9 (SGD); torch: ``torch.optim`` on the same
    data, fused Adam where this PyTorch has it, else ``foreach=False``.

    The Adam target (5x the NumPy expression) is for 10M elements, where both are bound by
    memory traffic (PERFORMANCE.md). At the quick size the arrays nearly fit in cache and
    the exact kernel is bound by its two divisions and a square root per element (~3.5-4x
    measured), so the quick case carries no target."""
    n = 1_000_000 if quick else 10_000_000
    size = f"{n // 1_000_000}M float32"
    rng = np.random.default_rng(0)
    p = rng.standard_normal(n, dtype=np.float32)
    g = rng.standard_normal(n, dtype=np.float32)
    m, v, b = (np.zeros(n, np.float32) for _ in range(3))  # the values do not change the time
    adam = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0)
    sgd = dict(lr=0.01, momentum=0.9, dampening=0, weight_decay=0, nesterov=False)
    torch_adam = torch_sgd = None
    adam_label = "torch.optim.Adam"
    try:
        import torch

        tp, tq = torch.from_numpy(p.copy()), torch.from_numpy(p.copy())
        tp.grad, tq.grad = torch.from_numpy(g), torch.from_numpy(g)
        try:
            opt_adam = torch.optim.Adam([tp], lr=1e-3, fused=True)
            opt_adam.step()  # a PyTorch without fused CPU Adam fails here
            adam_label += " fused"
        except (RuntimeError, TypeError):
            opt_adam = torch.optim.Adam([tp], lr=1e-3, foreach=False)
            adam_label += " foreach=False"
        opt_sgd = torch.optim.SGD([tq], lr=0.01, momentum=0.9, foreach=False)
        torch_adam, torch_sgd = opt_adam.step, opt_sgd.step
    except ImportError:
        pass
    return [
        BenchCase(
            "Adam step (in place)", f"{size}; torch: {adam_label}",
            kernel=lambda: adam_update(p, g, m, v, None, adam, step=10, decoupled=False),
            numpy=lambda: _numpy_adam(p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 10),
            numpy_label="13 in-place ufunc calls (optim/adam.py)",
            torch=torch_adam, target=None if quick else 5.0,
        ),
        BenchCase(
            "SGD-momentum step (in place)", f"{size}; torch: foreach=False",
            kernel=lambda: sgd_update(p, g, b, sgd, first=False),
            numpy=lambda: _numpy_sgd(p, g, b, 0.01, 0.9),
            numpy_label="b *= mu; b += g; p -= lr * b",
            torch=torch_sgd,
        ),
    ]  # fmt: skip
