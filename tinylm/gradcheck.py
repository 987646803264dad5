"""Gradient checking: analytic Jacobians against central differences, in float64.

``gradcheck(fn, inputs)`` builds, for every input that requires grad, the full
Jacobian two ways and compares them element by element:

- numerically, one column per input element:
  ``J[:, j] = (f(x + eps e_j) - f(x - eps e_j)) / (2 eps)``, error O(eps^2);
- analytically, one row per output element, by backward with a one-hot output
  gradient.

It passes when ``|analytic - numerical| <= atol + rtol |numerical|`` everywhere.
It also checks what a correct backward must do besides: a second backward gives
the same gradients, a zero output gradient gives zero input gradients, and each
gradient has its input's shape and dtype. ``fast_mode=True`` compares one random
projection ``v^T J u`` per input instead of the whole Jacobian (for large layers).

See lessons/02_tensors_and_gradcheck.py for why float64 and why this eps.
"""

from __future__ import annotations

import numpy as np

from . import backend
from .autograd import grad as autograd_grad
from .tensor import Tensor, enable_grad

__all__ = ["GradcheckError", "gradcheck", "gradgradcheck"]


class GradcheckError(RuntimeError):
    """A gradient check failed. Attributes say where: ``input_index`` (which input),
    ``index`` (the worst element of it), ``output_index`` (which output element),
    ``numerical`` and ``analytic`` (the two values there)."""

    def __init__(self, message, input_index=None, index=None, output_index=None,
                 numerical=None, analytic=None):
        super().__init__(message)
        self.input_index = input_index
        self.index = index
        self.output_index = output_index
        self.numerical = numerical
        self.analytic = analytic


def _as_tuple(x) -> tuple:
    return (x,) if isinstance(x, Tensor) else tuple(x)


def _float_outputs(outputs) -> list:
    return [o for o in outputs if isinstance(o, Tensor) and o.dtype.kind == "f"]


def _output_vector(fn, inputs) -> np.ndarray:
    outs = _float_outputs(_as_tuple(fn(*inputs)))
    if not outs:
        return np.zeros(0)
    return np.concatenate([backend.to_numpy(o.data).astype(np.float64).ravel() for o in outs])


def _locate(k: int, shapes: list) -> tuple:
    """Flat output position k -> (output number, multi-index inside it)."""
    for n, s in enumerate(shapes):
        size = int(np.prod(s, dtype=np.int64))
        if k < size:
            return n, tuple(int(i) for i in np.unravel_index(k, s)) if s else ()
        k -= size
    raise IndexError(k)  # pragma: no cover


def _prepare(fn_name: str, inputs) -> tuple:
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
                raise ValueError(f"{fn_name}: input {i} must be a leaf tensor (use .detach())")
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


def _backward_rows(outs, inputs, diff, grad_vec_fn, fn_name):
    """Gradients of <outs, g> w.r.t. the diff inputs, for an output gradient g."""
    gos = grad_vec_fn()
    try:
        gs = autograd_grad(outs, [inputs[i] for i in diff], gos, retain_graph=True,
                           allow_unused=True)
    except RuntimeError as e:
        raise GradcheckError(f"{fn_name}: backward failed: {e}") from e
    res = []
    for i, g in zip(diff, gs):
        x = inputs[i]
        if g is None:
            res.append(np.zeros(x.shape))
            continue
        if g.shape != x.shape or g.dtype != x.dtype:
            raise GradcheckError(
                f"{fn_name}: the gradient of input {i} has shape {tuple(g.shape)} and dtype "
                f"{g.dtype}, but the input has shape {tuple(x.shape)} and dtype {x.dtype}",
                input_index=i,
            )
        res.append(backend.to_numpy(g.data).astype(np.float64))
    return res


def _seeds(outs, vec: np.ndarray) -> list:
    """Split a flat float64 vector into output-shaped gradients on the outputs' devices."""
    gos, k = [], 0
    for o in outs:
        n = o.numel()
        a = vec[k : k + n].reshape(o.shape).astype(o.dtype)
        gos.append(Tensor._wrap(backend.to_device(a, o.device)))
        k += n
    return gos


def _fail(msg, raise_exception, **where):
    if raise_exception:
        raise GradcheckError(msg, **where)
    return False


def gradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              fast_mode: bool = False, raise_exception: bool = True, seed: int = 0) -> bool:
    """Check the gradients of ``fn(*inputs)`` w.r.t. every input that requires grad.

    ``inputs`` are float64 leaf Tensors (others are passed through unchecked).
    Returns True, or raises ``GradcheckError`` naming the input, the worst
    element, the output element, and both values (returns False instead when
    ``raise_exception=False``).
    """
    name = getattr(fn, "__name__", "fn")
    inputs, diff = _prepare("gradcheck", inputs)
    inputs = _writable(inputs, diff)
    with enable_grad():
        outs = [o for o in _float_outputs(_as_tuple(fn(*inputs)))]
    for k, o in enumerate(outs):
        if o.dtype != np.float64:
            raise TypeError(f"gradcheck: output {k} of {name} has dtype {o.dtype}; need float64")
    outs_g = [o for o in outs if o.requires_grad]
    shapes = [tuple(o.shape) for o in outs]
    n_out = int(sum(o.numel() for o in outs))
    # where each output's elements sit in the flat vector, and which ones have a graph
    offsets = np.cumsum([0] + [o.numel() for o in outs])
    live = [k for k, o in enumerate(outs) if o.requires_grad]

    def seed_from(vec):
        return lambda: _seeds(outs_g, np.concatenate(
            [vec[offsets[k] : offsets[k + 1]] for k in live]) if live else np.zeros(0))

    def analytic(vec):
        if not outs_g:
            return [np.zeros(inputs[i].shape) for i in diff]
        return _backward_rows(outs_g, inputs, diff, seed_from(vec), name)

    # --- zero output gradient must give zero input gradients
    for i, g in zip(diff, analytic(np.zeros(n_out))):
        if np.any(g != 0):
            return _fail(
                f"gradcheck: {name}: a zero output gradient gave a nonzero gradient for input "
                f"{i} (max |g| = {np.abs(g).max():.3e}); backward must scale with dy",
                raise_exception, input_index=i)

    rng = np.random.default_rng(seed)
    if fast_mode:
        v = rng.standard_normal(n_out)
        first = analytic(v)
        again = analytic(v)
        for i, g1, g2 in zip(diff, first, again):
            if not np.array_equal(g1, g2):
                return _fail(f"gradcheck: {name}: backward is not deterministic for input {i}: "
                             f"two backward passes differ by {np.abs(g1 - g2).max():.3e}",
                             raise_exception, input_index=i)
        for i, g in zip(diff, first):
            a = inputs[i].data
            u = rng.standard_normal(a.shape)
            u /= max(np.linalg.norm(u), 1e-300)
            base = a.copy()
            a[...] = base + eps * u
            plus = _output_vector(fn, inputs)
            a[...] = base - eps * u
            minus = _output_vector(fn, inputs)
            a[...] = base
            num = float(v @ ((plus - minus) / (2 * eps)))
            ana = float(np.sum(g * u))
            if not abs(ana - num) <= atol + rtol * abs(num):
                return _fail(
                    f"gradcheck (fast mode): {name}: input {i} of shape {tuple(a.shape)}: "
                    f"the projection v^T J u is {num:.10g} numerically but {ana:.10g} "
                    f"analytically (|diff| {abs(ana - num):.3e} > atol {atol} + rtol {rtol} * "
                    f"|numerical|). Run with fast_mode=False to find the element.",
                    raise_exception, input_index=i, numerical=num, analytic=ana)
        return True

    # --- full Jacobians, input by input
    rows = {i: np.zeros((n_out, inputs[i].numel())) for i in diff}
    rows2 = {i: np.zeros((n_out, inputs[i].numel())) for i in diff}
    for k in range(n_out):
        e = np.zeros(n_out)
        e[k] = 1.0
        for i, g in zip(diff, analytic(e)):
            rows[i][k] = g.ravel()
        for i, g in zip(diff, analytic(e)):
            rows2[i][k] = g.ravel()
    for i in diff:
        if not np.array_equal(rows[i], rows2[i]):
            d = np.abs(rows[i] - rows2[i]).max()
            return _fail(f"gradcheck: {name}: backward is not deterministic for input {i}: two "
                         f"backward passes differ by {d:.3e}", raise_exception, input_index=i)
    for i in diff:
        num = _numerical_jacobian(fn, inputs, i, eps, n_out)
        ana = rows[i]
        bad = np.abs(ana - num) - (atol + rtol * np.abs(num))
        bad = np.where(np.isnan(ana) != np.isnan(num), np.inf, np.nan_to_num(bad, nan=-1.0))
        if bad.size and bad.max() > 0:
            k, j = np.unravel_index(int(np.argmax(bad)), bad.shape)
            shape = tuple(inputs[i].shape)
            idx = tuple(int(t) for t in np.unravel_index(j, shape)) if shape else ()
            out_n, out_idx = _locate(int(k), shapes)
            n_bad = int((bad > 0).sum())
            return _fail(
                f"gradcheck: {name}: Jacobian mismatch for input {i} (shape {shape}).\n"
                f"  worst at input index {idx}, output {out_n} index {out_idx}:\n"
                f"    numerical {num[k, j]:.10g}\n"
                f"    analytic  {ana[k, j]:.10g}\n"
                f"  |diff| {abs(ana[k, j] - num[k, j]):.3e} > atol {atol} + rtol {rtol} * "
                f"|numerical|; {n_bad} of {bad.size} entries fail",
                raise_exception, input_index=i, index=idx, output_index=(out_n, out_idx),
                numerical=float(num[k, j]), analytic=float(ana[k, j]))
    return True


def gradgradcheck(fn, inputs, grad_outputs=None, eps: float = 1e-6, atol: float = 1e-5,
                  rtol: float = 1e-3, fast_mode: bool = False, raise_exception: bool = True,
                  seed: int = 0) -> bool:
    """Check second derivatives: gradcheck of ``(inputs, v) -> d<fn(inputs), v>/d inputs``.

    The backward of ``fn`` must be built from differentiable Tensor ops (every core
    op's is); ``grad_outputs`` default to random float64 tensors (fixed ``seed``).
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
                     fast_mode=fast_mode, raise_exception=raise_exception, seed=seed)
