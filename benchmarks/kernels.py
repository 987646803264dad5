"""The kernel table: every fused kernel of tinylm.kernels against the NumPy expression it
replaces (and PyTorch CPU, when installed), with the speed targets of the fast-paths issue.

Each kernel module's ``bench_cases(quick)`` supplies the cases (tinylm/kernels/_common.py,
``BenchCase``); a module that is missing or has none is listed as skipped. This is
``tinylm bench --only kernels`` (the code lives in tinylm/bench/kernel_table.py):

    python benchmarks/kernels.py              # full sizes (e.g. Adam over 10M parameters)
    python benchmarks/kernels.py --quick      # small sizes, 3 rounds (smoke test)
    python benchmarks/kernels.py --threads 2 --json out.json
"""

from __future__ import annotations

import sys

from tinylm.bench import main

if __name__ == "__main__":
    sys.exit(main(["--only", "kernels", *sys.argv[1:]], prog="kernels.py"))
