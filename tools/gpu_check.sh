#!/usr/bin/env bash
# The one prepared GPU run: the tests marked `gpu`, then the GPU training-step benchmark.
#
#   OUT=/some/folder bash tools/gpu_check.sh       # on the GPU machine (no internet needed)
#   bash tools/gpu_check.sh --prepare              # beforehand, on a machine with internet
#
# On the GPU machine it installs nothing: tinylm is used from this checkout (PYTHONPATH),
# CuPy, NumPy and Numba must already be there (it stops at once, loudly, without a working
# CuPy). Test-only packages the machine may lack (pytest, pytest-xdist, hypothesis, tqdm)
# are taken from out/gpu_deps when that folder exists: `--prepare` fills it (pure-Python
# wheels for Python 3.12) with pip; carry it to the GPU machine (it is git-ignored).
#
# Writes under $OUT: gpu_check.log (everything below), env.txt, gpu_tests.txt and
# gpu_tests.xml (JUnit), gpu_bench.txt, gpu_bench.json, gpu_bench.md (the table for
# benchmarks/README.md), summary.txt. Time: pytest is cut at 400 s and the benchmark at
# 150 s; on an H200 the whole script should take well under 8 minutes. Exit status 0 only
# when the tests and the benchmark both succeeded.
set -u -o pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-$(command -v python3 || command -v python)}
DEPS=$ROOT/out/gpu_deps

if [[ "${1:-}" == "--prepare" ]]; then
    rm -rf "$DEPS" && mkdir -p "$DEPS"
    "$PY" -m pip install --quiet --target "$DEPS" --python-version 3.12 \
        --only-binary=:all: --no-compile pytest pytest-xdist hypothesis tqdm || exit 1
    echo "prepared $DEPS ($(du -sh "$DEPS" | cut -f1)); carry out/gpu_deps to the GPU machine"
    exit 0
fi

: "${OUT:?set OUT to the folder the results go to}"
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
START=$SECONDS
stamp() { echo "=== [$((SECONDS - START)) s] $*"; }

export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONIOENCODING=utf-8 TQDM_DISABLE=1
export CUPY_CACHE_DIR=${CUPY_CACHE_DIR:-$ROOT/out/cupy_cache}  # compiled kernels, reused
if ! "$PY" -c "import pytest, hypothesis, tqdm" 2>/dev/null; then
    if [[ -d "$DEPS" ]]; then
        export PYTHONPATH="$PYTHONPATH:$DEPS"
        echo "using the test packages in $DEPS"
    fi
fi

stamp "environment"
{
    echo "host: $(hostname 2>/dev/null), $(nproc) CPUs; $("$PY" --version 2>&1) ($PY)"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total \
        --format=csv,noheader
    "$PY" - <<'EOF'
import importlib
for name in ("numpy", "numba", "cupy", "torch", "pytest", "xdist", "hypothesis", "tqdm",
             "matplotlib"):
    try:
        m = importlib.import_module(name)
        print(f"{name} {getattr(m, '__version__', '?')}")
    except Exception as e:
        print(f"{name}: not importable ({type(e).__name__}: {e})")
EOF
} 2>&1 | tee "$OUT/env.txt"

stamp "CuPy and tinylm on the GPU"
if ! "$PY" - <<'EOF'
import sys, time
try:
    import cupy
except Exception as e:
    sys.exit(f"FAIL: CuPy does not import ({type(e).__name__}: {e}); nothing can run on the GPU")
import tinylm
if not tinylm.cuda.is_available():
    sys.exit("FAIL: CuPy imports but tinylm.cuda.is_available() is False (no device or driver?)")
t0 = time.perf_counter()
x = tinylm.randn(64, 64, device="cuda", requires_grad=True)
(x @ x).tanh().sum().backward()
tinylm.cuda.synchronize()
print(f"GPU {tinylm.cuda.get_device_name()}, cupy {cupy.__version__}: a first matmul+tanh "
      f"forward and backward in {time.perf_counter() - t0:.2f} s (kernel compilation included)")
EOF
then
    echo "FAIL: no usable GPU; stopping before the tests" | tee "$OUT/summary.txt"
    exit 2
fi
if ! "$PY" -c "import pytest" 2>/dev/null; then
    echo "FAIL: pytest is not importable (run 'bash tools/gpu_check.sh --prepare' where there" \
         "is internet, and carry out/gpu_deps)" | tee "$OUT/summary.txt"
    exit 2
fi

stamp "pytest -m gpu (cut at 400 s)"
XDIST=()
if "$PY" -c "import xdist" 2>/dev/null; then XDIST=(-n 4); fi
timeout -k 10 400 "$PY" -m pytest -o addopts="" -p no:cacheprovider --strict-markers \
    --continue-on-collection-errors -m gpu ${XDIST[@]+"${XDIST[@]}"} -q -rfEsxX --durations=20 \
    --junitxml="$OUT/gpu_tests.xml" tests 2>&1 | tee "$OUT/gpu_tests.txt"
TESTS_RC=${PIPESTATUS[0]}

stamp "benchmarks/gpu.py (cut at 150 s)"
# shellcheck disable=SC2086  # GPU_BENCH_ARGS: extra options, e.g. "--quick" for a dry run
timeout -k 10 150 "$PY" benchmarks/gpu.py --json "$OUT/gpu_bench.json" --md "$OUT/gpu_bench.md" \
    ${GPU_BENCH_ARGS:-} 2>&1 | tee "$OUT/gpu_bench.txt"
BENCH_RC=${PIPESTATUS[0]}

stamp "done"
{
    echo "pytest -m gpu: exit $TESTS_RC$([[ $TESTS_RC == 124 ]] && echo ' (timed out)')"
    grep -E "^(=+ )?[0-9]+ (passed|failed)|passed|failed" "$OUT/gpu_tests.txt" | tail -1
    echo "benchmarks/gpu.py: exit $BENCH_RC$([[ $BENCH_RC == 124 ]] && echo ' (timed out)')"
    [[ -f "$OUT/gpu_bench.md" ]] && cat "$OUT/gpu_bench.md"
    echo "total $((SECONDS - START)) s"
} | tee "$OUT/summary.txt"
[[ $TESTS_RC == 0 && $BENCH_RC == 0 ]]
