"""Training-step throughput of two small language models: tinylm against PyTorch CPU.

One training step is forward, cross-entropy, backward and an Adam step, in float32, on a
(B, T) batch of random token ids; throughput is B * T tokens per step over the step's time.

    lstm  char-LSTM LM: Embedding(65, 64) -> LSTM(64, 256) -> Linear(256, 65); B=32, T=64
    gpt   tiny GPT: 2 pre-LN blocks (4 heads, d=128, GELU MLP 4x), context 64, tied
          head; B=32, T=64

PyTorch runs the equivalent composition (nn.Embedding + nn.LSTM + nn.Linear; for the GPT
nn.Embedding + a learned position table + nn.LayerNorm / nn.MultiheadAttention (causal) /
nn.Linear + nn.GELU blocks + a tied head) in the same process, with the same number of
threads: NumPy's OpenBLAS gets it through the environment (set here, before NumPy is
imported) and PyTorch through ``torch.set_num_threads``. Each model takes warmup steps,
then the median step time over the timed steps. Targets (issue 4, plain NumPy path):
tinylm >= 0.35x PyTorch's nn.LSTM and >= 0.5x PyTorch on the GPT.

    python benchmarks/lm_step.py                 # full run, 1-2 min on 2 cores
    python benchmarks/lm_step.py --quick         # 1 warmup + 3 timed steps (smoke test)
    python benchmarks/lm_step.py --threads 1 --json out.json
"""

from __future__ import annotations

import os
import sys


def _threads_from_argv(argv: list[str]) -> int:
    """``--threads N`` read before NumPy is imported (its BLAS reads the env at import)."""
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return int(argv[i + 1])
        if a.startswith("--threads="):
            return int(a.split("=", 1)[1])
    return os.cpu_count() or 1


if __name__ == "__main__":
    _N = str(max(1, _threads_from_argv(sys.argv[1:])))
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _N  # must precede the NumPy import to take effect

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402

import tinylm  # noqa: E402
from tinylm.models import GPTConfig, RNNLMConfig, build_model  # noqa: E402
from tinylm.nn import functional as F  # noqa: E402
from tinylm.optim import Adam  # noqa: E402
from tinylm.train.threads import get_blas_threads, set_blas_threads  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # benchmarks/machine.py
from machine import describe  # noqa: E402

try:
    import torch
except ImportError:  # the benchmark runs without torch: its columns show a dash
    torch = None

DASH = "—"
V, B, T = 65, 32, 64
LSTM_CFG = {"embed_dim": 64, "hidden_size": 256}
GPT_CFG = {"context_length": 64, "d_model": 128, "n_layers": 2, "n_heads": 4}
TARGETS = {"lstm": 0.35, "gpt": 0.5}  # tinylm / torch tok/s, issue 4 (plain NumPy path)
LABELS = {
    "lstm": "char-LSTM (V=65, E=64, H=256)",
    "gpt": "tiny GPT (2x4 heads, d=128)",
}
TORCH_LABELS = {"lstm": "nn.LSTM", "gpt": "nn.MultiheadAttention blocks"}
N_BATCHES = 4  # batches of random ids, cycled


def _batches(seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(N_BATCHES):
        ids = rng.integers(0, V, size=(B, T + 1), dtype=np.int64)
        out.append((ids[:, :-1].copy(), ids[:, 1:].copy()))
    return out


# ----------------------------------------------------------------------------- tinylm


def tinylm_step(name: str) -> tuple[Callable[[int], float], int]:
    if name == "lstm":
        cfg = RNNLMConfig(vocab_size=V, cell="lstm", **LSTM_CFG)
    else:
        cfg = GPTConfig(vocab_size=V, **GPT_CFG)
    model = build_model(cfg)
    model.train()
    opt = Adam(model.parameters(), lr=1e-3)
    data = [(tinylm.tensor(x), tinylm.tensor(y)) for x, y in _batches()]
    n_params = sum(int(np.prod(p.shape)) for p in model.parameters())

    def step(i: int) -> float:
        x, y = data[i % len(data)]
        logits, _ = model(x)
        loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        return float(loss.item())

    return step, n_params


# ----------------------------------------------------------------------------- torch


def _torch_models():
    nn = torch.nn

    class LSTMLM(nn.Module):
        def __init__(self):
            super().__init__()
            E, H = LSTM_CFG["embed_dim"], LSTM_CFG["hidden_size"]
            self.embedding = nn.Embedding(V, E)
            self.rnn = nn.LSTM(E, H, batch_first=True)
            self.head = nn.Linear(H, V)
            nn.init.uniform_(self.embedding.weight, -0.1, 0.1)  # as tinylm's RNNLM
            nn.init.uniform_(self.head.weight, -0.1, 0.1)
            nn.init.zeros_(self.head.bias)

        def forward(self, idx):
            h, _ = self.rnn(self.embedding(idx))
            return self.head(h)

    class Block(nn.Module):  # pre-LN, causal self-attention, GELU MLP (tinylm's block)
        def __init__(self, C, n_heads):
            super().__init__()
            self.ln_1 = nn.LayerNorm(C)
            self.attn = nn.MultiheadAttention(C, n_heads, batch_first=True)
            self.ln_2 = nn.LayerNorm(C)
            self.mlp = nn.Sequential(nn.Linear(C, 4 * C), nn.GELU(), nn.Linear(4 * C, C))

        def forward(self, x, mask):
            h = self.ln_1(x)
            a, _ = self.attn(h, h, h, attn_mask=mask, need_weights=False, is_causal=True)
            x = x + a
            return x + self.mlp(self.ln_2(x))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            C, L = GPT_CFG["d_model"], GPT_CFG["context_length"]
            self.tok_emb = nn.Embedding(V, C)
            self.pos_emb = nn.Parameter(torch.zeros(L, C))
            self.blocks = nn.ModuleList(
                [Block(C, GPT_CFG["n_heads"]) for _ in range(GPT_CFG["n_layers"])])
            self.ln_f = nn.LayerNorm(C)
            self.head = nn.Linear(C, V, bias=False)
            for m in self.modules():  # GPT-2 init, as tinylm's GPT
                if isinstance(m, (nn.Linear, nn.Embedding)):
                    nn.init.normal_(m.weight, 0.0, 0.02)
                    if getattr(m, "bias", None) is not None:
                        nn.init.zeros_(m.bias)
                elif isinstance(m, nn.MultiheadAttention):
                    nn.init.normal_(m.in_proj_weight, 0.0, 0.02)
                    nn.init.zeros_(m.in_proj_bias)
            nn.init.normal_(self.pos_emb, 0.0, 0.02)
            self.head.weight = self.tok_emb.weight  # tied, as GPTConfig's default
            self.register_buffer(
                "mask", torch.ones(L, L, dtype=torch.bool).triu(1), persistent=False)

        def forward(self, idx):
            t = idx.shape[1]
            x = self.tok_emb(idx) + self.pos_emb[:t]
            mask = self.mask[:t, :t]
            for block in self.blocks:
                x = block(x, mask)
            return self.head(self.ln_f(x))

    return {"lstm": LSTMLM, "gpt": GPT}


def torch_step(name: str) -> tuple[Callable[[int], float], int]:
    torch.manual_seed(0)
    model = _torch_models()[name]()
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)  # default: foreach on CPU
    data = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in _batches()]
    n_params = sum(p.numel() for p in model.parameters())

    def step(i: int) -> float:
        x, y = data[i % len(data)]
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.item())

    return step, n_params


# ----------------------------------------------------------------------------- timing


def time_steps(step: Callable[[int], float], warmup: int, timed: int) -> dict:
    """Median (and min) step time in seconds after ``warmup`` untimed steps; the garbage
    collector stays on, as in training."""
    gc.collect()
    first_loss = step(0)
    for i in range(1, warmup):
        step(i)
    times = []
    last_loss = first_loss
    for i in range(timed):
        t0 = time.perf_counter()
        last_loss = step(warmup + i)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {
        "step_s_median": med,
        "step_s_min": min(times),
        "tok_s": B * T / med,
        "first_loss": first_loss,
        "last_loss": last_loss,
        "steps_timed": timed,
    }


def machine(threads: int) -> dict:
    return {**describe(torch), "threads": threads, "blas_threads": get_blas_threads()}


def _fmt_tok(v: float | None) -> str:
    return DASH if v is None else f"{v:,.0f}"


def table(results: list[dict]) -> str:
    header = ("model", "tinylm tok/s", "torch tok/s", "torch reference", "ratio tinylm/torch",
              "target", "met")  # fmt: skip
    rows = [header, ("---",) * len(header)]
    for r in results:
        ratio = r["ratio"]
        met = DASH if r["met"] is None else ("met" if r["met"] else "NOT met")
        rows.append((
            r["model"], _fmt_tok(r["tinylm"]["tok_s"]),
            _fmt_tok(r["torch"]["tok_s"] if r["torch"] else None),
            TORCH_LABELS[r["model"]] if r["torch"] else DASH,
            DASH if ratio is None else f"{ratio:.2f}x", f">= {r['target']:g}x", met,
        ))  # fmt: skip
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="1 warmup + 3 timed steps (smoke test)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="threads for NumPy's BLAS and for PyTorch (default: all cores)")
    p.add_argument("--warmup", type=int, help="untimed steps per model (default 5; quick: 1)")
    p.add_argument("--steps", type=int, help="timed steps per model (default 30; quick: 3)")
    p.add_argument("--models", default="lstm,gpt", help="comma-separated: lstm, gpt")
    args = p.parse_args(argv)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 5)
    steps = args.steps or (3 if args.quick else 30)
    threads = max(1, args.threads)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for m in models:
        if m not in TARGETS:
            p.error(f"unknown model {m!r} (choose from lstm, gpt)")

    set_blas_threads(threads)  # in case NumPy was imported before the env was set
    if torch is not None:
        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # only settable before PyTorch's first parallel work
            pass

    info = machine(threads)
    print(f"machine: {info['cpu']}, {info['cpu_count']} CPUs, {info['platform']}")
    print(
        f"python {info['python']}, numpy {info['numpy']}, tinylm {info['tinylm']}, "
        f"torch {info['torch'] or 'not installed'}"
    )
    print(
        f"threads: {threads} (NumPy/OpenBLAS {info['blas_threads'] or DASH}, "
        f"torch {info['torch_threads'] or DASH}); float32, B={B}, T={T}, Adam lr=1e-3; "
        f"{warmup} warmup + median of {steps} timed steps per model"
    )
    print()

    results = []
    for name in models:
        tl = time_steps(tinylm_step(name)[0], warmup, steps)
        th = time_steps(torch_step(name)[0], warmup, steps) if torch is not None else None
        ratio = None if th is None else tl["tok_s"] / th["tok_s"]
        for who, r in (("tinylm", tl), ("torch", th)):
            if r is not None and not math.isfinite(r["last_loss"]):
                sys.exit(f"lm_step.py: {who} {name} loss is not finite: {r['last_loss']}")
        results.append({
            "model": name, "description": LABELS[name], "tinylm": tl, "torch": th,
            "ratio": ratio, "target": TARGETS[name],
            "met": None if ratio is None else ratio >= TARGETS[name],
        })  # fmt: skip
        print(f"{name}: {LABELS[name]}; first loss tinylm {tl['first_loss']:.3f}"
              + ("" if th is None else f", torch {th['first_loss']:.3f}")
              + f" (log V = {math.log(V):.3f})", flush=True)  # fmt: skip

    print()
    print(table(results))
    print()
    print("tok/s = B*T / median step time (forward + cross-entropy + backward + Adam step); "
          "targets from issue 4 (plain NumPy path)")

    if args.json:
        doc = {
            "machine": info,
            "settings": {"B": B, "T": T, "V": V, "lstm": LSTM_CFG, "gpt": GPT_CFG,
                         "warmup": warmup, "steps": steps, "quick": args.quick,
                         "dtype": "float32", "optimizer": "Adam(lr=1e-3)"},
            "results": results,
        }  # fmt: skip
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
