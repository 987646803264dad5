"""Training-step throughput on a GPU: tinylm (``device="cuda"``, CuPy) against PyTorch CUDA.

The same two models, sizes and step as ``benchmarks/lm_step.py`` (``tinylm.bench.lm``): one
step is forward, cross-entropy, backward and an Adam step (lr 1e-3), in float32, on a
(B, T) = (32, 64) batch of random ids; throughput is B * T tokens over the step's time.

    lstm  char-LSTM LM: Embedding(65, 64) -> LSTM(64, 256) -> Linear(256, 65)
    gpt   tiny GPT: 2 pre-LN blocks (4 heads, d=128, GELU MLP 4x), context 64, tied head

PyTorch runs eagerly (no ``torch.compile``, no CUDA graphs), with its default CUDA
kernels (cuDNN's fused LSTM, fused attention inside ``nn.MultiheadAttention``, the
``foreach`` Adam). Timing: every step ends with a device synchronize, so the time is the
GPU's work plus whatever the host adds while launching it; the loss is read back only
after the timed steps. CuPy compiles each elementwise/reduction kernel the first time it
meets it (cached on disk afterwards), so the first step is reported on its own and the
warmup steps are untimed. Target (GPU issue): the tiny GPT at >= 0.5x PyTorch CUDA eager.

``ops/step`` counts ``Function.apply`` calls in one tinylm step (forward ops, and the ops
backward runs): small models on a GPU are launch-bound, so step time / ops is the cost of
one op on the host (Python, checks, one or more kernel launches).

    python benchmarks/gpu.py                      # both models, ~1 min on an H200
    python benchmarks/gpu.py --quick              # 2 warmup + 3 timed steps (smoke test)
    python benchmarks/gpu.py --json out.json --md out.md
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable

import tinylm
from tinylm.autograd import Function
from tinylm.bench import torch_models
from tinylm.bench._util import describe, optional_torch
from tinylm.bench.lm import GPT_CFG, LABELS, LSTM_CFG, B, T, V, batches, tinylm_model
from tinylm.nn import functional as F
from tinylm.optim import Adam

torch = optional_torch()
DASH = "—"
TARGETS = {"gpt": 0.5, "lstm": None}  # tinylm / torch tok/s on the GPU (GPU issue)
TORCH_LABELS = {"lstm": "nn.LSTM (cuDNN)", "gpt": "nn.MultiheadAttention blocks"}


def torch_cuda() -> bool:
    return torch is not None and torch.cuda.is_available()


# ----------------------------------------------------------------------------- steps


def tinylm_step(name: str, device: str = "cuda") -> tuple[Callable, int]:
    """lm.py's model ``name`` (built on the CPU from seed 0, then moved) and its step."""
    model = tinylm_model(name).to(device)
    opt = Adam(model.parameters(), lr=1e-3)
    data = [(tinylm.tensor(x, device=device), tinylm.tensor(y, device=device))
            for x, y in batches()]
    n_params = sum(p.numel() for p in model.parameters())

    def step(i: int):
        x, y = data[i % len(data)]
        logits, _ = model(x)
        loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    return step, n_params


def torch_step(name: str) -> tuple[Callable, int]:
    model = torch_models.build(name, torch, V, LSTM_CFG, GPT_CFG).cuda()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)  # foreach on CUDA by default
    data = [(torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda()) for x, y in batches()]
    n_params = sum(p.numel() for p in model.parameters())

    def step(i: int):
        x, y = data[i % len(data)]
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    return step, n_params


# ----------------------------------------------------------------------------- timing


def time_steps(step: Callable, sync: Callable[[], None], warmup: int, timed: int) -> dict:
    """The first step (kernel compilation included), then the median and min of ``timed``
    synchronized steps after ``warmup`` untimed ones (the first one counts as warmup)."""
    t0 = time.perf_counter()
    loss = step(0)
    sync()
    first_s = time.perf_counter() - t0
    first_loss = float(loss.item())
    for i in range(1, max(warmup, 1)):
        step(i)
        sync()
    times = []
    for i in range(timed):
        t0 = time.perf_counter()
        loss = step(warmup + i)
        sync()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"step_s_median": med, "step_s_min": min(times), "first_step_s": first_s,
            "tok_s": B * T / med, "first_loss": first_loss, "last_loss": float(loss.item()),
            "steps_timed": timed}


def count_ops(step: Callable, sync: Callable[[], None], i: int) -> int:
    """``Function.apply`` calls during one step (forward and backward ops)."""
    original = Function.__dict__["apply"]
    calls = [0]

    def counting(cls, *inputs, **params):
        calls[0] += 1
        return original.__func__(cls, *inputs, **params)

    Function.apply = classmethod(counting)
    try:
        step(i)
        sync()
    finally:
        Function.apply = original
    return calls[0]


def _query(fn):
    """A version query that must not stop the benchmark (None when it fails)."""
    try:
        return fn()
    except Exception:  # informative only
        return None


def machine() -> dict:
    import cupy

    info = describe(torch)
    rt = cupy.cuda.runtime
    info.update({
        "gpu": tinylm.cuda.get_device_name(),
        "cupy": getattr(cupy, "__version__", None),
        "cuda_runtime": _query(lambda: rt.runtimeGetVersion()),
        "cuda_driver": _query(lambda: rt.driverGetVersion()),
        "torch_cuda": getattr(getattr(torch, "version", None), "cuda", None),
        "torch_gpu": _query(lambda: torch.cuda.get_device_name(0)) if torch_cuda() else None,
        # TF32 would let PyTorch's float32 matmuls / cuDNN LSTM round inputs to 10 bits
        "torch_tf32_matmul": _query(lambda: torch.backends.cuda.matmul.allow_tf32),
        "torch_tf32_cudnn": _query(lambda: torch.backends.cudnn.allow_tf32),
    })  # fmt: skip
    return info


# ----------------------------------------------------------------------------- report


def _fmt_tok(v):
    return DASH if v is None else f"{v:,.0f}"


def table(results: list[dict]) -> str:
    header = ("model", "tinylm cuda tok/s", "torch cuda tok/s", "torch reference",
              "ratio tinylm/torch", "target", "met", "tinylm step ms", "torch step ms",
              "tinylm ops/step", "µs per op", "tinylm first step s")  # fmt: skip
    rows = [header, ("---",) * len(header)]
    for r in results:
        tl, th, target = r["tinylm"], r["torch"], r["target"]
        met = DASH if r["met"] is None else ("met" if r["met"] else "NOT met")
        rows.append((
            r["model"], _fmt_tok(tl["tok_s"]), _fmt_tok(th["tok_s"] if th else None),
            TORCH_LABELS[r["model"]] if th else DASH,
            DASH if r["ratio"] is None else f"{r['ratio']:.2f}x",
            DASH if target is None else f">= {target:g}x", met,
            f"{tl['step_s_median'] * 1e3:.2f}",
            DASH if th is None else f"{th['step_s_median'] * 1e3:.2f}",
            str(r["ops_per_step"]), f"{tl['step_s_median'] / r['ops_per_step'] * 1e6:.1f}",
            f"{tl['first_step_s']:.1f}",
        ))  # fmt: skip
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="2 warmup + 3 timed steps")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    p.add_argument("--md", metavar="PATH", help="also write the table (markdown) to PATH")
    p.add_argument("--warmup", type=int, help="untimed steps per model (default 10; quick: 2)")
    p.add_argument("--steps", type=int, help="timed steps per model (default 50; quick: 3)")
    p.add_argument("--models", default="gpt,lstm", help="comma-separated: gpt, lstm")
    args = p.parse_args(argv)
    warmup = args.warmup if args.warmup is not None else (2 if args.quick else 10)
    steps = args.steps or (3 if args.quick else 50)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for m in models:
        if m not in TARGETS:
            p.error(f"unknown model {m!r} (choose from gpt, lstm)")
    if not tinylm.cuda.is_available():
        print("gpu.py: no GPU here (tinylm.cuda.is_available() is False: CuPy missing, or "
              "no CUDA device); nothing measured", file=sys.stderr)
        return 2

    info = machine()
    print(f"gpu: {info['gpu']}; cupy {info['cupy']}, CUDA runtime {info['cuda_runtime']}, "
          f"driver {info['cuda_driver']}")
    print(f"host: {info['cpu']}, {info['cpu_count']} CPUs; python {info['python']}, numpy "
          f"{info['numpy']}, tinylm {info['tinylm']}, torch {info['torch'] or 'not installed'}"
          f" (CUDA {info['torch_cuda'] or DASH})")
    print(f"float32, B={B}, T={T}, Adam lr=1e-3; {warmup} warmup + median of {steps} "
          "synchronized steps per model; torch TF32 matmul "
          f"{info['torch_tf32_matmul']}, cuDNN {info['torch_tf32_cudnn']}")
    print(flush=True)

    def tl_sync():
        tinylm.cuda.synchronize()

    results, failed = [], []
    for name in models:
        try:
            results.append(measure(name, warmup, steps, tl_sync))
        except Exception as e:  # one model failing must not lose the other's figures
            import traceback

            traceback.print_exc()
            failed.append(f"{name}: {type(e).__name__}: {e}")
            continue
        r = results[-1]
        tl, th = r["tinylm"], r["torch"]
        print(f"{name}: {LABELS[name]}, {r['parameters']:,} parameters; first loss tinylm "
              f"{tl['first_loss']:.3f}" + ("" if th is None else f", torch {th['first_loss']:.3f}")
              + f" (log V = {math.log(V):.3f}); tinylm first step {tl['first_step_s']:.1f} s",
              flush=True)  # fmt: skip
        write(args, info, results, warmup, steps)  # after each model: a timeout keeps it

    print()
    print(table(results))
    print()
    print("tok/s = B*T / median synchronized step time (forward + cross-entropy + backward + "
          "Adam); µs per op = tinylm step time / ops per step")
    if args.json:
        print(f"wrote {args.json}")
    for f in failed:
        print(f"FAILED {f}", file=sys.stderr)
    return 1 if failed else 0


def measure(name: str, warmup: int, steps: int, tl_sync) -> dict:
    """tinylm on the GPU, then PyTorch CUDA (when there), for model ``name``."""
    step, n_params = tinylm_step(name)
    tl = time_steps(step, tl_sync, warmup, steps)
    ops = count_ops(step, tl_sync, warmup + steps)
    th = None
    if torch_cuda():
        tstep, _ = torch_step(name)
        th = time_steps(tstep, torch.cuda.synchronize, warmup, steps)
    for who, r in (("tinylm", tl), ("torch", th)):
        if r is not None and not math.isfinite(r["last_loss"]):
            raise FloatingPointError(f"{who} {name} loss is not finite: {r['last_loss']}")
    ratio = None if th is None else tl["tok_s"] / th["tok_s"]
    target = TARGETS[name]
    return {"model": name, "description": LABELS[name], "parameters": n_params,
            "tinylm": tl, "torch": th, "ratio": ratio, "target": target,
            "met": None if ratio is None or target is None else ratio >= target,
            "ops_per_step": ops}  # fmt: skip


def write(args, info: dict, results: list[dict], warmup: int, steps: int) -> None:
    """The markdown table and the JSON document, for what has been measured so far."""
    if args.md:
        with open(args.md, "w", encoding="utf-8") as f:
            f.write(table(results) + "\n")
    if args.json:
        doc = {"machine": info,
               "settings": {"B": B, "T": T, "V": V, "lstm": LSTM_CFG, "gpt": GPT_CFG,
                            "warmup": warmup, "steps": steps, "quick": args.quick,
                            "dtype": "float32", "optimizer": "Adam(lr=1e-3)"},
               "results": results}  # fmt: skip
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
