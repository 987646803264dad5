"""The graph: Function, Context, and the reverse-mode traversal.

A ``Function`` subclass defines one op. ``forward(ctx, *arrays, **params)`` sees
plain backend arrays and returns one array; ``backward(ctx, dy)`` returns one
gradient per positional input (``None`` where there is none). ``apply`` wraps
the arrays in Tensors and records the node. See lessons/01_autograd.py.

Backward functions are written with Tensor ops. ``backward()`` runs them under
``no_grad`` (nothing is recorded), and ``backward(create_graph=True)`` runs them
with grad mode on, so the gradient is itself a differentiable expression and
can be differentiated again (``gradgradcheck``).

The traversal is iterative (no recursion: a 5,000-op chain or a 1,000-step
unrolled RNN is fine), visits each node once, and frees the saved tensors of
every node it passes unless ``retain_graph=True``.
"""

from __future__ import annotations

import weakref

import numpy as np

from . import backend
from .tensor import Tensor, _grad_mode, enable_grad, no_grad, set_grad_enabled

__all__ = ["Function", "Context", "grad", "no_grad", "enable_grad", "set_grad_enabled"]

_FREED = "freed"


class Context:
    """Per-call scratch space shared by ``forward`` and ``backward``.

    ``save_for_backward(*arrays)`` keeps what backward needs. Saved inputs and the
    saved output come back from ``saved_tensors`` as the graph's own Tensors, so a
    backward written with Tensor ops is itself differentiable; anything else saved
    comes back as a constant Tensor. Other attributes (shapes, dims) may be set
    freely: ``ctx.dim = dim``.
    """

    # class-level defaults: a Context is made for every op call, so it has no __init__
    _saved = ()
    needs_input_grad = ()

    def save_for_backward(self, *arrays) -> None:
        self._saved = arrays

    @property
    def saved_tensors(self) -> tuple:
        saved = self._saved
        if saved is _FREED:
            raise RuntimeError(
                f"{self.fn.__name__}: trying to backward through the graph a second time "
                "(or to read saved tensors after they were freed). The first backward() "
                "freed them; pass retain_graph=True to the first call if you need a second."
            )
        out = []
        for s in saved:
            if isinstance(s, weakref.ref):
                s = s()
                if s is None:  # pragma: no cover - the output is alive while its graph is
                    raise RuntimeError(f"{self.fn.__name__}: the saved output was freed")
            elif not isinstance(s, Tensor):
                s = Tensor._wrap(np.asarray(s) if isinstance(s, np.generic) else s)
            out.append(s)
        return tuple(out)


class Function:
    """Base class of every differentiable op (the public custom-op contract).

    Subclasses implement two static methods::

        @staticmethod
        def forward(ctx, *arrays, **params) -> array
        @staticmethod
        def backward(ctx, dy) -> gradient or tuple of gradients (Tensors or arrays)

    and are called through ``Fn.apply(*tensors, **params)``. Positional inputs are
    Tensors (or arrays, treated as constants); keyword arguments are
    non-differentiable parameters passed through to ``forward``.
    """

    #: True for ops whose backward is array-level (fused kernels): they refuse
    #: ``create_graph=True`` with a clear error instead of returning wrong
    #: second derivatives.
    once_differentiable = False

    @staticmethod
    def forward(ctx, *arrays, **params):  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def backward(ctx, dy):  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **params) -> Tensor:
        if not _grad_mode.enabled:  # nothing is recorded: the short path (every backward op)
            y = cls.forward(Context(), *[x.data if isinstance(x, Tensor) else x for x in inputs],
                            **params)
            return Tensor._wrap(np.asarray(y) if isinstance(y, np.generic) else y)
        arrays = []
        needs = []
        tensors = []
        for x in inputs:
            if isinstance(x, Tensor):
                arrays.append(x.data)
                needs.append(x.requires_grad)
                tensors.append(x)
            else:
                arrays.append(x)
                needs.append(False)
                tensors.append(None)
        requires_grad = True in needs
        ctx = Context()
        if requires_grad:
            ctx.needs_input_grad = tuple(needs)
        y = cls.forward(ctx, *arrays, **params)
        if isinstance(y, np.generic):  # NumPy turns 0-d results into scalars
            scalar, y = y, np.asarray(y)
            if ctx._saved:  # what forward saved as the scalar is the output
                ctx._saved = tuple(y if s is scalar else s for s in ctx._saved)
        out = Tensor._wrap(y)
        if requires_grad:
            if out.data.dtype.kind not in "fc":
                raise TypeError(
                    f"{cls.__name__}: forward returned dtype {out.data.dtype} for inputs that "
                    "require grad; only floating point results can carry a gradient"
                )
            out.requires_grad = True
            ctx.fn = cls
            ctx.inputs = tensors
            if ctx._saved:
                ctx._saved = _link_saved(ctx._saved, arrays, tensors, out)
            out._ctx = ctx
        return out


def _link_saved(saved, arrays, tensors, out) -> list:
    """Replace each saved array by the Tensor of the graph that holds it, if any: an
    input's array by that input, the output's array by a weak reference to the output
    (a strong one would make a cycle out -> ctx -> out). Other arrays stay constants."""
    linked = []
    for s in saved:
        if s is out.data:
            linked.append(weakref.ref(out))
            continue
        for a, t in zip(arrays, tensors):
            if s is a and t is not None:
                linked.append(t)
                break
        else:
            linked.append(s)
    return linked


# --------------------------------------------------------------------------- traversal


def _as_grad(g, like: Tensor, fn, i: int) -> Tensor:
    """Check one gradient returned by ``fn.backward`` against its input."""
    if not isinstance(g, Tensor):
        if not hasattr(g, "shape"):
            raise TypeError(
                f"{fn.__name__}.backward returned {type(g).__name__} for input {i}; "
                "expected an array or a Tensor"
            )
        g = Tensor._wrap(g)
    if g.data.shape != like.data.shape:
        raise RuntimeError(
            f"{fn.__name__}.backward returned a gradient of shape {tuple(g.shape)} for input {i} "
            f"of shape {tuple(like.shape)} (a missing reduction over broadcast dims?)"
        )
    if g.data.dtype != like.data.dtype:
        raise RuntimeError(
            f"{fn.__name__}.backward returned a gradient of dtype {g.data.dtype} for input {i} "
            f"of dtype {like.data.dtype}"
        )
    return g


def run_backward(roots, grad_roots, retain_graph=False, create_graph=False, inputs=None):
    """Reverse-mode sweep from ``roots`` (Tensors) seeded with ``grad_roots``.

    With ``inputs=None`` the gradients of leaves are accumulated into ``.grad``.
    With a sequence of ``inputs`` their gradients are returned instead (a tuple,
    ``None`` for an input the roots do not depend on) and no ``.grad`` changes.
    """
    # 1. Count, for every tensor in the graph, how many edges lead into it.
    pending: dict[int, int] = {}
    # BEGIN SOLUTION lesson01 count each tensor's consumers into pending, with a stack
    stack = list({id(r): r for r in roots}.values())  # a root listed twice is one node
    seen = {id(r) for r in roots}
    while stack:
        t = stack.pop()
        ctx = t._ctx
        if ctx is None:
            continue
        for x in ctx.inputs:
            if x is None or not x.requires_grad:
                continue
            k = id(x)
            pending[k] = pending.get(k, 0) + 1
            if k not in seen:
                seen.add(k)
                stack.append(x)
    # END SOLUTION

    want = None if inputs is None else {id(x): i for i, x in enumerate(inputs)}
    results = [None] * (0 if inputs is None else len(inputs))

    # 2. Seed, then process each tensor once all of its consumers are done.
    grads: dict[int, Tensor] = {}
    claimed = {id(g.data) for g in grad_roots}  # arrays a leaf's .grad must not share
    for r, g in zip(roots, grad_roots):
        grads[id(r)] = g if id(r) not in grads else grads[id(r)] + g
    ready: list[Tensor] = []
    for r in roots:
        if pending.get(id(r), 0) == 0 and all(r is not q for q in ready):
            ready.append(r)

    with set_grad_enabled(create_graph):
        while ready:
            t = ready.pop()
            g = grads.pop(id(t), None)
            ctx = t._ctx
            if g is None:  # no gradient reached t: its inputs are done with it all the same
                if ctx is not None:
                    _release(ctx.inputs, pending, ready)
                continue
            if want is not None and id(t) in want:
                results[want[id(t)]] = g
            if ctx is None:
                if want is None:
                    _accumulate(t, g, create_graph, claimed)
                continue
            if want is None and t._retains_grad:
                _accumulate(t, g, create_graph, claimed)
            fn = ctx.fn
            if create_graph and fn.once_differentiable:
                raise RuntimeError(
                    f"{fn.__name__} is once-differentiable (its backward is a fused kernel): "
                    "create_graph=True cannot differentiate through it"
                )
            if ctx._saved is _FREED:
                ctx.saved_tensors  # raises the "second time" error, naming the op  # noqa: B018
            dxs = fn.backward(ctx, g)
            if not isinstance(dxs, tuple):
                dxs = (dxs,)
            if len(dxs) != len(ctx.inputs):
                raise RuntimeError(
                    f"{fn.__name__}.backward returned {len(dxs)} gradients for "
                    f"{len(ctx.inputs)} inputs"
                )
            if not retain_graph:
                ctx._saved = _FREED
            for i, (x, dx) in enumerate(zip(ctx.inputs, dxs)):
                if x is None or not x.requires_grad:
                    continue
                if dx is not None:
                    dx = _as_grad(dx, x, fn, i)
                    # BEGIN SOLUTION lesson01 sum rule: add dx into grads[id(x)], never in place
                    prev = grads.get(id(x))
                    grads[id(x)] = dx if prev is None else prev + dx  # never in place
                    # END SOLUTION
            _release(ctx.inputs, pending, ready)
    return tuple(results) if inputs is not None else None


def _accumulate(t: Tensor, g: Tensor, create_graph: bool, claimed: set) -> None:
    """Add ``g`` into ``t.grad``. A stored gradient owns its array (optimizers and
    clipping update ``.grad`` in place), so a view, a read-only broadcast or an
    array already handed to another tensor is copied first; with ``create_graph``
    the copy is a graph op (``g * 1``), so the stored gradient stays differentiable."""
    if t.grad is not None:
        t.grad = t.grad + g
        return
    a = g.data
    if (
        id(a) in claimed or getattr(a, "base", None) is not None
        or not getattr(a.flags, "writeable", True)
    ):
        g = g * 1.0 if create_graph else Tensor._wrap(a.copy())
    claimed.add(id(g.data))
    t.grad = g


def _release(inputs, pending, ready) -> None:
    """One consumer of each input is done; an input whose consumers are all done is ready."""
    # BEGIN SOLUTION lesson01 one consumer of each input is done; append those with none left
    for x in inputs:
        if x is None or not x.requires_grad:
            continue
        k = id(x)
        pending[k] -= 1
        if pending[k] == 0:
            ready.append(x)
    # END SOLUTION


def _seed(outputs, grad_outputs, who: str):
    outputs = (outputs,) if isinstance(outputs, Tensor) else tuple(outputs)
    if grad_outputs is None:
        grad_outputs = (None,) * len(outputs)
    elif isinstance(grad_outputs, Tensor) or hasattr(grad_outputs, "shape"):
        grad_outputs = (grad_outputs,)
    else:
        grad_outputs = tuple(grad_outputs)
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"{who}: got {len(grad_outputs)} gradients for {len(outputs)} outputs")
    seeds = []
    for y, g in zip(outputs, grad_outputs):
        if not y.requires_grad:
            raise RuntimeError(
                f"{who}: a tensor of shape {tuple(y.shape)} does not require grad and has no "
                "grad_fn: nothing upstream of it requires grad (set requires_grad=True on the "
                "leaves, and do not call it under no_grad)"
            )
        if g is None:
            if y.data.size != 1:
                raise RuntimeError(
                    f"{who}: grad can be created implicitly only for a scalar output, but the "
                    f"output has shape {tuple(y.shape)}; pass a gradient of that shape"
                )
            g = Tensor._wrap(backend.xp_of(y.data).ones_like(y.data))
        elif not isinstance(g, Tensor):
            g = Tensor._wrap(g)
        if g.data.shape != y.data.shape:
            raise RuntimeError(
                f"{who}: gradient of shape {tuple(g.shape)} for an output of shape "
                f"{tuple(y.shape)}"
            )
        if g.data.dtype != y.data.dtype:
            raise RuntimeError(
                f"{who}: gradient of dtype {g.data.dtype} for an output of dtype {y.data.dtype}"
            )
        seeds.append(g)
    return outputs, tuple(seeds)


def backward(tensors, grad_tensors=None, retain_graph=False, create_graph=False) -> None:
    """Accumulate d(tensors)/d(leaf) into every leaf's ``.grad``."""
    outputs, seeds = _seed(tensors, grad_tensors, "backward")
    run_backward(outputs, seeds, retain_graph=retain_graph or create_graph,
                 create_graph=create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False) -> tuple:
    """Return d(outputs)/d(inputs) without touching any ``.grad`` (as ``torch.autograd.grad``).

    With ``create_graph=True`` the returned gradients are differentiable.
    """
    single = isinstance(inputs, Tensor)
    inputs = (inputs,) if single else tuple(inputs)
    for i, x in enumerate(inputs):
        if not isinstance(x, Tensor) or not x.requires_grad:
            raise RuntimeError(f"grad: input {i} is not a Tensor that requires grad")
    outputs, seeds = _seed(outputs, grad_outputs, "grad")
    if retain_graph is None:
        retain_graph = create_graph
    res = run_backward(outputs, seeds, retain_graph=retain_graph, create_graph=create_graph,
                       inputs=inputs)
    if not allow_unused:
        for i, r in enumerate(res):
            if r is None:
                raise RuntimeError(
                    f"grad: input {i} was not used to compute the outputs "
                    "(pass allow_unused=True to get None for it)"
                )
    return res
