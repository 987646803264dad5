"""What each `tinylm train` preset reaches: validation loss, perplexity, time, a sample.

    python benchmarks/presets.py                 # every preset at its default steps
    python benchmarks/presets.py lstm gpt        # only these
    python benchmarks/presets.py --quick         # 3 steps each: a smoke test (seconds)
    python benchmarks/presets.py --json out.json # also write every figure as JSON

Each preset is trained exactly as `tinylm train --preset NAME` trains it (same config,
seed 0, CPU, one BLAS thread), in this process, one after another; the sample is the
first one `tinylm train` prints at the end (seed 0, the preset's prompt, temperature and
length). The losses and samples are deterministic for a given machine and library
versions; the times are not (they depend on the machine and on its load). The README's
table "What to expect" and benchmarks/README.md come from a full run of this script.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

from tinylm.train import PRESETS, Trainer
from tinylm.train.threads import get_blas_threads, set_blas_threads


def run_preset(name: str, quick: bool = False) -> dict:
    p = PRESETS[name]
    cfg = p.config.replace()
    if quick:
        cfg = cfg.replace(steps=3, eval_every=3, sample_tokens=20)
    start = time.perf_counter()
    trainer = Trainer(cfg, quiet=True)
    result = trainer.fit()
    sample = trainer.sample(n=1)[0]
    total = time.perf_counter() - start
    return {
        "preset": name, "description": p.description, "model": cfg.model,
        "corpus": cfg.corpus, "tokenizer": cfg.tokenizer,
        "vocab_size": trainer.tokenizer.vocab_size, "parameters": trainer.num_parameters,
        "steps": result.step, "batch": f"{cfg.batch_size}x{cfg.seq_len}",
        "val_loss": result.val_loss, "perplexity": result.perplexity,
        "val_curve": result.val, "train_seconds": result.seconds,
        "total_seconds": total, "tokens_per_s": result.tokens_per_s, "sample": sample,
        "sample_prompt": cfg.sample_prompt, "temperature": cfg.temperature,
    }  # fmt: skip


def markdown(rows: list[dict]) -> str:
    lines = ["| preset | model | parameters | steps | val loss | perplexity | time | tokens/s |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| `{r['preset']}` | {r['model']} on {r['corpus']} ({r['tokenizer']}) | "
                     f"{r['parameters']:,} | {r['steps']} | {r['val_loss']:.3f} | "
                     f"{r['perplexity']:.2f} | {r['total_seconds']:.0f} s | "
                     f"{r['tokens_per_s']:,.0f} |")
    for r in rows:
        lines += ["", f"`{r['preset']}` after {r['steps']} steps (temperature "
                      f"{r['temperature']:g}, seed 0):", "", "```text",
                  r["sample"].strip("\n"), "```"]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("presets", nargs="*", metavar="PRESET",
                    help=f"presets to run (default: all of {', '.join(PRESETS)})")
    ap.add_argument("--quick", action="store_true", help="3 steps each (a smoke test)")
    ap.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    ap.add_argument("--threads", type=int, default=1,
                    help="BLAS threads, as tinylm train --threads (default 1; 0: NumPy's)")
    args = ap.parse_args(argv)
    if args.threads:
        set_blas_threads(args.threads)
    names = args.presets or list(PRESETS)
    unknown = [n for n in names if n not in PRESETS]
    if unknown:
        ap.error(f"unknown preset(s) {unknown}; presets: {', '.join(PRESETS)}")
    env = (f"{platform.machine()}, {os.cpu_count()} CPUs (affinity "
           f"{len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'}), "
           f"Python {platform.python_version()}, NumPy {np.__version__}, "
           f"BLAS threads {get_blas_threads()}")
    print(f"# {env}", flush=True)
    rows = []
    for name in names:
        row = run_preset(name, quick=args.quick)
        rows.append(row)
        print(f"# {name}: val loss {row['val_loss']:.4f} after {row['steps']} steps, "
              f"{row['total_seconds']:.0f} s, {row['tokens_per_s']:,.0f} tokens/s", flush=True)
    print(markdown(rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"environment": env, "quick": args.quick, "presets": rows}, f, indent=1,
                      ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
