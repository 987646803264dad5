r"""Recurrent layers with PyTorch's API: ``RNN``, ``LSTM``, ``GRU`` and their cells.

Names, shapes, gate order, initialisation and return values are PyTorch's, so a PyTorch
state dict (as NumPy arrays) loads into these layers and back:

- parameters per layer k: ``weight_ih_l{k}`` (G H, I_k), ``weight_hh_l{k}`` (G H, H),
  ``bias_ih_l{k}``, ``bias_hh_l{k}`` (G H,), with G = 1 (RNN), 4 (LSTM: i, f, g, o) or
  3 (GRU: r, z, n); cells drop the ``_l{k}`` suffix;
- every parameter starts as U(-1/\sqrt{H}, 1/\sqrt{H}) from tinylm's generator;
- ``output, h_n = rnn(input, h_0)``; ``output, (h_n, c_n) = lstm(input, (h_0, c_0))``;
  input (T, B, I), or (B, T, I) with ``batch_first=True``, or (T, I) unbatched; states
  (num_layers, B, H) (never batch-first), or (num_layers, H) unbatched; zeros if omitted;
- ``dropout`` is applied to the output of every layer but the last, while training.

How a layer runs (see ``rnn_cells.py``): one product ``x W_ih^T + b_ih`` for all time
steps, then one Function per layer for the recurrence (``h_{t-1} W_hh^T + b_hh`` per
step); its backward returns the weight gradients as large products. Truncated backpropagation
through time: pass the last state back in detached, ``h = h.detach()``.
``bidirectional`` and LSTM's ``proj_size`` are not implemented (they raise).
"""

from __future__ import annotations

import math
import numbers
import warnings

from .. import backend
from ..ops import reshape, squeeze, stack, transpose, unsqueeze, unstack
from ..tensor import Tensor
from . import functional as F
from . import init
from .grad_tracking import tap_for
from .module import Module
from .parameter import new_parameter
from .rnn_cells import GRUFn, LSTMFn, RNNFn

__all__ = ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"]

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _check_sizes(name: str, **sizes) -> None:
    for key, v in sizes.items():
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{name}: {key} should be of type int, got: {type(v).__name__}")
        if v <= 0:
            raise ValueError(f"{name}: {key} must be greater than zero")


def _zeros(x: Tensor, *shape) -> Tensor:
    return Tensor._wrap(backend.xp_of(x.data).zeros(shape, dtype=x.dtype))


def _check_dtype(name: str, x: Tensor, w: Tensor, what: str = "input") -> None:
    if x.dtype != w.dtype:
        raise TypeError(f"{name}: {what} has dtype {x.dtype} but the parameters have "
                        f"{w.dtype} (convert one with .to(dtype))")


def _uniform_init(module: Module, hidden_size: int) -> None:
    """PyTorch's reset_parameters for RNNs: every parameter U(-1/sqrt(H), 1/sqrt(H))."""
    bound = 1.0 / math.sqrt(hidden_size) if hidden_size > 0 else 0.0
    for p in module.parameters():
        init.uniform_(p, -bound, bound)


# ----------------------------------------------------------------------------- layers


class _RNNBase(Module):
    """What RNN, LSTM and GRU share: parameters, checks, the loop over layers."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        if (isinstance(dropout, bool) or not isinstance(dropout, numbers.Real)
                or not 0 <= dropout <= 1):
            raise ValueError(f"{name}: dropout should be a number in range [0, 1] representing "
                             "the probability of an element being zeroed")
        _check_sizes(name, input_size=input_size, hidden_size=hidden_size,
                     num_layers=num_layers)
        for key, v in (("bias", bias), ("batch_first", batch_first)):
            if not isinstance(v, bool):
                raise TypeError(f"{name}: {key} should be of type bool, got: {type(v).__name__}")
        if bidirectional:
            raise NotImplementedError(
                f"{name}: bidirectional=True is not implemented in tinylm; run a second "
                f"{name} over the time-reversed input and cat the two outputs along the "
                "last dim")
        if proj_size:
            raise NotImplementedError(f"{name}: proj_size={proj_size} is not implemented in "
                                      "tinylm (LSTM with projections)")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so "
                          "non-zero dropout expects num_layers greater than 1, but got "
                          f"dropout={dropout} and num_layers={num_layers}", stacklevel=3)
        self.mode = mode
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size = False, 0
        G = _GATES[mode] * hidden_size
        for k in range(num_layers):
            fan_in = input_size if k == 0 else hidden_size
            setattr(self, f"weight_ih_l{k}", new_parameter((G, fan_in), device, dtype))
            setattr(self, f"weight_hh_l{k}", new_parameter((G, hidden_size), device, dtype))
            if bias:
                setattr(self, f"bias_ih_l{k}", new_parameter((G,), device, dtype))
                setattr(self, f"bias_hh_l{k}", new_parameter((G,), device, dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _uniform_init(self, self.hidden_size)

    def flatten_parameters(self) -> None:
        """A no-op kept for PyTorch compatibility (there is no cuDNN weight buffer)."""

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        return s

    def _weights(self, k: int) -> tuple:
        p = self._parameters
        return (p[f"weight_ih_l{k}"], p[f"weight_hh_l{k}"], p.get(f"bias_ih_l{k}"),
                p.get(f"bias_hh_l{k}"))

    def _project(self, x: Tensor, w_ih: Tensor, b) -> Tensor:
        """The input-to-hidden product of all T steps at once: (T, B, I) -> (T, B, G H)."""
        T, B, I = x.shape
        return reshape(F.linear(reshape(x, T * B, I), w_ih, b), T, B, w_ih.shape[0])

    def _check_state(self, h: Tensor, batched: bool, B: int, which: str = "hidden") -> Tensor:
        """One initial state: (L, B, H), or (L, H) for unbatched input -> (L, B, H)."""
        name = type(self).__name__
        if not isinstance(h, Tensor):
            raise TypeError(f"{name}: the initial state must be a Tensor, got "
                            f"{type(h).__name__}")
        if h.ndim != (3 if batched else 2):
            kind = "batched 3-D" if batched else "unbatched 2-D"
            raise RuntimeError(f"{name}: For {kind} input, hx should also be "
                               f"{3 if batched else 2}-D but got {h.ndim}-D tensor")
        if not batched:
            h = unsqueeze(h, 1)
        want = (self.num_layers, B, self.hidden_size)
        if tuple(h.shape) != want:
            got = list(h.shape) if batched else [h.shape[0], h.shape[2]]
            raise RuntimeError(f"{name}: Expected {which} size "
                               f"{want if batched else (want[0], want[2])}, got {got}")
        _check_dtype(name, h, self._weights(0)[1], which)
        return h

    def _states(self, hx, batched: bool, B: int, x: Tensor) -> list:
        """The initial state of each layer: a list of (B, H) Tensors (LSTM: of pairs)."""
        if hx is None:
            return [_zeros(x, B, self.hidden_size) for _ in range(self.num_layers)]
        return list(unstack(self._check_state(hx, batched, B)))

    def forward(self, input: Tensor, hx=None):
        name = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: input must be a Tensor, got {type(input).__name__}")
        if input.ndim not in (2, 3):
            raise ValueError(f"{name}: Expected input to be 2D or 3D, got {input.ndim}D instead")
        batched = input.ndim == 3
        x = unsqueeze(input, 1) if not batched else (
            transpose(input, 0, 1) if self.batch_first else input)  # (T, B, I)
        T, B, I = x.shape
        if I != self.input_size:
            raise RuntimeError(f"{name}: input.size(-1) must be equal to input_size. Expected "
                               f"{self.input_size}, got {I}")
        if T == 0:
            raise RuntimeError(f"{name}: Expected sequence length to be larger than 0")
        _check_dtype(name, x, self._weights(0)[0])
        states = self._states(hx, batched, B, x)
        finals = []
        for k in range(self.num_layers):
            if k > 0 and self.dropout > 0 and self.training:
                x = F.dropout(x, self.dropout, True)  # between layers, never after the last
            x, state = self._layer(k, x, states[k], tap_for(self, k))
            finals.append(state)
        output = x if batched and not self.batch_first else (
            transpose(x, 0, 1) if batched else squeeze(x, 1))
        return output, self._final(finals, batched)

    def _final(self, finals: list, batched: bool):
        h_n = stack(finals)  # (L, B, H)
        return h_n if batched else squeeze(h_n, 1)


class RNN(_RNNBase):
    r"""Elman RNN: ``h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)`` per layer
    (``nonlinearity="relu"``: relu). ``forward(input, h_0=None) -> output, h_n``:
    output (T, B, H) holds the last layer's h_t for every t, h_n (num_layers, B, H) the
    last step of every layer. See the module docstring and lessons/06_rnn_bptt.py."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' "
                             "or 'relu'.")
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size,
                         hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device=device, dtype=dtype)
        self.nonlinearity = nonlinearity

    def _layer(self, k: int, x: Tensor, h0: Tensor, tap):
        w_ih, w_hh, b_ih, b_hh = self._weights(k)
        xg = self._project(x, w_ih, b_ih)  # (T, B, H)
        y = RNNFn.apply(xg, w_hh, b_hh, h0, nonlinearity=self.nonlinearity, tap=tap)
        return y, y[-1]


class LSTM(_RNNBase):
    r"""Long short-term memory, PyTorch's gate order (i, f, g, o) in the 4H rows of each
    weight: ``forward(input, (h_0, c_0)=None) -> output, (h_n, c_n)``, c_n (num_layers, B, H)
    the last cell state of every layer. The gate equations and every gate's gradient are
    derived in ``LSTMFn`` (rnn_cells.py); see lessons/07_lstm.py."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, proj_size, device, dtype)

    def _states(self, hx, batched: bool, B: int, x: Tensor) -> list:
        if hx is None:
            zero = [_zeros(x, B, self.hidden_size) for _ in range(2 * self.num_layers)]
            return list(zip(zero[::2], zero[1::2]))
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise TypeError("LSTM: hx must be a tuple (h_0, c_0) of two Tensors, got "
                            f"{type(hx).__name__}")
        h0 = self._check_state(hx[0], batched, B, "hidden[0]")
        c0 = self._check_state(hx[1], batched, B, "hidden[1]")
        return list(zip(unstack(h0), unstack(c0)))

    def _layer(self, k: int, x: Tensor, state: tuple, tap):
        w_ih, w_hh, b_ih, b_hh = self._weights(k)
        xg = self._project(x, w_ih, b_ih)  # (T, B, 4H)
        y = LSTMFn.apply(xg, w_hh, b_hh, *state, tap=tap)  # (T + 1, B, H): h_1..h_T, c_T
        T = xg.shape[0]
        return y[:T], (y[T - 1], y[T])

    def _final(self, finals: list, batched: bool):
        h_n, c_n = stack([h for h, _ in finals]), stack([c for _, c in finals])
        return (h_n, c_n) if batched else (squeeze(h_n, 1), squeeze(c_n, 1))


class GRU(_RNNBase):
    r"""Gated recurrent unit, PyTorch's formulation and gate order (r, z, n):
    ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``, ``h' = (1 - z) * n + z * h``.
    ``forward(input, h_0=None) -> output, h_n``; derived in ``GRUFn`` (rnn_cells.py),
    see lessons/08_gru.py."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device=device, dtype=dtype)

    def _layer(self, k: int, x: Tensor, h0: Tensor, tap):
        w_ih, w_hh, b_ih, b_hh = self._weights(k)
        xg = self._project(x, w_ih, b_ih)  # (T, B, 3H)
        y = GRUFn.apply(xg, w_hh, b_hh, h0, tap=tap)  # (T, B, H)
        return y, y[-1]


# ----------------------------------------------------------------------------- cells


class _CellBase(Module):
    """One time step: ``weight_ih`` (G H, I), ``weight_hh`` (G H, H), ``bias_ih``,
    ``bias_hh`` (G H,); input (B, I) or (I,) unbatched; states (B, H) or (H,)."""

    def __init__(self, gates: int, input_size: int, hidden_size: int, bias: bool,
                 device, dtype):
        super().__init__()
        _check_sizes(type(self).__name__, input_size=input_size, hidden_size=hidden_size)
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        G = gates * hidden_size
        self.weight_ih = new_parameter((G, input_size), device, dtype)
        self.weight_hh = new_parameter((G, hidden_size), device, dtype)
        if bias:
            self.bias_ih = new_parameter((G,), device, dtype)
            self.bias_hh = new_parameter((G,), device, dtype)
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _uniform_init(self, self.hidden_size)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s

    def _input(self, input: Tensor) -> Tensor:
        """Check the input; return it as (B, I)."""
        name = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: input must be a Tensor, got {type(input).__name__}")
        if input.ndim not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.ndim}D instead")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"{name}: input has inconsistent input_size: got "
                               f"{input.shape[-1]} expected {self.input_size}")
        _check_dtype(name, input, self.weight_ih)
        return input if input.ndim == 2 else unsqueeze(input, 0)

    def _state(self, h, input: Tensor, x: Tensor) -> Tensor:
        """Check one state (None: zeros); return it as (B, H)."""
        name = type(self).__name__
        if h is None:
            return _zeros(x, x.shape[0], self.hidden_size)
        if not isinstance(h, Tensor):
            raise TypeError(f"{name}: the state must be a Tensor, got {type(h).__name__}")
        if h.ndim != input.ndim:
            raise ValueError(f"{name}: Expected hidden to be {input.ndim}D for "
                             f"{input.ndim}D input, got {h.ndim}D instead")
        h2 = h if h.ndim == 2 else unsqueeze(h, 0)
        if h2.shape[0] != x.shape[0]:
            raise RuntimeError(f"{name}: Input batch size {x.shape[0]} doesn't match hidden0 "
                               f"batch size {h2.shape[0]}")
        if h2.shape[1] != self.hidden_size:
            raise RuntimeError(f"{name}: hidden0 has inconsistent hidden_size: got "
                               f"{h2.shape[1]}, expected {self.hidden_size}")
        _check_dtype(name, h, self.weight_hh, "hidden")
        return h2

    def _xg(self, x: Tensor) -> Tensor:
        """x W_ih^T + b_ih as one step of a sequence: (1, B, G H)."""
        xg = F.linear(x, self.weight_ih, self.bias_ih)
        return reshape(xg, 1, *xg.shape)


class RNNCell(_CellBase):
    r"""One Elman step: ``h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)`` (or relu).
    ``forward(input, hx=None) -> h'``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: Unknown nonlinearity '{nonlinearity}'. Select from "
                             "'tanh' or 'relu'.")
        super().__init__(1, input_size, hidden_size, bias, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x = self._input(input)
        h = self._state(hx, input, x)
        y = RNNFn.apply(self._xg(x), self.weight_hh, self.bias_hh, h,
                        nonlinearity=self.nonlinearity, tap=tap_for(self, 0))  # (1, B, H)
        return reshape(y, *input.shape[:-1], self.hidden_size)


class LSTMCell(_CellBase):
    r"""One LSTM step, gate order (i, f, g, o): ``forward(input, (h, c)=None) -> (h', c')``
    (the math: ``LSTMFn`` in rnn_cells.py)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None,
                 dtype=None):
        super().__init__(4, input_size, hidden_size, bias, device, dtype)

    def forward(self, input: Tensor, hx: tuple | None = None) -> tuple:
        x = self._input(input)
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError("LSTMCell: hx must be a tuple (h, c) of two Tensors, got "
                            f"{type(hx).__name__}")
        h, c = (None, None) if hx is None else hx
        h, c = self._state(h, input, x), self._state(c, input, x)
        y = LSTMFn.apply(self._xg(x), self.weight_hh, self.bias_hh, h, c,
                         tap=tap_for(self, 0))  # (2, B, H): h', c'
        if input.ndim == 1:
            y = reshape(y, 2, self.hidden_size)  # (2, 1, H) -> (2, H)
        return y[0], y[1]


class GRUCell(_CellBase):
    r"""One GRU step, gate order (r, z, n): ``forward(input, hx=None) -> h'``
    (the math: ``GRUFn`` in rnn_cells.py)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None,
                 dtype=None):
        super().__init__(3, input_size, hidden_size, bias, device, dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x = self._input(input)
        h = self._state(hx, input, x)
        y = GRUFn.apply(self._xg(x), self.weight_hh, self.bias_hh, h,
                        tap=tap_for(self, 0))  # (1, B, H)
        return reshape(y, *input.shape[:-1], self.hidden_size)
