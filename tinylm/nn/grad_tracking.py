r"""Record the gradient that reaches each time step of a recurrent layer, for the
vanishing/exploding-gradient plots of lessons 06-08.

    with nn.record_step_grads(model) as rec:
        output, h_n = model.rnn(x)          # the forward runs inside the block
        loss = loss_fn(output[-1])
    loss.backward()                         # inside or after the block
    rec.norms()                             # (T,): ||dL/dh_t|| for t = 0..T-1
    rec.grads("rnn", layer=0)               # (T, B, H): dL/dh_t itself

What is recorded is the *total* derivative dL/dh_t: through the output at step t and
through every later step (the recurrence), exactly the \bar h_t of BPTT that the
layer's backward computes (see ``tinylm/nn/rnn_cells.py``). For an LSTM,
``state="c"`` gives dL/dc_t, the gradient along the cell state.

Every ``RNN``, ``LSTM``, ``GRU`` and cell inside ``model`` that runs a forward inside the
block is recorded, each layer separately, under its dotted name in
``model.named_modules()`` ("" when ``model`` is itself the layer). Several forward calls
(truncated BPTT chunks, or a cell called once per step) are joined along time in call
order. A backward that runs twice through the same forward (``retain_graph=True``) adds
up, as ``.grad`` does.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..backend import to_numpy

__all__ = ["record_step_grads", "StepGrads"]

_active: list[StepGrads] = []


class StepGrads:
    """The gradients recorded by ``record_step_grads`` (see the module docstring)."""

    def __init__(self, model):
        self._names = {id(m): name for name, m in model.named_modules()}
        # (name, layer) -> one entry per forward call, in call order: {"h": array, "c": ...}
        self._calls: dict[tuple, list[dict]] = {}

    def _tap(self, module, layer: int) -> Callable | None:
        name = self._names.get(id(module))
        if name is None:
            return None
        slot: dict = {}
        self._calls.setdefault((name, layer), []).append(slot)

        def tap(h_grads, c_grads=None):
            for key, g in (("h", h_grads), ("c", c_grads)):
                if g is None:
                    continue
                g = np.stack([to_numpy(a) for a in g])  # (T, B, H)
                slot[key] = g if key not in slot else slot[key] + g

        return tap

    @property
    def names(self) -> list[tuple]:
        """The ``(module name, layer)`` pairs that ran a forward in the block."""
        return list(self._calls)

    def grads(self, name: str | None = None, layer: int = -1, state: str = "h") -> np.ndarray:
        """dL/dh_t (``state="c"``: dL/dc_t, LSTM only) of one layer: ``(T, B, H)``, the
        forward calls joined along time. ``name`` may be omitted when one module ran."""
        if state not in ("h", "c"):
            raise ValueError(f"record_step_grads: state must be 'h' or 'c', got {state!r}")
        modules = sorted({n for n, _ in self._calls})
        if not modules:
            raise RuntimeError("record_step_grads: no recurrent layer ran a forward inside the "
                               "block (run the model's forward inside the with statement)")
        if name is None:
            if len(modules) > 1:
                raise ValueError(f"record_step_grads: several recurrent modules ran; name one "
                                 f"of {modules}")
            name = modules[0]
        layers = sorted(k for n, k in self._calls if n == name)
        if not layers:
            raise KeyError(f"record_step_grads: no recorded module named {name!r}; recorded: "
                           f"{modules}")
        if not -len(layers) <= layer < len(layers):
            raise IndexError(f"record_step_grads: layer {layer} out of range for {name!r} with "
                             f"{len(layers)} layers")
        calls = self._calls[(name, layers[layer])]
        if any(state not in c for c in calls):
            if state == "c" and any("h" in c for c in calls):
                raise ValueError("record_step_grads: state='c' is recorded for LSTM layers only")
            raise RuntimeError(f"record_step_grads: no gradient has reached {name!r} layer "
                               f"{layers[layer]} yet: call backward() on a loss computed from "
                               "its output")
        return np.concatenate([c[state] for c in calls])

    def norms(self, name: str | None = None, layer: int = -1, state: str = "h") -> np.ndarray:
        """``(T,)``: the norm of the recorded gradient at each step, over batch and hidden."""
        g = self.grads(name, layer, state)
        return np.sqrt((g.astype(np.float64) ** 2).sum(axis=(1, 2)))


class record_step_grads:  # noqa: N801 - a context manager, named like no_grad
    """``with record_step_grads(model) as rec:`` records, for every recurrent layer in
    ``model`` that runs a forward inside the block, dL/dh_t at each time step when the
    backward runs (see the module docstring). Returns a ``StepGrads``."""

    def __init__(self, model):
        self.rec = StepGrads(model)

    def __enter__(self) -> StepGrads:
        _active.append(self.rec)
        return self.rec

    def __exit__(self, *exc):
        _active.remove(self.rec)
        return False


def tap_for(module, layer: int) -> Callable | None:
    """The callback a recurrent Function hands its per-step gradients to (None when no
    recording is on: the common case costs one list check)."""
    if not _active:
        return None
    taps = [t for t in (rec._tap(module, layer) for rec in _active) if t is not None]
    if not taps:
        return None
    if len(taps) == 1:
        return taps[0]

    def tap_all(*grads):
        for t in taps:
            t(*grads)

    return tap_all
