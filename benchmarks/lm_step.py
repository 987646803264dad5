"""Training-step throughput of two small language models: tinylm (kernels on and off)
against PyTorch CPU, in one process.

One training step is forward, cross-entropy, backward and an Adam step, in float32, on a
(B, T) batch of random token ids; throughput is B * T tokens per step over the step's
median time. B=32, T=64, V=65:

    lstm  char-LSTM LM: Embedding(65, 64) -> LSTM(64, 256) -> Linear(256, 65), against
          PyTorch nn.LSTM and a PyTorch LSTMCell loop over time steps
    gpt   tiny GPT: 2 pre-LN blocks (4 heads, d=128, GELU MLP 4x), context 64, tied head

This is ``tinylm bench --only lm`` (the code lives in tinylm/bench/lm.py, so the installed
command has it too); the options are the command's:

    python benchmarks/lm_step.py                 # 5 warmup + 30 timed steps per run
    python benchmarks/lm_step.py --quick         # 1 warmup + 3 timed steps (smoke test)
    python benchmarks/lm_step.py --threads 2 --json out.json
"""

from __future__ import annotations

import sys

from tinylm.bench import main

if __name__ == "__main__":
    sys.exit(main(["--only", "lm", *sys.argv[1:]], prog="lm_step.py"))
