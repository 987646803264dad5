"""The ``tinylm`` command.

``tinylm train | generate | eval`` live in ``cli_train.py``, ``tinylm course`` in
``course/cli.py``.

``tinylm bench`` (``bench/``) times training steps, kernels, per-op overhead and start-up
against NumPy and PyTorch, and prints which speed targets are met.

``tinylm gradcheck`` runs the op-registry sweep (gradcheck and gradgradcheck in
float64, the error inputs, contiguous-vs-strided agreement) over every
registered op and prints one table line per op. Exit status 1 on any failure.
"""

from __future__ import annotations

import argparse
import sys
import time

from .cli_train import add_train_parsers
from .course.cli import add_course_parser


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``tinylm train: error: ... (see tinylm train -h)``."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} -h)\n")


def _gradcheck(args) -> int:
    from tqdm.auto import tqdm

    from .testing import get_op, op_db, sweep_op

    if args.list:
        for info in op_db:
            print(f"{info.name:18s} {len(info.sample_inputs()):3d} samples"
                  + (f"  ({info.notes})" if info.notes else ""))
        return 0
    try:
        infos = [get_op(n) for n in args.op] if args.op else list(op_db)
    except KeyError as e:
        print(f"tinylm gradcheck: {e.args[0]}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    results = []
    bar = tqdm(infos, desc="gradcheck", unit="op", disable=args.quiet or None, file=sys.stderr)
    for info in bar:
        bar.set_postfix_str(info.name)
        results.append(sweep_op(info, gradgrad=not args.no_gradgrad))
    elapsed = time.perf_counter() - start

    w = max(14, *(len(r.name) for r in results))
    head = (f"{'op':{w}s} {'samples':>7s} {'errors':>6s} {'max abs err':>12s} "
            f"{'max rel err':>12s} {'of tol':>7s}  result")
    print(head)
    print("-" * len(head))
    for r in results:
        print(f"{r.name:{w}s} {r.samples:7d} {r.errors_checked:6d} {r.max_abs:12.2e} "
              f"{r.max_rel:12.2e} {r.tol_used:7.1e}  {'pass' if r.passed else 'FAIL'}")
    failed = [r for r in results if not r.passed]
    n_samples = sum(r.samples for r in results)
    print("-" * len(head))
    print(f"{len(results) - len(failed)}/{len(results)} ops pass over {n_samples} samples "
          f"in {elapsed:.1f} s (float64 central differences, eps=1e-6, atol=1e-5, rtol=1e-3; "
          "'errors' counts the bad inputs checked to raise; 'of tol' is the worst "
          "|analytic - numerical| / (atol + rtol |numerical|), below 1 to pass)")
    for r in failed:
        print(f"\n{r.name}: {len(r.failures)} failure(s)")
        for f in r.failures[: args.max_failures]:
            print("  " + f.replace("\n", "\n  "))
    return 1 if failed else 0


def _bench(args) -> int:
    from .bench import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="tinylm",
        description="tinylm: a from-scratch deep-learning package for learning how language "
        "models work.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    g = sub.add_parser(
        "gradcheck",
        help="gradient-check every registered op (the op-registry sweep)",
        description="Run gradcheck and gradgradcheck in float64 over every sample of every op "
        "in the registry, check each op's error inputs, and compare contiguous with strided "
        "inputs. Prints a table; exits 1 if anything fails.",
    )
    g.add_argument("--op", action="append", metavar="NAME",
                   help="check only this op (repeatable); see --list")
    g.add_argument("--list", action="store_true", help="list the registered ops and exit")
    g.add_argument("--no-gradgrad", action="store_true", help="skip second-order checks")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.add_argument("--max-failures", type=int, default=5, metavar="N",
                   help="failures printed per op (default 5)")
    g.set_defaults(func=_gradcheck)
    from .bench import add_arguments as add_bench_arguments

    b = sub.add_parser(
        "bench",
        help="speed against NumPy and PyTorch: training steps, kernels, overhead, start-up",
        description="Time, in one run: training-step tokens/s of the char-LSTM LM and the tiny "
        "GPT with the kernels on and off and against PyTorch CPU (when installed); each fused "
        "kernel against NumPy; per-op overhead; import and first step with a cold and a warm "
        "Numba cache. Ends with a table of the speed targets, met or not. Progress goes to "
        "stderr, the report to stdout.",
    )
    add_bench_arguments(b)
    b.set_defaults(func=_bench)
    add_course_parser(sub)
    add_train_parsers(sub)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
