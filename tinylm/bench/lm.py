"""Training-step throughput of two small language models: tinylm with its kernels on and
off, against PyTorch CPU, in one process.

One training step is forward, cross-entropy over all B*T positions, backward and an Adam
step (lr 1e-3), in float32, on a (B, T) batch of random ids (4 fixed batches, cycled);
throughput is B*T tokens over the step's median time.

    lstm  char-LSTM LM: Embedding(65, 64) -> LSTM(64, 256) -> Linear(256, 65); B=32, T=64
          (the sizes of ``tinylm train``'s default preset)
    gpt   tiny GPT: 2 pre-LN blocks (4 heads, d=128, GELU MLP 4x), context 64, tied head

Runs per model: tinylm with the kernels on; tinylm with the kernels off (the reference code,
switched with ``tinylm.kernels.set_enabled`` in the same process, so the two are
comparable); PyTorch's fused ``nn.LSTM`` or the GPT composition; and for the LSTM also a
PyTorch LSTM written as a Python loop over time steps (``torch_models.py``). The steps are
timed *interleaved*: every round runs one step of each, so the machine's load drifts over
all of them alike and the ratios hold even when the absolute figures swing.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable

import numpy as np

from .. import kernels, manual_seed
from ..creation import tensor as make_tensor
from ..models import GPTConfig, RNNLMConfig, build_model
from ..nn import functional as F
from ..optim import Adam
from . import torch_models
from ._util import fmt, fmt_ratio, markdown, target

V, B, T = 65, 32, 64
LSTM_CFG = {"embed_dim": 64, "hidden_size": 256}
GPT_CFG = {"context_length": 64, "d_model": 128, "n_layers": 2, "n_heads": 4}
N_BATCHES = 4
MODELS = ("lstm", "gpt")
LABELS = {"lstm": "char-LSTM LM (V=65, E=64, H=256)", "gpt": "tiny GPT (2 x 4 heads, d=128)"}

# (key, label): what runs per model; "tinylm" (kernels on) is what every ratio divides
RUNS = {
    "lstm": (("tinylm", "tinylm, kernels on"), ("tinylm_ref", "tinylm, kernels off"),
             ("torch", "PyTorch nn.LSTM"), ("torch_loop", "PyTorch LSTMCell loop over t")),
    "gpt": (("tinylm", "tinylm, kernels on"), ("tinylm_ref", "tinylm, kernels off"),
            ("torch", "PyTorch nn.MultiheadAttention blocks")),
}  # fmt: skip
# tinylm (kernels on) tok/s over the run's tok/s, from the fast-paths issue
TARGETS = {("lstm", "torch"): 0.6, ("lstm", "torch_loop"): 2.0, ("gpt", "torch"): 0.8}


def batches(seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``N_BATCHES`` (input, target) pairs of random ids, each (B, T) int64."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(N_BATCHES):
        ids = rng.integers(0, V, size=(B, T + 1), dtype=np.int64)
        out.append((ids[:, :-1].copy(), ids[:, 1:].copy()))
    return out


def tinylm_model(name: str):
    """The tinylm model ``name`` (seed 0), as ``tinylm train`` builds it (no dropout)."""
    manual_seed(0)
    if name == "lstm":
        cfg = RNNLMConfig(vocab_size=V, cell="lstm", **LSTM_CFG)
    else:
        cfg = GPTConfig(vocab_size=V, **GPT_CFG)
    model = build_model(cfg)
    model.train()
    return model


def tinylm_step(name: str, kernels_on: bool = True) -> Callable[[int], float]:
    """One training step of tinylm's model ``name`` on batch ``i``; returns the loss. The
    kernels are switched on or off around each step (and restored after it)."""
    model = tinylm_model(name)
    opt = Adam(model.parameters(), lr=1e-3)
    data = [(make_tensor(x), make_tensor(y)) for x, y in batches()]

    def step(i: int) -> float:
        old = kernels.set_enabled(kernels_on)
        try:
            x, y = data[i % len(data)]
            logits, _ = model(x)
            loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            return float(loss.item())
        finally:
            kernels.set_enabled(old)

    return step


def torch_step(name: str, torch) -> Callable[[int], float]:
    """One training step of the PyTorch model ``name`` (lstm, lstm_loop, gpt)."""
    model = torch_models.build(name, torch, V, LSTM_CFG, GPT_CFG)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)  # default: foreach on CPU
    data = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches()]

    def step(i: int) -> float:
        x, y = data[i % len(data)]
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.item())

    return step


def time_interleaved(steps: dict[str, Callable[[int], float]], warmup: int,
                     timed: int, progress=None) -> dict[str, dict]:
    """Per run: median and min step time (s), tok/s, first and last loss. ``warmup``
    untimed steps each, then ``timed`` rounds of one step of each run."""
    first = {k: fn(0) for k, fn in steps.items()}
    for i in range(1, warmup):
        for fn in steps.values():
            fn(i)
    times: dict[str, list[float]] = {k: [] for k in steps}
    last = dict(first)
    gc.collect()
    for r in range(timed):
        for k, fn in steps.items():
            t0 = time.perf_counter()
            last[k] = fn(warmup + r)
            times[k].append(time.perf_counter() - t0)
        if progress is not None:
            progress()
    out = {}
    for k, ts in times.items():
        if not (math.isfinite(first[k]) and math.isfinite(last[k])):
            raise RuntimeError(f"tinylm bench: {k} loss is not finite ({first[k]}, {last[k]})")
        med = statistics.median(ts)
        out[k] = {"step_s_median": med, "step_s_min": min(ts), "tok_s": B * T / med,
                  "first_loss": first[k], "last_loss": last[k], "steps_timed": timed}
    return out


def run(quick: bool = False, torch=None, steps: int | None = None,
        warmup: int | None = None, models=MODELS, bar=None) -> dict:
    """Time every run of every model; ``bar`` (a tqdm-like object or None) is advanced once
    per timed round. Returns the section's JSON: settings and one row per (model, run)."""
    warmup = warmup if warmup is not None else (1 if quick else 5)
    steps = steps or (3 if quick else 30)
    rows = []
    for name in models:
        fns = {"tinylm": tinylm_step(name, True), "tinylm_ref": tinylm_step(name, False)}
        if torch is not None:
            fns["torch"] = torch_step(name, torch)
            if name == "lstm":
                fns["torch_loop"] = torch_step("lstm_loop", torch)
        res = time_interleaved(fns, warmup, steps,
                               progress=None if bar is None else lambda: bar.update(1))
        ours = res["tinylm"]["tok_s"]
        for key, label in RUNS[name]:
            r = res.get(key)
            rows.append({
                "model": name, "run": key, "label": label,
                **(r or {"step_s_median": None, "step_s_min": None, "tok_s": None,
                         "first_loss": None, "last_loss": None, "steps_timed": 0}),
                # tinylm (kernels on) over this run: > 1 means tinylm is faster
                "tinylm_over_this": None if r is None else ours / r["tok_s"],
            })  # fmt: skip
    return {
        "settings": {"B": B, "T": T, "V": V, "lstm": LSTM_CFG, "gpt": GPT_CFG,
                     "warmup": warmup, "steps": steps, "dtype": "float32",
                     "optimizer": "Adam(lr=1e-3)", "models": list(models)},
        "rows": rows,
    }  # fmt: skip


def _row(result: dict, model: str, run: str) -> dict | None:
    return next((r for r in result["rows"] if r["model"] == model and r["run"] == run), None)


def table(result: dict) -> str:
    head = ("model", "run", "step ms", "tok/s", "first loss", "tinylm kernels-on / this")
    rows = [head]
    for r in result["rows"]:
        ms = None if r["step_s_median"] is None else r["step_s_median"] * 1e3
        rows.append((r["model"], r["label"], fmt(ms, ".1f"), fmt(r["tok_s"], ",.0f"),
                     fmt(r["first_loss"], ".3f"), fmt_ratio(r["tinylm_over_this"])))
    return markdown(rows)


def targets(result: dict, have_torch: bool) -> list[dict]:
    out = []
    note = "" if have_torch else "PyTorch not installed"
    for (model, run), goal in TARGETS.items():
        if model not in result["settings"]["models"]:
            continue
        r = _row(result, model, run)
        label = dict(RUNS[model])[run]
        out.append(target(f"{LABELS[model].split(' (')[0]} tok/s vs {label}", "lm",
                          None if r is None else r["tinylm_over_this"], goal, ">=", "x", note))
    return out


FOOTNOTE = (
    "tok/s = B*T / median step time (forward + cross-entropy + backward + Adam step), B=32, "
    "T=64, float32; runs timed interleaved; first loss ~ log 65 = 4.17 for every run."
)
