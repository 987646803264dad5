r"""The recurrences of RNN, LSTM and GRU: one Function per cell type, run over a whole
sequence, with backpropagation through time (BPTT) derived in each docstring.

How the work is split (see PERFORMANCE.md, "Fuse the LSTM gate matmul"):

- the layer (``rnn.py``) computes the input projections of *all* time steps with one
  product, ``xg = x W_ih^T + b_ih`` of shape ``(T B, G H)``, through ``F.linear``;
- the Function here runs the recurrence: per step one product ``h_{t-1} W_hh^T + b_hh``
  and the cell's pointwise math, on plain arrays (no graph is recorded inside the loop);
- its backward walks the steps in reverse with Tensor ops, collecting the gradient
  ``dz_t`` of every step's hidden projection; the weight gradient is then *one* large
  product ``dW_hh = dZ^T H_prev``, (G H, T B) @ (T B, H), instead of T small ones added
  up, and ``dxg`` is ``dZ`` itself, which ``F.linear``'s backward turns into ``dW_ih``
  with one more large product.

A graph of per-step ops would cost T x (about 15 ops forward, 30 backward) of Python
overhead, T scatter-adds of zero-padded slices into the gradient of ``xg``, and T
accumulations of a (G H, H) weight gradient; the fused Function avoids all three.

Second derivatives: backward is written with Tensor ops. Under ``create_graph=True`` it
first recomputes the forward with Tensor ops from the saved inputs (the same ``*_loop``
and ``*_cell`` code, which runs on arrays and on Tensors), so the gradient is a
differentiable graph of the inputs and ``gradgradcheck`` holds. Otherwise it uses the
arrays the forward saved, and records nothing.

The cell functions (``rnn_cell``, ``lstm_cell``, ``gru_cell`` and their ``*_backward``)
are what lessons 06, 07 and 08 derive; see lessons/06_rnn_bptt.py, lessons/07_lstm.py
and lessons/08_gru.py. A Function returns one array, so ``LSTMFn`` returns ``h_1..h_T``
followed by ``c_T`` as one ``(T + 1, B, H)`` array, which the layer splits.

``tap``: a callback from ``grad_tracking.py`` (``record_step_grads``) that receives the
total gradient reaching each h_t (and c_t) as backward computes them; None normally.

Fused kernels (``tinylm/kernels/rnn.py``): on CPU float32/float64 arrays, unless
``TINYLM_KERNELS=reference``, each Function's forward runs a Numba kernel per step (the same
math in one pass) and its backward an array-level BPTT with one kernel and one product per
step. Under ``create_graph=True``, with a ``tap``, or with the kernels switched off before
backward, the reference backward below runs instead, from the fused forward's buffers.
"""

from __future__ import annotations

import numpy as np

from .. import kernels
from ..autograd import Function
from ..backend import xp_of
from ..ops import cat, matmul, relu, reshape, sigmoid, stack, tanh, transpose, unstack
from ..tensor import Tensor, is_grad_enabled

__all__ = [
    "RNNFn", "LSTMFn", "GRUFn",
    "rnn_cell", "rnn_cell_backward", "lstm_cell", "lstm_cell_backward",
    "gru_cell", "gru_cell_backward",
]  # fmt: skip


# ----------------------------------------------------------------------------- helpers
# The forward code runs on arrays (the fused forward) and on Tensors (the create_graph
# recompute); these helpers pick the op for whichever they are given.


def _sigmoid(x):
    if isinstance(x, Tensor):
        return sigmoid(x)
    return 1.0 / (1.0 + xp_of(x).exp(-x))  # exp(-x) = inf for x << 0 gives 0: exact


def _tanh(x):
    return tanh(x) if isinstance(x, Tensor) else xp_of(x).tanh(x)


def _relu(x):
    return relu(x) if isinstance(x, Tensor) else xp_of(x).maximum(x, 0)


def _affine(h, w, b):
    """The hidden projection ``h W^T + b`` of one step (b may be None). On arrays it is
    computed as ``(W h^T)^T``: BLAS then splits the G H rows of W among its threads
    instead of the B rows of h, which is faster for a small batch (measured here: 10%
    on one core, more on two)."""
    y = matmul(h, transpose(w, 0, 1)) if isinstance(h, Tensor) else (w @ h.T).T
    return y if b is None else y + b


def _wrap_all(items) -> list:
    """Saved arrays (or tuples of them) as constant Tensors, for a plain backward."""
    return [tuple(map(Tensor._wrap, a)) if isinstance(a, tuple) else Tensor._wrap(a)
            for a in items]


def _matrix(t: Tensor) -> Tensor:
    """(T, B, K) -> (T B, K): every step's rows stacked, for one large product."""
    return reshape(t, t.shape[0] * t.shape[1], t.shape[2])


def _hidden_grads(dz_steps: list, h_prev: Tensor, need_w: bool, need_b: bool) -> tuple:
    r"""dW_hh = \sum_t dz_t^T h_{t-1} as one (G H, T B) @ (T B, H) product, and
    db_hh = \sum_{t, b} dz_t; ``dZ`` stacked (T, B, G H) is returned too."""
    dz = stack(dz_steps)  # (T, B, G H)
    dw = matmul(transpose(_matrix(dz), 0, 1), _matrix(h_prev)) if need_w else None
    db = dz.sum(dim=(0, 1)) if need_b else None
    return dz, dw, db


def _save(ctx, *tensors, b_hh) -> None:
    """Save the inputs (b_hh last, and only when there is one: None is not an array)."""
    ctx.save_for_backward(*tensors, *(() if b_hh is None else (b_hh,)))


def _saved(ctx, n: int) -> tuple:
    """The n saved inputs, then b_hh (None when the layer has no bias)."""
    saved = ctx.saved_tensors
    return (*saved[:n], saved[n] if len(saved) > n else None)


def _fused(ctx, run: str, *arrays, **params) -> bool:
    """Run the forward with the fused kernels (``kernels/rnn.py``: class ``run``) when they
    apply to these arrays; keep the run (its buffers) on ctx for backward."""
    ctx.fused = None
    if kernels.enabled() and kernels.rnn.applies(*arrays):  # imports Numba on first use
        ctx.fused = getattr(kernels.rnn, run)(*arrays, **params)
    return ctx.fused is not None


def _fused_backward(ctx, dy: Tensor, w_hh: Tensor):
    """The fused backward's gradients (arrays) when the forward ran fused and nothing needs
    the reference now (no graph to record, no tap, kernels on); else None, after handing the
    fused forward's buffers to the reference backward as its saves."""
    run = getattr(ctx, "fused", None)
    if run is None:
        return None
    if not is_grad_enabled() and ctx.tap is None and kernels.rnn.applies(dy.data, w_hh.data):
        return run.backward(dy.data, w_hh.data, ctx.needs_input_grad)
    for name, value in run.reference_saves().items():
        setattr(ctx, name, value)
    return None


# ----------------------------------------------------------------------------- RNN


def rnn_cell(z, nonlinearity: str):
    r"""One Elman RNN step from its pre-activation ``z_t = xg_t + h_{t-1} W_hh^T + b_hh``
    (B, H): ``h_t = tanh(z_t)`` or ``relu(z_t)``. Arrays or Tensors."""
    # BEGIN SOLUTION lesson06
    return _tanh(z) if nonlinearity == "tanh" else _relu(z)
    # END SOLUTION


def rnn_cell_backward(dh: Tensor, h: Tensor, nonlinearity: str) -> Tensor:
    r"""The gradient of the pre-activation z_t from the total gradient ``dh`` reaching h_t:
    tanh'(z) = 1 - h^2 (written with the output), relu'(z) = [h > 0]."""
    # BEGIN SOLUTION lesson06
    if nonlinearity == "tanh":
        return dh * (1.0 - h * h)
    return dh * Tensor._wrap((h.data > 0).astype(h.dtype))  # piecewise constant: no graph
    # END SOLUTION


def _rnn_loop(xg, w_hh, b_hh, h0, nonlinearity: str) -> list:
    """The Elman recurrence on arrays or Tensors: [h_0, h_1, ..., h_T]."""
    hs = [h0]
    for t in range(xg.shape[0]):
        hs.append(rnn_cell(xg[t] + _affine(hs[-1], w_hh, b_hh), nonlinearity))  # (B, H)
    return hs


class RNNFn(Function):
    r"""The Elman recurrence over T steps, given the input projections.

    Forward:  z_t = xg_t + h_{t-1} W_{hh}^T + b_{hh},   h_t = \phi(z_t),   t = 1..T,
              \phi = tanh or relu,   xg_t = x_t W_{ih}^T + b_{ih}  (all t at once, in the layer)
    Backward: h_t feeds the output y_t and the next step, so the total gradient reaching it
              is  \bar h_t = dy_t + \bar z_{t+1} W_{hh}   (\bar z_{T+1} = 0);  then
              \bar z_t = \bar h_t \odot \phi'(z_t)   (tanh: 1 - h_t^2;  relu: [h_t > 0])
              d xg_t = \bar z_t,   dh_0 = \bar z_1 W_{hh},
              dW_{hh} = \sum_t \bar z_t^T h_{t-1}  (one (H, T B) @ (T B, H) product),
              db_{hh} = \sum_{t, b} \bar z_t.
              Going back k steps multiplies the gradient by k Jacobians
              diag(\phi'(z)) W_{hh}: it vanishes or explodes geometrically (lesson 06).
    Shapes:   xg (T, B, H), W_hh (H, H), b_hh (H,) or None, h0 (B, H) -> y (T, B, H) = h_1..h_T
    Saves:    xg, W_hh, h0, b_hh;  h_0..h_T as one array (recomputed under create_graph)
    """

    @staticmethod
    def forward(ctx, xg, w_hh, b_hh, h0, nonlinearity, tap=None):
        _save(ctx, xg, w_hh, h0, b_hh=b_hh)
        ctx.nonlinearity, ctx.tap = nonlinearity, tap
        if _fused(ctx, "RNNRun", xg, w_hh, b_hh, h0, nonlinearity=nonlinearity):
            return ctx.fused.y
        ctx.hs = xp_of(xg).stack(_rnn_loop(xg, w_hh, b_hh, h0, nonlinearity))  # (T + 1, B, H)
        return ctx.hs[1:]

    @staticmethod
    def backward(ctx, dy):
        xg, w_hh, h0, b_hh = _saved(ctx, 3)
        fused = _fused_backward(ctx, dy, w_hh)
        if fused is not None:
            return fused
        if is_grad_enabled():  # create_graph: h_t as Tensor functions of the inputs
            hs = _rnn_loop(xg, w_hh, b_hh, h0, ctx.nonlinearity)
            h_prev = stack(hs[:-1])
        else:
            hs, h_prev = _wrap_all(ctx.hs), Tensor._wrap(ctx.hs[:-1])
        need = ctx.needs_input_grad
        dys = unstack(dy)
        T = len(dys)
        dzs, dhs, dh_next = [None] * T, [None] * T, None
        for t in range(T - 1, -1, -1):
            dh = dys[t] if dh_next is None else dys[t] + dh_next  # total gradient into h_t
            dzs[t] = rnn_cell_backward(dh, hs[t + 1], ctx.nonlinearity)
            dhs[t] = dh
            # the gradient into h_{t-1} (into h_0 only when h_0 needs one)
            dh_next = matmul(dzs[t], w_hh) if t > 0 or need[3] else None  # (B, H) @ (H, H)
        if ctx.tap is not None:
            ctx.tap([d.data for d in dhs])
        dxg, dw, db = _hidden_grads(dzs, h_prev, need[1], need[2])
        return dxg, dw, db, dh_next


# ----------------------------------------------------------------------------- LSTM


def lstm_cell(z, c_prev):
    r"""One LSTM step from its pre-activations ``z_t = xg_t + h_{t-1} W_hh^T + b_hh``
    (B, 4H), in PyTorch's gate order (i, f, g, o), and the previous cell c_{t-1} (B, H).

    Returns ``(i, f, g, o, tanh c_t)`` (what backward needs), ``c_t`` and ``h_t``.
    Arrays or Tensors."""
    H = c_prev.shape[-1]
    # BEGIN SOLUTION lesson07
    i = _sigmoid(z[..., 0 * H : 1 * H])  # input gate: how much of g to write
    f = _sigmoid(z[..., 1 * H : 2 * H])  # forget gate: how much of c_{t-1} to keep
    g = _tanh(z[..., 2 * H : 3 * H])  # candidate values
    o = _sigmoid(z[..., 3 * H : 4 * H])  # output gate: how much of the cell to show
    c = f * c_prev + i * g  # the additive path
    tc = _tanh(c)
    h = o * tc
    # END SOLUTION
    return (i, f, g, o, tc), c, h


def lstm_cell_backward(dh: Tensor, dc: Tensor, gates: tuple, c_prev: Tensor) -> tuple:
    r"""One LSTM step backward. ``dh`` is the total gradient reaching h_t; ``dc`` the one
    reaching c_t other than through h_t (from c_{t+1}; at the last step, the gradient of
    the output c_T). Returns the gradient of the pre-activations ``dz`` (B, 4H), the
    total gradient of c_t, and the gradient it passes on to c_{t-1}."""
    i, f, g, o, tc = gates
    # BEGIN SOLUTION lesson07
    dc_t = dc + dh * o * (1.0 - tc * tc)  # c_t feeds c_{t+1} (dc) and h_t = o tanh(c_t)
    dz = cat([
        dc_t * g * (i * (1.0 - i)),  # c = f c_prev + i g,  sigmoid'(z) = i (1 - i)
        dc_t * c_prev * (f * (1.0 - f)),
        dc_t * i * (1.0 - g * g),  # tanh'(z) = 1 - g^2
        dh * tc * (o * (1.0 - o)),
    ], dim=-1)  # fmt: skip
    dc_prev = dc_t * f  # the additive path: only the forget gate scales it
    # END SOLUTION
    return dz, dc_t, dc_prev


def _lstm_loop(xg, w_hh, b_hh, h0, c0) -> tuple:
    """The LSTM recurrence on arrays or Tensors: per-step gates, [h_0..h_T], [c_0..c_T]."""
    gates, hs, cs = [], [h0], [c0]
    for t in range(xg.shape[0]):
        g, c, h = lstm_cell(xg[t] + _affine(hs[-1], w_hh, b_hh), cs[-1])  # z_t: (B, 4H)
        gates.append(g)
        hs.append(h)
        cs.append(c)
    return gates, hs, cs


class LSTMFn(Function):
    r"""The LSTM recurrence over T steps, given the input projections.

    Forward:  z_t = xg_t + h_{t-1} W_{hh}^T + b_{hh}, split into z^i, z^f, z^g, z^o (H each),
              i = \sigma(z^i),  f = \sigma(z^f),  g = \tanh(z^g),  o = \sigma(z^o),
              c_t = f \odot c_{t-1} + i \odot g,    h_t = o \odot \tanh(c_t)
              (xg_t = x_t W_{ih}^T + b_{ih}: all steps at once, in the layer)
    Backward: the totals reaching the states, from t = T down to 1 (\bar z_{T+1} = 0):
              \bar h_t = dy_t + \bar z_{t+1} W_{hh}
              \bar c_t = \bar h_t \odot o \odot (1 - \tanh^2 c_t) + \bar c_{t+1} \odot f_{t+1}
                         (at t = T the second term is dc_T, the gradient of the output c_T)
              then each gate through its activation (\sigma' = \sigma (1 - \sigma),
              \tanh' = 1 - \tanh^2):
              \bar z^i = \bar c_t \odot g \odot i (1 - i)
              \bar z^f = \bar c_t \odot c_{t-1} \odot f (1 - f)
              \bar z^g = \bar c_t \odot i \odot (1 - g^2)
              \bar z^o = \bar h_t \odot \tanh(c_t) \odot o (1 - o)
              d xg_t = \bar z_t,   dh_0 = \bar z_1 W_{hh},   dc_0 = \bar c_1 \odot f_1,
              dW_{hh} = \sum_t \bar z_t^T h_{t-1}  (one (4H, T B) @ (T B, H) product),
              db_{hh} = \sum_{t, b} \bar z_t.
              Along the cell state the gradient is only multiplied by f (no W_{hh}, no
              squashing): with f near 1 it survives many steps (lesson 07).
    Shapes:   xg (T, B, 4H), W_hh (4H, H), b_hh (4H,) or None, h0 (B, H), c0 (B, H)
              -> y (T + 1, B, H): y[:T] = h_1..h_T, y[T] = c_T
    Saves:    xg, W_hh, h0, c0, b_hh;  per step the gates and tanh(c_t), and h_0..h_T,
              c_0..c_T as arrays (recomputed with Tensor ops under create_graph)
    """

    @staticmethod
    def forward(ctx, xg, w_hh, b_hh, h0, c0, tap=None):
        _save(ctx, xg, w_hh, h0, c0, b_hh=b_hh)
        ctx.tap = tap
        if _fused(ctx, "LSTMRun", xg, w_hh, b_hh, h0, c0):
            return ctx.fused.y
        with np.errstate(over="ignore"):  # sigmoid's exp(-z) for z < -88 in float32
            ctx.gates, hs, ctx.cs = _lstm_loop(xg, w_hh, b_hh, h0, c0)
        ctx.hs = xp_of(xg).stack(hs + ctx.cs[-1:])  # (T + 2, B, H): h_0..h_T, c_T
        return ctx.hs[1:]

    @staticmethod
    def backward(ctx, dy):
        xg, w_hh, h0, c0, b_hh = _saved(ctx, 4)
        fused = _fused_backward(ctx, dy, w_hh)
        if fused is not None:
            return fused
        if is_grad_enabled():  # create_graph: the states as Tensor functions of the inputs
            gates, hs, cs = _lstm_loop(xg, w_hh, b_hh, h0, c0)
            h_prev = stack(hs[:-1])
        else:
            gates, cs = _wrap_all(ctx.gates), _wrap_all(ctx.cs)
            h_prev = Tensor._wrap(ctx.hs[:-2])  # (T, B, H): h_0..h_{T-1}
        need = ctx.needs_input_grad
        dys = unstack(dy)
        T = len(gates)
        dzs, dhs, dcs = [None] * T, [None] * T, [None] * T
        dh_next, dc = None, dys[T]
        for t in range(T - 1, -1, -1):
            dh = dys[t] if dh_next is None else dys[t] + dh_next  # total gradient into h_t
            dzs[t], dcs[t], dc = lstm_cell_backward(dh, dc, gates[t], cs[t])
            dhs[t] = dh
            dh_next = matmul(dzs[t], w_hh) if t > 0 or need[3] else None  # (B, 4H) @ (4H, H)
        if ctx.tap is not None:
            ctx.tap([d.data for d in dhs], [d.data for d in dcs])
        dxg, dw, db = _hidden_grads(dzs, h_prev, need[1], need[2])
        return dxg, dw, db, dh_next, dc


# ----------------------------------------------------------------------------- GRU


def gru_cell(xg, hg, h_prev):
    r"""One GRU step, PyTorch's gate order (r, z, n), from ``xg = x_t W_ih^T + b_ih`` and
    ``hg = h_{t-1} W_hh^T + b_hh`` (B, 3H) and h_{t-1} (B, H). Returns ``(r, z, n)`` and
    ``h_t``. Arrays or Tensors."""
    H = h_prev.shape[-1]
    # BEGIN SOLUTION lesson08
    r = _sigmoid(xg[..., 0 * H : 1 * H] + hg[..., 0 * H : 1 * H])  # reset gate
    z = _sigmoid(xg[..., 1 * H : 2 * H] + hg[..., 1 * H : 2 * H])  # update gate
    n = _tanh(xg[..., 2 * H : 3 * H] + r * hg[..., 2 * H : 3 * H])  # candidate
    h = (1.0 - z) * n + z * h_prev
    # END SOLUTION
    return (r, z, n), h


def gru_cell_backward(dh: Tensor, gates: tuple, hg_n: Tensor, h_prev: Tensor) -> tuple:
    r"""One GRU step backward from the total gradient ``dh`` reaching h_t; ``hg_n`` is the
    n-part of ``hg`` (``h_{t-1} W_hn^T + b_hn``). Returns the gradients of ``xg`` and of
    ``hg`` (B, 3H), and the direct part ``z dh`` of the gradient of h_{t-1}."""
    r, z, n = gates
    # BEGIN SOLUTION lesson08
    dn = dh * (1.0 - z) * (1.0 - n * n)  # h = (1 - z) n + z h_prev,  tanh' = 1 - n^2
    dz = dh * (h_prev - n) * (z * (1.0 - z))
    dr = dn * hg_n * (r * (1.0 - r))  # n = tanh(xg_n + r hg_n)
    dxg = cat([dr, dz, dn], dim=-1)
    dhg = cat([dr, dz, dn * r], dim=-1)  # r scales the whole hidden n-part, b_hn included
    # END SOLUTION
    return dxg, dhg, dh * z


def _gru_loop(xg, w_hh, b_hh, h0) -> tuple:
    """The GRU recurrence on arrays or Tensors: per-step gates and hg^n, [h_0..h_T]."""
    H = h0.shape[-1]
    gates, hg_n, hs = [], [], [h0]
    for t in range(xg.shape[0]):
        hg = _affine(hs[-1], w_hh, b_hh)  # (B, 3H)
        g, h = gru_cell(xg[t], hg, hs[-1])
        gates.append(g)
        hg_n.append(hg[..., 2 * H :])
        hs.append(h)
    return gates, hg_n, hs


class GRUFn(Function):
    r"""The GRU recurrence over T steps (PyTorch's formulation), given the input projections.

    Forward:  xg_t = x_t W_{ih}^T + b_{ih}  (in the layer),  hg_t = h_{t-1} W_{hh}^T + b_{hh},
              each split into r, z, n parts (H columns each):
              r = \sigma(xg^r + hg^r),   z = \sigma(xg^z + hg^z),
              n = \tanh(xg^n + r \odot hg^n),     h_t = (1 - z) \odot n + z \odot h_{t-1}
              (b_{hn} sits inside the product with r: it cannot be folded into xg)
    Backward: \bar h_t = dy_t + \bar{hg}_{t+1} W_{hh} + z_{t+1} \odot \bar h_{t+1}
              (through the next step's gates, and along the direct path), then
              \bar n = \bar h_t \odot (1 - z) \odot (1 - n^2)      (pre-activation of n)
              \bar z = \bar h_t \odot (h_{t-1} - n) \odot z (1 - z)
              \bar r = \bar n \odot hg^n \odot r (1 - r)
              d xg_t = [\bar r, \bar z, \bar n],   \bar{hg}_t = [\bar r, \bar z, \bar n \odot r]
              dW_{hh} = \sum_t \bar{hg}_t^T h_{t-1}  (one (3H, T B) @ (T B, H) product),
              db_{hh} = \sum_{t, b} \bar{hg}_t,   dh_0 = \bar{hg}_1 W_{hh} + z_1 \odot \bar h_1
    Shapes:   xg (T, B, 3H), W_hh (3H, H), b_hh (3H,) or None, h0 (B, H) -> y (T, B, H)
    Saves:    xg, W_hh, h0, b_hh;  per step the gates and hg^n, and h_0..h_T as arrays
              (recomputed with Tensor ops under create_graph)
    """

    @staticmethod
    def forward(ctx, xg, w_hh, b_hh, h0, tap=None):
        _save(ctx, xg, w_hh, h0, b_hh=b_hh)
        ctx.tap = tap
        if _fused(ctx, "GRURun", xg, w_hh, b_hh, h0):
            return ctx.fused.y
        with np.errstate(over="ignore"):  # sigmoid's exp(-z) for z < -88 in float32
            ctx.gates, ctx.hg_n, hs = _gru_loop(xg, w_hh, b_hh, h0)
        ctx.hs = xp_of(xg).stack(hs)  # (T + 1, B, H)
        return ctx.hs[1:]

    @staticmethod
    def backward(ctx, dy):
        xg, w_hh, h0, b_hh = _saved(ctx, 3)
        fused = _fused_backward(ctx, dy, w_hh)
        if fused is not None:
            return fused
        if is_grad_enabled():  # create_graph: everything as Tensor functions of the inputs
            gates, hg_n, hs = _gru_loop(xg, w_hh, b_hh, h0)
            h_prev = stack(hs[:-1])
        else:
            gates, hg_n, hs = _wrap_all(ctx.gates), _wrap_all(ctx.hg_n), _wrap_all(ctx.hs)
            h_prev = Tensor._wrap(ctx.hs[:-1])
        need = ctx.needs_input_grad
        dys = unstack(dy)
        T = len(dys)
        dxgs, dhgs, dhs, dh_next = [None] * T, [None] * T, [None] * T, None
        for t in range(T - 1, -1, -1):
            dh = dys[t] if dh_next is None else dys[t] + dh_next  # total gradient into h_t
            dxgs[t], dhgs[t], dh_direct = gru_cell_backward(dh, gates[t], hg_n[t], hs[t])
            dhs[t] = dh
            if t > 0 or need[3]:  # into h_0 only when h_0 needs it
                dh_next = dh_direct + matmul(dhgs[t], w_hh)  # (B, 3H) @ (3H, H)
            else:
                dh_next = None
        if ctx.tap is not None:
            ctx.tap([d.data for d in dhs])
        _, dw, db = _hidden_grads(dhgs, h_prev, need[1], need[2])
        return stack(dxgs), dw, db, dh_next
