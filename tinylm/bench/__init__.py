"""``tinylm bench``: how fast tinylm is, against NumPy and PyTorch CPU, in one run.

Sections (``--only`` picks some), each in its own module here:

    lm        training-step tokens/s of the char-LSTM LM and the tiny GPT, tinylm with its
              kernels on and off, PyTorch (nn.LSTM, an LSTMCell loop, the GPT) (``lm.py``)
    kernels   every fused kernel against the NumPy expression it replaces (``kernel_table.py``)
    overhead  per-op autograd overhead on tiny arrays (``overhead.py``)
    startup   ``import tinylm`` + the first training step, cold and warm Numba cache
              (``startup.py``)

then one table of the targets from the fast-paths issue: measured, goal, met or not.
Everything runs in this process (startup: in child processes), with the same thread count
for NumPy's OpenBLAS, Numba and PyTorch (``--threads``, default 1 as ``tinylm train``);
timings are interleaved so that ratios hold on a busy machine, where absolute figures do
not. ``benchmarks/*.py`` are thin wrappers of this module (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from ..cli_train import _int_at_least  # the same argument checks as tinylm train
from . import kernel_table, lm, overhead, startup
from ._util import DASH, describe, markdown, optional_torch, say, threads

__all__ = ["main", "add_arguments", "run", "SECTIONS"]

SECTIONS = ("lm", "kernels", "overhead", "startup")
TITLES = {
    "lm": "Training step: tokens/s",
    "kernels": "Kernels against NumPy (and PyTorch)",
    "overhead": "Per-op overhead on 4x4 float32 tensors, microseconds (1 thread)",
    "startup": "Import and first training step, cold and warm Numba cache",
}
MODULES = {"lm": lm, "kernels": kernel_table, "overhead": overhead, "startup": startup}


def _sections(s: str) -> tuple[str, ...]:
    got = tuple(x.strip() for x in s.split(",") if x.strip())
    bad = [x for x in got if x not in SECTIONS]
    if bad or not got:
        what = ", ".join(map(repr, bad)) if bad else repr(s)
        raise argparse.ArgumentTypeError(
            f"unknown section {what}; choose from {','.join(SECTIONS)}")
    return tuple(x for x in SECTIONS if x in got)  # report order


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true",
                   help="few steps and repeats, small kernel sizes, warm start only: a smoke "
                   "test (well under a minute)")
    p.add_argument("--json", metavar="PATH", help="also write every figure as JSON to PATH")
    p.add_argument("--threads", type=_int_at_least(0), default=1, metavar="N",
                   help="threads for NumPy's OpenBLAS, Numba and PyTorch alike (default 1, "
                   "as tinylm train; 0: leave each library's default)")
    p.add_argument("--only", type=_sections, default=SECTIONS, metavar="LIST",
                   help=f"comma-separated sections to run (default all: {','.join(SECTIONS)})")
    p.add_argument("--steps", type=_int_at_least(1), metavar="N",
                   help="timed training steps per run (default 30; --quick 3)")
    p.add_argument("--repeats", type=_int_at_least(1), metavar="N",
                   help="timing rounds per kernel case and per op (default 9 and 15; "
                   "--quick 3)")


def _bar(desc: str, total: int):
    from tqdm.auto import tqdm

    # disable=None: shown on a terminal only (the per-section lines always are)
    return tqdm(total=total, desc=desc, file=sys.stderr, disable=None, leave=False)


def _run_section(name: str, args, torch) -> dict:
    if name == "lm":
        models = lm.MODELS
        with _bar("lm steps", (args.steps or (3 if args.quick else 30)) * len(models)) as bar:
            return lm.run(args.quick, torch, steps=args.steps, models=models, bar=bar)
    if name == "kernels":
        with _bar("kernel cases", 0) as bar:
            def size(n):
                bar.total = n
                bar.refresh()
            return kernel_table.run(args.quick, repeats=args.repeats, bar=bar, on_cases=size)
    if name == "overhead":
        with threads(1, torch), _bar("ops", len(overhead.CASES)) as bar:
            return overhead.run(args.quick, torch, repeats=args.repeats, bar=bar)
    with _bar("startup runs", 2) as bar:
        return startup.run(args.quick, args.threads, bar=bar)


def _targets(name: str, result: dict, torch) -> list[dict]:
    if name == "lm":
        return lm.targets(result, torch is not None)
    return MODULES[name].targets(result)


def _fmt_value(v: float | None, unit: str) -> str:
    if v is None:
        return DASH
    return {"x": f"{v:.2f}x", "s": f"{v:.3f} s", "us": f"{v:.2f} us"}[unit]


def targets_table(rows: list[dict]) -> str:
    out = [("target", "measured", "goal", "met", "note")]
    for t in rows:
        met = DASH if t["met"] is None else ("met" if t["met"] else "NOT met")
        goal = f"{t['op']} {t['goal']:g}{' ' if t['unit'] != 'x' else ''}{t['unit']}"
        out.append((t["name"], _fmt_value(t["measured"], t["unit"]), goal, met,
                    t["note"] or ""))
    return markdown(out)


def run(args) -> int:
    """``tinylm bench`` with parsed ``args``; prints the report, returns the exit status
    (1 when a section failed, whatever the targets)."""
    start = time.perf_counter()
    needs_torch = bool(set(args.only) - {"startup"})
    torch = optional_torch() if needs_torch else None
    if torch is not None:
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # only settable before PyTorch's first parallel work
            pass
    info = describe(torch)
    if needs_torch and torch is None:
        info["torch"] = None  # installed perhaps, but it does not import
    doc: dict = {"machine": info, "settings": {"quick": args.quick, "threads": args.threads,
                                               "only": list(args.only)}}
    print(f"machine: {info['cpu']}, {info['cpu_count']} CPUs, {info['platform']}")
    print(f"python {info['python']}, numpy {info['numpy']}, numba {info['numba']}, "
          f"tinylm {info['tinylm']}, torch {info['torch'] or 'not installed'}")
    failed, all_targets = [], []
    with threads(args.threads, torch) as counts:
        doc["threads"] = counts
        print(f"threads: NumPy/OpenBLAS {counts['blas'] or DASH}, Numba {counts['numba']}, "
              f"torch {counts['torch'] or DASH} (--threads {args.threads}); "
              f"{'quick run' if args.quick else 'full run'}, sections: {','.join(args.only)}")
        for name in args.only:
            t0 = time.perf_counter()
            say(f"{name}: running ...")
            try:
                result = _run_section(name, args, torch)
            except Exception as e:  # report it, go on with the other sections
                say(f"{name}: FAILED: {type(e).__name__}: {e}")
                print(f"\n## {TITLES[name]}\n\nFAILED: {type(e).__name__}: {e}")
                doc[name] = {"error": f"{type(e).__name__}: {e}"}
                failed.append(name)
                continue
            result["elapsed_s"] = time.perf_counter() - t0
            doc[name] = result
            say(f"{name}: done in {result['elapsed_s']:.1f} s")
            print(f"\n## {TITLES[name]}\n")
            print(MODULES[name].table(result))
            print(f"\n{MODULES[name].FOOTNOTE}", flush=True)
            all_targets += _targets(name, result, torch)

    doc["targets"] = all_targets
    doc["elapsed_s"] = time.perf_counter() - start
    print("\n## Targets\n")
    print(targets_table(all_targets) if all_targets else "(no target in these sections)")
    met = sum(t["met"] is True for t in all_targets)
    measured = sum(t["met"] is not None for t in all_targets)
    print(f"\n{met} of {measured} measured targets met ({len(all_targets)} in all); "
          f"{doc['elapsed_s']:.0f} s")
    if failed:
        print(f"sections that failed: {', '.join(failed)}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2)
        print(f"wrote {args.json}")
    return 1 if failed else 0


def main(argv: list[str] | None = None, prog: str = "tinylm bench") -> int:
    """The command as a function (``benchmarks/*.py`` call it with ``--only``)."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    add_arguments(p)
    return run(p.parse_args(argv))
