"""Per-op autograd overhead on tiny arrays: tinylm against PyTorch CPU, with NumPy as the floor.

On a 4x4 float32 array the arithmetic takes nanoseconds; what an op costs is the Python
around it: wrapping arrays in Tensors, recording the graph node, and (in backward) walking
the graph. A small model's training step is thousands of such ops, so this per-op
overhead, not the math, sets its speed. See benchmarks/README.md.

Columns, each the median over repeats of the time per call, in microseconds:

    numpy           the raw array expression (no graph): the floor
    tinylm fwd      the op on tensors that require grad (records the graph node)
    torch fwd       the same in PyTorch CPU, when torch imports
    tinylm fwd+bwd  .grad reset, forward, then backward(gradient of ones)
    torch fwd+bwd   the same in PyTorch

Both libraries run single-threaded: OpenBLAS/OpenMP/MKL get 1 thread through the
environment (set here, before NumPy is imported) and PyTorch gets
``torch.set_num_threads(1)``. The garbage collector stays on while timing, as in training.

    python benchmarks/overhead.py             # full run, ~15 s on 2 cores
    python benchmarks/overhead.py --quick     # few repeats (smoke test)
    python benchmarks/overhead.py --json out.json
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # must precede the NumPy import to take effect

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import timeit  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402

import tinylm  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # benchmarks/machine.py
from machine import describe  # noqa: E402

try:
    import torch
except ImportError:  # the benchmark runs without torch: its columns show a dash
    torch = None

GOAL_US = 3.0  # forward time per op (PyTorch ~1.5 us, DeZero ~4.4 us on the reference machine)
DASH = "—"


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


# ----------------------------------------------------------------------------- timing


def median_us(fn: Callable[[], object], repeats: int, target_s: float) -> float:
    """Median time per call of ``fn()`` in microseconds, over ``repeats`` timing runs of
    ``number`` calls each; ``number`` grows (1, 2, 5, 10, ...) until a run takes
    ``target_s``. ``setup=gc.enable`` keeps the collector on, as it is in training."""
    timer = timeit.Timer(fn, setup=gc.enable)
    number = 1
    while True:
        for k in (1, 2, 5):
            n = number * k
            if timer.timeit(n) >= target_s:
                runs = timer.repeat(repeat=repeats, number=n)
                return statistics.median(runs) / n * 1e6
        number *= 10


def _fwd_bwd(fn: Callable, leaves: list, grad_out) -> Callable[[], None]:
    def step() -> None:
        for t in leaves:
            t.grad = None  # as optimizer.zero_grad(set_to_none=True)
        fn(*leaves).backward(grad_out)

    return step


def _check(case: Case, arrays: list, tl_leaves: list, th_leaves: list | None) -> None:
    """Refuse to time a wrong op: tinylm's forward against NumPy, its gradients against
    PyTorch's (when present)."""
    y = case.graph(*tl_leaves)
    ref = case.floor(*arrays)
    if not np.allclose(y.detach().numpy(), ref, rtol=1e-5, atol=1e-6):
        sys.exit(f"overhead.py: tinylm {case.name} ({case.expr}) disagrees with NumPy")
    if th_leaves is None:
        return
    for t in (*tl_leaves, *th_leaves):
        t.grad = None
    y.backward(tinylm.ones_like(y))
    yt = case.graph(*th_leaves)
    yt.backward(torch.ones_like(yt))
    for i, (a, b) in enumerate(zip(tl_leaves, th_leaves)):
        if not np.allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-5, atol=1e-6):
            sys.exit(f"overhead.py: tinylm {case.name} gradient {i} disagrees with PyTorch")


def run_case(case: Case, repeats: int, target_s: float, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in case.shapes]
    tl = [tinylm.tensor(a, requires_grad=True) for a in arrays]
    th = None if torch is None else [torch.tensor(a, requires_grad=True) for a in arrays]
    _check(case, arrays, tl, th)

    out_shape = np.shape(case.floor(*arrays))
    res = {
        "op": case.name,
        "expr": case.expr,
        "shapes": [list(s) for s in case.shapes],
        "n_ops": case.n_ops,
        "numpy_us": median_us(lambda: case.floor(*arrays), repeats, target_s),
        "tinylm_fwd_us": median_us(lambda: case.graph(*tl), repeats, target_s),
        "tinylm_fwd_bwd_us": median_us(
            _fwd_bwd(case.graph, tl, tinylm.ones(*out_shape)), repeats, target_s
        ),
        "torch_fwd_us": None,
        "torch_fwd_bwd_us": None,
    }
    if th is not None:
        res["torch_fwd_us"] = median_us(lambda: case.graph(*th), repeats, target_s)
        res["torch_fwd_bwd_us"] = median_us(
            _fwd_bwd(case.graph, th, torch.ones(out_shape)), repeats, target_s
        )
    per_op = res["tinylm_fwd_us"] / case.n_ops
    res["tinylm_fwd_per_op_us"] = per_op
    res["meets_goal"] = per_op <= GOAL_US
    return res


# ----------------------------------------------------------------------------- report


def machine() -> dict:
    return {**describe(torch), "blas_threads_env": os.environ["OPENBLAS_NUM_THREADS"]}


def _fmt(v: float | None) -> str:
    return DASH if v is None else f"{v:.2f}"


def _ratio(a: float, b: float | None) -> str:
    return DASH if b is None else f"{a / b:.2f}x"


HEADER = (
    "op", "numpy", "tinylm fwd", "torch fwd", "tinylm fwd+bwd", "torch fwd+bwd",
    "ratio tinylm/torch fwd", "ratio tinylm/torch fwd+bwd", f"fwd per op <= {GOAL_US:g} us",
)  # fmt: skip


def table(results: list[dict]) -> str:
    rows = [HEADER, ("---",) * len(HEADER)]
    for r in results:
        per_op = r["tinylm_fwd_per_op_us"]
        goal = "yes" if r["meets_goal"] else "NO"
        if r["n_ops"] > 1:
            goal += f" ({per_op:.2f} per op)"
        if r["numpy_us"] / r["n_ops"] > GOAL_US:
            goal += " (NumPy alone is over)"
        rows.append((
            r["op"], _fmt(r["numpy_us"]), _fmt(r["tinylm_fwd_us"]), _fmt(r["torch_fwd_us"]),
            _fmt(r["tinylm_fwd_bwd_us"]), _fmt(r["torch_fwd_bwd_us"]),
            _ratio(r["tinylm_fwd_us"], r["torch_fwd_us"]),
            _ratio(r["tinylm_fwd_bwd_us"], r["torch_fwd_bwd_us"]), goal,
        ))  # fmt: skip
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="few short repeats (a smoke test)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    p.add_argument("--repeats", type=int, help="timing runs per cell (default 15; quick: 3)")
    args = p.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 15)
    target_s = 0.002 if args.quick else 0.01

    if torch is not None:
        torch.set_num_threads(1)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # only settable before PyTorch's first parallel work
            pass

    info = machine()
    print(f"machine: {info['cpu']}, {info['cpu_count']} CPUs, {info['platform']}")
    print(
        f"python {info['python']}, numpy {info['numpy']}, tinylm {info['tinylm']}, "
        f"torch {info['torch'] or 'not installed'}"
    )
    print(
        f"threads: NumPy/OpenBLAS {info['blas_threads_env']} (env), "
        f"torch {info['torch_threads'] or DASH}; float32 inputs, all requiring grad; "
        f"median of {repeats} runs, microseconds per call"
    )
    results = [run_case(c, repeats, target_s) for c in CASES]
    print()
    print(table(results))
    print()
    print("exprs: " + "; ".join(f"{c.name}: {c.expr} {list(c.shapes)}" for c in CASES))
    met = sum(r["meets_goal"] for r in results)
    print(f"goal <= {GOAL_US:g} us per op forward: {met}/{len(results)} ops meet it")

    if args.json:
        doc = {
            "machine": info,
            "settings": {"repeats": repeats, "target_s": target_s, "quick": args.quick,
                         "goal_us": GOAL_US, "dtype": "float32", "gc": "enabled"},
            "results": results,
        }  # fmt: skip
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
