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

from dataclasses import dataclass

import numpy as np

from . import backend
from .autograd import grad as autograd_grad
from .tensor import Tensor, enable_grad, no_grad

__all__ = ["GradcheckError", "gradcheck", "gradgradcheck", "jacobians"]


class GradcheckError(RuntimeError):
    """A gradient check failed. Attributes say where: ``input_index`` (which input),
    ``index`` (the worst element of it), ``output_index`` (``(output number, index
    inside it)``), ``numerical`` and ``analytic`` (the two values there). Those a
    failure cannot know are None (fast mode knows no element, only projections)."""

    def __init__(self, message: str, input_index=None, index=None, output_index=None,
                 numerical=None, analytic=None):  # fmt: skip
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
    """Refuse what cannot be checked; return the inputs (read-only arrays copied, as
    they are perturbed in place) and the positions of those to check."""
    inputs = list(_as_tuple(inputs))
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
            if not getattr(t.data.flags, "writeable", True):
                inputs[i] = Tensor(t.data.copy(), requires_grad=True)
            diff.append(i)
    if not diff:
        raise ValueError(f"{fn_name}: no input requires grad, so there is nothing to check")
    return tuple(inputs), diff


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


class _Analytic:
    """The backward side: input gradients of ``<outputs, v>`` for a flat output vector v."""

    def __init__(self, name, outs, inputs, diff):
        self.name, self.inputs, self.diff = name, inputs, diff
        # outputs without a graph (constants) get no seed: their rows are zero
        self.live = [o for o in outs if o.requires_grad]
        ends = np.cumsum([0] + [o.numel() for o in outs])
        self.slices = [slice(ends[k], ends[k + 1]) for k, o in enumerate(outs) if o.requires_grad]

    def _seeds(self, vec: np.ndarray) -> list:
        """Output-shaped gradients, in the outputs' dtypes and on their devices."""
        return [
            Tensor._wrap(backend.to_device(vec[s].reshape(o.shape).astype(o.dtype), o.device))
            for o, s in zip(self.live, self.slices)
        ]

    def __call__(self, vec: np.ndarray) -> list:
        inputs, diff = self.inputs, self.diff
        if not self.live:
            return [np.zeros(inputs[i].shape) for i in diff]
        wrt = [inputs[i] for i in diff]
        try:
            gs = autograd_grad(self.live, wrt, self._seeds(vec), retain_graph=True,
                               allow_unused=True)  # fmt: skip
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

    def jacobians(self, n_out: int) -> dict:
        """{input position: Jacobian}; row k holds the input gradients for dy = e_k."""
        rows = {i: np.zeros((n_out, self.inputs[i].numel())) for i in self.diff}
        for k in range(n_out):
            e = np.zeros(n_out)
            e[k] = 1.0
            for i, g in zip(self.diff, self(e)):
                rows[i][k] = g.ravel()
        return rows


# --------------------------------------------------------------------------- the checks


@dataclass
class _Setup:
    """What one gradcheck call checks, and how strictly."""

    name: str
    fn: object
    inputs: tuple
    diff: list  # positions of the inputs that require grad
    shapes: list  # output shapes
    n_out: int  # output elements, all outputs together
    eps: float
    atol: float
    rtol: float
    nondet_tol: float

    def where(self, i: int, w: int) -> dict:
        """Flat position w in input i's Jacobian -> the report's index and output_index."""
        k, j = divmod(w, self.inputs[i].numel())
        return {"index": _unravel(j, self.inputs[i].shape), "output_index": _locate(k, self.shapes)}


def _check_repeat(c: _Setup, i, first, again, locate: bool) -> None:
    """A second backward with the same dy must give the same gradient (up to nondet_tol)."""
    d = np.abs(first - again)
    if d.size and d.max() > c.nondet_tol:
        raise GradcheckError(
            f"gradcheck: {c.name}: backward is not deterministic for input {i}: two backward "
            f"passes with the same output gradient differ by up to {d.max():.3e} "
            f"(nondet_tol {c.nondet_tol})",
            input_index=i,
            **(c.where(i, int(np.argmax(d))) if locate else {}),
        )


def _check_zero_grad(c: _Setup, analytic: _Analytic) -> None:
    """Backward must be linear in dy: dy = 0 gives dx = 0 (catches 'forgot * dy')."""
    for i, g in zip(c.diff, analytic(np.zeros(c.n_out))):
        if np.any(g != 0):
            idx = _unravel(int(np.argmax(np.abs(g))), g.shape)
            raise GradcheckError(
                f"gradcheck: {c.name}: a zero output gradient gave a nonzero gradient for "
                f"input {i}: {g[idx]:.10g} at index {idx}; backward must multiply by dy",
                input_index=i, index=idx, numerical=0.0, analytic=float(g[idx]),
            )  # fmt: skip


def _full_check(c: _Setup, analytic: _Analytic) -> None:
    rows = analytic.jacobians(c.n_out)
    again = analytic.jacobians(c.n_out)
    for i in c.diff:
        _check_repeat(c, i, rows[i], again[i], locate=True)
    _check_zero_grad(c, analytic)

    # numerical Jacobians, input by input, and the element-wise comparison
    for i in c.diff:
        num = _numerical_jacobian(c.fn, c.inputs, i, c.eps, c.n_out)
        ana = rows[i]
        excess = np.abs(ana - num) - (c.atol + c.rtol * np.abs(num))
        # NaN on one side only is a failure; NaN on both sides agrees
        excess = np.where(np.isnan(ana) != np.isnan(num), np.inf, np.nan_to_num(excess, nan=-1.0))
        if excess.size and excess.max() > 0:
            w = int(np.argmax(excess))
            n_num, n_ana = num.flat[w], ana.flat[w]
            at = c.where(i, w)
            raise GradcheckError(
                f"gradcheck: {c.name}: Jacobian mismatch for input {i} (shape "
                f"{tuple(c.inputs[i].shape)}).\n"
                f"  worst at input index {at['index']}, output {at['output_index'][0]} index "
                f"{at['output_index'][1]}:\n"
                f"    numerical {n_num:.10g}\n"
                f"    analytic  {n_ana:.10g}\n"
                f"  |diff| {abs(n_ana - n_num):.3e} > atol {c.atol} + rtol {c.rtol} * "
                f"|numerical|; {int((excess > 0).sum())} of {excess.size} entries fail",
                input_index=i, numerical=float(n_num), analytic=float(n_ana), **at,
            )  # fmt: skip


def _fast_check(c: _Setup, analytic: _Analytic, rng) -> None:
    """Compare v^T J u for one random output vector v and one unit input direction u."""
    v = rng.standard_normal(c.n_out)
    first = analytic(v)  # = v^T J, one array per input
    again = analytic(v)
    for i, g1, g2 in zip(c.diff, first, again):
        _check_repeat(c, i, g1, g2, locate=False)
    _check_zero_grad(c, analytic)

    for i, g in zip(c.diff, first):
        a = c.inputs[i].data
        u = rng.standard_normal(a.shape)
        u /= max(np.linalg.norm(u), 1e-300)
        step = backend.to_device(c.eps * u, c.inputs[i].device)
        base = a.copy()
        a[...] = base + step
        plus = _output_vector(c.fn, c.inputs)
        a[...] = base - step
        minus = _output_vector(c.fn, c.inputs)
        a[...] = base
        num = float(v @ ((plus - minus) / (2 * c.eps)))  # v^T (J u), numerically
        ana = float(np.sum(g * u))  # (v^T J) u, analytically
        if not abs(ana - num) <= c.atol + c.rtol * abs(num):
            raise GradcheckError(
                f"gradcheck (fast mode): {c.name}: input {i} of shape {tuple(a.shape)}: "
                f"the projection v^T J u is {num:.10g} numerically but {ana:.10g} "
                f"analytically (|diff| {abs(ana - num):.3e} > atol {c.atol} + rtol {c.rtol} * "
                f"|numerical|). Run with fast_mode=False to find the element.",
                input_index=i, numerical=num, analytic=ana,
            )  # fmt: skip


def _fn_name(fn) -> str:
    """How a report names fn: ``Cube.apply`` for a Function's apply, else its __name__."""
    owner = getattr(fn, "__self__", None)
    if isinstance(owner, type):
        return f"{owner.__name__}.{fn.__name__}"
    return getattr(fn, "__name__", type(fn).__name__)


def _setup(fn, inputs, fn_name: str) -> tuple:
    """Check the inputs, run fn once with grad on: the outputs, their graph, the sizes."""
    inputs, diff = _prepare(fn_name, inputs)
    name = _fn_name(fn)
    with enable_grad():
        outs = _float_outputs(_as_tuple(fn(*inputs)))
    for k, o in enumerate(outs):
        if o.dtype != np.float64:
            raise TypeError(f"{fn_name}: output {k} of {name} has dtype {o.dtype}; need float64")
    n_out = int(sum(o.numel() for o in outs))
    return name, inputs, diff, outs, n_out


def gradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              fast_mode: bool = False, raise_exception: bool = True, seed: int = 0,
              nondet_tol: float = 0.0) -> bool:  # fmt: skip
    """Check the gradients of ``fn(*inputs)`` w.r.t. every input that requires grad.

    ``inputs`` are float64 leaf Tensors (others are passed through unchecked).
    Returns True, or raises ``GradcheckError`` naming the input, the worst
    element, the output element, and both values (returns False instead when
    ``raise_exception=False``). Misuse (float32 or non-leaf inputs) always raises.
    ``nondet_tol`` is how far two backward passes may differ (0: bit-identical).
    """
    name, inputs, diff, outs, n_out = _setup(fn, inputs, "gradcheck")
    shapes = [tuple(o.shape) for o in outs]
    c = _Setup(name, fn, inputs, diff, shapes, n_out, eps, atol, rtol, nondet_tol)
    analytic = _Analytic(name, outs, inputs, diff)
    try:
        if fast_mode:
            _fast_check(c, analytic, np.random.default_rng(seed))
        else:
            _full_check(c, analytic)
    except GradcheckError:
        if raise_exception:
            raise
        return False
    return True


def gradgradcheck(fn, inputs, grad_outputs=None, eps: float = 1e-6, atol: float = 1e-5,
                  rtol: float = 1e-3, fast_mode: bool = False, raise_exception: bool = True,
                  seed: int = 0, nondet_tol: float = 0.0) -> bool:  # fmt: skip
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
            gs = autograd_grad(ys, [xs[i] for i in diff], gos, create_graph=True, allow_unused=True)
        return tuple(g for g in gs if g is not None)

    first_derivative.__name__ = f"grad of {_fn_name(fn)}"
    return gradcheck(first_derivative, (*inputs, *grad_outputs), eps, atol, rtol, fast_mode,
                     raise_exception, seed, nondet_tol)  # fmt: skip


def jacobians(fn, inputs, eps: float = 1e-6) -> list:
    """``[(input_index, numerical, analytic), ...]``: both Jacobians of ``fn`` w.r.t. each
    float64 input that requires grad, shaped (output elements, input elements). The
    numbers behind ``gradcheck``'s verdict, for tables and plots."""
    name, inputs, diff, outs, n_out = _setup(fn, inputs, "jacobians")
    ana = _Analytic(name, outs, inputs, diff).jacobians(n_out)
    return [(i, _numerical_jacobian(fn, inputs, i, eps, n_out), ana[i]) for i in diff]
