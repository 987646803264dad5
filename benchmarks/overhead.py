"""Per-op autograd overhead on tiny arrays: tinylm against PyTorch CPU, NumPy as the floor.

On a 4x4 float32 array the arithmetic takes nanoseconds; what an op costs is the Python
around it (wrapping arrays in Tensors, recording the graph node, walking the graph in
backward). Goal: <= 3 us per op forward. Columns (microseconds per call, medians):
numpy (the raw expression), tinylm fwd, torch fwd, tinylm fwd+bwd, torch fwd+bwd; one
thread for every library.

This is ``tinylm bench --only overhead`` (the code lives in tinylm/bench/overhead.py);
the options are the command's:

    python benchmarks/overhead.py             # full run, ~15 s on 2 cores
    python benchmarks/overhead.py --quick     # few repeats (smoke test)
    python benchmarks/overhead.py --json out.json
"""

from __future__ import annotations

import sys

from tinylm.bench import main

if __name__ == "__main__":
    sys.exit(main(["--only", "overhead", *sys.argv[1:]], prog="overhead.py"))
