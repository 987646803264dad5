"""Registry entries for the recurrent layers: ``nn.RNN``, ``nn.LSTM``, ``nn.GRU`` and their
cells, checked against plain NumPy loops (``np_rnn``, ...) and by gradcheck.

Each op builds the layer in float64 (RNG untouched) with the sample's arrays as its
parameters, in PyTorch's state-dict order (``weight_ih_l0, weight_hh_l0, bias_ih_l0,
bias_hh_l0, weight_ih_l1, ...``), so gradcheck covers the input, the initial state and
every weight. ``nn.LSTM``'s op returns ``(output, h_n, c_n)`` flat. Dropout between
layers draws its mask from a fixed ``seed`` (an argument of the op only), so every call
of a gradient check sees the same mask; the reference draws it the same way.

Sizes are tiny (I = H = 2, T = 3, B = 2) so that full Jacobians, and the second
derivatives of the smallest samples, stay cheap.
"""

from __future__ import annotations

import numpy as np

from .. import nn
from .opinfo import ErrorInput, OpInfo, SampleInput
from .registry_nn import KeepRng

I, H, T, B = 2, 2, 3, 2
_G = {nn.RNN: 1, nn.LSTM: 4, nn.GRU: 3, nn.RNNCell: 1, nn.LSTMCell: 4, nn.GRUCell: 3}


# ----------------------------------------------------------------------------- NumPy references


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def _bias(b):
    return 0.0 if b is None else b


def np_rnn_step(x, state, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh"):
    z = x @ w_ih.T + _bias(b_ih) + state[0] @ w_hh.T + _bias(b_hh)
    return (np.tanh(z) if nonlinearity == "tanh" else np.maximum(z, 0.0),)


def np_lstm_step(x, state, w_ih, w_hh, b_ih=None, b_hh=None):
    h, c = state
    i, f, g, o = np.split(x @ w_ih.T + _bias(b_ih) + h @ w_hh.T + _bias(b_hh), 4, axis=-1)
    c = _sig(f) * c + _sig(i) * np.tanh(g)
    return _sig(o) * np.tanh(c), c


def np_gru_step(x, state, w_ih, w_hh, b_ih=None, b_hh=None):
    (h,) = state
    xr, xz, xn = np.split(x @ w_ih.T + _bias(b_ih), 3, axis=-1)
    hr, hz, hn = np.split(h @ w_hh.T + _bias(b_hh), 3, axis=-1)
    r, z = _sig(xr + hr), _sig(xz + hz)
    n = np.tanh(xn + r * hn)
    return ((1 - z) * n + z * h,)


def _np_layers(step, x, states, weights, num_layers=1, bias=True, batch_first=False,
               dropout=0.0, seed=None, **step_kw):
    """A stack of recurrent layers, step by step, as PyTorch defines it."""
    unbatched = x.ndim == 2
    x = x[:, None] if unbatched else (x.transpose(1, 0, 2) if batch_first else x)  # (T, B, I)
    Hs = weights[1].shape[1]
    states = [np.zeros((num_layers, x.shape[1], Hs)) if s is None else
              (s[:, None] if unbatched else s) for s in states]
    per = 4 if bias else 2
    rng = np.random.default_rng(seed) if dropout else None
    finals = []
    for k in range(num_layers):
        if k > 0 and dropout:
            x = x * (rng.random(x.shape) >= dropout) / (1 - dropout)  # as F.dropout
        w = weights[per * k : per * (k + 1)]
        state = tuple(s[k] for s in states)
        out = []
        for t in range(x.shape[0]):
            state = step(x[t], state, *w, **step_kw)
            out.append(state[0])
        x = np.stack(out)
        finals.append(state)
    output = x[:, 0] if unbatched else (x.transpose(1, 0, 2) if batch_first else x)
    ns = [np.stack([f[j] for f in finals]) for j in range(len(finals[0]))]
    return [output] + [n[:, 0] if unbatched else n for n in ns]


def np_rnn(x, h0, *weights, **kw):
    return _np_layers(np_rnn_step, x, [h0], weights, **kw)


def np_lstm(x, h0, c0, *weights, **kw):
    return _np_layers(np_lstm_step, x, [h0, c0], weights, **kw)


def np_gru(x, h0, *weights, **kw):
    return _np_layers(np_gru_step, x, [h0], weights, **kw)


def _np_cell(step, n_states):
    def ref(x, *args, bias=True, **kw):
        states, weights = args[:n_states], args[n_states:]
        unbatched = x.ndim == 1
        x2 = x[None] if unbatched else x
        Hs = weights[1].shape[1]
        states = [np.zeros((x2.shape[0], Hs)) if s is None else (s[None] if unbatched else s)
                  for s in states]
        out = step(x2, states, *weights, **kw)
        out = [o[0] if unbatched else o for o in out]
        return out if n_states == 2 else out[0]

    return ref


# ----------------------------------------------------------------------------- ops


def _names(num_layers, bias, cell=False):
    out = []
    for k in range(num_layers):
        sfx = "" if cell else f"_l{k}"
        out += [f"weight_ih{sfx}", f"weight_hh{sfx}"]
        if bias:
            out += [f"bias_ih{sfx}", f"bias_hh{sfx}"]
    return out


def _build(cls, weights, names, **kw):
    """The layer with the sample's tensors as its parameters (RNG left untouched)."""
    with KeepRng():
        m = cls(weights[0].shape[1], weights[1].shape[1], dtype=weights[0].dtype, **kw)
    for name, t in zip(names, weights):
        m._parameters[name] = t
    return m


def _layer_op(cls, n_states):
    def op(input, *args, num_layers=1, bias=True, batch_first=False, dropout=0.0, seed=None,
           **kw):
        states, weights = args[:n_states], args[n_states:]
        m = _build(cls, weights, _names(num_layers, bias), num_layers=num_layers, bias=bias,
                   batch_first=batch_first, dropout=dropout, **kw)
        hx = None if states[0] is None else (states[0] if n_states == 1 else tuple(states))
        with KeepRng(seed):  # the dropout mask (if any) from a fixed seed
            output, hn = m(input, hx)
        return (output, hn) if n_states == 1 else (output, *hn)

    op.__name__ = f"nn_{cls.__name__.lower()}"
    return op


def _cell_op(cls, n_states):
    def op(input, *args, bias=True, **kw):
        states, weights = args[:n_states], args[n_states:]
        m = _build(cls, weights, _names(1, bias, cell=True), bias=bias, **kw)
        hx = None if states[0] is None else (states[0] if n_states == 1 else tuple(states))
        return m(input, hx)

    op.__name__ = f"nn_{cls.__name__.lower()}"
    return op


# ----------------------------------------------------------------------------- samples


def _weights(rng, cls, num_layers=1, bias=True, cell=False):
    G = _G[cls] * H
    out = []
    for k in range(num_layers):
        out += [rng.uniform(-1, 1, (G, I if k == 0 else H)), rng.uniform(-1, 1, (G, H))]
        if bias:
            out += [rng.uniform(-1, 1, G), rng.uniform(-1, 1, G)]
    return out


def _layer_samples(cls, n_states, extra=None, only=None):
    """batch_first both ways, 2 layers, with and without initial states, unbatched input,
    bias=False, a constant initial state, and dropout between layers (fixed seed)."""
    def samples(rng):
        def s(name, x_shape, L=1, given=True, gradgrad=False, nondiff=(), **kw):
            x = rng.standard_normal(x_shape)
            st_shape = (L, H) if len(x_shape) == 2 else (L, B, H)
            states = [rng.standard_normal(st_shape) * 0.5 if given else None
                      for _ in range(n_states)]
            w = _weights(rng, cls, L, kw.get("bias", True))
            return SampleInput((x, *states, *w), {"num_layers": L, **kw, **(extra or {})},
                               name=name, gradgrad=gradgrad, nondiff=nondiff)

        out = [
            s("T=2, initial state", (2, B, I), gradgrad=True),
            s("no state", (T, B, I), given=False),
            s("batch_first", (B, T, I), batch_first=True),
            s("batch_first, no state", (B, T, I), given=False, batch_first=True),
            s("2 layers", (T, B, I), L=2),
            s("2 layers, dropout 0.5, batch_first, no state", (B, T, I), L=2, given=False,
              batch_first=True, dropout=0.5, seed=3),
            s("bias=False", (T, B, I), bias=False),
            s("unbatched", (T, I)),
            s("unbatched, no state", (T, I), given=False),
            s("constant initial state", (T, B, I), nondiff=tuple(range(1, 1 + n_states))),
        ]
        return [x for x in out if only is None or x.name in only]

    return samples


def _cell_samples(cls, n_states, extra=None):
    def samples(rng):
        def s(name, x_shape, given=True, gradgrad=False, **kw):
            x = rng.standard_normal(x_shape)
            st_shape = x_shape[:-1] + (H,)
            states = [rng.standard_normal(st_shape) * 0.5 if given else None
                      for _ in range(n_states)]
            w = _weights(rng, cls, 1, kw.get("bias", True))
            return SampleInput((x, *states, *w), {**kw, **(extra or {})}, name=name,
                               gradgrad=gradgrad)

        return [
            s("state", (B, I), gradgrad=True),
            s("no state", (B, I), given=False),
            s("unbatched", (I,)),
            s("bias=False", (B, I), bias=False),
        ]

    return samples


# ----------------------------------------------------------------------------- errors


def _layer_errors(cls, n_states, extra=None):
    name = cls.__name__
    which = r"hidden\[0\]" if n_states == 2 else "hidden"

    def e(x_shape, state_shape, exc, match, x_dtype=np.float64, **kw):
        w = _weights(np.random.default_rng(0), cls)
        states = [None if state_shape is None else np.zeros(state_shape)] * n_states
        return ErrorInput(SampleInput((np.zeros(x_shape, x_dtype), *states, *w),
                                      {**(extra or {}), **kw}), exc, match)

    def errors():
        return [
            e((T, B, I, 1), None, ValueError, rf"{name}: Expected input to be 2D or 3D, got 4D"),
            e((T, B, I + 1), None, RuntimeError,
              rf"{name}: input.size\(-1\) must be equal to input_size. Expected {I}, got {I + 1}"),
            e((T, B, I), (1, B + 1, H), RuntimeError,
              rf"{name}: Expected {which} size \(1, {B}, {H}\), got \[1, {B + 1}, {H}\]"),
            e((T, I), (1, B, H), RuntimeError,
              rf"{name}: For unbatched 2-D input, hx should also be 2-D but got 3-D"),
            e((0, B, I), None, RuntimeError, rf"{name}: Expected sequence length to be larger"),
            e((T, B, I), None, TypeError, rf"{name}: input has dtype float32 but the parameters "
              "have float64", x_dtype=np.float32),
            e((T, B, I), None, NotImplementedError, rf"{name}: bidirectional=True is not "
              "implemented", bidirectional=True),
        ]

    return errors


def _cell_errors(cls, n_states, extra=None):
    name = cls.__name__

    def e(x_shape, state_shape, exc, match):
        w = _weights(np.random.default_rng(0), cls)
        states = [None if state_shape is None else np.zeros(state_shape)] * n_states
        return ErrorInput(SampleInput((np.zeros(x_shape), *states, *w), dict(extra or {})),
                          exc, match)

    def errors():
        return [
            e((1, B, I), None, ValueError, rf"{name}: Expected input to be 1D or 2D, got 3D"),
            e((B, I + 1), None, RuntimeError,
              rf"{name}: input has inconsistent input_size: got {I + 1} expected {I}"),
            e((B, I), (B + 1, H), RuntimeError,
              rf"{name}: Input batch size {B} doesn't match hidden0 batch size {B + 1}"),
            e((B, I), (B, H + 1), RuntimeError,
              rf"{name}: hidden0 has inconsistent hidden_size: got {H + 1}, expected {H}"),
            e((B, I), (H,), ValueError, rf"{name}: Expected hidden to be 2D for 2D input"),
        ]

    return errors


def _entries():
    out = []
    for cls, n, ref, extra in [(nn.RNN, 1, np_rnn, None),
                               (nn.LSTM, 2, np_lstm, None),
                               (nn.GRU, 1, np_gru, None)]:
        out.append(OpInfo(f"nn.{cls.__name__}", _layer_op(cls, n), _layer_samples(cls, n, extra),
                          _layer_errors(cls, n, extra), ref=ref))
    relu = {"nonlinearity": "relu"}
    out.append(OpInfo("nn.RNN(relu)", _layer_op(nn.RNN, 1),
                      _layer_samples(nn.RNN, 1, relu, ("T=2, initial state", "2 layers",
                                                       "unbatched", "bias=False")),
                      _layer_errors(nn.RNN, 1, relu), ref=np_rnn,
                      notes="relu's kink at 0 is almost surely not met by random samples"))
    for cls, n, step in [(nn.RNNCell, 1, np_rnn_step), (nn.LSTMCell, 2, np_lstm_step),
                         (nn.GRUCell, 1, np_gru_step)]:
        out.append(OpInfo(f"nn.{cls.__name__}", _cell_op(cls, n), _cell_samples(cls, n),
                          _cell_errors(cls, n), ref=_np_cell(step, n)))
    out.append(OpInfo("nn.RNNCell(relu)", _cell_op(nn.RNNCell, 1),
                      _cell_samples(nn.RNNCell, 1, relu), ref=_np_cell(np_rnn_step, 1)))
    return out


RNNS = _entries()
