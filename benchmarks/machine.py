"""What the benchmarks print about the machine they ran on (shared by every script here)."""

from __future__ import annotations

import os
import platform

import numpy as np

import tinylm


def describe(torch=None) -> dict:
    """CPU model, core count, platform and library versions."""
    cpu = platform.processor()
    if not cpu or cpu == platform.machine():  # Linux leaves processor() empty or "x86_64"
        try:
            with open("/proc/cpuinfo") as f:
                cpu = next(
                    (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu
                )
        except OSError:
            pass
    return {
        "cpu": cpu or platform.machine(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "tinylm": tinylm.__version__,
        "torch": None if torch is None else torch.__version__,
        "torch_threads": None if torch is None else torch.get_num_threads(),
    }
