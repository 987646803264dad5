"""The kernel table: each fused kernel against the NumPy expression it replaces, and PyTorch.

Every module of ``tinylm.kernels`` (``kernels.MODULES``) offers
``bench_cases(quick) -> list[BenchCase]`` (``kernels/_common.py``): callables that run the
whole operation once on inputs the module built, the same inputs for the kernel, the NumPy
expression and PyTorch. A module that is missing, fails to import or has no
``bench_cases`` is listed as skipped, with the reason, and the table goes on without it.

Per case: the kernel's first call (compilation, or loading Numba's on-disk cache), then the
three callables timed interleaved (each round runs each once; 9 rounds, 3 with ``--quick``,
fewer but at least 3 when a case's rounds would take over ~20 s), the median per call, and
``speedup = numpy time / kernel time`` (and ``torch time / kernel time``).
"""

from __future__ import annotations

import importlib
import time

from ..kernels import MODULES
from ._util import compare, fmt_ratio, markdown, target


def _us(v: float | None) -> str:
    """Seconds as microseconds, about three significant digits."""
    if v is None:
        return "—"
    us = v * 1e6
    return f"{us:,.0f}" if us >= 100 else f"{us:.1f}" if us >= 10 else f"{us:.2f}"


def collect(quick: bool, modules=MODULES) -> tuple[list[tuple[str, object]], list[dict]]:
    """``([(module, case), ...], [{"module", "reason"}, ...])``: the cases of every module
    that has them, and the modules skipped and why."""
    cases, skipped = [], []
    for name in modules:
        full = f"tinylm.kernels.{name}"
        try:
            mod = importlib.import_module(full)
        except ModuleNotFoundError as e:
            if e.name != full:
                raise
            skipped.append({"module": name, "reason": "module not there yet"})
            continue
        except Exception as e:  # a half-written module must not stop the table
            skipped.append({"module": name, "reason": f"import failed: {type(e).__name__}: {e}"})
            continue
        fn = getattr(mod, "bench_cases", None)
        if fn is None:
            skipped.append({"module": name, "reason": "no bench_cases()"})
            continue
        try:
            got = list(fn(quick=quick))
        except Exception as e:
            skipped.append({"module": name,
                            "reason": f"bench_cases failed: {type(e).__name__}: {e}"})
            continue
        if not got:
            skipped.append({"module": name, "reason": "bench_cases() returned no case"})
        cases.extend((name, c) for c in got)
    return cases, skipped


def time_case(module: str, case, repeats: int, target_s: float) -> dict:
    row = {"module": module, "name": case.name, "size": case.size,
           "numpy_label": case.numpy_label, "target": case.target, "target_vs": case.target_vs,
           "first_call_s": None, "kernel_s": None, "numpy_s": None, "torch_s": None,
           "speedup_vs_numpy": None, "speedup_vs_torch": None, "rounds": 0,
           "error": None}  # fmt: skip
    try:
        t0 = time.perf_counter()
        case.kernel()  # compiles, or loads the cache
        row["first_call_s"] = time.perf_counter() - t0
        fns = {"kernel": case.kernel, "numpy": case.numpy}
        if case.torch is not None:
            fns["torch"] = case.torch
        got, row["rounds"] = compare(fns, repeats, target_s)
    except Exception as e:  # one broken case must not stop the table
        row["error"] = f"{type(e).__name__}: {e}"
        return row
    row["kernel_s"], row["numpy_s"], row["torch_s"] = got["kernel"], got["numpy"], got.get("torch")
    row["speedup_vs_numpy"] = got["numpy"] / got["kernel"]
    if "torch" in got:
        row["speedup_vs_torch"] = got["torch"] / got["kernel"]
    return row


def run(quick: bool = False, repeats: int | None = None, modules=MODULES, bar=None,
        on_cases=None) -> dict:
    """Collect and time every case; ``on_cases(n)`` is told how many there are (to size a
    progress bar) and ``bar.update(1)`` is called after each."""
    repeats = repeats or (3 if quick else 9)
    target_s = 0.002 if quick else 0.02
    cases, skipped = collect(quick, modules)
    if on_cases is not None:
        on_cases(len(cases))
    rows = []
    for module, case in cases:
        rows.append(time_case(module, case, repeats, target_s))
        if bar is not None:
            bar.update(1)
    return {"settings": {"repeats": repeats, "target_s": target_s, "modules": list(modules)},
            "rows": rows, "skipped": skipped}


def _met(r: dict) -> str:
    if r["target"] is None:
        return "—"
    got = r["speedup_vs_torch"] if r["target_vs"] == "torch" else r["speedup_vs_numpy"]
    return "—" if got is None else ("met" if got >= r["target"] else "NOT met")


def table(result: dict) -> str:
    rows = [("module", "kernel", "size", "NumPy expression", "numpy µs", "kernel µs",
             "torch µs", "numpy / kernel", "torch / kernel", "target", "met",
             "first call µs")]  # fmt: skip
    for r in result["rows"]:
        if r["error"]:
            rows.append((r["module"], r["name"], r["size"], r["numpy_label"],
                         *(["—"] * 7), f"error: {r['error']}"))
            continue
        goal = "—" if r["target"] is None else f">= {r['target']:g}x vs {r['target_vs']}"
        rows.append((r["module"], r["name"], r["size"], r["numpy_label"],
                     _us(r["numpy_s"]), _us(r["kernel_s"]), _us(r["torch_s"]),
                     fmt_ratio(r["speedup_vs_numpy"]), fmt_ratio(r["speedup_vs_torch"]),
                     goal, _met(r), _us(r["first_call_s"])))
    for s in result["skipped"]:
        rows.append((s["module"], f"skipped: {s['reason']}", *(["—"] * 10)))
    return markdown(rows)


def targets(result: dict) -> list[dict]:
    out = []
    for r in result["rows"]:
        if r["target"] is None:
            continue
        vs_torch = r["target_vs"] == "torch"
        got = r["speedup_vs_torch"] if vs_torch else r["speedup_vs_numpy"]
        note = r["error"] or ("PyTorch not installed" if vs_torch and got is None else "")
        against = "PyTorch" if vs_torch else "NumPy"
        out.append(target(f"{r['name']}, {r['size']}: kernel vs {against}", "kernels", got,
                          r["target"], ">=", "x", note))
    return out


FOOTNOTE = ("times per call, median of interleaved rounds; numpy / kernel > 1: the kernel "
            "is faster; first call = compiling or loading Numba's cache")
