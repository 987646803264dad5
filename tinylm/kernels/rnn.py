r"""The recurrences of LSTM, GRU and the Elman RNN: one fused kernel per step, forward and
backward, around the one BLAS product per step that the recurrence cannot avoid.

The math is ``LSTMFn``, ``GRUFn`` and ``RNNFn`` in ``tinylm/nn/rnn_cells.py`` (derived there
and in lessons 06-08); this module computes the same numbers in fewer passes over memory.
The layer has already computed ``xg = x W_ih^T + b_ih`` for all steps (T, B, G H).

Forward, step t (LSTM; GRU and RNN alike):

    zT = W_hh h_{t-1}^T                       one BLAS product into a (G H, B) buffer
    z  = xg_t + (zT^T + b_hh)                 \
    i, f, g, o = \sigma, \sigma, tanh, \sigma  |  one kernel, one pass over the step's
    c_t = f c_{t-1} + i g,  h_t = o tanh c_t  /   (B, G H) numbers

The reference makes a temporary array for every operator (the bias add, the xg add, four
slices through their activation, 3 products and 2 sums for c and h, tanh): about 15 passes
over memory and 15 Python-level calls per step. The kernel reads the product, xg_t, b_hh
and c_{t-1} once and writes the activated gates, c_t, tanh c_t and h_t straight into
(T, ...) buffers allocated once per sequence, so nothing is stacked afterwards either.

Why ``W h^T`` and not ``h W^T``: with a small batch, OpenBLAS computes the (G H, B) result
10-30% faster (measured here: 187 vs 211-264 us for 32 x 256 by 256 x 1024 in float32;
the trick ``_affine`` in rnn_cells.py plays too). The kernel first copies that product back
to rows (B, G H), into the step's slice of the gate buffer (32k floats: ~20 us), then runs
its row loop in place.

Backward, step t from T down to 1 (the LSTM; \bar{} = total gradient of the loss):

    \bar h_t = dy_t + \bar z_{t+1} W_hh                       (the product: BLAS, below)
    \bar c_t = \bar c_{t+1}' + \bar h_t o (1 - tanh^2 c_t)    (\bar c' = what c_{t+1} passes back)
    \bar z   = [\bar c_t g i(1-i),  \bar c_t c_{t-1} f(1-f),  \bar c_t i (1-g^2),
                \bar h_t tanh c_t o(1-o)]                     -> dZ[t]  (B, 4H)
    \bar c_t' = \bar c_t f                                     (passed on to c_{t-1})

one kernel per step (reads dy_t, the product, the saved gates, tanh c_t, c_{t-1}; writes
dZ[t] and \bar c in place), then ``dZ[t] @ W_hh`` (BLAS) for the next step down. The
reference does the same with ~30 Tensor operations per step, each a pass over memory and a
few microseconds of Python. After the loop the weight gradient is one large product
``dW_hh = dZ^T H_prev``, (G H, T B) @ (T B, H), ``db_hh = dZ.sum`` and ``dxg = dZ`` itself,
exactly as the reference computes them (same products, same sums).

GRU: the kernel also saves ``hg^n = (h W_hn^T + b_hn)`` (it sits inside r * (...)); backward
writes both ``dxg_t = [\bar r, \bar z, \bar n]`` and ``\bar{hg}_t = [\bar r, \bar z, r \bar n]``
and keeps the direct part ``z \bar h_t`` of \bar h_{t-1} in place. RNN: h = tanh(z) or
relu(z), and \bar z = \bar h (1 - h^2) or \bar h [h > 0].

Vectorization: each kernel loops over the B rows and, inside, over j = 0..H-1 with every
gate's row taken as a 1-D slice (``a[:H]``, ``a[H:2H]``, ...). Indexing ``a[H + j]``, or
``a[r, H + j]`` on the 2-D array, kept LLVM from vectorizing (10x slower, measured: 275 vs
29 us for the LSTM cell at B=32, H=256). float32 uses ``fastmath``'s vectorizing exp, tanh
and sigmoid (within 3 ulp of NumPy's); float64 uses ``math.*`` and stays within a few ulp
of the reference.

Determinism: serial kernels, the same BLAS calls and sums in the same order every run, so
the bits do not depend on the number of Numba threads. No graph is recorded here: under
``create_graph=True`` (or with a ``record_step_grads`` tap) ``rnn_cells.py`` runs its
reference backward instead, from the buffers this forward filled.
"""

from __future__ import annotations

import numpy as np

from ._common import BenchCase, jit, use_numba
from .fastmath import sigmoid_, tanh_

__all__ = ["applies", "LSTMRun", "GRURun", "RNNRun", "bench_cases"]


def applies(*arrays) -> bool:
    """True when the fused kernels run: kernels on, every array (None = no bias, skipped) a
    NumPy float32/float64 array, all of one dtype (the reference would promote a mix)."""
    arrays = [a for a in arrays if a is not None]
    return use_numba(*arrays) and all(a.dtype == arrays[0].dtype for a in arrays)


# ----------------------------------------------------------------------------- shared


@jit
def _untranspose(zT, z):
    """z[r, k] = zT[k, r]: the step's product W h^T (G H, B) back to rows (B, G H)."""
    for r in range(zT.shape[1]):
        zr = z[r]
        for k in range(zT.shape[0]):
            zr[k] = zT[k, r]


def _bias(b, G: int, dtype) -> np.ndarray:
    """b_hh as a contiguous (G H,) array; zeros for a layer without bias (x + 0 = x)."""
    return np.zeros(G, dtype) if b is None else np.ascontiguousarray(b)


def _weight_grad(dz: np.ndarray, h_prev: np.ndarray) -> np.ndarray:
    """dW_hh = \\sum_t dz_t^T h_{t-1} as one (G H, T B) @ (T B, H) product."""
    T, B, G = dz.shape
    return dz.reshape(T * B, G).T @ h_prev.reshape(T * B, h_prev.shape[-1])


# ----------------------------------------------------------------------------- LSTM


@jit(inline="always")
def _lstm_row(xg, b, a, c_prev, c, tc, h):
    """One batch row: a holds h W^T (4H,) on entry and the activated gates on exit."""
    H = c.shape[0]
    x_i, x_f, x_g, x_o = xg[:H], xg[H : 2 * H], xg[2 * H : 3 * H], xg[3 * H :]
    b_i, b_f, b_g, b_o = b[:H], b[H : 2 * H], b[2 * H : 3 * H], b[3 * H :]
    a_i, a_f, a_g, a_o = a[:H], a[H : 2 * H], a[2 * H : 3 * H], a[3 * H :]
    for j in range(H):
        i = sigmoid_(x_i[j] + (a_i[j] + b_i[j]))  # z = xg_t + (h W^T + b_hh), as _affine
        f = sigmoid_(x_f[j] + (a_f[j] + b_f[j]))
        g = tanh_(x_g[j] + (a_g[j] + b_g[j]))
        o = sigmoid_(x_o[j] + (a_o[j] + b_o[j]))
        a_i[j], a_f[j], a_g[j], a_o[j] = i, f, g, o
        cj = f * c_prev[j] + i * g
        tcj = tanh_(cj)
        c[j], tc[j], h[j] = cj, tcj, o * tcj


@jit
def _lstm_forward_step(t, xg, zT, b, gates, hs, cs, tcs):
    """Step t (0-based): gates[t], cs[t + 1] = c_t, tcs[t] = tanh c_t, hs[t + 1] = h_t."""
    a = gates[t]  # (B, 4H)
    _untranspose(zT, a)
    for r in range(a.shape[0]):
        _lstm_row(xg[t, r], b, a[r], cs[t, r], cs[t + 1, r], tcs[t, r], hs[t + 1, r])


@jit(inline="always")
def _lstm_backward_row(dy, dh_in, dc, a, tc, c_prev, dz):
    """One batch row: dc holds \\bar c_{t+1}' on entry and \\bar c_t f on exit."""
    H = dc.shape[0]
    one = dc.dtype.type(1.0)
    a_i, a_f, a_g, a_o = a[:H], a[H : 2 * H], a[2 * H : 3 * H], a[3 * H :]
    d_i, d_f, d_g, d_o = dz[:H], dz[H : 2 * H], dz[2 * H : 3 * H], dz[3 * H :]
    for j in range(H):
        i, f, g, o, t = a_i[j], a_f[j], a_g[j], a_o[j], tc[j]
        dh = dy[j] + dh_in[j]  # total gradient into h_t
        dct = dc[j] + dh * o * (one - t * t)  # c_t feeds c_{t+1} and h_t = o tanh c_t
        d_i[j] = dct * g * (i * (one - i))
        d_f[j] = dct * c_prev[j] * (f * (one - f))
        d_g[j] = dct * i * (one - g * g)
        d_o[j] = dh * t * (o * (one - o))
        dc[j] = dct * f


@jit
def _lstm_backward_step(t, dy, dh_in, dc, gates, cs, tcs, dz):
    """Step t (0-based): dz[t] from dy[t] + dh_in (= dz[t + 1] W_hh), and dc in place."""
    for r in range(dc.shape[0]):
        _lstm_backward_row(dy[t, r], dh_in[r], dc[r], gates[t, r], tcs[t, r], cs[t, r],
                           dz[t, r])


class LSTMRun:
    """One fused LSTM forward over T steps (``LSTMFn``'s math); ``backward`` runs its BPTT.

    Buffers: ``gates`` (T, B, 4H) activated i, f, g, o; ``hs`` (T + 2, B, H) h_0..h_T, c_T;
    ``cs`` (T + 1, B, H) c_0..c_T; ``tcs`` (T, B, H) tanh c_t. ``y = hs[1:]`` is the
    Function's output: h_1..h_T, then c_T.
    """

    def __init__(self, xg, w_hh, b_hh, h0, c0):
        xg = np.ascontiguousarray(xg)
        T, B, G = xg.shape
        H = G // 4
        dt = xg.dtype
        b = _bias(b_hh, G, dt)
        self.gates = np.empty((T, B, G), dt)
        self.hs = np.empty((T + 2, B, H), dt)
        self.cs = np.empty((T + 1, B, H), dt)
        self.tcs = np.empty((T, B, H), dt)
        self.hs[0], self.cs[0] = h0, c0
        zT = np.empty((G, B), dt)
        with np.errstate(all="ignore"):  # inf/nan pass through, as in NumPy
            for t in range(T):
                np.matmul(w_hh, self.hs[t].T, out=zT)  # (4H, B): W h_{t-1}^T
                _lstm_forward_step(t, xg, zT, b, self.gates, self.hs, self.cs, self.tcs)
        self.hs[T + 1] = self.cs[T]
        self.y = self.hs[1:]  # (T + 1, B, H)

    def backward(self, dy, w_hh, need) -> tuple:
        """(dxg, dW_hh, db_hh, dh_0, dc_0) as arrays (None where not needed) from dy (T + 1,
        B, H): the gradients of h_1..h_T and of c_T."""
        dy = np.ascontiguousarray(dy)
        T, B, G = self.gates.shape
        dz = np.empty((T, B, G), dy.dtype)
        dh_in = np.zeros((B, G // 4), dy.dtype)  # \bar z_{t+1} W_hh; zero above the top step
        dc = dy[T].copy()  # the gradient of the output c_T
        with np.errstate(all="ignore"):
            for t in range(T - 1, -1, -1):
                _lstm_backward_step(t, dy, dh_in, dc, self.gates, self.cs, self.tcs, dz)
                if t > 0:
                    np.matmul(dz[t], w_hh, out=dh_in)  # (B, 4H) @ (4H, H)
            dh0 = dz[0] @ w_hh if need[3] and T > 0 else None
            dw = _weight_grad(dz, self.hs[:T]) if need[1] else None
            db = dz.sum(axis=(0, 1)) if need[2] else None
        return dz, dw, db, dh0, dc

    def reference_saves(self) -> dict:
        """What ``LSTMFn``'s reference backward reads from ctx, as views of the buffers."""
        H = self.tcs.shape[-1]
        gates = [(a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :], tc)
                 for a, tc in zip(self.gates, self.tcs)]
        return {"gates": gates, "cs": list(self.cs), "hs": self.hs}


# ----------------------------------------------------------------------------- GRU


@jit(inline="always")
def _gru_row(xg, b, a, hgn, h_prev, h):
    """One batch row: a holds h W^T (3H,) on entry and the gates r, z, n on exit."""
    H = h.shape[0]
    one = h.dtype.type(1.0)
    x_r, x_z, x_n = xg[:H], xg[H : 2 * H], xg[2 * H :]
    b_r, b_z, b_n = b[:H], b[H : 2 * H], b[2 * H :]
    a_r, a_z, a_n = a[:H], a[H : 2 * H], a[2 * H :]
    for j in range(H):
        r = sigmoid_(x_r[j] + (a_r[j] + b_r[j]))  # hg = h W^T + b_hh, as _affine
        z = sigmoid_(x_z[j] + (a_z[j] + b_z[j]))
        hn = a_n[j] + b_n[j]  # b_hn sits inside the product with r
        n = tanh_(x_n[j] + r * hn)
        a_r[j], a_z[j], a_n[j], hgn[j] = r, z, n, hn
        h[j] = (one - z) * n + z * h_prev[j]


@jit
def _gru_forward_step(t, xg, zT, b, gates, hgn, hs):
    """Step t (0-based): gates[t] = r, z, n; hgn[t] = hg^n; hs[t + 1] = h_t."""
    a = gates[t]  # (B, 3H)
    _untranspose(zT, a)
    for r in range(a.shape[0]):
        _gru_row(xg[t, r], b, a[r], hgn[t, r], hs[t, r], hs[t + 1, r])


@jit(inline="always")
def _gru_backward_row(dy, direct, mm, a, hgn, h_prev, dxg, dhg):
    """One batch row. On entry direct = z_{t+1} \\bar h_{t+1} and mm = \\bar{hg}_{t+1} W_hh;
    on exit direct = z_t \\bar h_t."""
    H = direct.shape[0]
    one = direct.dtype.type(1.0)
    a_r, a_z, a_n = a[:H], a[H : 2 * H], a[2 * H :]
    x_r, x_z, x_n = dxg[:H], dxg[H : 2 * H], dxg[2 * H :]
    g_r, g_z, g_n = dhg[:H], dhg[H : 2 * H], dhg[2 * H :]
    for j in range(H):
        r, z, n = a_r[j], a_z[j], a_n[j]
        dh = dy[j] + (direct[j] + mm[j])  # total gradient into h_t
        dn = dh * (one - z) * (one - n * n)  # h = (1 - z) n + z h_prev,  tanh' = 1 - n^2
        dz = dh * (h_prev[j] - n) * (z * (one - z))
        dr = dn * hgn[j] * (r * (one - r))  # n = tanh(xg_n + r hg_n)
        x_r[j], x_z[j], x_n[j] = dr, dz, dn
        g_r[j], g_z[j], g_n[j] = dr, dz, dn * r
        direct[j] = dh * z


@jit
def _gru_backward_step(t, dy, direct, mm, gates, hgn, hs, dxg, dhg):
    """Step t (0-based): dxg[t], dhg[t], and direct in place."""
    for r in range(direct.shape[0]):
        _gru_backward_row(dy[t, r], direct[r], mm[r], gates[t, r], hgn[t, r], hs[t, r],
                          dxg[t, r], dhg[t, r])


class GRURun:
    """One fused GRU forward over T steps (``GRUFn``'s math); ``backward`` runs its BPTT.

    Buffers: ``gates`` (T, B, 3H) r, z, n; ``hgn`` (T, B, H) h_{t-1} W_hn^T + b_hn;
    ``hs`` (T + 1, B, H) h_0..h_T. ``y = hs[1:]``.
    """

    def __init__(self, xg, w_hh, b_hh, h0):
        xg = np.ascontiguousarray(xg)
        T, B, G = xg.shape
        H = G // 3
        dt = xg.dtype
        b = _bias(b_hh, G, dt)
        self.gates = np.empty((T, B, G), dt)
        self.hgn = np.empty((T, B, H), dt)
        self.hs = np.empty((T + 1, B, H), dt)
        self.hs[0] = h0
        zT = np.empty((G, B), dt)
        with np.errstate(all="ignore"):
            for t in range(T):
                np.matmul(w_hh, self.hs[t].T, out=zT)  # (3H, B)
                _gru_forward_step(t, xg, zT, b, self.gates, self.hgn, self.hs)
        self.y = self.hs[1:]

    def backward(self, dy, w_hh, need) -> tuple:
        """(dxg, dW_hh, db_hh, dh_0) as arrays (None where not needed) from dy (T, B, H)."""
        dy = np.ascontiguousarray(dy)
        T, B, G = self.gates.shape
        dxg = np.empty((T, B, G), dy.dtype)
        dhg = np.empty((T, B, G), dy.dtype)
        direct = np.zeros((B, G // 3), dy.dtype)  # z_{t+1} \bar h_{t+1}; zero above the top
        mm = np.zeros((B, G // 3), dy.dtype)  # \bar{hg}_{t+1} W_hh
        with np.errstate(all="ignore"):
            for t in range(T - 1, -1, -1):
                _gru_backward_step(t, dy, direct, mm, self.gates, self.hgn, self.hs, dxg, dhg)
                if t > 0:
                    np.matmul(dhg[t], w_hh, out=mm)  # (B, 3H) @ (3H, H)
            dh0 = direct + dhg[0] @ w_hh if need[3] and T > 0 else None
            dw = _weight_grad(dhg, self.hs[:T]) if need[1] else None
            db = dhg.sum(axis=(0, 1)) if need[2] else None
        return dxg, dw, db, dh0

    def reference_saves(self) -> dict:
        """What ``GRUFn``'s reference backward reads from ctx, as views of the buffers."""
        H = self.hgn.shape[-1]
        gates = [(a[:, :H], a[:, H : 2 * H], a[:, 2 * H :]) for a in self.gates]
        return {"gates": gates, "hg_n": list(self.hgn), "hs": self.hs}


# ----------------------------------------------------------------------------- RNN


@jit(inline="always")
def _rnn_row(xg, b, h, relu):
    """One batch row: h holds h_{t-1} W^T on entry and h_t on exit."""
    zero = h.dtype.type(0.0)
    for j in range(h.shape[0]):
        z = xg[j] + (h[j] + b[j])
        if relu:
            h[j] = z if (z > zero or z != z) else zero  # np.maximum(z, 0): nan stays nan
        else:
            h[j] = tanh_(z)


@jit
def _rnn_forward_step(t, xg, zT, b, hs, relu):
    """Step t (0-based): hs[t + 1] = h_t."""
    h = hs[t + 1]
    _untranspose(zT, h)
    for r in range(h.shape[0]):
        _rnn_row(xg[t, r], b, h[r], relu)


@jit(inline="always")
def _rnn_backward_row(dy, dh_in, h, dz, relu):
    one, zero = h.dtype.type(1.0), h.dtype.type(0.0)
    for j in range(h.shape[0]):
        dh = dy[j] + dh_in[j]  # total gradient into h_t
        if relu:
            dz[j] = dh * (one if h[j] > zero else zero)  # [h > 0], as the reference
        else:
            dz[j] = dh * (one - h[j] * h[j])


@jit
def _rnn_backward_step(t, dy, dh_in, hs, dz, relu):
    """Step t (0-based): dz[t] from dy[t] + dh_in (= dz[t + 1] W_hh)."""
    for r in range(dh_in.shape[0]):
        _rnn_backward_row(dy[t, r], dh_in[r], hs[t + 1, r], dz[t, r], relu)


class RNNRun:
    """One fused Elman RNN forward over T steps (``RNNFn``'s math); ``backward`` runs its
    BPTT. Buffer: ``hs`` (T + 1, B, H) h_0..h_T; ``y = hs[1:]``."""

    def __init__(self, xg, w_hh, b_hh, h0, nonlinearity: str):
        xg = np.ascontiguousarray(xg)
        T, B, H = xg.shape
        dt = xg.dtype
        b = _bias(b_hh, H, dt)
        self.relu = nonlinearity == "relu"
        self.hs = np.empty((T + 1, B, H), dt)
        self.hs[0] = h0
        zT = np.empty((H, B), dt)
        with np.errstate(all="ignore"):
            for t in range(T):
                np.matmul(w_hh, self.hs[t].T, out=zT)  # (H, B)
                _rnn_forward_step(t, xg, zT, b, self.hs, self.relu)
        self.y = self.hs[1:]

    def backward(self, dy, w_hh, need) -> tuple:
        """(dxg, dW_hh, db_hh, dh_0) as arrays (None where not needed) from dy (T, B, H)."""
        dy = np.ascontiguousarray(dy)
        T, B, H = dy.shape
        dz = np.empty((T, B, H), dy.dtype)
        dh_in = np.zeros((B, H), dy.dtype)
        with np.errstate(all="ignore"):
            for t in range(T - 1, -1, -1):
                _rnn_backward_step(t, dy, dh_in, self.hs, dz, self.relu)
                if t > 0:
                    np.matmul(dz[t], w_hh, out=dh_in)  # (B, H) @ (H, H)
            dh0 = dz[0] @ w_hh if need[3] and T > 0 else None
            dw = _weight_grad(dz, self.hs[:T]) if need[1] else None
            db = dz.sum(axis=(0, 1)) if need[2] else None
        return dz, dw, db, dh0

    def reference_saves(self) -> dict:
        """What ``RNNFn``'s reference backward reads from ctx."""
        return {"hs": self.hs}


# ----------------------------------------------------------------------------- bench


def bench_cases(quick: bool = False) -> list[BenchCase]:
    """The LSTM recurrence (``LSTMFn`` forward + backward, float32) at the char-LSTM
    benchmark's size, T=64, B=32, H=256 (quick: T=8): fused against the reference (the
    same Function with the kernels off), and PyTorch's nn.LSTM with a 1-wide input, so
    that its input projection costs next to nothing and the rest is the same work."""
    from .. import kernels
    from ..autograd import backward
    from ..nn.rnn_cells import LSTMFn
    from ..tensor import Tensor

    T, B, H = (8, 32, 256) if quick else (64, 32, 256)
    rng = np.random.default_rng(0)
    f32 = np.float32
    xg = rng.standard_normal((T, B, 4 * H)).astype(f32)
    w = (rng.standard_normal((4 * H, H)) / np.sqrt(H)).astype(f32)
    b = rng.standard_normal(4 * H).astype(f32) * f32(0.1)
    h0, c0 = np.zeros((B, H), f32), np.zeros((B, H), f32)
    dy = rng.standard_normal((T + 1, B, H)).astype(f32)

    def tinylm_step():
        ts = [Tensor(a, requires_grad=True) for a in (xg, w, b, h0, c0)]
        y = LSTMFn.apply(*ts)
        backward([y], [Tensor(dy)])
        return [t.grad for t in ts]

    def reference_step():
        with kernels.reference():
            return tinylm_step()

    case = BenchCase("LSTM recurrence fwd+bwd", f"T={T}, B={B}, H={H}", kernel=tinylm_step,
                     numpy=reference_step, numpy_label="reference LSTMFn (per-step NumPy ops)")
    try:
        import torch
    except ImportError:
        return [case]
    lstm = torch.nn.LSTM(1, H)
    x_t = torch.from_numpy(rng.standard_normal((T, B, 1)).astype(f32)).requires_grad_()
    dy_t = torch.from_numpy(dy[:T])

    def torch_step():
        out, _ = lstm(x_t)
        return torch.autograd.grad(out, [x_t, *lstm.parameters()], dy_t)

    case.torch = torch_step
    return [case]
