r"""softmax and log_softmax along the last dim, forward and backward, and attention's masked
softmax: one row at a time, in two or three passes over the row instead of NumPy's six.

The math is that of ``tinylm.ops.softmax`` (the reference), row by row (one row = the last
dim, S entries):

    softmax      y_i = e^{z_i - m} / s,   m = \max_k z_k,   s = \sum_k e^{z_k - m}
                 backward  dz_i = y_i (g_i - \sum_k g_k y_k)
    log_softmax  y_i = (z_i - m) - \ln s
                 backward  dz_i = g_i - e^{y_i} \sum_k g_k
    masked       z = scale x + bias, z_j = -\infty where keep_j is False, then softmax; a row
                 with m = -\infty (nothing kept) gives y = 0 (``MaskedSoftmaxFn``)

Passes over a row: max; e^{z - m} written into the output and summed; the output scaled by
1/s. NumPy's ``exp(z - z.max()) / sum`` makes six (max, subtract, exp, sum, divide, plus a
temporary per step), and ``MaskedSoftmaxFn``'s reference three more (scale, add, where).
The backward is one dot product per row and one write. For a tiny array what counts is
the fixed cost: one kernel call (~1 us) instead of five NumPy calls (~5 us).

Reductions. LLVM vectorizes a float sum only if it may reorder it (the 'reassoc' flag the
kernels do not use), so :func:`row_sum` and :func:`row_dot` keep eight partial results,
element i going to lane i mod 8, and add the lanes in a fixed tree: the same order whatever
the threads, eight independent chains for the CPU to overlap (five to six times faster than
one running sum). :func:`row_max` compares integer keys of the floats instead, which LLVM
does vectorize. Indices are taken on a row view ``x[r]`` with ``range``, so Numba can drop
its negative-index wraparound, which would stop the elementwise loops from vectorizing. A
NaN reaches every sum, so a row with a NaN comes out all NaN, as NumPy's does.

All kernels here are serial (PERFORMANCE.md: threads only where the whole training step
gains): the attention softmax of the tiny GPT, (32, 4, 64, 64) float32, takes ~0.5 ms
forward and ~0.2 ms backward of a ~90 ms step. float64 goes through the C library's exp
(``fastmath``), which does not vectorize: a large float64 forward runs at about NumPy's
speed (measured 0.75x for 2048 x 65, 1.8x for (32, 4, 64, 64)); the backward of softmax,
with no exp, stays ~3x faster. float64 is the dtype of gradient checks, whose arrays are
small, where the kernel's fixed cost wins.
"""

from __future__ import annotations

import math

import numpy as np
from numba import types
from numba.extending import overload

from ._common import BenchCase, jit, use_numba
from .fastmath import exp_

__all__ = ["softmax", "softmax_backward", "log_softmax", "log_softmax_backward",
           "masked_softmax", "row_max", "row_sum", "row_dot", "row_sum_fold",
           "bench_cases"]


# ----------------------------------------------------------------------------- row reductions


# The max, through integer keys. Read a float's bits as a signed integer and flip the 31 (63)
# bits below the sign when the sign is set: the integers then order exactly as the floats
# do (-inf < ... < -0 < +0 < ... < +inf, a NaN beyond the infinity of its sign). An integer
# max is a reduction LLVM vectorizes without any fast-math flag (a float max needs 'nnan'),
# so row_max runs about twice as fast as eight float lanes (13 vs 21 us for 2,048 rows of
# 65), and it is exact: the key of the largest float is the largest key.
def _neg_inf_key(ftype, itype, bits):
    k = int(np.array(-np.inf, ftype).view(itype))
    return itype(k ^ ((1 << (bits - 1)) - 1))  # k < 0: flip the bits below the sign


_KEY32 = (np.int32(0x7FFFFFFF), np.int32(31), _neg_inf_key(np.float32, np.int32, 32))
_KEY64 = (np.int64(0x7FFFFFFFFFFFFFFF), np.int64(63), _neg_inf_key(np.float64, np.int64, 64))


@jit(inline="always")
def _key_max(k, mask, sh, lo):
    """The largest key of the integer view k of a row (lo for an empty row), as its key."""
    mx = lo
    for i in range(k.size):
        v = k[i]
        v = v ^ ((v >> sh) & mask)  # the order-preserving key
        mx = v if v > mx else mx
    return mx ^ ((mx >> sh) & mask)  # back to the float's bits


def _row_max_bits(x):
    """In plain Python (NUMBA_DISABLE_JIT=1) NumPy's max; inside kernels, the overload."""
    return x.max() if x.size else x.dtype.type(-np.inf)


@overload(_row_max_bits, inline="always")
def _row_max_bits_impl(x):
    if x.dtype == types.float32:
        m32, s32, lo32 = _KEY32
        return lambda x: np.int32(_key_max(x.view(np.int32), m32, s32, lo32)).view(np.float32)
    if x.dtype == types.float64:
        m64, s64, lo64 = _KEY64
        return lambda x: np.int64(_key_max(x.view(np.int64), m64, s64, lo64)).view(np.float64)
    return None


@jit(inline="always")
def row_max(x):
    """max of a 1-D C-contiguous row (-inf for an empty row; NaN if it holds a NaN without
    its sign bit, as NumPy's; a negative NaN is passed over, but reaches the sums)."""
    return _row_max_bits(x)


@jit(inline="always")
def row_sum(x):
    """sum of a 1-D row in 8 lanes, added in a fixed tree."""
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = x.dtype.type(0)
    n8 = x.size // 8
    for k in range(n8):
        b = x[8 * k:8 * k + 8]
        a0 += b[0]
        a1 += b[1]
        a2 += b[2]
        a3 += b[3]
        a4 += b[4]
        a5 += b[5]
        a6 += b[6]
        a7 += b[7]
    for i in range(8 * n8, x.size):
        a0 += x[i]
    return ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7))


@jit(inline="always")
def row_dot(x, y):
    """sum_i x_i y_i of two 1-D rows of one size, in 8 lanes."""
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = x.dtype.type(0)
    n8 = x.size // 8
    for k in range(n8):
        b = x[8 * k:8 * k + 8]
        c = y[8 * k:8 * k + 8]
        a0 += b[0] * c[0]
        a1 += b[1] * c[1]
        a2 += b[2] * c[2]
        a3 += b[3] * c[3]
        a4 += b[4] * c[4]
        a5 += b[5] * c[5]
        a6 += b[6] * c[6]
        a7 += b[7] * c[7]
    for i in range(8 * n8, x.size):
        a0 += x[i] * y[i]
    return ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7))


# Long rows (a vocabulary of 50,000 logits): the lanes above run at the speed of scalar
# adds (~2 per cycle). Folding the row in halves, a[i] += a[i + h], is an elementwise loop
# that LLVM does vectorize: a pairwise sum, in a fixed order, and more accurate too. Down
# to FOLD_MIN entries, then the lanes. It destroys its argument, so it serves a scratch row
# (the cross-entropy's e^{z - m}): 2,990 -> 2,530 us for 512 rows of 8,192. (The same fold
# for the max was no faster: a max over a row from memory runs at memory speed anyway.)
FOLD_MIN = 128


@jit(inline="always")
def row_sum_fold(a):
    """sum of a 1-D row by folding it in place (a is overwritten)."""
    n = a.size
    if n <= FOLD_MIN:
        return row_sum(a)
    while n > FOLD_MIN:
        h = n // 2
        lo, hi = a[:h], a[n - h:n]  # odd n: a[h] is left in the middle, kept for later
        for i in range(h):
            lo[i] += hi[i]
        n -= h
    return row_sum(a[:n])


# ----------------------------------------------------------------------------- kernels


# The kernels take C-contiguous arrays of any ndim >= 1 and view them as rows (R, S) inside,
# which saves the wrappers two reshape calls (~0.3 us of a ~1 us tiny softmax).


@jit
def _softmax_rows(x, y):
    """y = softmax(x) along the last dim."""
    x, y = x.reshape(-1, x.shape[-1]), y.reshape(-1, x.shape[-1])
    for r in range(x.shape[0]):
        xr, yr = x[r], y[r]
        m = row_max(xr)
        for i in range(xr.size):  # pass 2: e^{z - m}, kept in y
            yr[i] = exp_(xr[i] - m)
        s = row_sum(yr)
        for i in range(yr.size):  # pass 3: normalise
            yr[i] = yr[i] / s


@jit
def _log_softmax_rows(x, y):
    """y = log_softmax(x) along the last dim: (z - m) - ln s; y holds e^{z - m} in between."""
    x, y = x.reshape(-1, x.shape[-1]), y.reshape(-1, x.shape[-1])
    for r in range(x.shape[0]):
        xr, yr = x[r], y[r]
        m = row_max(xr)
        for i in range(xr.size):
            yr[i] = exp_(xr[i] - m)
        ls = math.log(row_sum(yr))
        for i in range(yr.size):
            yr[i] = (xr[i] - m) - ls


@jit
def _softmax_bwd_rows(y, g, dz, f):
    """dz = f * y (g - <g, y>) along the last dim (f: a scale folded in, 1 for softmax)."""
    S = y.shape[-1]
    y, g, dz = y.reshape(-1, S), g.reshape(-1, S), dz.reshape(-1, S)
    for r in range(y.shape[0]):
        yr, gr, dr = y[r], g[r], dz[r]
        dot = row_dot(gr, yr)
        for i in range(yr.size):
            dr[i] = f * (yr[i] * (gr[i] - dot))


@jit
def _log_softmax_bwd_rows(y, g, dz):
    """dz = g - e^y sum(g) along the last dim."""
    S = y.shape[-1]
    y, g, dz = y.reshape(-1, S), g.reshape(-1, S), dz.reshape(-1, S)
    for r in range(y.shape[0]):
        yr, gr, dr = y[r], g[r], dz[r]
        sg = row_sum(gr)
        for i in range(yr.size):
            dr[i] = gr[i] - exp_(yr[i]) * sg


@jit
def _masked_softmax_rows(x, xi, nx, bias, bi, nb, has_b, keep, ki, nk, has_k, scale, y):
    """y = softmax over each row of scale x + bias with entries where keep is False left out;
    a row with nothing left (max -inf) gives 0. Output row r reads row ``xi[r]`` of x (or
    ``r % nx`` when xi is empty), likewise bias and keep (a dummy row when has_b / has_k is
    False)."""
    ninf = y.dtype.type(-np.inf)
    for r in range(y.shape[0]):
        xr, yr = x[xi[r] if xi.size else r % nx], y[r]
        br = bias[bi[r] if bi.size else r % nb]
        kr = keep[ki[r] if ki.size else r % nk]
        if has_b and has_k:  # pass 1: the scores z, into y
            for i in range(yr.size):
                yr[i] = scale * xr[i] + br[i] if kr[i] else ninf
        elif has_k:
            for i in range(yr.size):
                yr[i] = scale * xr[i] if kr[i] else ninf
        elif has_b:
            for i in range(yr.size):
                yr[i] = scale * xr[i] + br[i]
        else:
            for i in range(yr.size):
                yr[i] = scale * xr[i]
        m = row_max(yr)
        if m == ninf:  # nothing to attend to: e^{-inf - 0} = 0, and 0 / 1 below
            m = y.dtype.type(0)
        for i in range(yr.size):  # pass 2: e^{z - m}
            yr[i] = exp_(yr[i] - m)
        s = row_sum(yr)
        if s == 0:
            s = y.dtype.type(1)
        for i in range(yr.size):  # pass 3: normalise
            yr[i] = yr[i] / s


# ----------------------------------------------------------------------------- array API


def _rows(a: np.ndarray) -> np.ndarray:
    """A C-contiguous (R, S) view (or copy) of ``a`` (..., S)."""
    a = np.ascontiguousarray(a)
    return a.reshape(-1, a.shape[-1]) if a.ndim != 2 else a


def softmax(z: np.ndarray) -> np.ndarray:
    """softmax of a NumPy float array along its last dim (any strides; ndim >= 1)."""
    z = np.ascontiguousarray(z)
    y = np.empty_like(z)
    if y.size:
        _softmax_rows(z, y)
    return y


def log_softmax(z: np.ndarray) -> np.ndarray:
    """log_softmax of a NumPy float array along its last dim."""
    z = np.ascontiguousarray(z)
    y = np.empty_like(z)
    if y.size:
        _log_softmax_rows(z, y)
    return y


def softmax_backward(y: np.ndarray, dy: np.ndarray, factor: float = 1.0) -> np.ndarray:
    """``factor * y (dy - sum(dy y))`` along the last dim: the softmax vector-Jacobian
    product (``factor`` folds in a following scale, e.g. attention's 1/sqrt(E))."""
    y, dy = np.ascontiguousarray(y), np.ascontiguousarray(dy)
    dz = np.empty_like(y)
    if dz.size:
        _softmax_bwd_rows(y, dy, dz, y.dtype.type(factor))
    return dz


def log_softmax_backward(y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """``dy - e^y sum(dy)`` along the last dim: the log_softmax vector-Jacobian product."""
    y, dy = np.ascontiguousarray(y), np.ascontiguousarray(dy)
    dz = np.empty_like(y)
    if dz.size:
        _log_softmax_bwd_rows(y, dy, dz)
    return dz


_NO_ROWS = np.empty(0, np.int64)


def _row_map(a: np.ndarray, out_shape: tuple):
    """``a`` broadcastable to ``out_shape`` (..., S) as (its rows (Ra, S), row index, Ra):
    output row r reads row ``index[r]``, or ``r % Ra`` when index is empty (a's rows
    repeat with period Ra: a equal to out, or a missing only leading dims, e.g. a causal
    (L, S) mask for (B, H, L, S) scores)."""
    S = out_shape[-1]
    lead = out_shape[:-1]
    shape = (1,) * (len(out_shape) - a.ndim) + a.shape
    if shape[-1] != S:  # broadcast along the last dim: copy it out (rare)
        shape = shape[:-1] + (S,)
        a = np.broadcast_to(a, shape)
    rows = _rows(a.reshape(shape))
    inner = shape[:-1]
    k = 0
    while k < len(inner) and inner[k] == 1:
        k += 1
    if inner[k:] == lead[k:]:  # only leading dims broadcast: rows repeat
        return rows, _NO_ROWS, rows.shape[0]
    n = int(np.prod(inner))
    idx = np.broadcast_to(np.arange(n).reshape(inner), lead).reshape(-1)
    return rows, np.ascontiguousarray(idx), n


def masked_softmax(x: np.ndarray, bias, keep, scale: float, out_shape: tuple) -> np.ndarray:
    """``MaskedSoftmaxFn``'s forward: softmax over the last dim of ``scale x + bias`` with
    the entries where ``keep`` is False left out (zeros for a row with none left). x, bias
    and keep broadcast to ``out_shape``; bias and keep may be None."""
    y = np.empty(out_shape, x.dtype)
    if y.size == 0:
        return y
    S = out_shape[-1]
    xr, xi, nx = _row_map(x, out_shape)
    if bias is None:  # a dummy row, never read
        br, bi, nb = np.zeros((1, S), x.dtype), _NO_ROWS, 1
    else:
        br, bi, nb = _row_map(bias, out_shape)
    if keep is None:
        kr, ki, nk = np.ones((1, S), np.bool_), _NO_ROWS, 1
    else:
        kr, ki, nk = _row_map(keep, out_shape)
    _masked_softmax_rows(xr, xi, nx, br, bi, nb, bias is not None, kr, ki, nk,
                         keep is not None, x.dtype.type(scale), y.reshape(-1, S))
    return y


# ----------------------------------------------------------------------------- benchmark


def bench_cases(quick: bool = False) -> list[BenchCase]:
    """softmax forward + backward over the last dim of attention-shaped scores: plain, and
    attention's causal masked softmax (scale, mask, softmax; the backward with the scale)."""
    B, H, L, S = (8, 4, 64, 64) if quick else (32, 4, 64, 64)
    rng = np.random.default_rng(0)
    z = rng.standard_normal((B, H, L, S)).astype(np.float32)
    g = rng.standard_normal((B, H, L, S)).astype(np.float32)
    keep = np.tril(np.ones((L, S), bool))
    c = np.float32(1 / 8)
    assert use_numba(z, g)

    def kernel():
        return softmax_backward(softmax(z), g)

    def numpy():
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        y = e / e.sum(axis=-1, keepdims=True)
        return y * (g - (g * y).sum(axis=-1, keepdims=True))

    def masked_kernel():
        return softmax_backward(masked_softmax(z, None, keep, c, z.shape), g, c)

    def masked_numpy():  # MaskedSoftmaxFn's reference
        a = np.where(keep, z * c, np.float32(-np.inf))
        a -= a.max(axis=-1, keepdims=True)
        np.exp(a, out=a)
        a /= a.sum(axis=-1, keepdims=True)
        return (a * (g - (g * a).sum(axis=-1, keepdims=True))) * c

    torch_fn = torch_masked = None
    try:
        import torch

        zt, gt = torch.from_numpy(z), torch.from_numpy(g)
        bias = torch.from_numpy(np.where(keep, 0.0, -np.inf).astype(np.float32))

        def torch_fn():
            zz = zt.clone().requires_grad_(True)
            torch.softmax(zz, dim=-1).backward(gt)
            return zz.grad

        def torch_masked():
            zz = zt.clone().requires_grad_(True)
            torch.softmax(zz * float(c) + bias, dim=-1).backward(gt)
            return zz.grad

    except ImportError:  # the table shows a dash
        pass

    size = f"(B,H,L,S)=({B},{H},{L},{S}) float32"
    return [
        BenchCase("softmax fwd+bwd", size, kernel, numpy,
                  "exp(z - max) / sum; y * (g - sum(g y))", torch_fn),
        BenchCase("causal masked softmax fwd+bwd", size, masked_kernel, masked_numpy,
                  "MaskedSoftmaxFn's where, max, exp, sum, divide; its backward", torch_masked),
    ]
