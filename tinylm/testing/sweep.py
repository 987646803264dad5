"""The registry sweep: every check, for every sample of every op.

Each ``check_*`` function raises ``AssertionError`` (or ``GradcheckError``) with a
message naming the op and the sample; the pytest suite and ``tinylm gradcheck``
both call them, so the command and the tests check exactly the same things.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

import numpy as np

from .. import backend
from ..gradcheck import GradcheckError, gradcheck, gradgradcheck, jacobians
from ..tensor import Tensor
from .opinfo import OpInfo, SampleInput

# A float64 forward against its NumPy reference: both compute the same formula, in
# possibly different orders (pairwise vs sequential sums), so they agree to a few ulps
# of the largest value involved.
REF_RTOL, REF_ATOL = 1e-12, 1e-12


def _outputs(y) -> list:
    return [y] if isinstance(y, Tensor) else list(y)


def _call(info: OpInfo, sample: SampleInput, requires_grad=True, copy=False):
    args = sample.tensors(requires_grad=requires_grad, copy=copy)
    return args, _outputs(info.op(*args, **sample.kwargs))


def check_reference(info: OpInfo, sample: SampleInput) -> None:
    """The forward value equals the NumPy reference (where the entry has one)."""
    if info.ref is None:
        return
    _, ys = _call(info, sample, requires_grad=False)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's mean of nothing, etc.
        want = info.ref(*sample.args, **sample.kwargs)
    want = [want] if not isinstance(want, (tuple, list)) else list(want)
    for k, (y, w) in enumerate(zip(ys, want)):
        got = backend.to_numpy(y.data)
        w = np.asarray(w)
        assert got.shape == w.shape, (
            f"{info.name} [{sample.describe()}]: output {k} has shape {got.shape}, "
            f"the reference {w.shape}")
        np.testing.assert_allclose(
            got, w, rtol=REF_RTOL, atol=REF_ATOL, equal_nan=True,
            err_msg=f"{info.name} [{sample.describe()}]: output {k} differs from the reference")


def _bind(info: OpInfo, sample: SampleInput):
    def fn(*args):
        return info.op(*args, **sample.kwargs)

    fn.__name__ = f"{info.name}[{sample.describe()}]"
    return fn


def check_gradient(info: OpInfo, sample: SampleInput, fast_mode=False) -> tuple:
    """gradcheck in float64; returns the largest absolute and relative Jacobian errors and
    the largest fraction of the tolerance ``atol + rtol |numerical|`` used (< 1 passes)."""
    args = sample.tensors()
    if not any(isinstance(a, Tensor) and a.requires_grad for a in args):
        return 0.0, 0.0, 0.0
    fn = _bind(info, sample)
    if not sample.gradcheck:
        return _check_grad_dtypes(fn, args)
    gradcheck(fn, args, fast_mode=fast_mode)
    max_abs = max_rel = used = 0.0
    if not fast_mode:
        for _, num, ana in jacobians(fn, args):
            if num.size:
                diff = np.abs(ana - num)
                max_abs = max(max_abs, float(np.nanmax(diff)))
                # relative to |numerical|, floored at atol: tiny entries are judged by atol
                max_rel = max(max_rel, float(np.nanmax(diff / np.maximum(np.abs(num), 1e-5))))
                used = max(used, float(np.nanmax(diff / (1e-5 + 1e-3 * np.abs(num)))))
    return max_abs, max_rel, used


def _check_grad_dtypes(fn, args) -> tuple[float, float]:
    """For samples gradcheck cannot judge (a cast): gradients come back in each
    input's shape and dtype, and a ones output gradient arrives unchanged."""
    ys = [y for y in _outputs(fn(*args)) if y.requires_grad]
    for y in ys:
        y.backward(Tensor._wrap(backend.xp_of(y.data).ones_like(y.data)), retain_graph=True)
    for i, a in enumerate(args):
        if isinstance(a, Tensor) and a.requires_grad:
            assert a.grad is not None and a.grad.shape == a.shape and a.grad.dtype == a.dtype, (
                f"{fn.__name__}: input {i} got gradient {a.grad!r}")
            np.testing.assert_array_equal(backend.to_numpy(a.grad.data), len(ys))
    return 0.0, 0.0, 0.0


def check_gradgrad(info: OpInfo, sample: SampleInput) -> None:
    if not (info.gradgrad and sample.gradgrad and sample.gradcheck):
        return
    args = sample.tensors()
    if any(isinstance(a, Tensor) and a.requires_grad for a in args):
        gradgradcheck(_bind(info, sample), args)


def check_errors(info: OpInfo) -> int:
    """Every error input raises its exception with a message matching its pattern."""
    for e in info.errors():
        try:
            info.op(*e.sample.tensors(), **e.sample.kwargs)
        except e.exc as err:
            assert re.search(e.match, str(err)), (
                f"{info.name} [{e.sample.describe()}]: raised {type(err).__name__}({err}) "
                f"but the message does not match {e.match!r}")
            continue
        except Exception as err:
            raise AssertionError(
                f"{info.name} [{e.sample.describe()}]: expected {e.exc.__name__} matching "
                f"{e.match!r}, got {type(err).__name__}: {err}") from err
        raise AssertionError(
            f"{info.name} [{e.sample.describe()}]: expected {e.exc.__name__} matching "
            f"{e.match!r}, but nothing was raised")
    return len(info.errors())


def _forward_backward(info: OpInfo, sample: SampleInput) -> tuple[list, list]:
    """The outputs, and the gradients of the inputs for a fixed random output gradient
    (seeded: two calls see the same one), as NumPy arrays."""
    args, ys = _call(info, sample)
    rng = np.random.default_rng(7)
    live = [y for y in ys if y.requires_grad]
    gs = [Tensor._wrap(backend.xp_of(y.data).asarray(rng.standard_normal(y.shape), y.dtype))
          for y in live]
    grads = []
    if live:
        from ..autograd import backward

        backward(live, gs)
        grads = [backend.to_numpy(a.grad.data) if a.grad is not None else None
                 for a in args if isinstance(a, Tensor) and a.requires_grad]
    return [backend.to_numpy(y.data) for y in ys], grads


# The fused kernels against the plain reference code. float64: both compute the same
# formula, but a kernel may fuse a multiply-add (one rounding instead of two) or sum a row
# in another order, so they agree to a few ulps of the largest value involved, as above.
# float32: the kernels' exp/tanh/sigmoid are within 3 ulp of NumPy's and a fused op
# chains a handful of such steps, so ~20 ulp (2.4e-6) relative, 1e-6 absolute for
# entries that cancel to near zero.
KERNEL_TOL = {np.dtype(np.float64): (1e-12, 1e-12), np.dtype(np.float32): (2.4e-6, 1e-6)}


def check_kernels(info: OpInfo, sample: SampleInput) -> None:
    """With the fused kernels on and off (``tinylm.kernels.reference()``), the outputs and
    the gradients agree (KERNEL_TOL). The kernels are switched on for the check whatever
    the current setting (a lesson's tests run with them off). Ops without a kernel compute
    the same thing twice, which also catches a kernel switched on for an op it misreads."""
    from .. import kernels

    with kernels.reference():
        ref = _forward_backward(info, sample)
    old = kernels.set_enabled(True)
    try:
        got = _forward_backward(info, sample)
    finally:
        kernels.set_enabled(old)
    for k, (a, b) in enumerate(zip(got[0] + got[1], ref[0] + ref[1])):
        if a is None or b is None:
            assert a is None and b is None, f"{info.name}: a gradient is missing on one side"
            continue
        assert a.dtype == b.dtype and a.shape == b.shape, (
            f"{info.name} [{sample.describe()}]: kernel gives {a.dtype}{a.shape}, "
            f"the reference {b.dtype}{b.shape}")
        rtol, atol = KERNEL_TOL.get(a.dtype, (0.0, 0.0))
        np.testing.assert_allclose(
            a, b, rtol=rtol, atol=atol, equal_nan=True,
            err_msg=f"{info.name} [{sample.describe()}]: the fused kernel and the reference "
            f"disagree ({'output' if k < len(got[0]) else 'gradient'} {k})")


def check_layouts(info: OpInfo, sample: SampleInput) -> None:
    """Contiguous and non-contiguous (strided, transposed) inputs holding the same values
    give the same outputs and the same gradients."""
    from .opinfo import strided

    variants = [
        SampleInput(tuple(a.copy(order="C") if isinstance(a, np.ndarray) else a
                          for a in sample.args), sample.kwargs, nondiff=sample.nondiff),
        SampleInput(tuple(strided(a) if isinstance(a, np.ndarray) and a.dtype.kind == "f"
                          else a for a in sample.args), sample.kwargs, nondiff=sample.nondiff),
    ]
    results = [_forward_backward(info, v) for v in variants]
    (y0, g0), (y1, g1) = results
    for k, (a, b) in enumerate(zip(y0 + g0, y1 + g1)):
        if a is None or b is None:
            assert a is None and b is None
            continue
        np.testing.assert_allclose(
            a, b, rtol=REF_RTOL, atol=REF_ATOL, equal_nan=True,
            err_msg=f"{info.name} [{sample.describe()}]: contiguous and strided inputs "
            f"disagree ({'output' if k < len(y0) else 'gradient'} {k})")


@dataclass
class OpResult:
    """One op's line of the ``tinylm gradcheck`` table."""

    name: str
    samples: int = 0
    errors_checked: int = 0
    max_abs: float = 0.0
    max_rel: float = 0.0
    tol_used: float = 0.0
    failures: list = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def sweep_op(info: OpInfo, gradgrad: bool = True) -> OpResult:
    """Run every check on one op, collecting failures instead of stopping at the first."""
    res = OpResult(info.name)
    for sample in info.sample_inputs():
        res.samples += 1
        for check in (check_reference, check_gradient, check_gradgrad, check_layouts,
                      check_kernels):
            if check is check_gradgrad and not gradgrad:
                continue
            try:
                out = check(info, sample)
            except (AssertionError, GradcheckError, Exception) as e:  # report, do not stop
                res.failures.append(f"{check.__name__} [{sample.describe()}]: "
                                    f"{type(e).__name__}: {e}")
                continue
            if check is check_gradient:
                res.max_abs = max(res.max_abs, out[0])
                res.max_rel = max(res.max_rel, out[1])
                res.tol_used = max(res.tol_used, out[2])
    try:
        res.errors_checked = check_errors(info)
    except AssertionError as e:
        res.failures.append(f"check_errors: {e}")
    return res
