"""One source of randomness for all of tinylm: ``tinylm.manual_seed(s)`` seeds it.

CPU draws come from a NumPy ``Generator`` (PCG64); GPU draws from a CuPy
generator seeded from the same seed, created when first needed.
"""

from __future__ import annotations

import numpy as np

from . import backend

_state = {"seed": 0, "cpu": np.random.default_rng(0), "cuda": None}


def manual_seed(seed: int) -> None:
    """Seed every random draw tinylm makes (initialisation, dropout, sampling)."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"manual_seed: seed must be a non-negative int, got {seed!r}")
    _state["seed"] = int(seed)
    _state["cpu"] = np.random.default_rng(int(seed))
    _state["cuda"] = None


def generator(device: backend.Device | None = None):
    """The generator for ``device`` (NumPy's on the CPU, CuPy's on a GPU)."""
    if device is None or device.type == "cpu":
        return _state["cpu"]
    if _state["cuda"] is None:
        cp = backend.cupy()
        _state["cuda"] = cp.random.default_rng(_state["seed"])
    return _state["cuda"]


def get_rng_state() -> dict:
    """The CPU generator's state (a JSON-friendly dict), for exact resume."""
    return {"seed": _state["seed"], "bit_generator": _state["cpu"].bit_generator.state}


def set_rng_state(state: dict) -> None:
    rng = np.random.default_rng()
    rng.bit_generator.state = state["bit_generator"]
    _state["seed"] = state["seed"]
    _state["cpu"] = rng
