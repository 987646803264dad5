"""benchmarks/overhead.py runs, prints its table and writes its JSON, with torch and without.

A smoke test only: timings are never asserted (they depend on the machine and its load).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "overhead.py"
OPS = ("add", "mul", "matmul", "tanh", "exp", "sum", "reshape", "getitem", "softmax", "chain")
COLUMNS = ("numpy", "tinylm fwd", "torch fwd", "tinylm fwd+bwd", "torch fwd+bwd",
           "ratio tinylm/torch")  # fmt: skip
TIMES = ("numpy_us", "tinylm_fwd_us", "tinylm_fwd_bwd_us")
TORCH_TIMES = ("torch_fwd_us", "torch_fwd_bwd_us")


def _run(tmp_path: Path, *prefix: str) -> tuple[str, dict]:
    out = tmp_path / "overhead.json"
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    proc = subprocess.run(
        [sys.executable, *prefix, str(SCRIPT), "--quick", "--json", str(out)],
        capture_output=True, text=True, encoding="utf-8", timeout=60, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout, json.loads(out.read_text())


def _rows(stdout: str) -> dict[str, list[str]]:
    """The table's rows by op name (the first cell of each '| ... |' line)."""
    rows = {}
    for line in stdout.splitlines():
        if line.startswith("| "):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells
    return rows


def test_quick_run_prints_every_op_and_writes_json(tmp_path):
    stdout, doc = _run(tmp_path)
    header = next(line for line in stdout.splitlines() if line.startswith("| op |"))
    for col in COLUMNS:
        assert col in header
    rows = _rows(stdout)
    for op in OPS:
        assert op in rows, f"no table row for {op}"
    assert "numpy" in stdout and "CPUs" in stdout  # the machine line

    by_op = {r["op"]: r for r in doc["results"]}
    assert set(OPS) <= set(by_op)
    have_torch = doc["machine"]["torch"] is not None
    for op in OPS:
        r = by_op[op]
        for key in TIMES + (TORCH_TIMES if have_torch else ()):
            assert isinstance(r[key], float) and r[key] > 0, (op, key, r[key])
        assert isinstance(r["meets_goal"], bool)


def test_runs_without_torch(tmp_path):
    # sys.modules["torch"] = None makes `import torch` raise ImportError, as if not installed
    stdout, doc = _run(tmp_path, "-c", _NO_TORCH)
    assert "torch not installed" in stdout
    rows = _rows(stdout)
    for op in OPS:
        cells = rows[op]
        assert cells[3] == "—" and cells[5] == "—", cells  # torch fwd, torch fwd+bwd
        assert float(cells[2]) > 0  # tinylm fwd
    assert doc["machine"]["torch"] is None
    for r in doc["results"]:
        assert r["torch_fwd_us"] is None and r["tinylm_fwd_us"] > 0


_NO_TORCH = (
    "import runpy, sys; sys.modules['torch'] = None; sys.argv = sys.argv[1:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


# ----------------------------------------------------------------------------- lm_step.py

LM_STEP = SCRIPT.parent / "lm_step.py"


def test_lm_step_quick_lists_both_models(tmp_path):
    """benchmarks/lm_step.py --quick runs and its table has a row for each model (no timing
    is asserted)."""
    out = tmp_path / "lm_step.json"
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    proc = subprocess.run(
        [sys.executable, str(LM_STEP), "--quick", "--json", str(out)],
        capture_output=True, text=True, encoding="utf-8", timeout=240, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    header = next(line for line in proc.stdout.splitlines() if line.startswith("| model |"))
    for col in ("tinylm tok/s", "torch tok/s", "ratio tinylm/torch", "target"):
        assert col in header
    rows = _rows(proc.stdout)
    assert {"lstm", "gpt"} <= set(rows), rows
    assert "threads:" in proc.stdout and "CPUs" in proc.stdout
    doc = json.loads(out.read_text())
    assert [r["model"] for r in doc["results"]] == ["lstm", "gpt"]
    for r in doc["results"]:
        assert r["tinylm"]["tok_s"] > 0
