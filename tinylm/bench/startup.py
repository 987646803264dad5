"""Time to the first training step: ``import tinylm``, build the LSTM LM, one step.

Each measurement runs in a fresh Python process (``python -c CHILD``) so that nothing is
imported or compiled yet. The child times ``import tinylm``, building the char-LSTM LM at
the size of ``tinylm train``'s default preset (Embedding(65, 64), LSTM(64, 256), Linear;
Adam), the first training step on a 32 x 64 batch (forward, cross-entropy, backward, Adam
step: this is where Numba is imported and the kernels are compiled or loaded from its
cache) and a second step (the steady state, for comparison).

    cold   NUMBA_CACHE_DIR set to a new, empty folder: every kernel the step uses compiles
    warm   again with the same folder, now holding what the cold run compiled

``--quick`` skips the cold run (compiling takes seconds per kernel) and measures warm with
Numba's cache where it is by default (``__pycache__`` beside the kernels), after one
untimed run that fills it if needed. Goal: import + build + first step <= 1 s, warm.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ._util import fmt, markdown, target
from .lm import LSTM_CFG, B, T, V

GOAL_S = 1.0

CHILD = f"""
import json, sys, time
t0 = time.perf_counter()
import tinylm
t_import = time.perf_counter() - t0
import numpy as np
from tinylm.models import RNNLMConfig, build_model
from tinylm.nn import functional as F
from tinylm.optim import Adam
t1 = time.perf_counter()
tinylm.manual_seed(0)
model = build_model(RNNLMConfig(vocab_size={V}, cell="lstm", embed_dim={LSTM_CFG["embed_dim"]},
                                hidden_size={LSTM_CFG["hidden_size"]}))
opt = Adam(model.parameters(), lr=1e-3)
ids = np.random.default_rng(0).integers(0, {V}, size=({B}, {T} + 1))
x, y = tinylm.tensor(ids[:, :-1]), tinylm.tensor(ids[:, 1:])
t_build = time.perf_counter() - t1

def step():
    logits, _ = model(x)
    loss = F.cross_entropy(logits.reshape(-1, {V}), y.reshape(-1))
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(loss.item())

t2 = time.perf_counter()
loss = step()
t_first = time.perf_counter() - t2
t3 = time.perf_counter()
step()
t_second = time.perf_counter() - t3
print(json.dumps({{"import_s": t_import, "build_s": t_build, "first_step_s": t_first,
                  "second_step_s": t_second, "loss": loss,
                  "kernels": tinylm.kernels.enabled(), "numba_loaded": "numba" in sys.modules,
                  "total_s": t_import + t_build + t_first}}))
"""


def _cache_files(folder: str | None) -> int | None:
    if folder is None:
        return None
    return sum(1 for p in Path(folder).rglob("*") if p.suffix in (".nbi", ".nbc"))


def run_child(threads: int, cache_dir: str | None) -> dict:
    """One fresh process; its times, plus the process's whole wall time (interpreter start
    included) and the number of files in the Numba cache folder afterwards."""
    env = {**os.environ, "TINYLM_KERNELS": "numba", "PYTHONIOENCODING": "utf-8"}
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    if threads > 0:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS"):
            env[var] = str(threads)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                          encoding="utf-8", env=env, timeout=900)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"startup: the child process failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_s"] = wall
    out["cache_files"] = _cache_files(cache_dir)
    return out


def run(quick: bool = False, threads: int = 1, bar=None) -> dict:
    def tick():
        if bar is not None:
            bar.update(1)

    if quick:
        run_child(threads, None)  # fills the default cache if it is empty
        tick()
        warm = run_child(threads, None)
        tick()
        return {"settings": {"cache": "Numba's default location", "quick": True},
                "cold": None, "warm": warm}
    with tempfile.TemporaryDirectory(prefix="tinylm-bench-numba-") as d:
        cold = run_child(threads, d)
        tick()
        warm = run_child(threads, d)
        tick()
    return {"settings": {"cache": "NUMBA_CACHE_DIR=<new temporary folder>", "quick": False},
            "cold": cold, "warm": warm}


def table(result: dict) -> str:
    rows = [("Numba cache", "import tinylm s", "build model s", "first step s",
             "import + build + first step s", "second step s", "whole process s",
             "files in cache")]  # fmt: skip
    labels = {"cold": "cold (empty NUMBA_CACHE_DIR)", "warm": "warm (same folder again)"}
    if result["settings"]["quick"]:
        labels["warm"] = "warm (default location)"
    for key in ("cold", "warm"):
        r = result[key]
        if r is None:
            rows.append((labels[key].split(" (")[0] + " (skipped with --quick)", *["—"] * 7))
            continue
        rows.append((labels[key], fmt(r["import_s"], ".3f"), fmt(r["build_s"], ".3f"),
                     fmt(r["first_step_s"], ".3f"), fmt(r["total_s"], ".3f"),
                     fmt(r["second_step_s"], ".3f"), fmt(r["process_s"], ".3f"),
                     "—" if r["cache_files"] is None else str(r["cache_files"])))
    return markdown(rows)


def targets(result: dict) -> list[dict]:
    cold = result["cold"]
    note = "" if cold is None else f"cold cache: {cold['total_s']:.2f} s"
    return [target("import tinylm + first LSTM LM training step, warm Numba cache", "startup",
                   result["warm"]["total_s"], GOAL_S, "<=", "s", note)]


FOOTNOTE = ("each row is a fresh `python -c` process; 'whole process' adds the interpreter's "
            "start and exit; the second step shows the steady state")
