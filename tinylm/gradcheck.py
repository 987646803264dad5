"""Gradient checking: analytic Jacobians against central differences, in float64.

``gradcheck(fn, inputs)`` builds, for every input that requires grad, the full
Jacobian two ways and compares them element by element:

- numerically, one column per input element:
  ``J[:, j] = (f(x + eps e_j) - f(x - eps e_j)) / (2 eps)``;
- analytically, one row per output element, by backward with a one-hot output
  gradient.

It passes when ``|analytic - numerical| <= atol + rtol |numerical|`` everywhere.
Before that it checks what a correct backward must do besides, in this order
(the first failure is the most telling one): backward runs and returns
gradients of its inputs' shapes and dtypes; a second backward gives the same
gradients; a zero output gradient gives zero input gradients. ``fast_mode=True``
compares one random projection ``v^T J u`` per input instead of the whole
Jacobian (for large layers).

Why the defaults are right: the central difference has truncation error
``eps^2 |f'''| / 6`` and rounding error about ``machine_eps |f| / eps``. In float64
(machine_eps ~ 1e-16) with eps = 1e-6 both are ~1e-10..1e-12, far below
atol = 1e-5, so any mismatch reported is a real bug. In float32 (machine_eps ~
1e-7) the rounding term alone is ~0.1: that is why float32 inputs are refused.
See lessons/02_tensors_and_gradcheck.py.
"""

from __future__ import annotations

import numpy as np

from . import backend
from .autograd import grad as autograd_grad
from .tensor import Tensor, enable_grad, no_grad

__all__ = ["GradcheckError", "gradcheck", "gradgradcheck"]


class GradcheckError(RuntimeError):
    """A gradient check failed. Attributes say where: ``input_index`` (which input),
    ``index`` (the worst element of it), ``output_index`` (``(output number, index
    inside it)``), ``numerical`` and ``analytic`` (the two values there). Those a
    failure cannot know are None (fast mode knows no element, only projections)."""

    def __init__(self, message: str, input_index=None, index=None, output_index=None,
                 numerical=None, analytic=None):
        super().__init__(message)
        self.input_index = input_index
        self.index = index
        self.output_index = output_index
        self.numerical = numerical
        self.analytic = analytic


# --------------------------------------------------------------------------- helpers


def _as_tuple(x) -> tuple:
    return (x,) if isinstance(x, Tensor) else tuple(x)


def _float_outputs(outputs) -> list:
    """The outputs that can have a gradient (integer outputs are skipped)."""
    return [o for o in outputs if isinstance(o, Tensor) and o.dtype.kind == "f"]


def _output_vector(fn, inputs) -> np.ndarray:
    """fn(*inputs), every float output flattened into one float64 vector."""
    with no_grad():  # only values are needed here: build no graph
        outs = _float_outputs(_as_tuple(fn(*inputs)))
    if not outs:
        return np.zeros(0)
    return np.concatenate([backend.to_numpy(o.data).astype(np.float64).ravel() for o in outs])


def _unravel(j: int, shape: tuple) -> tuple:
    return tuple(int(t) for t in np.unravel_index(j, shape)) if shape else ()


def _locate(k: int, shapes: list) -> tuple:
    """Flat output position k -> (output number, multi-index inside it)."""
    for n, s in enumerate(shapes):
        size = int(np.prod(s, dtype=np.int64))
        if k < size:
            return n, _unravel(k, s)
        k -= size
    raise IndexError(k)  # pragma: no cover


def _prepare(fn_name: str, inputs) -> tuple:
    """Refuse what cannot be checked; return the inputs and which of them to check."""
    inputs = _as_tuple(inputs)
    diff = []
    for i, t in enumerate(inputs):
        if isinstance(t, Tensor) and t.requires_grad:
            if t.dtype != np.float64:
                raise TypeError(
                    f"{fn_name}: input {i} has dtype {t.dtype}; gradient checks need float64 "
                    "inputs (float32 central differences are dominated by rounding error, see "
                    "lessons/02_tensors_and_gradcheck.py). Use .double()."
                )
            if not t.is_leaf:
                raise ValueError(
                    f"{fn_name}: input {i} is not a leaf tensor (it was computed by "
                    f"{t.grad_fn.__name__}); pass x.detach().requires_grad_() instead"
                )
            diff.append(i)
    if not diff:
        raise ValueError(f"{fn_name}: no input requires grad, so there is nothing to check")
    return inputs, diff


def _writable(inputs, diff) -> tuple:
    """Inputs whose arrays may be perturbed in place (read-only views are copied)."""
    out = list(inputs)
    for i in diff:
        a = inputs[i].data
        if not getattr(a.flags, "writeable", True):
            out[i] = Tensor(a.copy(), requires_grad=True)
    return tuple(out)


def _numerical_jacobian(fn, inputs, i, eps, n_out) -> np.ndarray:
    """Central differences: one column per element of input i (perturbed in place)."""
    a = inputs[i].data
    J = np.zeros((n_out, a.size))
    for j, idx in enumerate(np.ndindex(*a.shape)):
        orig = a[idx].copy()
        a[idx] = orig + eps
        plus = _output_vector(fn, inputs)
        a[idx] = orig - eps
        minus = _output_vector(fn, inputs)
        a[idx] = orig  # restores the exact bits
        J[:, j] = (plus - minus) / (2 * eps)
    return J


def _seeds(outs, vec: np.ndarray) -> list:
    """Split a flat float64 vector into output-shaped gradients on the outputs' devices."""
    gos, k = [], 0
    for o in outs:
        n = o.numel()
        a = vec[k : k + n].reshape(o.shape).astype(o.dtype)
        gos.append(Tensor._wrap(backend.to_device(a, o.device)))
        k += n
    return gos


class _Analytic:
    """The backward side: input gradients of ``<outputs, v>`` for a flat output vector v."""

    def __init__(self, name, outs, inputs, diff):
        self.name, self.inputs, self.diff = name, inputs, diff
        # outputs without a graph (constants) get no seed: their rows are zero
        self.live = [o for o in outs if o.requires_grad]
        offsets = np.cumsum([0] + [o.numel() for o in outs])
        self.slices = [slice(offsets[k], offsets[k + 1])
                       for k, o in enumerate(outs) if o.requires_grad]

    def __call__(self, vec: np.ndarray) -> list:
        inputs, diff = self.inputs, self.diff
        if not self.live:
            return [np.zeros(inputs[i].shape) for i in diff]
        seeds = _seeds(self.live, np.concatenate([vec[s] for s in self.slices]))
        try:
            gs = autograd_grad(self.live, [inputs[i] for i in diff], seeds, retain_graph=True,
                               allow_unused=True)
        except Exception as e:  # a wrong-shape gradient, a crash inside backward, ...
            raise GradcheckError(
                f"gradcheck: {self.name}: backward failed: {type(e).__name__}: {e}"
            ) from e
        res = []
        for i, g in zip(diff, gs):
            x = inputs[i]
            if g is None:  # the outputs do not depend on this input
                res.append(np.zeros(x.shape))
                continue
            if g.shape != x.shape or g.dtype != x.dtype:
                raise GradcheckError(
                    f"gradcheck: {self.name}: the gradient of input {i} has shape "
                    f"{tuple(g.shape)} and dtype {g.dtype}, but the input has shape "
                    f"{tuple(x.shape)} and dtype {x.dtype}",
                    input_index=i,
                )
            res.append(backend.to_numpy(g.data).astype(np.float64))
        return res


# --------------------------------------------------------------------------- the checks


def _check_zero_grad(name, analytic, diff, n_out) -> None:
    """Backward must be linear in dy: dy = 0 gives dx = 0 (catches 'forgot * dy')."""
    for i, g in zip(diff, analytic(np.zeros(n_out))):
        if np.any(g != 0):
            idx = _unravel(int(np.argmax(np.abs(g))), g.shape)
            raise GradcheckError(
                f"gradcheck: {name}: a zero output gradient gave a nonzero gradient for input "
                f"{i}: {g[idx]:.10g} at index {idx}; backward must multiply by dy",
                input_index=i, index=idx, numerical=0.0, analytic=float(g[idx]))


def _not_deterministic(name, i, first, again, nondet_tol, where=None) -> None:
    d = np.abs(first - again)
    if d.size and d.max() > nondet_tol:
        w = int(np.argmax(d))
        raise GradcheckError(
            f"gradcheck: {name}: backward is not deterministic for input {i}: two backward "
            f"passes with the same output gradient differ by up to {d.max():.3e} "
            f"(nondet_tol {nondet_tol})",
            input_index=i, **(where(w) if where else {}))


def _full_check(name, fn, inputs, diff, analytic, shapes, n_out, eps, atol, rtol, nondet_tol):
    # analytic Jacobians, one row per output element (one-hot dy), computed twice
    rows = {i: np.zeros((n_out, inputs[i].numel())) for i in diff}
    rows2 = {i: np.zeros((n_out, inputs[i].numel())) for i in diff}
    for k in range(n_out):
        e = np.zeros(n_out)
        e[k] = 1.0
        for i, g in zip(diff, analytic(e)):
            rows[i][k] = g.ravel()
        for i, g in zip(diff, analytic(e)):
            rows2[i][k] = g.ravel()

    def where(i):  # flat Jacobian position -> the report's fields for input i
        def at(w):
            k, j = np.unravel_index(w, rows[i].shape)
            return {"index": _unravel(int(j), tuple(inputs[i].shape)),
                    "output_index": _locate(int(k), shapes)}
        return at

    for i in diff:
        _not_deterministic(name, i, rows[i], rows2[i], nondet_tol, where(i))
    _check_zero_grad(name, analytic, diff, n_out)

    # numerical Jacobians, input by input, and the element-wise comparison
    for i in diff:
        num = _numerical_jacobian(fn, inputs, i, eps, n_out)
        ana = rows[i]
        excess = np.abs(ana - num) - (atol + rtol * np.abs(num))
        # NaN on one side only is a failure; NaN on both sides agrees
        excess = np.where(np.isnan(ana) != np.isnan(num), np.inf,
                          np.nan_to_num(excess, nan=-1.0))
        if excess.size and excess.max() > 0:
            w = int(np.argmax(excess))
            k, j = np.unravel_index(w, excess.shape)
            at = where(i)(w)
            n_bad = int((excess > 0).sum())
            raise GradcheckError(
                f"gradcheck: {name}: Jacobian mismatch for input {i} (shape "
                f"{tuple(inputs[i].shape)}).\n"
                f"  worst at input index {at['index']}, output {at['output_index'][0]} index "
                f"{at['output_index'][1]}:\n"
                f"    numerical {num[k, j]:.10g}\n"
                f"    analytic  {ana[k, j]:.10g}\n"
                f"  |diff| {abs(ana[k, j] - num[k, j]):.3e} > atol {atol} + rtol {rtol} * "
                f"|numerical|; {n_bad} of {excess.size} entries fail",
                input_index=i, numerical=float(num[k, j]), analytic=float(ana[k, j]), **at)


def _fast_check(name, fn, inputs, diff, analytic, n_out, eps, atol, rtol, nondet_tol, rng):
    """Compare v^T J u for one random output vector v and one unit input direction u."""
    v = rng.standard_normal(n_out)
    first = analytic(v)  # = v^T J, one array per input
    again = analytic(v)
    for i, g1, g2 in zip(diff, first, again):
        _not_deterministic(name, i, g1, g2, nondet_tol)
    _check_zero_grad(name, analytic, diff, n_out)

    for i, g in zip(diff, first):
        a = inputs[i].data
        u = rng.standard_normal(a.shape)
        u /= max(np.linalg.norm(u), 1e-300)
        u_dev = backend.to_device(u, inputs[i].device)
        base = a.copy()
        a[...] = base + eps * u_dev
        plus = _output_vector(fn, inputs)
        a[...] = base - eps * u_dev
        minus = _output_vector(fn, inputs)
        a[...] = base
        num = float(v @ ((plus - minus) / (2 * eps)))  # v^T (J u), numerically
        ana = float(np.sum(g * u))  # (v^T J) u, analytically
        if not abs(ana - num) <= atol + rtol * abs(num):
            raise GradcheckError(
                f"gradcheck (fast mode): {name}: input {i} of shape {tuple(a.shape)}: "
                f"the projection v^T J u is {num:.10g} numerically but {ana:.10g} "
                f"analytically (|diff| {abs(ana - num):.3e} > atol {atol} + rtol {rtol} * "
                f"|numerical|). Run with fast_mode=False to find the element.",
                input_index=i, numerical=num, analytic=ana)


def gradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              fast_mode: bool = False, raise_exception: bool = True, seed: int = 0,
              nondet_tol: float = 0.0) -> bool:
    """Check the gradients of ``fn(*inputs)`` w.r.t. every input that requires grad.

    ``inputs`` are float64 leaf Tensors (others are passed through unchecked).
    Returns True, or raises ``GradcheckError`` naming the input, the worst
    element, the output element, and both values (returns False instead when
    ``raise_exception=False``). Misuse (float32 or non-leaf inputs) always raises.
    ``nondet_tol`` is how far two backward passes may differ (0: bit-identical).
    """
    name = getattr(fn, "__name__", "fn")
    inputs, diff = _prepare("gradcheck", inputs)
    inputs = _writable(inputs, diff)
    with enable_grad():
        outs = _float_outputs(_as_tuple(fn(*inputs)))
    for k, o in enumerate(outs):
        if o.dtype != np.float64:
            raise TypeError(f"gradcheck: output {k} of {name} has dtype {o.dtype}; need float64")
    shapes = [tuple(o.shape) for o in outs]
    n_out = int(sum(o.numel() for o in outs))
    analytic = _Analytic(name, outs, inputs, diff)
    try:
        if fast_mode:
            _fast_check(name, fn, inputs, diff, analytic, n_out, eps, atol, rtol, nondet_tol,
                        np.random.default_rng(seed))
        else:
            _full_check(name, fn, inputs, diff, analytic, shapes, n_out, eps, atol, rtol,
                        nondet_tol)
    except GradcheckError:
        if raise_exception:
            raise
        return False
    return True


def gradgradcheck(fn, inputs, grad_outputs=None, eps: float = 1e-6, atol: float = 1e-5,
                  rtol: float = 1e-3, fast_mode: bool = False, raise_exception: bool = True,
                  seed: int = 0, nondet_tol: float = 0.0) -> bool:
    """Check second derivatives: gradcheck of ``(inputs, v) -> d<fn(inputs), v>/d inputs``.

    The backward of ``fn`` must be built from differentiable Tensor ops (every core
    op's is); ``grad_outputs`` default to random float64 tensors (fixed ``seed``).
    A backward computed on raw arrays gives a first derivative that looks constant
    in the inputs, and this check reports the missing second-order terms.
    """
    inputs, diff = _prepare("gradgradcheck", inputs)
    with enable_grad():
        outs = [o for o in _float_outputs(_as_tuple(fn(*inputs))) if o.requires_grad]
    if grad_outputs is None:
        rng = np.random.default_rng(seed + 1)
        grad_outputs = [
            Tensor(backend.to_device(rng.standard_normal(o.shape), o.device), requires_grad=True)
            for o in outs
        ]
    grad_outputs = list(_as_tuple(grad_outputs))
    n_in = len(inputs)

    def first_derivative(*args):
        xs, gos = args[:n_in], args[n_in:]
        with enable_grad():
            ys = [o for o in _float_outputs(_as_tuple(fn(*xs))) if o.requires_grad]
            gs = autograd_grad(ys, [xs[i] for i in diff], gos, create_graph=True,
                               allow_unused=True)
        return tuple(g for g in gs if g is not None)

    first_derivative.__name__ = f"grad of {getattr(fn, '__name__', 'fn')}"
    return gradcheck(first_derivative, (*inputs, *grad_outputs), eps=eps, atol=atol, rtol=rtol,
                     fast_mode=fast_mode, raise_exception=raise_exception, seed=seed,
                     nondet_tol=nondet_tol)


def jacobians(fn, inputs, eps: float = 1e-6) -> list:
    """``[(input_index, numerical, analytic), ...]``: both Jacobians of ``fn`` w.r.t. each
    float64 input that requires grad, shaped (output elements, input elements). The
    numbers behind ``gradcheck``'s verdict, for tables and plots."""
    inputs, diff = _prepare("jacobians", inputs)
    inputs = _writable(inputs, diff)
    with enable_grad():
        outs = _float_outputs(_as_tuple(fn(*inputs)))
    n_out = int(sum(o.numel() for o in outs))
    analytic = _Analytic(getattr(fn, "__name__", "fn"), outs, inputs, diff)
    ana = {i: np.zeros((n_out, inputs[i].numel())) for i in diff}
    for k in range(n_out):
        e = np.zeros(n_out)
        e[k] = 1.0
        for i, g in zip(diff, analytic(e)):
            ana[i][k] = g.ravel()
    return [(i, _numerical_jacobian(fn, inputs, i, eps, n_out), ana[i]) for i in diff]
