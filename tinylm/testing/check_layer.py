"""Gradient-check a pair of NumPy forward/backward functions (CS231n style).

    def affine_forward(x, w, b):
        out = x @ w + b
        return out, (x, w)                     # the output, and a cache for backward

    def affine_backward(dout, cache):
        x, w = cache
        return dout @ w.T, x.T @ dout, dout.sum(axis=0)    # dx, dw, db

    check_layer(affine_forward, affine_backward, [x, w, b])   # True, or GradcheckError

No tinylm Tensor is needed: the pair is wrapped as a tinylm ``Function`` and handed
to :func:`tinylm.gradcheck`, so the checks and the report are gradcheck's own
(float64 central differences over every element; repeated backward agrees; a zero
``dout`` gives zero gradients; each gradient has its input's shape), with the
report naming the input by its parameter name: ``input 1 (w)``.

The contract:

- ``forward(*inputs, **kwargs)`` returns ``out`` or ``(out, cache)``. Without a cache,
  ``backward`` receives the inputs (a tuple) as its cache.
- ``backward(dout, cache)`` returns one gradient per input (``None`` for an input
  without one), or one per *checked* input. A lone array is a one-input layer's.
- Checked inputs: float arrays not listed in ``nondiff``. They must be float64.
  Integer or bool arrays (labels, ids) and other values (a dropout ``p``) are passed
  through unchanged and not checked.
- ``forward`` must not modify its inputs in place (it gets copies, and a change is
  reported), nor may ``backward`` modify ``dout``.
"""

from __future__ import annotations

import inspect
import re

import numpy as np

from ..autograd import Function
from ..gradcheck import GradcheckError, gradcheck
from ..tensor import Tensor

__all__ = ["check_layer"]


def _names(fn, n: int) -> list[str]:
    """The first n positional parameter names of fn ('' where unknown)."""
    try:
        params = [p.name for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    return (params + [""] * n)[:n]


def split_output(res, inputs: tuple) -> tuple:
    """A forward's result as ``(out, cache)``: ``(array, anything)`` is that pair, anything
    else is the output alone, with the inputs as the cache."""
    if isinstance(res, tuple) and len(res) == 2 and isinstance(res[0], (np.ndarray, np.generic,
                                                                       float)):
        return res
    return res, inputs


def _make_function(forward, backward, kwargs: dict, checked: list, name: str):
    """The pair as a Function subclass named ``name``."""
    n_checked = len(checked)

    def fwd(ctx, *arrays):
        copies = [a.copy() if isinstance(a, np.ndarray) else a for a in arrays]
        res = forward(*copies, **kwargs)
        for i, (a, c) in enumerate(zip(arrays, copies)):
            if isinstance(a, np.ndarray) and not np.array_equal(a, c, equal_nan=a.dtype.kind
                                                                in "fc"):
                raise ValueError(f"check_layer: {name}: forward modified its input {i} in "
                                 "place; compute into a new array instead")
        out, cache = split_output(res, tuple(copies))
        if isinstance(out, tuple):
            raise TypeError(f"check_layer: {name}: forward returned a tuple of {len(out)}; "
                            "return one output array, or (out, cache)")
        ctx.cache, ctx.n_inputs = cache, len(arrays)
        return np.asarray(out)

    def bwd(ctx, dy):
        dout = np.array(dy.data)  # its own copy: backward may not change the caller's
        grads = backward(dout, ctx.cache)
        if not isinstance(grads, (tuple, list)):
            grads = (grads,)
        grads = list(grads)
        if len(grads) == n_checked and n_checked != ctx.n_inputs:
            full = [None] * ctx.n_inputs
            for i, g in zip(checked, grads):
                full[i] = g
            grads = full
        if len(grads) != ctx.n_inputs:
            raise TypeError(f"check_layer: {name}: backward returned {len(grads)} gradient(s) "
                            f"for {ctx.n_inputs} input(s) ({n_checked} of them checked)")
        out = []
        for i, g in enumerate(grads):
            if g is None or i not in checked:
                out.append(None)
            else:
                g = np.asarray(g)
                if not np.issubdtype(g.dtype, np.floating):
                    raise TypeError(f"check_layer: {name}: backward returned a {g.dtype} "
                                    f"gradient for input {i}; gradients are float64 arrays")
                out.append(g)
        return tuple(out)

    return type(name, (Function,), {"forward": staticmethod(fwd), "backward": staticmethod(bwd),
                                     "__doc__": f"check_layer's wrapper of {name}"})


def check_layer(forward, backward, inputs, *, kwargs: dict | None = None, nondiff=(),
                eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
                fast_mode: bool = False, raise_exception: bool = True,
                seed: int = 0) -> bool:  # fmt: skip
    """Gradient-check ``backward`` against central differences of ``forward``.

    ``inputs`` is a sequence of the layer's positional inputs (NumPy arrays, or other
    values passed through); ``kwargs`` are passed to ``forward`` too; ``nondiff``
    lists positions of float arrays that are constants. Returns True, or raises
    :class:`tinylm.GradcheckError` naming the input (index and parameter name), the
    worst element, and the numerical and analytic values there (returns False instead
    with ``raise_exception=False``). Tolerances and ``fast_mode`` are gradcheck's.
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not this machinery
    inputs = list(inputs)
    kwargs = dict(kwargs or {})
    checked = [i for i, a in enumerate(inputs) if isinstance(a, np.ndarray)
               and a.dtype.kind == "f" and i not in nondiff]
    names = _names(forward, len(inputs))
    fname = getattr(forward, "__name__", type(forward).__name__)
    bname = getattr(backward, "__name__", type(backward).__name__)
    name = f"{fname}/{bname}"
    if not checked:
        raise ValueError(f"check_layer: {name}: no float input to check (float arrays are "
                         "checked unless listed in nondiff)")
    for i in checked:
        if inputs[i].dtype != np.float64:
            label = f"{i} ({names[i]})" if names[i] else str(i)
            raise TypeError(f"check_layer: input {label} has dtype {inputs[i].dtype}; gradient "
                            "checks need float64 (float32 central differences are dominated by "
                            "rounding error): pass x.astype(np.float64)")
    fn_cls = _make_function(forward, backward, kwargs, checked, name)
    tensors = [Tensor(a.copy(), requires_grad=True) if i in checked
               else Tensor(a) if isinstance(a, np.ndarray) else a
               for i, a in enumerate(inputs)]  # fmt: skip

    def layer(*args):
        return fn_cls.apply(*args)

    layer.__name__ = name
    try:
        return gradcheck(layer, tensors, eps=eps, atol=atol, rtol=rtol, fast_mode=fast_mode,
                         raise_exception=raise_exception, seed=seed)
    except GradcheckError as e:
        msg = re.sub(r"\binput (\d+)\b", lambda m: m.group(0) + (
            f" ({names[int(m.group(1))]})" if int(m.group(1)) < len(names)
            and names[int(m.group(1))] else ""), str(e).replace("gradcheck", "check_layer", 1))
        raise GradcheckError(msg, e.input_index, e.index, e.output_index, e.numerical,
                             e.analytic) from None
