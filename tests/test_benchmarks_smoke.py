"""benchmarks/*.py run as scripts, print their table and write their JSON, with torch and
without (each is ``tinylm bench --only SECTION``; tests/test_cli_bench.py checks the figures
themselves). A smoke test only: timings are never asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import tinylm

HERE = Path(__file__).resolve().parents[1] / "benchmarks"
OPS = ("add", "mul", "matmul", "tanh", "exp", "sum", "reshape", "getitem", "softmax", "chain")
OVERHEAD_COLUMNS = ("numpy", "tinylm fwd", "torch fwd", "tinylm fwd+bwd", "torch fwd+bwd",
                    "ratio tinylm/torch")  # fmt: skip

# sys.modules["torch"] = None makes `import torch` raise ImportError, as if not installed
_NO_TORCH = (
    "import runpy, sys; sys.modules['torch'] = None; sys.argv = sys.argv[1:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


def _run(tmp_path: Path, script: str, *args: str, no_torch: bool = False) -> tuple[str, dict]:
    out = tmp_path / f"{script}.json"
    prefix = ("-c", _NO_TORCH) if no_torch else ()
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    proc = subprocess.run(
        [sys.executable, *prefix, str(HERE / script), "--quick", *args, "--json", str(out)],
        capture_output=True, text=True, encoding="utf-8", timeout=240, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "CPUs" in proc.stdout and "threads:" in proc.stdout  # the machine lines
    assert "## Targets" in proc.stdout
    return proc.stdout, json.loads(out.read_text(encoding="utf-8"))


def _rows(stdout: str) -> dict[str, list[str]]:
    """The tables' rows by their first cell (of each '| ... |' line)."""
    rows = {}
    for line in stdout.splitlines():
        if line.startswith("| "):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells
    return rows


def test_overhead_prints_every_op_and_writes_json(tmp_path):
    stdout, doc = _run(tmp_path, "overhead.py", "--repeats", "1")
    header = next(line for line in stdout.splitlines() if line.startswith("| op |"))
    for col in OVERHEAD_COLUMNS:
        assert col in header
    assert set(OPS) <= set(_rows(stdout))
    by_op = {r["op"]: r for r in doc["overhead"]["results"]}
    assert set(by_op) == set(OPS)
    have_torch = doc["machine"]["torch"] is not None
    for r in by_op.values():
        for key in ("numpy_us", "tinylm_fwd_us", "tinylm_fwd_bwd_us") + (
                ("torch_fwd_us", "torch_fwd_bwd_us") if have_torch else ()):
            assert isinstance(r[key], float) and r[key] > 0, (r["op"], key, r[key])
        assert isinstance(r["meets_goal"], bool)


def test_overhead_runs_without_torch(tmp_path):
    stdout, doc = _run(tmp_path, "overhead.py", "--repeats", "1", no_torch=True)
    assert "torch not installed" in stdout
    rows = _rows(stdout)
    for op in OPS:
        cells = rows[op]
        assert cells[3] == "—" and cells[5] == "—", cells  # torch fwd, torch fwd+bwd
        assert float(cells[2]) > 0  # tinylm fwd
    assert doc["machine"]["torch"] is None
    for r in doc["overhead"]["results"]:
        assert r["torch_fwd_us"] is None and r["tinylm_fwd_us"] > 0


def test_lm_step_lists_every_run(tmp_path):
    stdout, doc = _run(tmp_path, "lm_step.py", "--steps", "1")
    header = next(line for line in stdout.splitlines() if line.startswith("| model |"))
    for col in ("run", "step ms", "tok/s", "tinylm kernels-on / this"):
        assert col in header
    labels = {line.split("|")[2].strip() for line in stdout.splitlines()
              if line.startswith("| lstm |") or line.startswith("| gpt |")}
    assert {"tinylm, kernels on", "tinylm, kernels off"} <= labels
    if doc["machine"]["torch"] is not None:
        assert {"PyTorch nn.LSTM", "PyTorch LSTMCell loop over t"} <= labels
    assert {r["model"] for r in doc["lm"]["rows"]} == {"lstm", "gpt"}
    for r in doc["lm"]["rows"]:
        if r["run"].startswith("tinylm"):
            assert r["tok_s"] > 0


def test_kernels_lists_every_module(tmp_path):
    stdout, doc = _run(tmp_path, "kernels.py", "--repeats", "1")
    assert "| module | kernel |" in stdout
    k = doc["kernels"]
    listed = {r["module"] for r in k["rows"]} | {s["module"] for s in k["skipped"]}
    assert listed == set(tinylm.kernels.MODULES)
    assert all(r["error"] is None and r["kernel_s"] > 0 for r in k["rows"])


def test_startup_reports_the_warm_start(tmp_path):
    stdout, doc = _run(tmp_path, "startup.py")
    assert "warm (default location)" in stdout
    w = doc["startup"]["warm"]
    assert w["total_s"] > 0 and w["first_step_s"] > 0 and w["import_s"] > 0
