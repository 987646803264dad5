"""Time to the first training step: ``import tinylm``, build the char-LSTM LM (the default
preset's size), one training step, in a fresh process, with a cold and a warm Numba cache.

Cold: NUMBA_CACHE_DIR points at a new, empty folder, so every kernel the step uses
compiles; warm: the same folder again. Goal: import + first step <= 1 s with a warm cache.
This is ``tinylm bench --only startup`` (the code lives in tinylm/bench/startup.py):

    python benchmarks/startup.py              # cold, then warm
    python benchmarks/startup.py --quick      # warm only, Numba's default cache folder
"""

from __future__ import annotations

import sys

from tinylm.bench import main

if __name__ == "__main__":
    sys.exit(main(["--only", "startup", *sys.argv[1:]], prog="startup.py"))
