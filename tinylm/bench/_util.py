"""What the benchmark sections share: the machine line, thread settings, interleaved timing,
number formatting and progress lines."""

from __future__ import annotations

import contextlib
import gc
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator

import numpy as np

from .. import __version__
from ..train.threads import get_blas_threads, set_blas_threads

DASH = "—"


def optional_torch():
    """PyTorch when it imports, else None (every torch column then shows a dash)."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def _installed(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def describe(torch=None) -> dict:
    """CPU model, core count, platform and library versions (PyTorch's: of the module
    given, else of the installed distribution, not imported)."""
    cpu = platform.processor()
    if not cpu or cpu == platform.machine():  # Linux leaves processor() empty or "x86_64"
        try:
            with open("/proc/cpuinfo") as f:
                cpu = next(
                    (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu
                )
        except OSError:
            pass
    import numba

    return {
        "cpu": cpu or platform.machine(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "tinylm": __version__,
        "torch": torch.__version__ if torch is not None else _installed("torch"),
    }


# ----------------------------------------------------------------------------- threads


def _numba():
    """Numba, after the kernels chose its threading layer (``kernels/_common.py`` picks
    ``workqueue``; asking Numba for its thread count starts the layer, too early after)."""
    import numba

    from ..kernels import _common  # noqa: F401

    return numba


def thread_counts(torch=None) -> dict:
    """The thread counts in effect now: NumPy's OpenBLAS, Numba, PyTorch."""
    numba = _numba()

    return {
        "blas": get_blas_threads(),
        "numba": numba.get_num_threads(),
        "torch": None if torch is None else torch.get_num_threads(),
    }


@contextlib.contextmanager
def threads(n: int, torch=None) -> Iterator[dict]:
    """Run the block with ``n`` threads for NumPy's OpenBLAS, Numba and PyTorch (0: leave
    each at its default), then restore what was there; yields the counts in effect."""
    numba = _numba()

    old = thread_counts(torch)
    if n > 0:
        set_blas_threads(n)  # as `tinylm train --threads N` does
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        if torch is not None:
            torch.set_num_threads(n)
    try:
        yield thread_counts(torch)
    finally:
        if n > 0:
            if old["blas"] is not None:
                set_blas_threads(old["blas"])
            numba.set_num_threads(old["numba"])
            if torch is not None:
                torch.set_num_threads(old["torch"])


# ----------------------------------------------------------------------------- timing


def _loop(fn: Callable[[], object], n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return time.perf_counter() - t0


def calls_for(fn: Callable[[], object], target_s: float) -> int:
    """How many calls of ``fn`` take at least ``target_s`` (1, 2, 5, 10, 20, ...)."""
    number = 1
    while True:
        for k in (1, 2, 5):
            if _loop(fn, number * k) >= target_s or number * k >= 10**6:
                return number * k
        number *= 10


def compare(fns: dict[str, Callable[[], object]], repeats: int, target_s: float,
            budget_s: float = 20.0) -> tuple[dict[str, float], int]:
    """Median seconds per call of each function, and the number of rounds, measured
    *interleaved*: every round times each function once (``calls_for`` calls of it, at
    least ``target_s``), so a change in the machine's load hits all of them alike and
    their ratios stay meaningful. ``repeats`` rounds, fewer (not under 3) when a round
    takes so long that they would overrun ``budget_s``. One untimed warm-up call each
    first; the garbage collector stays on, as in training."""
    first = {k: _loop(fn, 1) for k, fn in fns.items()}  # the warm-up call, timed
    numbers = {k: 1 if first[k] >= target_s else calls_for(fn, target_s)
               for k, fn in fns.items()}
    # a batch of calls_for(...) > 1 calls lasts target_s to ~2.5 target_s
    per_round = sum(first[k] if numbers[k] == 1 else 2 * target_s for k in fns)
    rounds = max(3, min(repeats, int(budget_s / per_round))) if repeats > 3 else repeats
    runs: dict[str, list[float]] = {k: [] for k in fns}
    gc.collect()
    for _ in range(rounds):
        for k, fn in fns.items():
            runs[k].append(_loop(fn, numbers[k]) / numbers[k])
    return {k: statistics.median(v) for k, v in runs.items()}, rounds


# ----------------------------------------------------------------------------- output


def say(msg: str) -> None:
    """A progress line on stderr (stdout carries the report)."""
    print(f"[tinylm bench] {msg}", file=sys.stderr, flush=True)


def fmt(v: float | None, spec: str = ".2f") -> str:
    return DASH if v is None else format(v, spec)


def fmt_ratio(v: float | None) -> str:
    return DASH if v is None else f"{v:.2f}x"


_NUMBER = re.compile(r"^(—|[<>]?=? ?[-+]?[\d,]*\.?\d+(e[-+]?\d+)?( ?(x|s|us))?)$")


def markdown(rows: list[tuple]) -> str:
    """A Markdown table: the first row is the header; columns of numbers align right."""
    body = [[str(c) for c in row] for row in rows[1:]]
    rule = tuple("---:" if body and all(_NUMBER.match(r[i]) for r in body if i < len(r))
                 and any(r[i] != DASH for r in body) else "---"
                 for i in range(len(rows[0])))
    out = [[str(c) for c in rows[0]], rule, *body]
    return "\n".join("| " + " | ".join(row) + " |" for row in out)


def target(name: str, section: str, measured: float | None, goal: float, op: str,
           unit: str, note: str = "") -> dict:
    """One row of the targets table: ``measured op goal`` (``op`` is ">=" or "<=");
    ``met`` is None when nothing was measured (e.g. PyTorch not installed)."""
    met = None
    if measured is not None:
        met = measured >= goal if op == ">=" else measured <= goal
    return {"name": name, "section": section, "measured": measured, "goal": goal, "op": op,
            "unit": unit, "met": met, "note": note}
