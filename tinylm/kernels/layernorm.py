r"""LayerNorm forward and backward over the last D elements, one row at a time.

Math (``F.layer_norm``, ``LayerNormFn``), for one row x of D elements:

    \mu = \frac1D \sum_j x_j,   \sigma^2 = \frac1D \sum_j (x_j - \mu)^2,
    r = (\sigma^2 + \epsilon)^{-1/2},   \hat x_j = (x_j - \mu) r,   y_j = w_j \hat x_j + b_j

    backward, with g_j = dy_j w_j and bars for means over the row:
    dx_j = r (g_j - \bar g - \hat x_j \overline{g \hat x}),
    dw = \sum_{rows} dy \hat x,   db = \sum_{rows} dy

Forward: two reads of the row (the mean, then the variance about it: the two-pass variance,
no cancellation of E[x^2] - \mu^2) and one write of y; it saves only \mu and r per row, not
\hat x. Backward, per row (which stays in cache): g = dy w into dx; the two row sums
(\bar g and \overline{g \hat x}, recomputing \hat x from x, \mu and r); then dx over g, and
dy \hat x and dy added into dw and db. The NumPy reference makes a temporary array for every
operator: about 10 passes over (N, D) floats forward and 15 backward.

Row sums. Numba vectorizes no sum here (LLVM may not reorder float additions without the
'reassoc' flag, which the kernels deliberately leave off), so a row sum runs in 8 interleaved
partial sums, j = 0, 8, 16, ... in s_0, j = 1, 9, ... in s_1, and so on, combined as
((s_0 + s_1) + (s_2 + s_3)) + ((s_4 + s_5) + (s_6 + s_7)): eight independent additions per
step instead of one chain (2x faster), in a fixed order. For D <= 128 this is the order in
which NumPy's pairwise sum adds a contiguous row. The error of the sum is at most
(ceil(D/8) + 3) u times the sum of |terms|.

Determinism. dw and db add the rows in row order, serially; everything else is per row. So
the result does not depend on the number of Numba threads. No ``prange``: split by rows it
would be as deterministic, but it measured slower (forward of 2048 x 128 float32: 121 us
serial, 170 us with 2 threads, on a 2-core machine where BLAS and Python want the cores too).
"""

from __future__ import annotations

import math

import numpy as np

from ._common import BenchCase, jit

__all__ = ["layer_norm_forward", "layer_norm_backward", "bench_cases"]


@jit(inline="always")
def _row_mean(x, i, d, inv_d):
    """(1/D) sum_j x[i, j], in 8 interleaved partial sums."""
    z = x.dtype.type(0)
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = z
    d8 = d - d % 8
    for j in range(0, d8, 8):
        s0 += x[i, j]
        s1 += x[i, j + 1]
        s2 += x[i, j + 2]
        s3 += x[i, j + 3]
        s4 += x[i, j + 4]
        s5 += x[i, j + 5]
        s6 += x[i, j + 6]
        s7 += x[i, j + 7]
    s = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    for j in range(d8, d):
        s += x[i, j]
    return s * inv_d


@jit(inline="always")
def _row_var(x, i, d, inv_d, m):
    """(1/D) sum_j (x[i, j] - m)^2, in 8 interleaved partial sums."""
    z = x.dtype.type(0)
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = z
    d8 = d - d % 8
    for j in range(0, d8, 8):
        c0 = x[i, j] - m
        c1 = x[i, j + 1] - m
        c2 = x[i, j + 2] - m
        c3 = x[i, j + 3] - m
        c4 = x[i, j + 4] - m
        c5 = x[i, j + 5] - m
        c6 = x[i, j + 6] - m
        c7 = x[i, j + 7] - m
        s0 += c0 * c0
        s1 += c1 * c1
        s2 += c2 * c2
        s3 += c3 * c3
        s4 += c4 * c4
        s5 += c5 * c5
        s6 += c6 * c6
        s7 += c7 * c7
    s = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    for j in range(d8, d):
        c = x[i, j] - m
        s += c * c
    return s * inv_d


@jit
def _forward(x, w, b, eps, inv_d, y, mean, rstd):
    """y = LayerNorm(x) row by row; mean[i] = mu, rstd[i] = r. x, y (N, D) C-contiguous;
    w, b (D,) (ones and zeros stand in for a missing weight or bias: one compiled version
    instead of four); eps, inv_d of x's dtype."""
    n, d = x.shape
    one = x.dtype.type(1)
    for i in range(n):
        m = _row_mean(x, i, d, inv_d)
        r = one / math.sqrt(_row_var(x, i, d, inv_d, m) + eps)
        mean[i] = m
        rstd[i] = r
        for j in range(d):
            y[i, j] = ((x[i, j] - m) * r) * w[j] + b[j]  # x-hat w + b


@jit
def _backward(dy, x, w, mean, rstd, inv_d, dx, dw, db):
    """dx (N, D) from dy, x, w (ones when there is no weight), mean, rstd; dw += sum_rows
    dy x-hat, db += sum_rows dy (zeroed by the caller), the rows added in order."""
    n, d = x.shape
    z = x.dtype.type(0)
    d8 = d - d % 8
    for i in range(n):
        m = mean[i]
        r = rstd[i]
        # pass 1: g = dy w into dx (pass 2 reads back these rounded values, so that
        # g - mean(g) cancels exactly where it should: no multiply-add may fuse dy w with it),
        # and the row sums of g and g x-hat, in 8 interleaved partial sums each
        for j in range(d):
            dx[i, j] = dy[i, j] * w[j]
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = z  # sum g
        c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = z  # sum g x-hat
        for j in range(0, d8, 8):
            a0 += dx[i, j]
            a1 += dx[i, j + 1]
            a2 += dx[i, j + 2]
            a3 += dx[i, j + 3]
            a4 += dx[i, j + 4]
            a5 += dx[i, j + 5]
            a6 += dx[i, j + 6]
            a7 += dx[i, j + 7]
            c0 += dx[i, j] * ((x[i, j] - m) * r)
            c1 += dx[i, j + 1] * ((x[i, j + 1] - m) * r)
            c2 += dx[i, j + 2] * ((x[i, j + 2] - m) * r)
            c3 += dx[i, j + 3] * ((x[i, j + 3] - m) * r)
            c4 += dx[i, j + 4] * ((x[i, j + 4] - m) * r)
            c5 += dx[i, j + 5] * ((x[i, j + 5] - m) * r)
            c6 += dx[i, j + 6] * ((x[i, j + 6] - m) * r)
            c7 += dx[i, j + 7] * ((x[i, j + 7] - m) * r)
        sg = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
        sgh = ((c0 + c1) + (c2 + c3)) + ((c4 + c5) + (c6 + c7))
        for j in range(d8, d):
            sg += dx[i, j]
            sgh += dx[i, j] * ((x[i, j] - m) * r)
        g_mean = sg * inv_d  # \bar g
        gh_mean = sgh * inv_d  # \overline{g \hat x}
        # pass 2: dx, and this row's terms of dw and db (vectorizes over j)
        for j in range(d):
            h = (x[i, j] - m) * r
            dx[i, j] = r * ((dx[i, j] - g_mean) - h * gh_mean)
            dw[j] += dy[i, j] * h
            db[j] += dy[i, j]


def _rows(a: np.ndarray, k: int) -> np.ndarray:
    """a as a C-contiguous (N, D) array, D the size of its last k dims (a copy only when a
    is strided)."""
    lead = a.ndim - k
    return np.ascontiguousarray(a).reshape(math.prod(a.shape[:lead]), math.prod(a.shape[lead:]))


def _flat(a, d: int, dtype, fill: float) -> np.ndarray:
    """a as a contiguous (D,) array; a missing weight or bias as ones or zeros."""
    return np.full(d, fill, dtype) if a is None else np.ascontiguousarray(a).reshape(-1)


def layer_norm_forward(x: np.ndarray, w, b, k: int, eps: float):
    """LayerNorm of x over its last k dims, weight w and bias b of those dims' shape (or
    None). Returns y (x's shape), mean and rstd (shape ``x.shape[:-k] + (1,) * k``, so they
    broadcast against x: x-hat = (x - mean) * rstd)."""
    shape = x.shape
    d = math.prod(shape[len(shape) - k:])
    x2 = _rows(x, k)  # (N, D)
    n = x2.shape[0]
    y = np.empty((n, d), dtype=x.dtype)
    mean = np.empty(n, dtype=x.dtype)
    rstd = np.empty(n, dtype=x.dtype)
    if n and d:
        t = x.dtype.type
        w1, b1 = _flat(w, d, x.dtype, 1.0), _flat(b, d, x.dtype, 0.0)
        _forward(x2, w1, b1, t(eps), t(1.0) / t(d), y, mean, rstd)
    else:  # what the reference gives: nan statistics for D = 0 (nothing to normalise)
        mean.fill(np.nan)
        rstd.fill(np.nan)
    stat_shape = shape[: len(shape) - k] + (1,) * k
    return y.reshape(shape), mean.reshape(stat_shape), rstd.reshape(stat_shape)


def layer_norm_backward(dy: np.ndarray, x: np.ndarray, w, mean: np.ndarray, rstd: np.ndarray,
                        k: int, need_dw: bool, need_db: bool):
    """(dx, dw, db) of LayerNorm over the last k dims from the saved mean and rstd; dw / db
    are None when not wanted (or when there is no weight / bias)."""
    shape = x.shape
    d = math.prod(shape[len(shape) - k:])
    x2, dy2 = _rows(x, k), _rows(dy, k)
    n = x2.shape[0]
    dx = np.empty((n, d), dtype=x.dtype)
    wshape = shape[len(shape) - k:]
    dw, db = np.zeros(d, dtype=x.dtype), np.zeros(d, dtype=x.dtype)  # (computed if unwanted:
    if n and d:  # two more adds per element, against 4 compiled versions)
        inv_d = x.dtype.type(1.0) / x.dtype.type(d)
        _backward(dy2, x2, _flat(w, d, x.dtype, 1.0), mean.reshape(-1), rstd.reshape(-1),
                  inv_d, dx, dw, db)
    return (dx.reshape(shape), dw.reshape(wshape) if need_dw else None,
            db.reshape(wshape) if need_db else None)


def _numpy_layer_norm(x, w, b, dy, eps=1e-5):
    """The reference's arithmetic in plain NumPy (forward, then backward): the bench oracle."""
    xc = x - x.mean(axis=-1, keepdims=True)
    r = 1.0 / np.sqrt((xc * xc).mean(axis=-1, keepdims=True) + eps)
    xhat = xc * r
    y = xhat * w + b
    g = dy * w
    dx = r * (g - g.mean(axis=-1, keepdims=True) - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    return y, dx, (dy * xhat).sum(axis=0), dy.sum(axis=0)


def _kernel_layer_norm(x, w, b, dy, eps=1e-5):
    y, mean, rstd = layer_norm_forward(x, w, b, 1, eps)
    dx, dw, db = layer_norm_backward(dy, x, w, mean, rstd, 1, True, True)
    return y, dx, dw, db


def bench_cases(quick: bool = False) -> list[BenchCase]:
    """LayerNorm forward + backward of a (N, D) float32 batch, weight and bias."""
    n, d = (256, 128) if quick else (2048, 128)
    rng = np.random.default_rng(0)
    x, dy = (rng.standard_normal((n, d)).astype(np.float32) for _ in range(2))
    w, b = (rng.standard_normal(d).astype(np.float32) for _ in range(2))
    torch_fn = None
    try:
        import torch

        xt = torch.from_numpy(x).requires_grad_()
        wt, bt = torch.from_numpy(w).requires_grad_(), torch.from_numpy(b).requires_grad_()
        dyt = torch.from_numpy(dy)

        def torch_fn():
            y = torch.nn.functional.layer_norm(xt, (d,), wt, bt, 1e-5)
            return torch.autograd.grad(y, (xt, wt, bt), dyt)
    except ImportError:
        pass
    return [BenchCase("layer_norm fwd+bwd", f"{n} x {d}",
                      kernel=lambda: _kernel_layer_norm(x, w, b, dy),
                      numpy=lambda: _numpy_layer_norm(x, w, b, dy),
                      numpy_label="NumPy expression (the reference)", torch=torch_fn)]
