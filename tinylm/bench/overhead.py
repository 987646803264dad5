"""Per-op autograd overhead on tiny arrays: tinylm against PyTorch CPU, NumPy as the floor.

On a 4x4 float32 array the arithmetic takes nanoseconds; what an op costs is the Python
around it: wrapping arrays in Tensors, recording the graph node, and (in backward) walking
the graph. A small model's training step is thousands of such ops, so this per-op
overhead, not the math, sets its speed. Goal: <= 3 us per op forward (PyTorch ~1.5 us,
DeZero ~4.4 us on the reference machine; shared/PERFORMANCE.md).

Columns, each the median over rounds of the time per call, in microseconds (the five
columns of a row are timed interleaved, round by round):

    numpy           the raw array expression (no graph): the floor
    tinylm fwd      the op on tensors that require grad (records the graph node)
    torch fwd       the same in PyTorch CPU, when torch imports
    tinylm fwd+bwd  .grad reset, forward, then backward(gradient of ones)
    torch fwd+bwd   the same in PyTorch

Run single-threaded (one BLAS, Numba and PyTorch thread): the arrays are far too small
for threads to help. The garbage collector stays on while timing, as in training.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..creation import ones, ones_like
from ..creation import tensor as make_tensor
from ._util import compare, fmt, fmt_ratio, markdown, target

GOAL_US = 3.0


def _np_softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class Case:
    """One benchmarked expression. ``graph`` is written once with the Tensor methods that
    tinylm and PyTorch share; ``floor`` is the same math on plain NumPy arrays."""

    name: str
    expr: str
    shapes: tuple[tuple[int, ...], ...]
    graph: Callable
    floor: Callable
    n_ops: int = 1  # graph ops in the expression (the per-op goal divides by it)


CASES = (
    Case("add", "a + b", ((4, 4), (4, 4)), lambda a, b: a + b, lambda a, b: a + b),
    Case("mul", "a * b", ((4, 4), (4, 4)), lambda a, b: a * b, lambda a, b: a * b),
    Case("matmul", "a @ b", ((4, 4), (4, 4)), lambda a, b: a @ b, lambda a, b: a @ b),
    Case("tanh", "x.tanh()", ((4, 4),), lambda x: x.tanh(), np.tanh),
    Case("exp", "x.exp()", ((4, 4),), lambda x: x.exp(), np.exp),
    Case("sum", "x.sum()", ((4, 4),), lambda x: x.sum(), lambda x: x.sum()),
    Case("reshape", "x.reshape(2, 8)", ((4, 4),), lambda x: x.reshape(2, 8),
         lambda x: x.reshape(2, 8)),
    Case("getitem", "x[1:3]", ((4, 4),), lambda x: x[1:3], lambda x: x[1:3]),
    Case("softmax", "x.softmax(-1)", ((4, 4),), lambda x: x.softmax(-1), _np_softmax),
    Case("chain", "(x * w + b).tanh().sum()", ((4, 4), (4, 4), (4,)),
         lambda x, w, b: (x * w + b).tanh().sum(),
         lambda x, w, b: np.tanh(x * w + b).sum(), n_ops=4),
)  # fmt: skip


def _fwd_bwd(fn: Callable, leaves: list, grad_out) -> Callable[[], None]:
    def step() -> None:
        for t in leaves:
            t.grad = None  # as optimizer.zero_grad(set_to_none=True)
        fn(*leaves).backward(grad_out)

    return step


def _check(case: Case, arrays: list, tl: list, th: list | None, torch) -> None:
    """Refuse to time a wrong op: tinylm's forward against NumPy, its gradients against
    PyTorch's (when present)."""
    y = case.graph(*tl)
    if not np.allclose(y.detach().numpy(), case.floor(*arrays), rtol=1e-5, atol=1e-6):
        raise RuntimeError(f"overhead: tinylm {case.name} ({case.expr}) disagrees with NumPy")
    if th is None:
        return
    for t in (*tl, *th):
        t.grad = None
    y.backward(ones_like(y))
    yt = case.graph(*th)
    yt.backward(torch.ones_like(yt))
    for i, (a, b) in enumerate(zip(tl, th)):
        if not np.allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-5, atol=1e-6):
            raise RuntimeError(f"overhead: tinylm {case.name} gradient {i} disagrees with "
                               "PyTorch")


def run_case(case: Case, repeats: int, target_s: float, torch=None) -> dict:
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in case.shapes]
    tl = [make_tensor(a, requires_grad=True) for a in arrays]
    th = None if torch is None else [torch.tensor(a, requires_grad=True) for a in arrays]
    _check(case, arrays, tl, th, torch)

    out_shape = np.shape(case.floor(*arrays))
    fns = {
        "numpy": lambda: case.floor(*arrays),
        "tinylm_fwd": lambda: case.graph(*tl),
        "tinylm_fwd_bwd": _fwd_bwd(case.graph, tl, ones(*out_shape)),
    }
    if th is not None:
        fns["torch_fwd"] = lambda: case.graph(*th)
        fns["torch_fwd_bwd"] = _fwd_bwd(case.graph, th, torch.ones(out_shape))
    us = {k: v * 1e6 for k, v in compare(fns, repeats, target_s)[0].items()}
    per_op = us["tinylm_fwd"] / case.n_ops
    return {
        "op": case.name, "expr": case.expr, "shapes": [list(s) for s in case.shapes],
        "n_ops": case.n_ops, "numpy_us": us["numpy"], "tinylm_fwd_us": us["tinylm_fwd"],
        "torch_fwd_us": us.get("torch_fwd"), "tinylm_fwd_bwd_us": us["tinylm_fwd_bwd"],
        "torch_fwd_bwd_us": us.get("torch_fwd_bwd"), "tinylm_fwd_per_op_us": per_op,
        "meets_goal": per_op <= GOAL_US,
    }  # fmt: skip


def run(quick: bool = False, torch=None, repeats: int | None = None, bar=None) -> dict:
    repeats = repeats or (3 if quick else 15)
    target_s = 0.002 if quick else 0.01
    results = []
    for c in CASES:
        results.append(run_case(c, repeats, target_s, torch))
        if bar is not None:
            bar.update(1)
    per_op = [r["tinylm_fwd_per_op_us"] for r in results]
    return {
        "settings": {"repeats": repeats, "target_s": target_s, "goal_us": GOAL_US,
                     "dtype": "float32", "gc": "enabled", "threads": 1},
        "results": results,
        "median_fwd_per_op_us": statistics.median(per_op),
        "ops_meeting_goal": sum(r["meets_goal"] for r in results),
    }  # fmt: skip


def _ratio(a: float, b: float | None) -> float | None:
    return None if b is None else a / b


def table(result: dict) -> str:
    rows = [("op", "numpy", "tinylm fwd", "torch fwd", "tinylm fwd+bwd", "torch fwd+bwd",
             "ratio tinylm/torch fwd", "ratio tinylm/torch fwd+bwd",
             f"fwd per op <= {GOAL_US:g} us")]  # fmt: skip
    for r in result["results"]:
        goal = "yes" if r["meets_goal"] else "NO"
        if r["n_ops"] > 1:
            goal += f" ({r['tinylm_fwd_per_op_us']:.2f} per op)"
        if r["numpy_us"] / r["n_ops"] > GOAL_US:
            goal += " (NumPy alone is over)"
        rows.append((
            r["op"], fmt(r["numpy_us"]), fmt(r["tinylm_fwd_us"]), fmt(r["torch_fwd_us"]),
            fmt(r["tinylm_fwd_bwd_us"]), fmt(r["torch_fwd_bwd_us"]),
            fmt_ratio(_ratio(r["tinylm_fwd_us"], r["torch_fwd_us"])),
            fmt_ratio(_ratio(r["tinylm_fwd_bwd_us"], r["torch_fwd_bwd_us"])), goal,
        ))  # fmt: skip
    return markdown(rows)


def targets(result: dict) -> list[dict]:
    n = len(result["results"])
    worst = max(result["results"], key=lambda r: r["tinylm_fwd_per_op_us"])
    note = (f"{result['ops_meeting_goal']}/{n} ops <= {GOAL_US:g} us; slowest "
            f"{worst['op']} {worst['tinylm_fwd_per_op_us']:.2f} us")
    return [target(f"per-op overhead, forward (median of {n} ops)", "overhead",
                   result["median_fwd_per_op_us"], GOAL_US, "<=", "us", note)]


FOOTNOTE = "exprs: " + "; ".join(f"{c.name}: {c.expr} {list(c.shapes)}" for c in CASES)
